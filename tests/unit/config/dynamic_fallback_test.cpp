// A running node reads the DCS `config` key with a per-key fallback to the last good value (F7
// scenario B); PATCH/PUT /config bodies are validated before they are written; permanent slots,
// ignore_slots and standby_cluster are parsed.
#include "config/dynamic.hpp"
#include "config_test_support.hpp"

#include <catch2/catch.hpp>

using namespace pgwarden;
using namespace pgwarden::config;
using namespace pgwarden::config::test;

namespace {

// What a node runs with after a good config key: pause on, pg_rewind on, operator parameters.
core::DynamicSettings last_good() {
    const DynamicResult r = parse_dynamic_json(
        R"({"ttl":40,"loop_wait":5,"retry_timeout":10,"maximum_lag_on_failover":33554432,)"
        R"("pause":true,"member_slots_ttl":"1h",)"
        R"("postgresql":{"use_pg_rewind":true,"use_slots":true,)"
        R"("parameters":{"max_connections":300,"work_mem":"8MB"},"pg_hba":["local all all trust"]},)"
        R"("slots":{"dr_standby":{"type":"physical"}},"ignore_slots":[{"name":"backup"}]})");
    REQUIRE(r.problems.empty());
    return r.settings;
}

bool has_error(const std::vector<Problem>& problems, const std::string& path) {
    const Problem* p = find_problem(problems, path);
    return p != nullptr && p->severity == Problem::Severity::Error;
}

}  // namespace

TEST_CASE("config fallback: a bad ttl keeps pause and the last good ttl (F7 scenario B)",
          "[config][f7]") {
    const core::DynamicSettings good = last_good();
    const DynamicResult r = parse_dynamic_json(
        R"({"ttl":"soon","loop_wait":5,"retry_timeout":10,"maximum_lag_on_failover":33554432,)"
        R"("pause":true,"postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":300,)"
        R"("work_mem":"8MB"}}})",
        good);
    CHECK(r.settings.pause);
    CHECK(r.settings.ttl == 40);
    CHECK(r.settings.loop_wait == 5);
    CHECK(r.settings.postgresql.use_pg_rewind);
    CHECK(r.settings.postgresql.parameters.at("max_connections") == "300");
    const Problem* p = find_problem(r.problems, "config.ttl");
    REQUIRE(p != nullptr);
    CHECK(p->severity == Problem::Severity::Error);
    CHECK(p->message.find("keeping the last good value") != std::string::npos);
}

TEST_CASE("config fallback: each invalid key keeps its own last good value", "[config][f7]") {
    const core::DynamicSettings good = last_good();
    const DynamicResult r = parse_dynamic_json(
        R"({"ttl":30,"pause":"maybe","member_slots_ttl":"99999999999999999999s",)"
        R"("maximum_lag_on_failover":"lots",)"
        R"("postgresql":{"use_pg_rewind":"perhaps","pg_hba":[1,{"x":1}],)"
        R"("parameters":{"max_connections":"999999999999999999999999999999","work_mem":"16MB",)"
        R"("shared_buffers":{"nested":1}}},)"
        R"("slots":{"Bad-Name":null},"ignore_slots":"all"})",
        good);
    CHECK(r.settings.ttl == 30);  // valid new value applied
    CHECK(r.settings.pause);
    CHECK(r.settings.member_slots_ttl == 3600);
    CHECK(r.settings.maximum_lag_on_failover == 33554432);
    CHECK(r.settings.postgresql.use_pg_rewind);
    CHECK(r.settings.postgresql.pg_hba == good.postgresql.pg_hba);
    CHECK(r.settings.postgresql.parameters.at("max_connections") == "300");
    CHECK(r.settings.postgresql.parameters.at("work_mem") == "16MB");      // valid new value
    CHECK(r.settings.postgresql.parameters.count("shared_buffers") == 0);  // never good before
    REQUIRE(r.settings.slots.size() == 1);
    CHECK(r.settings.slots[0].name == "dr_standby");
    REQUIRE(r.settings.ignore_slots.size() == 1);
    CHECK(r.settings.ignore_slots[0].name == "backup");
    for (const char* path : {"config.pause",
                             "config.member_slots_ttl",
                             "config.maximum_lag_on_failover",
                             "config.postgresql.use_pg_rewind",
                             "config.postgresql.pg_hba[1]",
                             "config.postgresql.parameters.max_connections",
                             "config.postgresql.parameters.shared_buffers",
                             "config.slots.Bad-Name",
                             "config.ignore_slots"}) {
        INFO(path);
        CHECK(has_error(r.problems, path));
    }
}

TEST_CASE("config fallback: absent keys take the defaults, as in Patroni", "[config][f7]") {
    const DynamicResult r = parse_dynamic_json(R"({"ttl":30})", last_good());
    CHECK(r.problems.empty());
    CHECK_FALSE(r.settings.pause);
    CHECK(r.settings.postgresql.parameters.empty());
    CHECK(r.settings.slots.empty());
}

TEST_CASE("config fallback: text that is not a JSON object keeps the last good config whole",
          "[config][f7]") {
    const core::DynamicSettings good = last_good();
    for (const char* text : {"{truncated", "[1,2]", "\"ttl\"", "", "null"}) {
        INFO(text);
        const DynamicResult r = parse_dynamic_json(text, good);
        CHECK(r.settings.pause);
        CHECK(r.settings.ttl == 40);
        CHECK(r.settings.postgresql.parameters == good.postgresql.parameters);
        CHECK(r.settings.slots.size() == 1);
        REQUIRE(r.problems.size() == 1);
        CHECK(r.problems[0].path == "config");
        CHECK(r.problems[0].severity == Problem::Severity::Error);
    }
}

TEST_CASE("config fallback: a last good value is adjusted like a new one", "[config][f7]") {
    core::DynamicSettings good = last_good();
    const DynamicResult r = parse_dynamic_json(R"({"ttl":"x","retry_timeout":30})", good);
    CHECK(r.settings.ttl == 40);
    CHECK(r.settings.loop_wait + 2 * r.settings.retry_timeout <= r.settings.ttl);
}

TEST_CASE("config validate_dynamic_json: what PATCH/PUT /config may write", "[config][f7]") {
    SECTION("an unreadable ttl is an error naming ttl") {
        const auto errors = validate_dynamic_json(R"({"ttl":"soon"})");
        REQUIRE(errors.size() == 1);
        CHECK(errors[0].path == "config.ttl");
        CHECK(errors[0].severity == Problem::Severity::Error);
    }
    SECTION("a 30-digit max_connections is an error naming the parameter") {
        const auto errors = validate_dynamic_json(
            R"({"postgresql":{"parameters":{"max_connections":"999999999999999999999999999999"}}})");
        CHECK(has_error(errors, "config.postgresql.parameters.max_connections"));
        CHECK(has_error(
            validate_dynamic_json(
                R"({"postgresql":{"parameters":{"max_connections":999999999999999999999999999999}}})"),
            "config.postgresql.parameters.max_connections"));
    }
    SECTION("a 20-digit member_slots_ttl is an error") {
        CHECK(has_error(validate_dynamic_json(R"({"member_slots_ttl":"99999999999999999999s"})"),
                        "config.member_slots_ttl"));
    }
    SECTION("unknown keys are accepted (Patroni keeps foreign keys)") {
        CHECK(validate_dynamic_json(R"({"shiny":{"a":1},"citus":{"group":0}})").empty());
    }
    SECTION("values Patroni adjusts are accepted") {
        CHECK(validate_dynamic_json(R"({"ttl":5,"loop_wait":0,"retry_timeout":1})").empty());
        CHECK(validate_dynamic_json(R"({"postgresql":{"parameters":{"max_connections":10}}})")
                  .empty());
    }
    SECTION("settings pgwarden does not implement are not parse errors") {
        CHECK(validate_dynamic_json(R"({"synchronous_mode":true,"failsafe_mode":true})").empty());
    }
    SECTION("text that is not a JSON object is an error") {
        for (const char* text : {"{truncated", "[1]", "42", ""}) {
            INFO(text);
            const auto errors = validate_dynamic_json(text);
            REQUIRE(errors.size() == 1);
            CHECK(errors[0].path == "config");
        }
    }
    SECTION("a valid full configuration has no errors") {
        CHECK(validate_dynamic_json(
                  R"({"ttl":30,"loop_wait":10,"retry_timeout":10,"pause":false,)"
                  R"("postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":100}}})")
                  .empty());
    }
}

TEST_CASE("config slots: permanent slots as Patroni reads them", "[config][f14]") {
    const DynamicResult r =
        parse_dynamic_json(R"({"slots":{"dr_standby":null,"phys":{"type":"physical"},)"
                           R"("cdc":{"type":"logical","database":"app","plugin":"pgoutput"},)"
                           R"("guess":{"database":"app","plugin":"wal2json"}}})");
    INFO(r.problems.size());
    CHECK(r.problems.empty());
    REQUIRE(r.settings.slots.size() == 4);
    CHECK(r.settings.slots[0].name == "dr_standby");
    CHECK(r.settings.slots[0].type == "physical");
    CHECK(r.settings.slots[1].type == "physical");
    CHECK(r.settings.slots[2].type == "logical");
    CHECK(r.settings.slots[2].database == "app");
    CHECK(r.settings.slots[2].plugin == "pgoutput");
    CHECK(r.settings.slots[3].type == "logical");  // type defaults from database + plugin
    CHECK(r.settings.slots[3].plugin == "wal2json");
}

TEST_CASE("config slots: the permanent_slots spellings are read too", "[config][f14]") {
    const DynamicResult r = parse_dynamic_json(R"({"permanent_slots":{"a":null},"slots":{}})");
    CHECK(r.problems.empty());
    REQUIRE(r.settings.slots.size() == 1);
    CHECK(r.settings.slots[0].name == "a");
}

TEST_CASE("config slots: invalid permanent slots are errors naming the slot", "[config][f14]") {
    SECTION("bad name") {
        const DynamicResult r = parse_dynamic_json(R"({"slots":{"Has-Dash":null}})");
        CHECK(has_error(r.problems, "config.slots.Has-Dash"));
        CHECK(r.settings.slots.empty());
    }
    SECTION("logical without plugin") {
        const DynamicResult r =
            parse_dynamic_json(R"({"slots":{"ok":null,"cdc":{"type":"logical","database":"x"}}})");
        CHECK(has_error(r.problems, "config.slots.cdc"));
        CHECK(r.settings.slots.empty());  // all or nothing: a node keeps its last good slots
    }
    SECTION("bad type") {
        CHECK(has_error(parse_dynamic_json(R"({"slots":{"s":{"type":"both"}}})").problems,
                        "config.slots.s.type"));
    }
    SECTION("not a mapping") {
        CHECK(has_error(parse_dynamic_json(R"({"slots":["a"]})").problems, "config.slots"));
        CHECK(has_error(parse_dynamic_json(R"({"slots":{"s":"physical"}})").problems,
                        "config.slots.s"));
    }
}

TEST_CASE("config slots: ignore_slots matchers", "[config][f14]") {
    const DynamicResult r = parse_dynamic_json(
        R"({"ignore_slots":[{"name":"backup"},{"type":"logical","database":"app",)"
        R"("plugin":"pgoutput"},{}]})");
    CHECK(r.problems.empty());
    REQUIRE(r.settings.ignore_slots.size() == 3);
    CHECK(r.settings.ignore_slots[0].name == "backup");
    CHECK(r.settings.ignore_slots[0].type.empty());
    CHECK(r.settings.ignore_slots[1].type == "logical");
    CHECK(r.settings.ignore_slots[1].database == "app");
    CHECK(r.settings.ignore_slots[1].plugin == "pgoutput");
    CHECK(has_error(parse_dynamic_json(R"({"ignore_slots":[{"type":"both"}]})").problems,
                    "config.ignore_slots[0].type"));
    CHECK(has_error(parse_dynamic_json(R"({"ignore_slots":["backup"]})").problems,
                    "config.ignore_slots[0]"));
    CHECK(has_error(parse_dynamic_json(R"({"ignore_slots":[{"name":5}]})").problems,
                    "config.ignore_slots[0].name"));
}

TEST_CASE("config standby_cluster: present as Patroni's is_standby_cluster reads it", "[config]") {
    CHECK_FALSE(parse_dynamic_json(R"({})").settings.standby_cluster_present);
    CHECK_FALSE(parse_dynamic_json(R"({"standby_cluster":null})").settings.standby_cluster_present);
    CHECK_FALSE(parse_dynamic_json(R"({"standby_cluster":{}})").settings.standby_cluster_present);
    CHECK_FALSE(parse_dynamic_json(R"({"standby_cluster":{"primary_slot_name":"x"}})")
                    .settings.standby_cluster_present);
    const DynamicResult r =
        parse_dynamic_json(R"({"standby_cluster":{"host":"main-site","port":5432}})");
    CHECK(r.problems.empty());
    CHECK(r.settings.standby_cluster_present);
    CHECK(r.settings.standby_cluster_json == R"({"host":"main-site","port":5432})");
    CHECK(parse_dynamic_json(R"({"standby_cluster":{"restore_command":"cp %f %p"}})")
              .settings.standby_cluster_present);
    CHECK(has_error(parse_dynamic_json(R"({"standby_cluster":"main-site"})").problems,
                    "config.standby_cluster"));
}
