// §13 items 1, 2, 14-24 of spec/consul-api.md: body conventions and sessions.
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <future>
#include <string>

namespace {

using pgwarden::consul_test::testing::ConsulServerProcess;
using pgwarden::consul_test::testing::wait_until;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

json session_info(const ConsulServerProcess& srv, const std::string& id) {
    auto r = srv.get("/v1/session/info/" + id);
    REQUIRE(r.status == 200);
    return r.json();
}

bool session_alive(const ConsulServerProcess& srv, const std::string& id) {
    return !session_info(srv, id).empty();
}

void register_node_check(const ConsulServerProcess& srv,
                         const std::string& id,
                         const std::string& status) {
    auto r = srv.put("/v1/agent/check/register",
                     json{{"Name", id}, {"TTL", "60s"}, {"Status", status}}.dump());
    REQUIRE(r.status == 200);
}

}  // namespace

TEST_CASE("consul §13.1: JSON field names are case-insensitive and agent bodies take snake_case",
          "[consul][integration]") {
    ConsulServerProcess srv;
    for (const char* name : {"ttl", "TTL", "Ttl"}) {
        INFO(name);
        auto id = srv.create_session(json{{name, "15s"}, {"checks", json::array()}});
        REQUIRE(session_info(srv, id).at(0).at("TTL") == "15s");
    }
    auto id = srv.create_session(json{
        {"NAME", "n"}, {"Behavior", "delete"}, {"lockDelay", "2s"}, {"CHECKS", json::array()}});
    auto s = session_info(srv, id).at(0);
    REQUIRE(s.at("Name") == "n");
    REQUIRE(s.at("Behavior") == "delete");
    REQUIRE(s.at("LockDelay") == 2000000000LL);

    auto reg =
        srv.put("/v1/agent/service/register",
                json{{"name", "web"},
                     {"id", "web1"},
                     {"enable_tag_override", true},
                     {"TAGS", json::array({"a"})},
                     {"check", json{{"ttl", "30s"}, {"deregister_critical_service_after", "90s"}}}}
                    .dump());
    REQUIRE(reg.status == 200);
    auto svc = srv.get("/v1/agent/services").json().at("web1");
    REQUIRE(svc.at("EnableTagOverride") == true);
    REQUIRE(svc.at("Tags") == json::array({"a"}));
    auto check = srv.get("/v1/agent/checks").json().at("service:web1");
    REQUIRE(check.at("Definition").at("DeregisterCriticalServiceAfter") == "1m30s");
}

TEST_CASE("consul §13.2: Go duration strings with decimals and units parse and unit-less ones fail",
          "[consul][integration]") {
    ConsulServerProcess srv;
    auto a = srv.create_session(json{{"ttl", "15.0s"}, {"lockdelay", "0.001s"}});
    REQUIRE(session_info(srv, a).at(0).at("TTL") == "15.0s");
    REQUIRE(session_info(srv, a).at(0).at("LockDelay") == 1000000);
    auto b = srv.create_session(json{{"ttl", "1m30s"}});
    REQUIRE(session_info(srv, b).at(0).at("TTL") == "1m30s");
    auto bad = srv.put("/v1/session/create", json{{"ttl", "15"}}.dump());
    REQUIRE(bad.status == 500);
    REQUIRE(bad.body ==
            "rpc error making call: Session TTL '15' invalid: time: missing unit in duration "
            "\"15\"");
    auto bad_wait = srv.get("/v1/kv/k?index=5&wait=15");
    REQUIRE(bad_wait.status == 400);
    REQUIRE(bad_wait.body == "Invalid wait time");
    auto bad_index = srv.get("/v1/kv/k?index=abc");
    REQUIRE(bad_index.status == 400);
    REQUIRE(bad_index.body == "Invalid index");
    REQUIRE(srv.get("/v1/kv/k?index=0&wait=9.98s").status == 404);  // parsed, not blocking
}

TEST_CASE(
    "consul §13.14: a session created from an empty body gets the defaults and "
    "serfHealth going critical invalidates it",
    "[consul][integration]") {
    ConsulServerProcess srv;
    auto with_empty_object = srv.create_session(json::object());
    auto no_body = srv.put("/v1/session/create");
    REQUIRE(no_body.status == 200);
    auto no_body_id = no_body.json().at("ID").get<std::string>();
    REQUIRE(no_body_id.size() == 36);
    for (const auto& id : {with_empty_object, no_body_id}) {
        auto s = session_info(srv, id).at(0);
        REQUIRE(s.at("LockDelay") == 15000000000LL);
        REQUIRE(s.at("Behavior") == "release");
        REQUIRE(s.at("TTL") == "");
        REQUIRE(s.at("NodeChecks") == json::array({"serfHealth"}));
        REQUIRE_FALSE(s.contains("Checks"));
        REQUIRE(s.at("Node") == "pgw-consul-test");
    }
    auto without_checks = srv.create_session(json{{"checks", json::array()}});
    REQUIRE(srv.put("/_test/check-status/serfHealth?status=critical").status == 200);
    REQUIRE(session_info(srv, with_empty_object).empty());
    REQUIRE(session_info(srv, no_body_id).empty());
    REQUIRE(session_alive(srv, without_checks));
    auto refused = srv.put("/v1/session/create", "{}");
    REQUIRE(refused.status == 500);
    REQUIRE(refused.body == "rpc error making call: Check 'serfHealth' is in critical state");
}

TEST_CASE("consul §13.15: LockDelay parsing of strings and numbers", "[consul][integration]") {
    ConsulServerProcess srv;
    const std::vector<std::pair<json, long long>> cases = {
        {"15s", 15000000000LL},
        {5, 5000000000LL},
        {"20ns", 20000000000LL},
        {"0.001s", 1000000LL},
        {"0s", 0LL},
        {2500000000LL, 2500000000LL},
        {"1m", 60000000000LL},
    };
    for (const auto& [value, expected] : cases) {
        INFO(value.dump());
        auto id = srv.create_session(json{{"lockdelay", value}, {"checks", json::array()}});
        REQUIRE(session_info(srv, id).at(0).at("LockDelay") == expected);
    }
}

TEST_CASE("consul §13.16: TTL outside the allowed range is a 500 with Consul's text",
          "[consul][integration]") {
    SECTION("default session_ttl_min 10s") {
        ConsulServerProcess srv;
        auto low = srv.put("/v1/session/create", json{{"ttl", "5s"}}.dump());
        REQUIRE(low.status == 500);
        REQUIRE(low.body ==
                "rpc error making call: Invalid Session TTL '5000000000', must be "
                "between [10s=24h0m0s]");
        auto high = srv.put("/v1/session/create", json{{"ttl", "25h"}}.dump());
        REQUIRE(high.status == 500);
        REQUIRE(high.body ==
                "rpc error making call: Invalid Session TTL '90000000000000', must "
                "be between [10s=24h0m0s]");
        REQUIRE(srv.put("/v1/session/create", json{{"ttl", "0s"}}.dump()).status == 200);
        REQUIRE(srv.put("/v1/session/create", json{{"ttl", "10s"}}.dump()).status == 200);
        REQUIRE(srv.put("/v1/session/create", json{{"ttl", "24h"}}.dump()).status == 200);
        REQUIRE(srv.get("/v1/agent/self").json().at("DebugConfig").at("SessionTTLMin") == "10s");
    }
    SECTION("--session-ttl-min=1s and no client-agent prefix") {
        ConsulServerProcess srv({"--session-ttl-min=1s", "--rpc-error-prefix-hops=0"});
        auto low = srv.put("/v1/session/create", json{{"ttl", "500ms"}}.dump());
        REQUIRE(low.status == 500);
        REQUIRE(low.body == "Invalid Session TTL '500000000', must be between [1s=24h0m0s]");
        REQUIRE(srv.put("/v1/session/create", json{{"ttl", "1s"}}.dump()).status == 200);
    }
}

TEST_CASE("consul §13.17: unknown Behavior is a 500", "[consul][integration]") {
    ConsulServerProcess srv({"--rpc-error-prefix-hops=0"});
    auto r = srv.put("/v1/session/create", json{{"behavior", "destroy"}}.dump());
    REQUIRE(r.status == 500);
    REQUIRE(r.body == "Invalid Behavior setting 'destroy'");
}

TEST_CASE("consul §13.18: the session checks fix-up is reproduced exactly",
          "[consul][integration]") {
    ConsulServerProcess srv;
    register_node_check(srv, "x", "passing");
    struct Case {
        json body;
        json checks;  // null = field omitted
        json node_checks;
    };
    const std::vector<Case> cases = {
        {json{{"checks", json::array()}}, nullptr, json::array()},
        {json{{"NodeChecks", json::array()}}, nullptr, json::array()},
        {json{{"checks", json::array({"x"})}}, json::array({"x"}), json::array({"serfHealth"})},
        {json{{"checks", json::array({"serfHealth"})}}, nullptr, json::array({"serfHealth"})},
        {json{{"checks", json::array({"x"})}, {"NodeChecks", json::array()}},
         nullptr,
         json::array()},
        {json{{"NodeChecks", json::array({"x"})}}, nullptr, json::array({"x"})},
        {json{{"checks", json::array()}, {"NodeChecks", json::array({"x"})}},
         nullptr,
         json::array()},
    };
    for (const auto& c : cases) {
        INFO(c.body.dump());
        auto s = session_info(srv, srv.create_session(c.body)).at(0);
        if (c.checks.is_null()) {
            REQUIRE_FALSE(s.contains("Checks"));
        } else {
            REQUIRE(s.at("Checks") == c.checks);
        }
        REQUIRE(s.at("NodeChecks") == c.node_checks);
    }
    // {"checks":["x"]} alone watches both x and serfHealth.
    auto both = srv.create_session(json{{"checks", json::array({"x"})}});
    auto only_x = srv.create_session(json{{"NodeChecks", json::array({"x"})}});
    REQUIRE(srv.put("/_test/check-status/serfHealth?status=critical").status == 200);
    REQUIRE_FALSE(session_alive(srv, both));
    REQUIRE(session_alive(srv, only_x));
}

TEST_CASE(
    "consul §13.19: a session with TTL T survives 2T minus epsilon and is gone by 2T plus "
    "epsilon",
    "[consul][integration]") {
    ConsulServerProcess srv({"--session-ttl-min=500ms"});
    const auto t0 = Clock::now();
    auto id = srv.create_session(json{{"ttl", "1s"}, {"checks", json::array()}});
    // Alive at every poll up to 2T - 0.3 s.
    while (seconds_since(t0) < 1.7) {
        REQUIRE(session_alive(srv, id));
        std::this_thread::sleep_for(50ms);
    }
    REQUIRE(wait_until([&] { return !session_alive(srv, id); }, 1500ms));
    const double gone_at = seconds_since(t0);
    REQUIRE(gone_at >= 1.7);
    REQUIRE(gone_at < 2.0 + 1.0);
}

TEST_CASE("consul §13.20: renew resets the timer and renewing an unknown session is a 404",
          "[consul][integration]") {
    ConsulServerProcess srv({"--session-ttl-min=500ms"});
    auto id = srv.create_session(json{{"ttl", "1s"}, {"checks", json::array()}, {"name", "r"}});
    const auto t0 = Clock::now();
    std::this_thread::sleep_for(1200ms);  // past T, before 2T: the point of the test
    auto renew = srv.put("/v1/session/renew/" + id);
    REQUIRE(renew.status == 200);
    auto body = renew.json();
    REQUIRE(body.is_array());
    REQUIRE(body.size() == 1);
    REQUIRE(body.at(0).at("ID") == id);
    REQUIRE(body.at(0).at("TTL") == "1s");
    const auto renewed_at = Clock::now();
    // Past the original 2T deadline (t0 + 2 s) the session still lives.
    while (seconds_since(t0) < 2.6) {
        REQUIRE(session_alive(srv, id));
        std::this_thread::sleep_for(50ms);
    }
    REQUIRE(wait_until([&] { return !session_alive(srv, id); }, 2s));
    REQUIRE(seconds_since(renewed_at) >= 1.7);

    auto unknown = srv.put("/v1/session/renew/" + id);
    REQUIRE(unknown.status == 404);
    REQUIRE(unknown.body == "Session id '" + id + "' not found");
    REQUIRE(unknown.body.size() == 59);
    auto missing = srv.put("/v1/session/renew/");
    REQUIRE(missing.status == 400);
    REQUIRE(missing.body == "Missing session");
    REQUIRE(srv.get("/v1/session/renew/" + id).status == 405);
}

TEST_CASE("consul §13.21: destroy answers true for existing and unknown sessions",
          "[consul][integration]") {
    ConsulServerProcess srv;
    auto id = srv.create_session(json{{"checks", json::array()}});
    auto r = srv.put("/v1/session/destroy/" + id);
    REQUIRE(r.status == 200);
    REQUIRE(r.body == "true");
    REQUIRE(session_info(srv, id).empty());
    REQUIRE(srv.put("/v1/session/destroy/" + id).body == "true");
    REQUIRE(srv.put("/v1/session/destroy/00000000-1111-2222-3333-444444444444").body == "true");
}

TEST_CASE("consul §13.22: info list and node return arrays and support blocking",
          "[consul][integration]") {
    ConsulServerProcess srv;
    REQUIRE(srv.get("/v1/session/info/00000000-1111-2222-3333-444444444444").body == "[]");
    REQUIRE(srv.get("/v1/session/list").body == "[]");
    auto id = srv.create_session(json{{"checks", json::array()}});
    REQUIRE(srv.get("/v1/session/list").json().size() == 1);
    REQUIRE(srv.get("/v1/session/node/pgw-consul-test").json().size() == 1);
    REQUIRE(srv.get("/v1/session/node/other").json().empty());

    const std::vector<std::string> paths = {
        "/v1/session/list", "/v1/session/info/" + id, "/v1/session/node/pgw-consul-test"};
    for (const auto& path : paths) {
        INFO(path);
        auto current = srv.get(path);
        auto t0 = Clock::now();
        auto fut = std::async(std::launch::async, [&srv, path, idx = current.index()] {
            return srv.get(path + "?index=" + std::to_string(idx) + "&wait=20s");
        });
        std::this_thread::sleep_for(200ms);
        srv.create_session(json{{"checks", json::array()}});
        auto r = fut.get();
        REQUIRE(r.status == 200);
        REQUIRE(r.index() > current.index());
        REQUIRE(seconds_since(t0) < 5.0);
    }
}

TEST_CASE("consul §13.23: invalidation deletes or releases the session's keys",
          "[consul][integration]") {
    ConsulServerProcess srv;
    SECTION("Behavior=delete leaves tombstones") {
        auto id = srv.create_session(
            json{{"checks", json::array()}, {"behavior", "delete"}, {"lockdelay", "0s"}});
        REQUIRE(srv.put("/v1/kv/s/a?acquire=" + id, "1").body == "true");
        REQUIRE(srv.put("/v1/kv/s/b?acquire=" + id, "2").body == "true");
        REQUIRE(srv.put("/v1/kv/s/c", "3").body == "true");
        auto before = srv.get("/v1/kv/s/?recurse").index();
        REQUIRE(srv.put("/v1/session/destroy/" + id).body == "true");
        REQUIRE(srv.get("/v1/kv/s/a").status == 404);
        REQUIRE(srv.get("/v1/kv/s/b").status == 404);
        auto after = srv.get("/v1/kv/s/?recurse");
        REQUIRE(after.json().size() == 1);
        REQUIRE(after.index() > before);
    }
    SECTION("Behavior=release clears Session and keeps value and LockIndex") {
        auto id = srv.create_session(json{{"checks", json::array()}, {"lockdelay", "0s"}});
        REQUIRE(srv.put("/v1/kv/s/a?acquire=" + id, "1").body == "true");
        auto before = srv.get("/v1/kv/s/a").json().at(0);
        REQUIRE(srv.put("/v1/session/destroy/" + id).body == "true");
        auto after = srv.get("/v1/kv/s/a").json().at(0);
        REQUIRE_FALSE(after.contains("Session"));
        REQUIRE(after.at("LockIndex") == before.at("LockIndex"));
        REQUIRE(after.at("Value") == before.at("Value"));
        REQUIRE(after.at("ModifyIndex").get<std::uint64_t>() >
                before.at("ModifyIndex").get<std::uint64_t>());
        REQUIRE(after.at("CreateIndex") == before.at("CreateIndex"));
    }
}

TEST_CASE(
    "consul §13.24: a critical or deregistered check invalidates sessions and bad checks "
    "refuse creation",
    "[consul][integration]") {
    ConsulServerProcess srv;
    register_node_check(srv, "c1", "passing");
    register_node_check(srv, "c2", "passing");
    register_node_check(srv, "c3", "critical");
    auto s1 = srv.create_session(json{{"NodeChecks", json::array({"c1"})}});
    auto s2 = srv.create_session(json{{"NodeChecks", json::array({"c2"})}});
    REQUIRE(srv.put("/v1/agent/check/fail/c1?note=down").status == 200);
    REQUIRE_FALSE(session_alive(srv, s1));
    REQUIRE(session_alive(srv, s2));
    REQUIRE(srv.put("/v1/agent/check/deregister/c2").status == 200);
    REQUIRE_FALSE(session_alive(srv, s2));

    auto missing =
        srv.put("/v1/session/create", json{{"NodeChecks", json::array({"nope"})}}.dump());
    REQUIRE(missing.status == 500);
    REQUIRE(missing.body == "rpc error making call: Missing check 'nope' registration");
    auto critical = srv.put("/v1/session/create", json{{"NodeChecks", json::array({"c3"})}}.dump());
    REQUIRE(critical.status == 500);
    REQUIRE(critical.body == "rpc error making call: Check 'c3' is in critical state");

    // A service check referenced through ServiceChecks works the same way.
    REQUIRE(
        srv.put(
               "/v1/agent/service/register",
               json{{"Name", "svc"}, {"Check", json{{"TTL", "60s"}, {"Status", "passing"}}}}.dump())
            .status == 200);
    auto s3 =
        srv.create_session(json{{"NodeChecks", json::array()},
                                {"ServiceChecks", json::array({json{{"ID", "service:svc"}}})}});
    REQUIRE(session_alive(srv, s3));
    REQUIRE(srv.put("/v1/agent/service/deregister/svc").status == 200);
    REQUIRE_FALSE(session_alive(srv, s3));
}
