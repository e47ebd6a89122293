// PATRONI_* environment variables, applied over the file as Patroni applies them.
#include "config/load.hpp"
#include "config_test_support.hpp"

#include <catch2/catch.hpp>

using namespace pgwarden;
using namespace pgwarden::config;
using namespace pgwarden::config::test;

TEST_CASE("config env: PATRONI_* variables override the file", "[config]") {
    const std::map<std::string, std::string> env = {
        {"PATRONI_NAME", "host-02"},
        {"PATRONI_SCOPE", "other"},
        {"PATRONI_NAMESPACE", "ns"},
        {"PATRONI_LOG_LEVEL", "DEBUG"},
        {"PATRONI_RESTAPI_LISTEN", "127.0.0.2:8009"},
        {"PATRONI_RESTAPI_CONNECT_ADDRESS", "127.0.0.2:8009"},
        {"PATRONI_RESTAPI_USERNAME", "admin"},
        {"PATRONI_RESTAPI_PASSWORD", "adminpw"},
        {"PATRONI_POSTGRESQL_LISTEN", "127.0.0.2:5433"},
        {"PATRONI_POSTGRESQL_DATA_DIR", "/data/pg"},
        {"PATRONI_POSTGRESQL_BIN_DIR", "/opt/pg/bin"},
        {"PATRONI_SUPERUSER_USERNAME", "su"},
        {"PATRONI_SUPERUSER_PASSWORD", "supw"},
        {"PATRONI_REPLICATION_USERNAME", "rep"},
        {"PATRONI_REPLICATION_PASSWORD", "reppw"},
        {"PATRONI_REWIND_USERNAME", "rw"},
        {"PATRONI_REWIND_PASSWORD", "rwpw"},
        {"PATRONI_CONSUL_HOST", "consul.local:8600"},
        {"PATRONI_CONSUL_TOKEN", "tok"},
        {"PATRONI_CONSUL_REGISTER_SERVICE", "off"},
        {"PATRONI_CONSUL_SERVICE_TAGS", "a,b"},
        {"PATRONI_CONSUL_CHECKS", "[serfHealth]"},
        {"PATRONI_CONSUL_SERVICE_CHECK_INTERVAL", "10s"},
        {"PATRONI_CONSUL_DC", "dc2"},
        {"HOME", "/root"},
    };
    const LoadResult r = load_string(consul_yml(), env, "patroni.yml");
    INFO(dump(r));
    REQUIRE(r.ok());
    const auto& s = r.settings;
    CHECK(s.name == "host-02");
    CHECK(s.scope == "other");
    CHECK(s.namespace_ == "/ns/");
    CHECK(s.log.level == "DEBUG");
    CHECK(s.restapi.listen == "127.0.0.2:8009");
    REQUIRE(s.restapi.authentication.has_value());
    CHECK(s.restapi.authentication->username == "admin");  // authentication wins over legacy auth
    CHECK(s.postgresql.listen == "127.0.0.2:5433");
    CHECK(s.postgresql.data_dir == "/data/pg");
    CHECK(s.postgresql.bin_dir == "/opt/pg/bin");
    // PATRONI_SUPERUSER_* creates postgresql.authentication, so the legacy keys are no longer read
    CHECK(s.postgresql.superuser.username == "su");
    CHECK(s.postgresql.superuser.password == "supw");
    CHECK(s.postgresql.replication.username == "rep");
    REQUIRE(s.postgresql.rewind.has_value());
    CHECK(s.postgresql.rewind->username == "rw");
    CHECK(s.dcs.consul.host == "consul.local");
    CHECK(s.dcs.consul.port == 8600);
    CHECK(s.dcs.consul.token == "tok");
    CHECK_FALSE(s.dcs.consul.register_service);
    CHECK(s.dcs.consul.service_tags == std::vector<std::string>{"a", "b"});
    CHECK(s.dcs.consul.checks == std::vector<std::string>{"serfHealth"});
    CHECK(s.dcs.consul.service_check_interval == 10);
    CHECK(s.dcs.consul.dc == "dc2");
}

TEST_CASE("config env: PATRONI_ETCD3_* selects nothing by itself but fills the etcd3 section",
          "[config]") {
    const std::string base = replace(minimal_yml(), "consul:\n  host: 127.0.0.1:8500\n", "");
    const LoadResult r = load(base,
                              {{"PATRONI_ETCD3_HOSTS", "'10.0.0.1:2379','10.0.0.2:2379'"},
                               {"PATRONI_ETCD3_PROTOCOL", "https"},
                               {"PATRONI_ETCD3_USERNAME", "eu"},
                               {"PATRONI_ETCD3_PASSWORD", "epw"},
                               {"PATRONI_ETCD3_CACERT", "/ca.pem"}});
    INFO(dump(r));
    REQUIRE(r.ok());
    CHECK(r.settings.dcs.kind == core::DcsKind::Etcd3);
    CHECK(r.settings.dcs.etcd3.hosts == std::vector<std::string>{"10.0.0.1:2379", "10.0.0.2:2379"});
    CHECK(r.settings.dcs.etcd3.protocol == "https");
    CHECK(r.settings.dcs.etcd3.username == "eu");
    CHECK(r.settings.dcs.etcd3.password == "epw");
    CHECK(r.settings.dcs.etcd3.cacert == "/ca.pem");
}

TEST_CASE("config env: a bad environment value is an error naming the variable", "[config]") {
    const LoadResult r = load(
        minimal_yml(), {{"PATRONI_CONSUL_PORT", "eighty"}, {"PATRONI_RESTAPI_LISTEN", "nowhere"}});
    CHECK_FALSE(r.ok());
    const Problem* port = find_problem(r, "PATRONI_CONSUL_PORT");
    REQUIRE(port != nullptr);
    CHECK(port->line == 0);
    CHECK(port->message == "expected an integer, got 'eighty'");
    const Problem* listen = find_problem(r, "PATRONI_RESTAPI_LISTEN");
    REQUIRE(listen != nullptr);
    CHECK(listen->message == "expected host:port, got 'nowhere'");
    CHECK(format_problem(*listen, "f.yml") ==
          "f.yml: error: PATRONI_RESTAPI_LISTEN: expected host:port, got 'nowhere'");
}

TEST_CASE("config env: empty variables and unrelated variables are ignored", "[config]") {
    const LoadResult r =
        load(minimal_yml(), {{"PATRONI_NAME", ""}, {"PATH", "/bin"}, {"PATRONI_FOO", "x"}});
    CHECK(r.ok());
    CHECK(r.settings.name == "n");
}

TEST_CASE("config env: environment_map reads the process environment", "[config]") {
    const auto env = environment_map();
    CHECK_FALSE(env.empty());
}
