// "No setting is ever silently ignored": settings pgwarden parses but does not implement yet.
#include "config/unsupported.hpp"

#include "config/dynamic.hpp"
#include "config/validate.hpp"
#include "config_test_support.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace pgwarden;
using namespace pgwarden::config;
using namespace pgwarden::config::test;

namespace {

std::vector<Problem> unsupported_in(const std::string& yaml) {
    const LoadResult r = load(yaml);
    INFO(dump(r));
    REQUIRE(r.ok());
    return unsupported_settings(r.settings);
}

const Problem* expect(const std::vector<Problem>& problems,
                      const std::string& path,
                      Problem::Severity severity) {
    const Problem* p = find_problem(problems, path);
    INFO(path);
    REQUIRE(p != nullptr);
    CHECK(p->severity == severity);
    CHECK(p->message.find("not supported by this pgwarden version yet") != std::string::npos);
    return p;
}

std::size_t errors_in(const std::vector<Problem>& problems) {
    return static_cast<std::size_t>(
        std::count_if(problems.begin(), problems.end(), [](const Problem& p) {
            return p.severity == Problem::Severity::Error;
        }));
}

constexpr auto kError = Problem::Severity::Error;
constexpr auto kWarning = Problem::Severity::Warning;

}  // namespace

TEST_CASE("config unsupported: the operators' patroni-consul.yml has nothing unsupported",
          "[config][unsupported]") {
    const LoadResult r = load_file(repo_path("config/patroni-consul.yml"), {});
    REQUIRE(r.ok());
    CHECK(unsupported_settings(r.settings).empty());
    const LoadResult checked = load_file_checked(repo_path("config/patroni-consul.yml"), {});
    CHECK(checked.ok());
    CHECK(checked.problems.size() == r.problems.size());
}

TEST_CASE("config unsupported: every example in config/ starts (warnings allowed)",
          "[config][unsupported]") {
    for (const auto& entry : std::filesystem::directory_iterator(repo_path("config"))) {
        if (entry.path().extension() != ".yml") {
            continue;
        }
        INFO(entry.path().string());
        const LoadResult r = load_file_checked(entry.path().string(), {});
        INFO(dump(r));
        CHECK(r.ok());
    }
}

TEST_CASE("config unsupported: the minimal file has nothing unsupported", "[config][unsupported]") {
    CHECK(unsupported_in(minimal_yml()).empty());
}

TEST_CASE("config unsupported: settings that would make pgwarden unsafe are errors",
          "[config][unsupported]") {
    SECTION("standby_cluster in bootstrap.dcs") {
        const auto problems = unsupported_in(minimal_yml() +
                                             "bootstrap:\n  dcs:\n    standby_cluster:\n"
                                             "      host: main-site\n      port: 5432\n");
        const Problem* p = expect(problems, "bootstrap.dcs.standby_cluster", kError);
        CHECK(p->message.find("main-site") != std::string::npos);
    }
    SECTION("synchronous_mode on, true and quorum; off is fine") {
        for (const char* mode : {"on", "true", "quorum", "'on'"}) {
            INFO(mode);
            const auto problems = unsupported_in(
                minimal_yml() + "bootstrap:\n  dcs:\n    synchronous_mode: " + mode + "\n");
            expect(problems, "bootstrap.dcs.synchronous_mode", kError);
        }
        CHECK(unsupported_in(minimal_yml() + "bootstrap:\n  dcs:\n    synchronous_mode: off\n")
                  .empty());
        CHECK(unsupported_in(minimal_yml() + "bootstrap:\n  dcs:\n    synchronous_mode: false\n")
                  .empty());
    }
    SECTION("synchronous_mode_strict: true") {
        expect(unsupported_in(minimal_yml() +
                              "bootstrap:\n  dcs:\n    synchronous_mode_strict: true\n"),
               "bootstrap.dcs.synchronous_mode_strict",
               kError);
    }
    SECTION("watchdog.mode required; automatic is a warning, off is fine") {
        const auto problems = unsupported_in(minimal_yml() + "watchdog:\n  mode: required\n");
        const Problem* p = expect(problems, "watchdog.mode", kError);
        CHECK(p->message.rfind("'required'", 0) == 0);
        expect(unsupported_in(minimal_yml() + "watchdog:\n  mode: automatic\n"),
               "watchdog.mode",
               kWarning);
        CHECK(unsupported_in(minimal_yml() + "watchdog:\n  mode: off\n").empty());
    }
    SECTION("restapi.certfile and verify_client") {
        std::string yml = replace(minimal_yml(),
                                  "  listen: 127.0.0.1:8008\n",
                                  "  listen: 127.0.0.1:8008\n  certfile: /etc/ssl/api.pem\n"
                                  "  keyfile: /etc/ssl/api.key\n  verify_client: required\n");
        const auto problems = unsupported_in(yml);
        const Problem* p = expect(problems, "restapi.certfile", kError);
        CHECK(p->message.find("/etc/ssl/api.pem") != std::string::npos);
        expect(problems, "restapi.verify_client", kError);
        CHECK(find_problem(problems, "restapi.keyfile") == nullptr);  // part of certfile's error
        expect(unsupported_in(replace(minimal_yml(),
                                      "  listen: 127.0.0.1:8008\n",
                                      "  listen: 127.0.0.1:8008\n  verify_client: optional\n")),
               "restapi.verify_client",
               kError);
        expect(unsupported_in(replace(minimal_yml(),
                                      "  listen: 127.0.0.1:8008\n",
                                      "  listen: 127.0.0.1:8008\n  cafile: /etc/ssl/ca.pem\n")),
               "restapi.cafile",
               kWarning);
    }
    SECTION("bootstrap.method other than initdb") {
        const auto problems = unsupported_in(minimal_yml() +
                                             "bootstrap:\n  method: pgbackrest\n"
                                             "  pgbackrest:\n    command: restore.sh\n");
        const Problem* p = expect(problems, "bootstrap.method", kError);
        CHECK(p->message.find("'pgbackrest'") != std::string::npos);
        CHECK(unsupported_in(minimal_yml() + "bootstrap:\n  method: initdb\n").empty());
    }
}

TEST_CASE("config unsupported: settings with no effect are warnings", "[config][unsupported]") {
    const std::string yml =
        replace(minimal_yml(),
                "  data_dir: /tmp/pgdata\n",
                "  data_dir: /tmp/pgdata\n"
                "  callbacks:\n    on_role_change: /usr/local/bin/vip.sh\n"
                "  create_replica_methods: [pgbackrest, basebackup]\n"
                "  pgbackrest:\n    command: restore.sh\n"
                "  custom_conf: /etc/pg/base.conf\n"
                "  recovery_conf:\n    restore_command: cp %f %p\n"
                "  parameters_primary:\n    work_mem: 8MB\n"
                "  bin_name:\n    pg_ctl: pg_ctl15\n"
                "  proxy_address: 10.0.0.1:6432\n"
                "  remove_data_directory_on_rewind_failure: true\n") +
        "bootstrap:\n  post_bootstrap: /usr/local/bin/users.sh\n"
        "  dcs:\n    failsafe_mode: true\n    primary_race_backoff: 5\n"
        "    postgresql:\n      recovery_conf:\n        restore_command: x\n"
        "tags:\n  replicatefrom: host-02\n  nostream: true\n"
        "log:\n  level: INFO\n  dir: /var/log/patroni\n  format: '%(message)s'\n";
    const auto problems = unsupported_in(yml);
    CHECK(errors_in(problems) == 0);
    for (const char* path : {"postgresql.callbacks.on_role_change",
                             "postgresql.create_replica_methods",
                             "postgresql.custom_conf",
                             "postgresql.recovery_conf",
                             "postgresql.parameters_primary",
                             "postgresql.bin_name.pg_ctl",
                             "postgresql.proxy_address",
                             "postgresql.remove_data_directory_on_rewind_failure",
                             "bootstrap.post_bootstrap",
                             "bootstrap.dcs.failsafe_mode",
                             "bootstrap.dcs.primary_race_backoff",
                             "bootstrap.dcs.postgresql.recovery_conf",
                             "tags.replicatefrom",
                             "tags.nostream",
                             "log.dir",
                             "log.format"}) {
        expect(problems, path, kWarning);
    }
    CHECK(find_problem(problems, "log.level") == nullptr);
    const Problem* cb = find_problem(problems, "postgresql.callbacks.on_role_change");
    CHECK(cb->message.find("/usr/local/bin/vip.sh") != std::string::npos);
    // one warning for pgbackrest, none for basebackup
    CHECK(std::count_if(problems.begin(), problems.end(), [](const Problem& p) {
              return p.path == "postgresql.create_replica_methods";
          }) == 1);
}

TEST_CASE("config unsupported: what the HA loop is implementing is not reported",
          "[config][unsupported]") {
    const auto problems = unsupported_in(
        minimal_yml() +
        "bootstrap:\n  dcs:\n    primary_start_timeout: 0\n    member_slots_ttl: 1h\n"
        "    check_timeline: true\n    slots:\n      dr: {type: physical}\n"
        "    ignore_slots: [{name: backup}]\n    max_timelines_history: 10\n"
        "    postgresql:\n      remove_data_directory_on_diverged_timelines: true\n"
        "      remove_data_directory_on_rewind_failure: true\n      use_pg_rewind: true\n");
    CHECK(problems.empty());
}

TEST_CASE("config unsupported_dynamic: the DCS config key, as the HA loop checks it each cycle",
          "[config][unsupported]") {
    SECTION("synchronous_mode arriving through edit-config") {
        const auto d = parse_dynamic_json(R"({"synchronous_mode":"on"})").settings;
        const auto problems = unsupported_dynamic(d);
        REQUIRE(problems.size() == 1);
        CHECK(problems[0].path == "config.synchronous_mode");
        CHECK(problems[0].severity == kError);
        CHECK(problems[0].message.rfind("'on' is not supported", 0) == 0);
    }
    SECTION("standby_cluster, and demote-cluster's form of it") {
        const auto d =
            parse_dynamic_json(R"({"standby_cluster":{"host":"10.1.0.5","port":5432}})").settings;
        expect(unsupported_dynamic(d), "config.standby_cluster", kError);
        CHECK(
            unsupported_dynamic(parse_dynamic_json(R"({"standby_cluster":{}})").settings).empty());
    }
    SECTION("a plain configuration has nothing unsupported") {
        CHECK(unsupported_dynamic(parse_dynamic_json(R"({"ttl":30,"pause":true,)"
                                                     R"("postgresql":{"use_slots":true}})")
                                      .settings)
                  .empty());
        CHECK(unsupported_dynamic(core::DynamicSettings{}).empty());
    }
    SECTION("role-specific dynamic settings are warnings naming the key") {
        const auto d =
            parse_dynamic_json(R"({"postgresql":{"pg_hba_replica":["host all all 0/0 md5"]}})")
                .settings;
        expect(unsupported_dynamic(d, "cfg"), "cfg.postgresql.pg_hba_replica", kWarning);
    }
}

TEST_CASE("config unsupported: --validate-config prints them and exits 2 on an error",
          "[config][unsupported]") {
    const auto path =
        (std::filesystem::temp_directory_path() / "pgw_unsupported_test.yml").string();
    SECTION("error") {
        std::ofstream(path) << replace(
            consul_yml(), "    ttl: 30\n", "    ttl: 30\n    synchronous_mode: on\n");
        std::ostringstream out;
        CHECK(validate_config_file(path, {}, out) == 2);
        CHECK(out.str().find(path + ": error: bootstrap.dcs.synchronous_mode: 'on' is not "
                                    "supported by this pgwarden version yet") != std::string::npos);
        CHECK(out.str().find("configuration is invalid") != std::string::npos);
    }
    SECTION("warnings only") {
        std::ofstream(path) << consul_yml() + "log:\n  dir: /var/log/patroni\n";
        std::ostringstream out;
        CHECK(validate_config_file(path, {}, out) == 0);
        CHECK(out.str().find(path + ": warning: log.dir: set, but is not supported") !=
              std::string::npos);
    }
    std::filesystem::remove(path);
}

TEST_CASE("config unsupported_dynamic: permanent logical slots are a warning, physical ones none",
          "[config][unsupported][F14]") {
    const auto d = parse_dynamic_json(
                       R"({"slots":{"cdc":{"type":"logical","database":"app","plugin":"pgoutput"},)"
                       R"("backup_tool":{"type":"physical"}}})")
                       .settings;
    const auto problems = unsupported_dynamic(d);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].path == "config.slots.cdc");
    CHECK(problems[0].severity == Problem::Severity::Warning);
}
