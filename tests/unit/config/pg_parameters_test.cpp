// What Patroni writes into postgresql.conf.
#include "config/pg_parameters.hpp"

#include "config_test_support.hpp"

#include <catch2/catch.hpp>

using namespace pgwarden;
using namespace pgwarden::config;
using namespace pgwarden::config::test;

namespace {

core::Settings settings_for_test() {
    core::Settings s;
    s.scope = "demo";
    s.postgresql.listen = "127.0.0.1,127.0.0.2:5433";
    s.postgresql.data_dir = "/data/pg";
    return s;
}

}  // namespace

TEST_CASE("config pg_parameters: defaults, local overrides and listen", "[config]") {
    core::Settings s = settings_for_test();
    s.postgresql.parameters["work_mem"] = "8MB";
    core::DynamicSettings d;
    d.postgresql.parameters["work_mem"] = "4MB";
    d.postgresql.parameters["shared_buffers"] = "1GB";
    const auto p = effective_parameters(s, d, 150000, nullptr);
    CHECK(p.at("work_mem") == "8MB");  // local wins
    CHECK(p.at("shared_buffers") == "1GB");
    CHECK(p.at("listen_addresses") == "127.0.0.1,127.0.0.2");
    CHECK(p.at("port") == "5433");
    CHECK(p.at("cluster_name") == "demo");
    CHECK(p.at("max_connections") == "100");
    CHECK(p.at("max_locks_per_transaction") == "64");
    CHECK(p.at("wal_level") == "replica");
    CHECK(p.at("wal_keep_size") == "128MB");
    CHECK(p.at("hba_file") == "/data/pg/pg_hba.conf");
    CHECK(p.at("ident_file") == "/data/pg/pg_ident.conf");
}

TEST_CASE("config pg_parameters: invalid command line options fall back to Patroni's defaults",
          "[config]") {
    core::DynamicSettings d;
    d.postgresql.parameters["max_connections"] = "10";  // below Patroni's minimum of 25
    d.postgresql.parameters["hot_standby"] = "off";     // must be on
    d.postgresql.parameters["listen_addresses"] = "*";  // only from postgresql.listen
    d.postgresql.parameters["max_wal_senders"] = "20";
    std::vector<Problem> notes;
    const auto p = effective_parameters(settings_for_test(), d, 150000, &notes);
    CHECK(p.at("max_connections") == "100");
    CHECK(p.at("hot_standby") == "on");
    CHECK(p.at("listen_addresses") == "127.0.0.1,127.0.0.2");
    CHECK(p.at("max_wal_senders") == "20");
    CHECK(find_problem(notes, "postgresql.parameters.max_connections") != nullptr);
    CHECK(find_problem(notes, "postgresql.parameters.hot_standby") != nullptr);
}

TEST_CASE("config pg_parameters: recovery parameters are dropped with a note", "[config]") {
    core::DynamicSettings d;
    d.postgresql.parameters["primary_conninfo"] = "host=x";
    d.postgresql.parameters["restore_command"] = "cp %f %p";
    std::vector<Problem> notes;
    const auto p = effective_parameters(settings_for_test(), d, 150000, &notes);
    CHECK(p.count("primary_conninfo") == 0);
    CHECK(p.count("restore_command") == 0);
    CHECK(find_problem(notes, "postgresql.parameters.primary_conninfo") != nullptr);
}

TEST_CASE("config pg_parameters: version transformations", "[config]") {
    core::DynamicSettings d;
    d.postgresql.parameters["wal_keep_segments"] = "32";
    d.postgresql.parameters["wal_level"] = "hot_standby";
    SECTION("PostgreSQL 15: wal_keep_segments x 16MB") {
        std::vector<Problem> notes;
        const auto p = effective_parameters(settings_for_test(), d, 150000, &notes);
        CHECK(p.at("wal_keep_size") == "512MB");
        CHECK(p.count("wal_keep_segments") == 0);
        CHECK(find_problem(notes, "postgresql.parameters.wal_keep_segments") != nullptr);
    }
    SECTION("PostgreSQL 12: wal_keep_segments stays") {
        const auto p = effective_parameters(settings_for_test(), d, 120000, nullptr);
        CHECK(p.at("wal_keep_segments") == "32");
        CHECK(p.count("wal_keep_size") == 0);
    }
    SECTION("an explicit wal_keep_size wins") {
        d.postgresql.parameters["wal_keep_size"] = "1GB";
        const auto p = effective_parameters(settings_for_test(), d, 150000, nullptr);
        CHECK(p.at("wal_keep_size") == "1GB");
    }
    SECTION("unknown version: no transformation") {
        const auto p = effective_parameters(settings_for_test(), d, 0, nullptr);
        CHECK(p.at("wal_keep_segments") == "32");
        CHECK(p.at("wal_level") == "hot_standby");
    }
}

TEST_CASE("config pg_parameters: cmdline option checks", "[config]") {
    CHECK(is_cmdline_option("max_connections"));
    CHECK(is_cmdline_option("Max_Connections"));
    CHECK_FALSE(is_cmdline_option("work_mem"));
    CHECK(is_recovery_parameter("primary_conninfo"));
    CHECK_FALSE(check_cmdline_option("wal_level", "logical").has_value());
    CHECK(check_cmdline_option("wal_level", "minimal").has_value());
    CHECK_FALSE(check_cmdline_option("wal_keep_size", "1GB").has_value());
    CHECK(check_cmdline_option("wal_keep_size", "8MB").has_value());
}
