// One reading of Patroni's loosely typed member values (lib/dcs/patroni_values.hpp), shared by
// the DCS codec (member keys) and the member probes (/patroni answers): both must agree.
#include "dcs/patroni_values.hpp"

#include "dcs/cluster_codec.hpp"
#include "runtime/member_probe.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>

using namespace pgwarden;
using nlohmann::json;

namespace {

// A /patroni answer of a replica with `tags`.
std::string patroni_body(const std::string& tags) {
    return R"({"state":"running","role":"replica","timeline":2,)"
           R"("xlog":{"received_location":100,"replayed_location":90},"tags":)" +
           tags + "}";
}

}  // namespace

TEST_CASE("patroni values: Python truthiness, not parse_bool", "[dcs][patroni]") {
    CHECK(dcs::patroni_truthy(json(true)));
    CHECK_FALSE(dcs::patroni_truthy(json(false)));
    CHECK_FALSE(dcs::patroni_truthy(json(nullptr)));
    CHECK(dcs::patroni_truthy(json(1)));
    CHECK(dcs::patroni_truthy(json(-1)));
    CHECK_FALSE(dcs::patroni_truthy(json(0)));
    CHECK_FALSE(dcs::patroni_truthy(json(0u)));
    CHECK(dcs::patroni_truthy(json(0.5)));
    CHECK_FALSE(dcs::patroni_truthy(json(0.0)));
    // bool("false") is True in Python: a non-empty string.
    CHECK(dcs::patroni_truthy(json("false")));
    CHECK(dcs::patroni_truthy(json("0")));
    CHECK(dcs::patroni_truthy(json("off")));
    CHECK(dcs::patroni_truthy(json("true")));
    CHECK_FALSE(dcs::patroni_truthy(json("")));
    CHECK_FALSE(dcs::patroni_truthy(json::array()));
    CHECK(dcs::patroni_truthy(json::array({0})));
    CHECK_FALSE(dcs::patroni_truthy(json::object()));
}

TEST_CASE("patroni values: int() of integers, floats and decimal strings", "[dcs][patroni]") {
    CHECK(dcs::patroni_int(json(5)) == 5);
    CHECK(dcs::patroni_int(json(-3)) == -3);
    CHECK(dcs::patroni_int(json(2.9)) == 2);
    CHECK(dcs::patroni_int(json(" 7 ")) == 7);
    CHECK(dcs::patroni_int(json("+7")) == 7);
    CHECK_FALSE(dcs::patroni_int(json("seven")));
    CHECK_FALSE(dcs::patroni_int(json("")));
    CHECK_FALSE(dcs::patroni_int(json(nullptr)));
    CHECK_FALSE(dcs::patroni_int(json(true)));
    CHECK_FALSE(dcs::patroni_int(json(18446744073709551615u)));
}

TEST_CASE("patroni values: a field of the wrong type is absent", "[dcs][patroni]") {
    const auto obj = json::parse(R"({"role":1,"state":"running","x":null})");
    CHECK_FALSE(dcs::patroni_string(obj, "role"));
    CHECK(dcs::patroni_string(obj, "state") == "running");
    CHECK_FALSE(dcs::patroni_string(obj, "x"));
    CHECK_FALSE(dcs::patroni_string(obj, "missing"));
    CHECK_FALSE(dcs::patroni_string(json::array(), "role"));
}

TEST_CASE("patroni values: nofailover / failover_priority / clonefrom as Patroni's Tags",
          "[dcs][patroni]") {
    struct Case {
        const char* tags;
        bool nofailover;
        int priority;
    };
    const Case cases[] = {
        {R"({})", false, 1},
        {R"({"nofailover":true})", true, 0},
        {R"({"nofailover":false})", false, 1},
        {R"({"nofailover":"false"})", true, 0},  // bool("false") is True
        {R"({"nofailover":""})", false, 1},
        {R"({"nofailover":0})", false, 1},
        {R"({"nofailover":null,"failover_priority":0})", true, 0},
        {R"({"failover_priority":0})", true, 0},
        {R"({"failover_priority":-1})", true, -1},
        {R"({"failover_priority":"3"})", false, 3},
        {R"({"failover_priority":"x"})", false, 1},
        {R"({"nofailover":false,"failover_priority":0})", false, 0},  // the bool tag wins
        {R"({"nofailover":true,"failover_priority":5})", true, 0},
    };
    for (const auto& c : cases) {
        INFO("tags " << c.tags);
        const auto t = dcs::patroni_failover_tags(json::parse(c.tags));
        CHECK(t.nofailover == c.nofailover);
        CHECK(t.failover_priority == c.priority);
        // The member key and the /patroni answer read the same tags the same way.
        const auto m =
            dcs::parse_member("n", dcs::RawKey{std::string(R"({"tags":)") + c.tags + "}", 1, ""});
        CHECK(m.nofailover == c.nofailover);
        CHECK(m.failover_priority == c.priority);
        const auto p = runtime::parse_member_probe("n", patroni_body(c.tags));
        CHECK(p.reachable);
        CHECK(p.nofailover == c.nofailover);
        CHECK(p.failover_priority == c.priority);
    }
    CHECK_FALSE(dcs::patroni_failover_tags(json("nofailover")).nofailover);
    CHECK(dcs::patroni_clonefrom(json::parse(R"({"clonefrom":"false"})")));
    CHECK_FALSE(dcs::patroni_clonefrom(json::parse(R"({"clonefrom":false})")));
    CHECK_FALSE(dcs::patroni_clonefrom(json::parse(R"({})")));
}

TEST_CASE("member probe: a non-string role or state leaves the member reachable",
          "[dcs][patroni][probe]") {
    // F19: j.value("role", "") threw on {"role": 1} and the member silently became unreachable.
    const auto p = runtime::parse_member_probe(
        "n2",
        R"({"role":1,"state":{"x":1},"timeline":3,"watchdog_failed":"false",)"
        R"("xlog":{"received_location":200,"replayed_location":150}})");
    CHECK(p.name == "n2");
    CHECK(p.reachable);
    CHECK_FALSE(p.is_primary);
    CHECK(p.wal_position == 200);
    CHECK(p.timeline == 3);
    CHECK(p.state.empty());
    CHECK(p.watchdog_failed);  // Python truthiness, as Patroni's failover_limitation()

    const auto primary = runtime::parse_member_probe(
        "n1", R"({"role":"primary","state":"running","xlog":{"location":500},"tags":[]})");
    CHECK(primary.reachable);
    CHECK(primary.is_primary);
    CHECK(primary.wal_position == 500);
    CHECK(primary.state == "running");
    CHECK_FALSE(primary.nofailover);

    // Without xlog/wal Patroni counts the member as unreachable.
    CHECK_FALSE(runtime::parse_member_probe("n3", R"({"role":"replica"})").reachable);
    CHECK_FALSE(runtime::parse_member_probe("n3", "not json").reachable);
}
