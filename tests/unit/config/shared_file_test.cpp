// The operators' patroni-consul.yml loads unchanged and means what it means to Patroni.
#include "config/load.hpp"
#include "config/pg_parameters.hpp"
#include "config_test_support.hpp"

#include <catch2/catch.hpp>

using namespace pgwarden;
using namespace pgwarden::config;
using namespace pgwarden::config::test;

TEST_CASE("config: the shared patroni-consul.yml loads without errors", "[config]") {
    const LoadResult r = load_file(repo_path("config/patroni-consul.yml"), {});
    INFO(dump(r));
    REQUIRE(r.ok());
    CHECK(r.settings.name == "host-01");
    CHECK(r.settings.scope == "postgres");
    CHECK(r.settings.namespace_ == "/service/");
    CHECK(r.settings.config_file == repo_path("config/patroni-consul.yml"));
}

TEST_CASE("config: shared file bootstrap.dcs timing and lag are read as integers", "[config]") {
    const LoadResult r = load(consul_yml());
    const auto& dcs = r.settings.bootstrap.dcs;
    CHECK(dcs.ttl == 30);
    CHECK(dcs.loop_wait == 10);
    CHECK(dcs.retry_timeout == 10);  // not in the file: Patroni's default
    CHECK(dcs.maximum_lag_on_failover == 1048576);
    CHECK(dcs.postgresql.use_pg_rewind);
    CHECK(dcs.postgresql.use_slots);
}

TEST_CASE("config: shared file consul host:port is split and register_service is true",
          "[config]") {
    const LoadResult r = load(consul_yml());
    REQUIRE(r.settings.dcs.kind == core::DcsKind::Consul);
    const auto& c = r.settings.dcs.consul;
    CHECK(c.host == "localhost");
    CHECK(c.port == 8500);
    CHECK(c.scheme == "http");
    CHECK(c.register_service);
    CHECK(c.token.empty());  // commented out in the file
    CHECK(c.checks.empty());
    CHECK(c.service_check_interval == 5);
    CHECK(c.service_check_interval_text == "5s");
}

TEST_CASE("config: shared file legacy restapi.auth becomes the REST API credentials", "[config]") {
    const LoadResult r = load(consul_yml());
    CHECK(r.settings.restapi.listen == "0.0.0.0:8008");
    CHECK(r.settings.restapi.connect_address == "127.0.0.1:8008");
    REQUIRE(r.settings.restapi.authentication.has_value());
    CHECK(r.settings.restapi.authentication->username == "patroni");
    CHECK(r.settings.restapi.authentication->password == "patroni");
    CHECK(find_problem(r, "restapi.auth") == nullptr);  // a supported spelling, not a warning
}

TEST_CASE("config: shared file legacy postgresql.superuser/replication are the credentials",
          "[config]") {
    const LoadResult r = load(consul_yml());
    const auto& pg = r.settings.postgresql;
    CHECK(pg.superuser.username == "postgres");
    CHECK(pg.superuser.password == "postgres");
    CHECK(pg.replication.username == "replicator");
    CHECK(pg.replication.password == "replicator");
    // postgresql.pg_rewind is not a rewind user for Patroni: pg_rewind runs as the superuser.
    CHECK_FALSE(pg.rewind.has_value());
    // ...but its presence in the legacy layout forces use_pg_rewind on this node.
    REQUIRE(pg.use_pg_rewind.has_value());
    CHECK(*pg.use_pg_rewind);
    const Problem* p = find_problem(r, "postgresql.pg_rewind");
    REQUIRE(p != nullptr);
    CHECK(p->severity == Problem::Severity::Warning);
    CHECK(p->message.find("password") == std::string::npos);
}

TEST_CASE("config: shared file postgresql paths and addresses", "[config]") {
    const LoadResult r = load(consul_yml());
    const auto& pg = r.settings.postgresql;
    CHECK(pg.listen == "0.0.0.0:5432");
    CHECK(pg.connect_address == "127.0.0.1:5432");
    CHECK(pg.data_dir == "/var/lib/postgresql/15/main/");
    CHECK(pg.bin_dir == "/usr/lib/postgresql/15/bin/");
    CHECK(pg.pgpass == "/var/lib/postgresql/15/.pgpass");
    CHECK(pg.create_replica_methods == std::vector<std::string>{"basebackup"});
}

TEST_CASE("config: shared file pg_hba lines and parameters keep their YAML meaning", "[config]") {
    const LoadResult r = load(consul_yml());
    const auto& dyn = r.settings.bootstrap.dcs.postgresql;
    REQUIRE(dyn.pg_hba.size() == 5);
    CHECK(dyn.pg_hba[0] == "local all all trust");
    CHECK(dyn.pg_hba[4] == "host all all 0.0.0.0/0 scram-sha-256");
    CHECK(dyn.parameters.at("archive_mode") == "on");
    CHECK(dyn.parameters.at("wal_level") == "hot_standby");
    CHECK(dyn.parameters.at("max_wal_senders") == "10");
    CHECK(dyn.parameters.at("wal_keep_segments") == "8");
    CHECK(dyn.parameters.at("archive_timeout") == "1800s");
    CHECK(dyn.parameters.at("max_replication_slots") == "5");
    CHECK(dyn.parameters.at("hot_standby") == "on");
    CHECK(dyn.parameters.at("wal_log_hints") == "on");
}

TEST_CASE("config: shared file dcs_json is bootstrap.dcs as Patroni writes it to the config key",
          "[config]") {
    const LoadResult r = load(consul_yml());
    CHECK(
        r.settings.bootstrap.dcs_json ==
        R"({"ttl":30,"loop_wait":10,"maximum_lag_on_failover":1048576,"postgresql":{"use_pg_rewind":true,)"
        R"("use_slots":true,"parameters":{"archive_mode":"on","wal_level":"hot_standby","max_wal_senders":10,)"
        R"("wal_keep_segments":8,"archive_timeout":"1800s","max_replication_slots":5,"hot_standby":"on",)"
        R"("wal_log_hints":"on"},"pg_hba":["local all all trust","host replication replicator 127.0.0.1/32 trust",)"
        R"("host replication replicator 127.0.0.2/32 trust","host replication replicator 127.0.0.3/32 trust",)"
        R"("host all all 0.0.0.0/0 scram-sha-256"]}})");
}

TEST_CASE("config: shared file top-level initdb is not applied, with a warning", "[config]") {
    const LoadResult r = load(consul_yml());
    CHECK(r.settings.bootstrap.initdb_args.empty());
    CHECK(r.settings.bootstrap.method == "initdb");
    const Problem* p = find_problem(r, "initdb");
    REQUIRE(p != nullptr);
    CHECK(p->severity == Problem::Severity::Warning);
    CHECK(p->line == 47);
    CHECK(p->message.find("did you mean bootstrap.initdb?") != std::string::npos);
}

TEST_CASE("config: shared file watchdog mode off (YAML boolean false) means off", "[config]") {
    const LoadResult r = load(consul_yml());
    CHECK(r.settings.watchdog_mode == "off");
    CHECK(find_problem(r, "watchdog.mode") == nullptr);
}

TEST_CASE("config: shared file wal_keep_segments becomes wal_keep_size on PostgreSQL 15",
          "[config]") {
    const LoadResult r = load(consul_yml());
    std::vector<Problem> notes;
    const auto params = effective_parameters(r.settings, r.settings.bootstrap.dcs, 150000, &notes);
    CHECK(params.count("wal_keep_segments") == 0);
    CHECK(params.at("wal_keep_size") == "128MB");
    CHECK(params.at("wal_level") == "replica");  // hot_standby is written as replica on 9.6+
    CHECK(params.at("archive_timeout") == "1800s");
    CHECK(params.at("archive_mode") == "on");
    CHECK(params.at("hot_standby") == "on");
    CHECK(params.at("max_wal_senders") == "10");
    CHECK(params.at("max_replication_slots") == "5");
    CHECK(params.at("max_connections") == "100");  // Patroni's default
    CHECK(params.at("listen_addresses") == "0.0.0.0");
    CHECK(params.at("port") == "5432");
    CHECK(params.at("cluster_name") == "postgres");
    CHECK(params.at("hba_file") == "/var/lib/postgresql/15/main/pg_hba.conf");
    const Problem* note = find_problem(notes, "postgresql.parameters.wal_keep_segments");
    REQUIRE(note != nullptr);
    CHECK(note->message.find("wal_keep_size=128MB") != std::string::npos);
}
