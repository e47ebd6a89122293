// F7 (safety review): a number from the DCS or the REST API is untrusted. No parsing path in
// lib/config may throw or overflow on it; an unreadable value is a Problem naming its key.
#include "config/dynamic.hpp"
#include "config/pg_parameters.hpp"
#include "config_test_support.hpp"

#include <catch2/catch.hpp>

using namespace pgwarden;
using namespace pgwarden::config;
using namespace pgwarden::config::test;

namespace {

constexpr const char* kHuge = "99999999999999999999";
constexpr const char* kHuge30 = "999999999999999999999999999999";

}  // namespace

TEST_CASE("config untrusted: member_slots_ttl with 20 digits is an error, not a throw",
          "[config][f7]") {
    for (const std::string& value : {std::string(kHuge) + "s",
                                     std::string(kHuge),
                                     std::string(kHuge30) + "min",
                                     std::string("9999999999999999d"),
                                     std::string("9223372036854775807h")}) {
        INFO(value);
        DynamicResult r;
        REQUIRE_NOTHROW(r = parse_dynamic_json(R"({"member_slots_ttl":")" + value + R"("})"));
        const Problem* p = find_problem(r.problems, "config.member_slots_ttl");
        REQUIRE(p != nullptr);
        CHECK(p->severity == Problem::Severity::Error);
        CHECK(r.settings.member_slots_ttl == 1800);  // the default, not a wrapped value
    }
}

TEST_CASE("config untrusted: member_slots_ttl reads Patroni's units", "[config][f7]") {
    const auto ttl = [](const std::string& json_value) {
        const DynamicResult r = parse_dynamic_json(R"({"member_slots_ttl":)" + json_value + "}");
        INFO(json_value);
        CHECK(r.problems.empty());
        return r.settings.member_slots_ttl;
    };
    CHECK(ttl(R"("30min")") == 1800);
    CHECK(ttl("1800") == 1800);
    CHECK(ttl(R"("1800")") == 1800);
    CHECK(ttl(R"("0")") == 0);
    CHECK(ttl("0") == 0);
    CHECK(ttl(R"("2h")") == 7200);
    CHECK(ttl(R"("1d")") == 86400);
    CHECK(ttl(R"("90s")") == 90);
    CHECK(ttl(R"("1500ms")") == 2);
}

TEST_CASE("config untrusted: a 30-digit max_connections in the DCS is an error naming it",
          "[config][f7]") {
    DynamicResult r;
    REQUIRE_NOTHROW(r = parse_dynamic_json(R"({"postgresql":{"parameters":{"max_connections":")" +
                                           std::string(kHuge30) + R"("}}})"));
    const Problem* p = find_problem(r.problems, "config.postgresql.parameters.max_connections");
    REQUIRE(p != nullptr);
    CHECK(p->severity == Problem::Severity::Error);
    CHECK(r.settings.postgresql.parameters.count("max_connections") == 0);
}

TEST_CASE("config untrusted: effective_parameters never throws on huge parameter values",
          "[config][f7]") {
    core::Settings s;
    s.scope = "demo";
    s.postgresql.data_dir = "/data/pg";
    for (const char* name : {"max_connections",
                             "max_wal_senders",
                             "max_locks_per_transaction",
                             "wal_keep_size",
                             "wal_keep_segments",
                             "max_replication_slots"}) {
        for (const std::string& value : {std::string(kHuge),
                                         std::string(kHuge30),
                                         std::string("-") + kHuge,
                                         std::string(kHuge) + "MB",
                                         std::string("9223372036854775807TB"),
                                         std::string("9223372036854775807GB")}) {
            INFO(name << "=" << value);
            core::DynamicSettings d;
            d.postgresql.parameters[name] = value;
            std::vector<Problem> notes;
            std::map<std::string, std::string> p;
            REQUIRE_NOTHROW(p = effective_parameters(s, d, 150000, &notes));
            REQUIRE_NOTHROW(p = effective_parameters(s, d, 120000, &notes));
            CHECK(check_cmdline_option(name, value).has_value());
        }
    }
    core::DynamicSettings d;
    d.postgresql.parameters["max_connections"] = kHuge;
    std::vector<Problem> notes;
    const auto p = effective_parameters(s, d, 150000, &notes);
    CHECK(p.at("max_connections") == "100");  // Patroni's default, with a note naming the key
    CHECK(find_problem(notes, "postgresql.parameters.max_connections") != nullptr);
}

TEST_CASE("config untrusted: huge integers elsewhere in the DCS config name their key",
          "[config][f7]") {
    for (const char* key : {"ttl",
                            "loop_wait",
                            "retry_timeout",
                            "maximum_lag_on_failover",
                            "primary_start_timeout",
                            "max_timelines_history",
                            "synchronous_node_count"}) {
        for (const std::string& value :
             {std::string(kHuge), std::string("\"") + kHuge + "\"", std::string(kHuge30)}) {
            INFO(key << "=" << value);
            DynamicResult r;
            REQUIRE_NOTHROW(r = parse_dynamic_json(std::string("{\"") + key + "\":" + value + "}"));
            const Problem* p = find_problem(r.problems, std::string("config.") + key);
            REQUIRE(p != nullptr);
            CHECK(p->severity == Problem::Severity::Error);
        }
    }
}

TEST_CASE("config untrusted: huge YAML integers and durations in patroni.yml are errors",
          "[config][f7]") {
    SECTION("a sexagesimal integer that overflows stays a string and is rejected") {
        LoadResult r;
        REQUIRE_NOTHROW(r = load(minimal_yml() + "bootstrap:\n  dcs:\n    ttl: " +
                                 "99999999999999:59:59:59:59:59:59\n"));
        const Problem* p = find_problem(r, "bootstrap.dcs.ttl");
        REQUIRE(p != nullptr);
        CHECK(p->severity == Problem::Severity::Error);
    }
    SECTION("a Go duration too long for an int is rejected") {
        LoadResult r;
        REQUIRE_NOTHROW(
            r = load(replace(minimal_yml(),
                             "  host: 127.0.0.1:8500\n",
                             std::string("  host: 127.0.0.1:8500\n  service_check_interval: '") +
                                 kHuge + "h'\n")));
        const Problem* p = find_problem(r, "consul.service_check_interval");
        REQUIRE(p != nullptr);
        CHECK(p->severity == Problem::Severity::Error);
    }
    SECTION("a PATRONI_* variable with a huge integer names the variable") {
        LoadResult r;
        REQUIRE_NOTHROW(r = load(minimal_yml(), {{"PATRONI_RESTAPI_REQUEST_QUEUE_SIZE", kHuge}}));
        CHECK_FALSE(r.ok());
    }
    SECTION("tags.failover_priority beyond int is an error, not a wrapped priority") {
        LoadResult r;
        REQUIRE_NOTHROW(r = load(minimal_yml() + "tags:\n  failover_priority: 4294967297\n"));
        const Problem* p = find_problem(r, "tags.failover_priority");
        REQUIRE(p != nullptr);
        CHECK(p->severity == Problem::Severity::Error);
    }
}
