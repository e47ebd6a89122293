// The consul backend's pure parts: KV answers, status verdicts, session and service bodies, on
// canned answers in the shape of spec/consul-api.md.
#include "canned_answer.hpp"
#include "dcs/consul/consul_dcs.hpp"
#include "dcs/consul/wire.hpp"

#include <catch2/catch.hpp>

using namespace pgwarden;
using namespace pgwarden::dcs;
using pgwarden::dcs_test::answer;
using namespace pgwarden::dcs::consul;
using std::chrono::milliseconds;

TEST_CASE("consul wire: a recursive KV read decodes to relative keys", "[dcs][consul]") {
    const auto r = answer(200, R"([
        {"LockIndex":0,"Key":"service/demo/","Flags":0,"Value":null,"CreateIndex":4,"ModifyIndex":4},
        {"LockIndex":1,"Key":"service/demo/leader","Flags":0,"Value":"bm9kZTE=",
         "Session":"adf4238a-882b-9ddc-4a9d-5b6758e4159e","CreateIndex":10,"ModifyIndex":12},
        {"LockIndex":0,"Key":"service/demo/config","Flags":0,"Value":"eyJ0dGwiOjMwfQ==",
         "CreateIndex":5,"ModifyIndex":7},
        {"Key":"service/demo2/leader","Value":"b3RoZXI=","ModifyIndex":3},
        "not an object"])");
    auto keys = parse_kv_list(r, "service/demo/");
    REQUIRE(keys.has_value());
    REQUIRE(keys->size() == 2);  // the folder key itself and other prefixes are skipped
    CHECK(keys->at("leader").value == "node1");
    CHECK(keys->at("leader").owner == "adf4238a-882b-9ddc-4a9d-5b6758e4159e");
    CHECK(keys->at("leader").version == 12);
    CHECK(keys->at("config").value == R"({"ttl":30})");
    CHECK(keys->at("config").owner.empty());
    CHECK(keys->at("config").version == 7);

    auto none = parse_kv_list(answer(404, ""), "service/demo/");
    REQUIRE(none.has_value());
    CHECK(none->empty());
    CHECK_FALSE(parse_kv_list(answer(200, "{}"), "service/demo/").has_value());
    CHECK_FALSE(parse_kv_list(answer(500, "[]"), "service/demo/").has_value());
    // A value that is not base64 is not silently cut short.
    CHECK_FALSE(parse_kv_list(answer(200, R"([{"Key":"service/demo/leader","Value":"bm9k!TE="}])"),
                              "service/demo/")
                    .has_value());
}

TEST_CASE("consul wire: the leader key as the watch sees it", "[dcs][consul]") {
    auto absent = parse_leader_answer(answer(404, ""));
    REQUIRE(absent.has_value());
    CHECK_FALSE(absent->has_value());
    auto held = parse_leader_answer(answer(
        200,
        R"([{"Key":"service/demo/leader","Value":"bm9kZTE=","Session":"s1","CreateIndex":10,"ModifyIndex":12}])"));
    REQUIRE(held.has_value());
    REQUIRE(held->has_value());
    CHECK(**held == LeaderSeen{"node1", "s1", 10});
    // A rewrite by the same holder (ModifyIndex only) is no change; a re-create is.
    auto rewritten = parse_leader_answer(answer(
        200,
        R"([{"Key":"service/demo/leader","Value":"bm9kZTE=","Session":"s1","CreateIndex":10,"ModifyIndex":15}])"));
    CHECK(*rewritten == *held);
    auto recreated = parse_leader_answer(answer(
        200,
        R"([{"Key":"service/demo/leader","Value":"bm9kZTE=","Session":"s1","CreateIndex":16,"ModifyIndex":16}])"));
    CHECK_FALSE(*recreated == *held);
    CHECK_FALSE(parse_leader_answer(answer(200, "[]")).has_value());
    CHECK_FALSE(parse_leader_answer(answer(200, "garbage")).has_value());
    CHECK_FALSE(parse_leader_answer(answer(200, R"([{"Value":"%%%%"}])")).has_value());

    auto entry = decode_entry(json::parse(R"({"Key":"k","Value":"dg==","ModifyIndex":9})"));
    REQUIRE(entry);
    CHECK(entry->key == "k");
    CHECK(entry->value == "v");
    CHECK(entry->modify_index == 9);
    CHECK(entry->session.empty());
    CHECK_FALSE(decode_entry(json::parse("[1]")).has_value());
}

TEST_CASE("consul wire: what call() does with a status", "[dcs][consul]") {
    CHECK(classify(200, "true") == Answer::Deliver);
    CHECK(classify(404, "") == Answer::Deliver);
    CHECK(classify(500, "invalid session \"abc\"") == Answer::Deliver);
    CHECK(classify(500, "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]") ==
          Answer::Deliver);
    CHECK(classify(500, "missing session") == Answer::Deliver);
    CHECK(classify(403, "Permission denied") == Answer::Forbidden);
    CHECK(classify(401, "ACL not found") == Answer::Unauthorized);
    CHECK(classify(400, "Request decode failed") == Answer::BadRequest);
    CHECK(classify(405, "") == Answer::BadRequest);
    CHECK(classify(413, "") == Answer::BadRequest);
    CHECK(classify(500, "No cluster leader") == Answer::Retry);
    CHECK(classify(429, "") == Answer::Retry);
    CHECK(classify(503, "") == Answer::Retry);

    CHECK(parse_bool_body(answer(200, "true")) == true);
    CHECK(parse_bool_body(answer(200, "false")) == false);
    CHECK_FALSE(parse_bool_body(answer(200, "maybe")).has_value());
    CHECK_FALSE(parse_bool_body(answer(404, "true")).has_value());
}

TEST_CASE("consul wire: session request and ttl limits", "[dcs][consul]") {
    CHECK(session_request("demo-node1", 30, {}) == json::parse(R"({"Name":"demo-node1",
        "LockDelay":"0.001s","Behavior":"delete","TTL":"15s","Checks":[],"NodeChecks":[]})"));
    CHECK(session_request("demo-node1", 25, {"serfHealth"}) ==
          json::parse(R"({"Name":"demo-node1","LockDelay":"0.001s","Behavior":"delete",
                          "TTL":"12.5s","NodeChecks":["serfHealth"]})"));
    CHECK(seconds_text(150) == "15s");
    CHECK(seconds_text(125) == "12.5s");

    CHECK(session_ttl_min(R"({"DebugConfig":{"SessionTTLMin":"1s"}})") == milliseconds(1000));
    CHECK(session_ttl_min(R"({"DebugConfig":{"SessionTTLMin":"1m30s"}})") == milliseconds(90000));
    CHECK(session_ttl_min(R"({"Config":{}})") == milliseconds(10000));
    CHECK(session_ttl_min("not json") == milliseconds(10000));
    CHECK_FALSE(ttl_refusal(20, milliseconds(10000)).has_value());
    auto refusal = ttl_refusal(19, milliseconds(10000));
    REQUIRE(refusal.has_value());
    CHECK_THAT(*refusal,
               Catch::Contains("ttl 19") && Catch::Contains("9.5s") &&
                   Catch::Contains("10000 ms") && Catch::Contains("at least 20"));
}

TEST_CASE("consul wire: urls, escaping and TLS options", "[dcs][consul]") {
    auto conn = parse_url("postgres://10.0.0.5:5433/postgres");
    CHECK(conn.scheme == "postgres");
    CHECK(conn.host == "10.0.0.5");
    CHECK(conn.port == "5433");
    auto v6 = parse_url("https://[fe80::1]:8008/patroni");
    CHECK(v6.scheme == "https");
    CHECK(v6.host == "fe80::1");
    CHECK(v6.port == "8008");
    CHECK(parse_url("host").host == "host");
    CHECK(url_escape("service/my scope/members/a&b") == "service/my%20scope/members/a%26b");

    core::ConsulSettings s;
    s.scheme = "HTTPS";
    s.host = "consul.local";
    s.verify = false;
    auto tls = tls_options(s);
    CHECK(tls.enabled);
    CHECK_FALSE(tls.verify);
    CHECK(tls.server_name == "consul.local");
    s.scheme = "http";
    CHECK_FALSE(tls_options(s).enabled);
}

TEST_CASE("consul wire: service registration from the member data", "[dcs][consul]") {
    core::ConsulSettings s;
    s.register_service = true;
    s.service_tags = {"zeta", "alpha"};
    const std::string primary =
        R"({"role":"primary","state":"running","conn_url":"postgres://10.0.0.5:5432/postgres",
            "api_url":"http://10.0.0.5:8008/patroni"})";
    auto up = service_update(s, "Demo_Cluster", "node1", 30, primary);
    REQUIRE(up.kind == ServiceUpdate::Kind::Register);
    CHECK(up.body == json::parse(R"({"Name":"demo-cluster","ID":"Demo_Cluster/node1",
        "Address":"10.0.0.5","Port":5432,"Tags":["alpha","zeta","primary","master"],
        "EnableTagOverride":true,"Checks":[{"HTTP":"http://10.0.0.5:8008/primary",
        "Interval":"5s","DeregisterCriticalServiceAfter":"150s"}]})"));

    auto standby = service_update(
        s,
        "demo",
        "node2",
        30,
        R"({"role":"standby_leader","state":"running","conn_url":"postgres://h:5432/p","api_url":"https://h:8008/patroni"})");
    REQUIRE(standby.kind == ServiceUpdate::Kind::Register);
    CHECK(standby.body["Tags"] == json::parse(R"(["alpha","zeta","standby-leader"])"));
    CHECK(standby.body["Checks"][0]["HTTP"] == "https://h:8008/standby-leader");

    CHECK(service_update(s, "demo", "n", 30, R"({"role":"replica","state":"stopped"})").kind ==
          ServiceUpdate::Kind::Deregister);
    CHECK(service_update(s, "demo", "n", 30, R"({"role":"replica","state":"starting"})").kind ==
          ServiceUpdate::Kind::Keep);
    CHECK(service_update(s, "demo", "n", 30, "not json").kind == ServiceUpdate::Kind::Keep);
    s.register_service = false;
    CHECK(service_update(s, "demo", "n", 30, primary).kind == ServiceUpdate::Kind::Keep);

    CHECK(consul_service_name("Demo.Cluster 1") == "demo-cluster-1");
    CHECK(consul_service_name("a+b") == "au0043b");
}
