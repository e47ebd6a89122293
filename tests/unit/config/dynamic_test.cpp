// The DCS `config` key, timeout adjustment and patch_config.
#include "config/dynamic.hpp"

#include "config_test_support.hpp"

#include <catch2/catch.hpp>

using namespace pgwarden;
using namespace pgwarden::config;
using namespace pgwarden::config::test;

TEST_CASE("config dynamic: the DCS config key parses with the same strictness", "[config]") {
    const DynamicResult r = parse_dynamic_json(
        R"({"ttl":40,"loop_wait":5,"retry_timeout":"10","maximum_lag_on_failover":33554432,)"
        R"("synchronous_mode":"quorum","pause":"true","failsafe_mode":true,)"
        R"("postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":200,"archive_mode":"on",)"
        R"("hot_standby":true},"pg_hba":["local all all trust"]},"slots":{"x":{"type":"physical"}}})");
    INFO(r.problems.size());
    CHECK(r.problems.empty());
    CHECK(r.settings.ttl == 40);
    CHECK(r.settings.loop_wait == 5);
    CHECK(r.settings.retry_timeout == 10);
    CHECK(r.settings.maximum_lag_on_failover == 33554432);
    CHECK(r.settings.synchronous_mode == "quorum");
    CHECK(r.settings.pause);
    CHECK(r.settings.failsafe_mode);
    CHECK(r.settings.postgresql.parameters.at("max_connections") == "200");
    CHECK(r.settings.postgresql.parameters.at("hot_standby") == "on");
    CHECK(r.settings.postgresql.pg_hba.size() == 1);
}

TEST_CASE("config dynamic: wrong types and unknown keys name config.<key>", "[config]") {
    const DynamicResult r =
        parse_dynamic_json(R"({"loop_wait":"ten","synchronous_mode":"sometimes","shiny":1})");
    const Problem* lw = find_problem(r.problems, "config.loop_wait");
    REQUIRE(lw != nullptr);
    CHECK(lw->severity == Problem::Severity::Error);
    CHECK(lw->message == "expected an integer number of seconds, got 'ten'");
    CHECK(find_problem(r.problems, "config.synchronous_mode") != nullptr);
    const Problem* unknown = find_problem(r.problems, "config.shiny");
    REQUIRE(unknown != nullptr);
    CHECK(unknown->severity == Problem::Severity::Warning);
}

TEST_CASE("config dynamic: invalid JSON is one error", "[config]") {
    const DynamicResult r = parse_dynamic_json("{not json");
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].severity == Problem::Severity::Error);
    CHECK(parse_dynamic_json("[1,2]").problems.size() == 1);
}

TEST_CASE("config dynamic: adjust_timeouts follows Patroni's rule", "[config]") {
    SECTION("values below their minimums are raised") {
        core::DynamicSettings s;
        s.ttl = 5;
        s.loop_wait = 0;
        s.retry_timeout = 1;
        std::vector<Problem> problems;
        adjust_timeouts(s, &problems);
        // raised to 20/1/3, then 1 + 2*3 <= 20 holds
        CHECK(s.ttl == 20);
        CHECK(s.loop_wait == 1);
        CHECK(s.retry_timeout == 3);
        CHECK(problems.size() == 3);
        CHECK(find_problem(problems, "config.ttl")->message ==
              "ttl=5 can't be smaller than 20, adjusting to 20");
    }
    SECTION("retry_timeout too large for ttl lowers both") {
        core::DynamicSettings s;
        s.ttl = 20;
        s.loop_wait = 10;
        s.retry_timeout = 10;
        std::vector<Problem> problems;
        adjust_timeouts(s, &problems, "bootstrap.dcs");
        CHECK(s.loop_wait == 1);
        CHECK(s.retry_timeout == 9);
        REQUIRE(problems.size() == 1);
        CHECK(problems[0].path == "bootstrap.dcs.loop_wait");
        CHECK(problems[0].message ==
              "violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl=20. Adjusting "
              "loop_wait "
              "from 10 to 1 and retry_timeout from 10 to 9");
    }
    SECTION("otherwise loop_wait alone is lowered") {
        core::DynamicSettings s;
        s.ttl = 30;
        s.loop_wait = 20;
        s.retry_timeout = 10;
        adjust_timeouts(s, nullptr);
        CHECK(s.loop_wait == 10);
        CHECK(s.retry_timeout == 10);
    }
    SECTION("defaults are left alone") {
        core::DynamicSettings s;
        std::vector<Problem> problems;
        adjust_timeouts(s, &problems);
        CHECK(problems.empty());
        CHECK(s.loop_wait == 10);
    }
}

TEST_CASE("config dynamic: patch_config_json merges, deletes on null, compares str()", "[config]") {
    bool changed = false;
    SECTION("recursive merge and null deletes") {
        const std::string out = patch_config_json(
            R"({"ttl":30,"postgresql":{"parameters":{"a":"1","b":"2"},"use_slots":true}})",
            R"({"postgresql":{"parameters":{"b":null,"c":"3"}},"loop_wait":5})",
            &changed);
        CHECK(changed);
        CHECK(
            out ==
            R"({"ttl":30,"postgresql":{"parameters":{"a":"1","c":"3"},"use_slots":true},"loop_wait":5})");
    }
    SECTION("1 and \"1\" are the same value for Patroni") {
        const std::string out = patch_config_json(R"({"ttl":30})", R"({"ttl":"30"})", &changed);
        CHECK_FALSE(changed);
        CHECK(out == R"({"ttl":30})");
    }
    SECTION("a scalar change is detected") {
        const std::string out = patch_config_json(R"({"ttl":30})", R"({"ttl":40})", &changed);
        CHECK(changed);
        CHECK(out == R"({"ttl":40})");
    }
    SECTION("true and \"True\" compare equal, true and \"true\" do not") {
        patch_config_json(R"({"pause":true})", R"({"pause":"True"})", &changed);
        CHECK_FALSE(changed);
        patch_config_json(R"({"pause":true})", R"({"pause":"true"})", &changed);
        CHECK(changed);
    }
    SECTION("deleting a missing key is no change") {
        const std::string out = patch_config_json(R"({"ttl":30})", R"({"pause":null})", &changed);
        CHECK_FALSE(changed);
        CHECK(out == R"({"ttl":30})");
    }
    SECTION("a mapping replaces a scalar") {
        const std::string out =
            patch_config_json(R"({"slots":1})", R"({"slots":{"a":{}}})", &changed);
        CHECK(changed);
        CHECK(out == R"({"slots":{"a":{}}})");
    }
    SECTION("invalid input leaves the old text") {
        CHECK(patch_config_json(R"({"ttl":30})", "nope", &changed) == R"({"ttl":30})");
        CHECK_FALSE(changed);
    }
}
