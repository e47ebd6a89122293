// Strict parsing: types, unknown keys, YAML 1.1 booleans, legacy keys, DCS selection, secrets.
#include "config/load.hpp"

#include "config_test_support.hpp"

#include <catch2/catch.hpp>

#include <filesystem>

using namespace pgwarden;
using namespace pgwarden::config;
using namespace pgwarden::config::test;

TEST_CASE("config: loop_wait that is not a number is an error naming bootstrap.dcs.loop_wait",
          "[config]") {
    const LoadResult r = load(replace(consul_yml(), "loop_wait: 10", "loop_wait: ten"));
    CHECK_FALSE(r.ok());
    const Problem* p = find_problem(r, "bootstrap.dcs.loop_wait");
    REQUIRE(p != nullptr);
    CHECK(p->severity == Problem::Severity::Error);
    CHECK(p->line == 25);
    CHECK(p->message == "expected an integer number of seconds, got 'ten'");
    CHECK(format_problem(*p, "patroni.yml") ==
          "patroni.yml:25: error: bootstrap.dcs.loop_wait: expected an integer number of seconds, "
          "got 'ten'");
}

TEST_CASE("config: every problem is reported together", "[config]") {
    std::string yml = replace(consul_yml(), "loop_wait: 10", "loop_wait: ten");
    yml = replace(yml, "ttl: 30", "ttl: [30]");
    yml = replace(yml, "register_service: true", "register_service: maybe");
    const LoadResult r = load(yml);
    CHECK(find_problem(r, "bootstrap.dcs.loop_wait") != nullptr);
    CHECK(find_problem(r, "bootstrap.dcs.ttl") != nullptr);
    const Problem* rs = find_problem(r, "consul.register_service");
    REQUIRE(rs != nullptr);
    CHECK(rs->message == "expected a boolean (true/false, on/off, yes/no), got 'maybe'");
}

TEST_CASE("config: unknown keys are warnings naming their path", "[config]") {
    const LoadResult r =
        load(minimal_yml() + "zookeeper_extra: 1\nlog:\n  level: INFO\n  colour: true\n");
    INFO(dump(r));
    CHECK(r.ok());
    const Problem* top = find_problem(r, "zookeeper_extra");
    REQUIRE(top != nullptr);
    CHECK(top->severity == Problem::Severity::Warning);
    const Problem* nested = find_problem(r, "log.colour");
    REQUIRE(nested != nullptr);
    CHECK(nested->severity == Problem::Severity::Warning);
    CHECK(nested->line == 18);
}

TEST_CASE("config: a second DCS section is ignored with a warning, consul first as in Patroni",
          "[config]") {
    const LoadResult r = load(minimal_yml() + "etcd3:\n  hosts: [10.0.0.1:2379]\n");
    CHECK(r.ok());
    CHECK(r.settings.dcs.kind == core::DcsKind::Consul);
    const Problem* p = find_problem(r, "etcd3");
    REQUIRE(p != nullptr);
    CHECK(p->severity == Problem::Severity::Warning);
}

TEST_CASE("config: etcd v2 is an error, no DCS at all is an error", "[config]") {
    const std::string no_dcs = replace(minimal_yml(), "consul:\n  host: 127.0.0.1:8500\n", "");
    const LoadResult none = load(no_dcs);
    CHECK_FALSE(none.ok());
    const LoadResult v2 = load(no_dcs + "etcd:\n  host: 127.0.0.1:2379\n");
    CHECK_FALSE(v2.ok());
    const Problem* p = find_problem(v2, "etcd");
    REQUIRE(p != nullptr);
    CHECK(p->message == "etcd v2 is not supported, use etcd3");
}

TEST_CASE("config: etcd3 host, hosts and url forms", "[config]") {
    const std::string base = replace(minimal_yml(), "consul:\n  host: 127.0.0.1:8500\n", "");
    SECTION("hosts list") {
        const LoadResult r = load(base + "etcd3:\n  hosts:\n    - 10.0.0.1:2379\n    - 10.0.0.2\n");
        INFO(dump(r));
        REQUIRE(r.ok());
        CHECK(r.settings.dcs.kind == core::DcsKind::Etcd3);
        CHECK(r.settings.dcs.etcd3.hosts ==
              std::vector<std::string>{"10.0.0.1:2379", "10.0.0.2:2379"});
    }
    SECTION("hosts as a comma separated string") {
        const LoadResult r = load(base + "etcd3:\n  hosts: 10.0.0.1:2379, 10.0.0.2:2380\n");
        CHECK(r.settings.dcs.etcd3.hosts ==
              std::vector<std::string>{"10.0.0.1:2379", "10.0.0.2:2380"});
    }
    SECTION("url with credentials") {
        const LoadResult r = load(base + "etcd3:\n  url: https://u:pw@etcd.local:2379\n");
        REQUIRE(r.ok());
        CHECK(r.settings.dcs.etcd3.protocol == "https");
        CHECK(r.settings.dcs.etcd3.hosts == std::vector<std::string>{"etcd.local:2379"});
        CHECK(r.settings.dcs.etcd3.username == "u");
        CHECK(r.settings.dcs.etcd3.password == "pw");
    }
    SECTION("nothing to connect to") {
        const LoadResult r = load(base + "etcd3:\n  protocol: http\n");
        CHECK_FALSE(r.ok());
        CHECK(find_problem(r, "etcd3") != nullptr);
    }
}

TEST_CASE("config: consul url, explicit port and service_check_interval durations", "[config]") {
    SECTION("url") {
        const LoadResult r =
            load(replace(minimal_yml(), "host: 127.0.0.1:8500", "url: https://consul.local:8501"));
        CHECK(r.settings.dcs.consul.scheme == "https");
        CHECK(r.settings.dcs.consul.host == "consul.local");
        CHECK(r.settings.dcs.consul.port == 8501);
    }
    SECTION("explicit port wins over the port in host") {
        const LoadResult r = load(
            replace(minimal_yml(), "host: 127.0.0.1:8500", "host: 127.0.0.1:8500\n  port: 8600"));
        CHECK(r.settings.dcs.consul.port == 8600);
    }
    SECTION("host without port") {
        const LoadResult r =
            load(replace(minimal_yml(), "host: 127.0.0.1:8500", "host: consul.local"));
        CHECK(r.settings.dcs.consul.host == "consul.local");
        CHECK(r.settings.dcs.consul.port == 8500);
    }
    SECTION("service_check_interval as a Go duration") {
        const LoadResult r = load(replace(minimal_yml(),
                                          "host: 127.0.0.1:8500",
                                          "host: 127.0.0.1:8500\n  service_check_interval: 1m30s"));
        REQUIRE(r.ok());
        CHECK(r.settings.dcs.consul.service_check_interval == 90);
        CHECK(r.settings.dcs.consul.service_check_interval_text == "1m30s");
    }
    SECTION("service_check_interval as a bare number is an error") {
        const LoadResult r = load(replace(minimal_yml(),
                                          "host: 127.0.0.1:8500",
                                          "host: 127.0.0.1:8500\n  service_check_interval: 5"));
        CHECK_FALSE(r.ok());
        CHECK(find_problem(r, "consul.service_check_interval") != nullptr);
    }
    SECTION("consistency must be one of Consul's modes") {
        const LoadResult r = load(replace(minimal_yml(),
                                          "host: 127.0.0.1:8500",
                                          "host: 127.0.0.1:8500\n  consistency: eventual"));
        CHECK_FALSE(r.ok());
        CHECK(find_problem(r, "consul.consistency") != nullptr);
    }
}

TEST_CASE("config: wrong types are errors naming key, value and expected type", "[config]") {
    SECTION("ttl as a float") {
        const LoadResult r = load(minimal_yml() + "bootstrap:\n  dcs:\n    ttl: 30.5\n");
        const Problem* p = find_problem(r, "bootstrap.dcs.ttl");
        REQUIRE(p != nullptr);
        CHECK(p->message == "expected an integer number of seconds, got '30.5'");
    }
    SECTION("quoted integer seconds are accepted (Python int())") {
        const LoadResult r = load(minimal_yml() + "bootstrap:\n  dcs:\n    ttl: \"40\"\n");
        CHECK(r.ok());
        CHECK(r.settings.bootstrap.dcs.ttl == 40);
    }
    SECTION("pg_hba as a string") {
        const LoadResult r =
            load(minimal_yml() +
                 "bootstrap:\n  dcs:\n    postgresql:\n      pg_hba: local all all trust\n");
        const Problem* p = find_problem(r, "bootstrap.dcs.postgresql.pg_hba");
        REQUIRE(p != nullptr);
        CHECK(p->message == "expected a list of strings, got 'local all all trust'");
    }
    SECTION("parameter value as a list") {
        const LoadResult r = load(minimal_yml() +
                                  "bootstrap:\n  dcs:\n    postgresql:\n      parameters:\n        "
                                  "shared_preload_libraries: [a, b]\n");
        const Problem* p =
            find_problem(r, "bootstrap.dcs.postgresql.parameters.shared_preload_libraries");
        REQUIRE(p != nullptr);
        CHECK(p->severity == Problem::Severity::Error);
        CHECK(p->line == 19);
    }
    SECTION("restapi.listen without a port") {
        const LoadResult r =
            load(replace(minimal_yml(), "listen: 127.0.0.1:8008", "listen: 127.0.0.1"));
        const Problem* p = find_problem(r, "restapi.listen");
        REQUIRE(p != nullptr);
        CHECK(p->message == "expected host:port, got '127.0.0.1'");
    }
    SECTION("tags.nofailover as a string") {
        const LoadResult r = load(minimal_yml() + "tags:\n  nofailover: \"false\"\n");
        CHECK_FALSE(r.ok());
        CHECK(find_problem(r, "tags.nofailover") != nullptr);
    }
}

TEST_CASE("config: name, scope and postgresql.data_dir are required", "[config]") {
    std::string yml = replace(minimal_yml(), "scope: s\n", "");
    yml = replace(yml, "name: n\n", "");
    yml = replace(yml, "  data_dir: /tmp/pgdata\n", "");
    const LoadResult r = load(yml);
    CHECK_FALSE(r.ok());
    CHECK(find_problem(r, "name") != nullptr);
    CHECK(find_problem(r, "scope") != nullptr);
    CHECK(find_problem(r, "postgresql.data_dir") != nullptr);
}

TEST_CASE("config: YAML 1.1 booleans are read as PyYAML reads them", "[config]") {
    for (const char* yes : {"on", "On", "ON", "yes", "Yes", "YES", "true", "True", "TRUE"}) {
        const LoadResult r =
            load(replace(minimal_yml(),
                         "host: 127.0.0.1:8500",
                         std::string("host: 127.0.0.1:8500\n  register_service: ") + yes));
        INFO(yes);
        CHECK(r.ok());
        CHECK(r.settings.dcs.consul.register_service);
    }
    for (const char* no : {"off", "Off", "OFF", "no", "No", "NO", "false", "False", "FALSE"}) {
        const LoadResult r = load(replace(minimal_yml(),
                                          "host: 127.0.0.1:8500",
                                          std::string("host: 127.0.0.1:8500\n  verify: ") + no));
        INFO(no);
        CHECK(r.ok());
        CHECK_FALSE(r.settings.dcs.consul.verify);
    }
}

TEST_CASE("config: an unquoted on/off parameter is written as on/off, a quoted one as given",
          "[config]") {
    const LoadResult r = load(minimal_yml() +
                              "bootstrap:\n  dcs:\n    postgresql:\n      parameters:\n"
                              "        archive_mode: on\n        wal_compression: \"On\"\n"
                              "        random_page_cost: 1.10\n        work_mem: 4MB\n");
    const auto& p = r.settings.bootstrap.dcs.postgresql.parameters;
    CHECK(p.at("archive_mode") == "on");
    CHECK(p.at("wal_compression") == "On");
    CHECK(p.at("random_page_cost") == "1.1");
    CHECK(p.at("work_mem") == "4MB");
    // ...and the DCS copy keeps the YAML types
    CHECK(r.settings.bootstrap.dcs_json.find(R"("archive_mode":true)") != std::string::npos);
    CHECK(r.settings.bootstrap.dcs_json.find(R"("wal_compression":"On")") != std::string::npos);
}

TEST_CASE("config: watchdog modes", "[config]") {
    CHECK(load(minimal_yml() + "watchdog:\n  mode: off\n").settings.watchdog_mode == "off");
    CHECK(load(minimal_yml() + "watchdog:\n  mode: automatic\n").settings.watchdog_mode ==
          "automatic");
    CHECK(load(minimal_yml() + "watchdog:\n  mode: required\n").settings.watchdog_mode ==
          "required");
    const LoadResult odd = load(minimal_yml() + "watchdog:\n  mode: sometimes\n");
    CHECK(odd.settings.watchdog_mode == "off");
    CHECK(find_problem(odd, "watchdog.mode") != nullptr);
}

TEST_CASE("config: bootstrap.initdb list and basebackup map render as command line options",
          "[config]") {
    const LoadResult r = load(minimal_yml() +
                              "bootstrap:\n  initdb:\n    - encoding: UTF8\n    - data-checksums\n"
                              "    - locale: \"en_US.UTF-8\"\n");
    CHECK(r.settings.bootstrap.initdb_args ==
          std::vector<std::string>{"--encoding=UTF8", "--data-checksums", "--locale=en_US.UTF-8"});
    const LoadResult b = load(replace(
        minimal_yml(),
        "  data_dir: /tmp/pgdata\n",
        "  data_dir: /tmp/pgdata\n  basebackup:\n    max-rate: 100M\n    checkpoint: fast\n"));
    CHECK(b.settings.postgresql.basebackup_args ==
          std::vector<std::string>{"--max-rate=100M", "--checkpoint=fast"});
    const LoadResult bad = load(minimal_yml() + "bootstrap:\n  initdb:\n    - pgdata: /x\n");
    CHECK_FALSE(bad.ok());
    CHECK(find_problem(bad, "bootstrap.initdb[0]") != nullptr);
}

TEST_CASE("config: tags are rendered as Patroni renders them", "[config]") {
    const LoadResult r = load(minimal_yml() +
                              "tags:\n  nofailover: true\n  noloadbalance: false\n  zone: eu-1\n"
                              "  weight: 1.4\n  custom_flag: True\n");
    const auto& t = r.settings.tags;
    CHECK(t.nofailover);
    CHECK(t.failover_priority == 0);
    CHECK_FALSE(t.noloadbalance);
    CHECK(t.rendered.at("nofailover") == "true");
    CHECK(t.rendered.count("noloadbalance") == 0);  // false predefined tags are not published
    CHECK(t.rendered.at("zone") == "eu-1");
    CHECK(t.rendered.at("weight") == "1.4");
    CHECK(t.rendered.at("custom_flag") == "true");
    CHECK(t.json.at("weight") == "1.4");
    CHECK(t.json.at("zone") == "\"eu-1\"");
    CHECK(t.json.at("nofailover") == "true");
    const LoadResult prio = load(minimal_yml() + "tags:\n  failover_priority: 0\n");
    CHECK(prio.settings.tags.nofailover);
}

TEST_CASE("config: restapi.authentication wins over legacy auth", "[config]") {
    const LoadResult r =
        load(replace(minimal_yml(),
                     "  connect_address: 127.0.0.1:8008\n",
                     "  connect_address: 127.0.0.1:8008\n  auth: 'old:old'\n"
                     "  authentication:\n    username: new\n    password: newpw\n"));
    REQUIRE(r.settings.restapi.authentication.has_value());
    CHECK(r.settings.restapi.authentication->username == "new");
}

TEST_CASE("config: postgresql.authentication with a rewind user", "[config]") {
    const LoadResult r =
        load(replace(minimal_yml(),
                     "    replication: {username: replicator, password: s3cret-repl}\n",
                     "    replication: {username: replicator, password: s3cret-repl}\n"
                     "    rewind: {username: rw, password: s3cret-rw}\n"));
    REQUIRE(r.settings.postgresql.rewind.has_value());
    CHECK(r.settings.postgresql.rewind->username == "rw");
    CHECK_FALSE(r.settings.postgresql.use_pg_rewind.has_value());  // not the legacy layout
}

TEST_CASE("config: local max_connections is ignored as Patroni ignores it", "[config]") {
    const LoadResult r = load(replace(
        minimal_yml(),
        "  data_dir: /tmp/pgdata\n",
        "  data_dir: /tmp/pgdata\n  parameters:\n    max_connections: 500\n    work_mem: 8MB\n"));
    CHECK(r.ok());
    CHECK(r.settings.postgresql.parameters.count("max_connections") == 0);
    CHECK(r.settings.postgresql.parameters.at("work_mem") == "8MB");
    CHECK(find_problem(r, "postgresql.parameters.max_connections") != nullptr);
}

TEST_CASE("config: timeouts that break the rule are adjusted with a warning", "[config]") {
    const LoadResult r =
        load(minimal_yml() +
             "bootstrap:\n  dcs:\n    ttl: 30\n    loop_wait: 15\n    retry_timeout: 10\n");
    CHECK(r.ok());
    CHECK(r.settings.bootstrap.dcs.loop_wait == 10);
    const Problem* p = find_problem(r, "bootstrap.dcs.loop_wait");
    REQUIRE(p != nullptr);
    CHECK(p->severity == Problem::Severity::Warning);
    CHECK(p->message.find("Adjusting loop_wait from 15 to 10") != std::string::npos);
    CHECK(r.settings.bootstrap.dcs_json == R"({"ttl":30,"loop_wait":10,"retry_timeout":10})");
    const LoadResult low = load(minimal_yml() + "bootstrap:\n  dcs:\n    ttl: 10\n");
    CHECK(low.settings.bootstrap.dcs.ttl == 20);
    CHECK(low.settings.bootstrap.dcs.loop_wait == 1);
    CHECK(low.settings.bootstrap.dcs.retry_timeout == 9);
    CHECK(low.settings.bootstrap.dcs_json == R"({"ttl":20,"loop_wait":1,"retry_timeout":9})");
}

TEST_CASE("config: secrets never appear in problem messages", "[config]") {
    std::string yml = replace(minimal_yml(), "password: s3cret-super", "password: [s3cret-super]");
    yml = replace(yml, "host: 127.0.0.1:8500", "host: 127.0.0.1:8500\n  token: {t: tok-s3cret}");
    yml = replace(yml,
                  "  connect_address: 127.0.0.1:8008\n",
                  "  connect_address: 127.0.0.1:8008\n  auth: nocolon-s3cret\n");
    const LoadResult r = load(yml);
    CHECK_FALSE(r.ok());
    CHECK(find_problem(r, "restapi.auth") != nullptr);
    for (const auto& p : r.problems) {
        INFO(format_problem(p, "x"));
        CHECK(p.message.find("s3cret") == std::string::npos);
    }
    const LoadResult num =
        load(replace(minimal_yml(), "password: s3cret-super", "password: 123456"));
    for (const auto& p : num.problems) {
        CHECK(p.message.find("123456") == std::string::npos);
    }
    CHECK(num.settings.postgresql.superuser.password == "123456");
}

TEST_CASE("config: YAML syntax errors are reported with their line", "[config]") {
    const LoadResult r = load("scope: s\nname: [unclosed\n");
    CHECK_FALSE(r.ok());
    REQUIRE_FALSE(r.problems.empty());
    CHECK(r.problems[0].line > 0);
    CHECK(r.problems[0].message.find("YAML syntax error") == 0);
}

TEST_CASE("config: every example file in config/ loads through the strict parser without errors",
          "[config]") {
    int files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(repo_path("config"))) {
        const auto ext = entry.path().extension();
        if (ext != ".yml" && ext != ".yaml") {
            continue;
        }
        ++files;
        const LoadResult r = load_file(entry.path().string(), {});
        INFO(entry.path().string() << "\n" << dump(r));
        CHECK(r.ok());
    }
    CHECK(files >= 2);
}

TEST_CASE("config: the etcd3 example means a loopback single node", "[config]") {
    const LoadResult r = load_file(repo_path("config/pgwarden-etcd3.yml"), {});
    INFO(dump(r));
    REQUIRE(r.ok());
    CHECK(r.problems.empty());
    CHECK(r.settings.dcs.kind == core::DcsKind::Etcd3);
    CHECK(r.settings.dcs.etcd3.hosts == std::vector<std::string>{"127.0.0.1:2379"});
    CHECK(r.settings.postgresql.bin_dir == "/usr/lib/postgresql/15/bin");
    CHECK(r.settings.bootstrap.initdb_args ==
          std::vector<std::string>{"--encoding=UTF8", "--locale=C.UTF-8", "--data-checksums"});
    REQUIRE(r.settings.postgresql.rewind.has_value());
}
