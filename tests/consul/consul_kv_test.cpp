// §13 items 3-13, 25-39, 48, 49 of spec/consul-api.md: conventions, indexes, blocking, KV.
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <future>
#include <string>

namespace {

using pgwarden::consul_test::testing::ConsulServerProcess;
using pgwarden::consul_test::testing::HttpResponse;
using pgwarden::consul_test::testing::wait_until;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

json entry(const ConsulServerProcess& srv, const std::string& key) {
    auto r = srv.get("/v1/kv/" + key);
    REQUIRE(r.status == 200);
    return r.json().at(0);
}

std::uint64_t modify_index(const ConsulServerProcess& srv, const std::string& key) {
    return entry(srv, key).at("ModifyIndex").get<std::uint64_t>();
}

}  // namespace

TEST_CASE("consul §13.3: flag query parameters work by presence", "[consul][integration]") {
    ConsulServerProcess srv;
    REQUIRE(srv.put("/v1/kv/p/a", "1").body == "true");
    REQUIRE(srv.put("/v1/kv/p/b", "2").body == "true");
    for (const char* q : {"?recurse", "?recurse=", "?recurse=1", "?recurse=false"}) {
        INFO(q);
        auto r = srv.get(std::string("/v1/kv/p/") + q);
        REQUIRE(r.status == 200);
        REQUIRE(r.json().size() == 2);
    }
    // ?raw by presence too
    auto raw = srv.get("/v1/kv/p/a?raw=");
    REQUIRE(raw.body == "1");
}

TEST_CASE("consul §13.4: JSON bodies without trailing newline and plain-text errors",
          "[consul][integration]") {
    ConsulServerProcess srv;
    auto put = srv.put("/v1/kv/k", "v");
    REQUIRE(put.status == 200);
    REQUIRE(put.body == "true");
    REQUIRE(put.header("Content-Type") == "application/json");
    auto cas_fail = srv.put("/v1/kv/k?cas=0", "v2");
    REQUIRE(cas_fail.body == "false");
    auto get = srv.get("/v1/kv/k");
    REQUIRE(get.status == 200);
    REQUIRE(!get.body.empty());
    REQUIRE(get.body.back() == ']');
    auto del = srv.del("/v1/kv/k");
    REQUIRE(del.body == "true");
    auto err = srv.get("/v1/kv/");
    REQUIRE(err.status == 400);
    REQUIRE(err.body == "Missing key name");
    REQUIRE(err.header("Content-Type").rfind("text/plain", 0) == 0);
}

TEST_CASE("consul §13.5: every write yields a strictly larger index and the first is above 1",
          "[consul][integration]") {
    ConsulServerProcess srv;
    auto first = srv.get("/v1/kv/nothing");
    REQUIRE(first.status == 404);
    REQUIRE(first.index() > 1);
    REQUIRE(srv.put("/v1/kv/a", "1").body == "true");
    auto i1 = modify_index(srv, "a");
    REQUIRE(i1 > 1);
    auto sid = srv.create_session(json{{"checks", json::array()}});
    auto info = srv.get("/v1/session/info/" + sid).json();
    auto i2 = info.at(0).at("CreateIndex").get<std::uint64_t>();
    REQUIRE(i2 > i1);
    REQUIRE(srv.put("/v1/kv/b", "1").body == "true");
    auto i3 = modify_index(srv, "b");
    REQUIRE(i3 > i2);
    REQUIRE(srv.put("/v1/kv/a", "2").body == "true");
    auto i4 = modify_index(srv, "a");
    REQUIRE(i4 > i3);
    REQUIRE(srv.del("/v1/kv/a").body == "true");
    auto missing = srv.get("/v1/kv/a");
    REQUIRE(missing.status == 404);
    REQUIRE(missing.index() > i4);
}

TEST_CASE(
    "consul §13.6: single-key index is ModifyIndex and a missing key reports the table "
    "index including tombstones",
    "[consul][integration]") {
    ConsulServerProcess srv;
    REQUIRE(srv.put("/v1/kv/a", "1").body == "true");
    auto a = srv.get("/v1/kv/a");
    REQUIRE(a.index() == a.json().at(0).at("ModifyIndex").get<std::uint64_t>());
    REQUIRE(srv.put("/v1/kv/b", "1").body == "true");
    auto b_index = modify_index(srv, "b");
    REQUIRE(srv.del("/v1/kv/b").body == "true");
    auto missing = srv.get("/v1/kv/zzz");
    REQUIRE(missing.status == 404);
    REQUIRE(missing.body.empty());
    REQUIRE(missing.index() > b_index);  // the delete's tombstone index
    REQUIRE(srv.get("/v1/kv/a").index() == a.index());
    REQUIRE(missing.header("X-Consul-KnownLeader") == "true");
}

TEST_CASE(
    "consul §13.7: recursive GET index is the max of entries and tombstones under the "
    "prefix",
    "[consul][integration]") {
    ConsulServerProcess srv;
    REQUIRE(srv.put("/v1/kv/p/a", "1").body == "true");
    REQUIRE(srv.put("/v1/kv/p/b", "1").body == "true");
    auto b = modify_index(srv, "p/b");
    REQUIRE(srv.put("/v1/kv/other", "1").body == "true");
    auto other = modify_index(srv, "other");
    auto list = srv.get("/v1/kv/p/?recurse");
    REQUIRE(list.index() == b);
    REQUIRE(other > b);
    REQUIRE(srv.put("/v1/kv/p/c", "1").body == "true");
    REQUIRE(srv.del("/v1/kv/p/c").body == "true");
    auto after = srv.get("/v1/kv/p/?recurse");
    REQUIRE(after.json().size() == 2);
    REQUIRE(after.index() > other);  // tombstone of p/c
    auto keys = srv.get("/v1/kv/p/?keys");
    REQUIRE(keys.index() == after.index());
}

TEST_CASE("consul §13.8: identical re-PUT keeps ModifyIndex and does not wake a blocked reader",
          "[consul][integration]") {
    ConsulServerProcess srv;
    REQUIRE(srv.put("/v1/kv/k?flags=3", "v").body == "true");
    auto m = modify_index(srv, "k");
    auto t0 = Clock::now();
    auto fut = std::async(std::launch::async, [&srv, m] {
        return srv.get("/v1/kv/k?index=" + std::to_string(m) + "&wait=1s");
    });
    std::this_thread::sleep_for(200ms);  // let the reader block first
    REQUIRE(srv.put("/v1/kv/k?flags=3", "v").body == "true");
    REQUIRE(modify_index(srv, "k") == m);
    auto r = fut.get();
    REQUIRE(r.status == 200);
    REQUIRE(r.index() == m);
    REQUIRE(seconds_since(t0) >= 0.95);
}

TEST_CASE(
    "consul §13.9: blocking GET returns immediately on newer index and otherwise blocks "
    "until a change or the wait elapses",
    "[consul][integration]") {
    ConsulServerProcess srv;
    REQUIRE(srv.put("/v1/kv/k", "v1").body == "true");
    auto m = modify_index(srv, "k");

    SECTION("index lower than current returns immediately") {
        auto t0 = Clock::now();
        auto r = srv.get("/v1/kv/k?index=" + std::to_string(m - 1) + "&wait=5s");
        REQUIRE(r.status == 200);
        REQUIRE(seconds_since(t0) < 1.0);
    }
    SECTION("index 0 never blocks") {
        auto t0 = Clock::now();
        auto r = srv.get("/v1/kv/k?index=0&wait=5s");
        REQUIRE(r.status == 200);
        REQUIRE(seconds_since(t0) < 1.0);
    }
    SECTION("timeout returns unchanged data and index within wait + wait/16") {
        auto t0 = Clock::now();
        auto r = srv.get("/v1/kv/k?index=" + std::to_string(m) + "&wait=1s");
        auto elapsed = seconds_since(t0);
        REQUIRE(r.status == 200);
        REQUIRE(r.index() == m);
        REQUIRE(r.json().at(0).at("Value") == "djE=");
        REQUIRE(elapsed >= 0.95);
        REQUIRE(elapsed < 1.0 + 1.0 / 16 + 0.5);
    }
    SECTION("a change wakes the reader with a larger index") {
        auto t0 = Clock::now();
        auto fut = std::async(std::launch::async, [&srv, m] {
            return srv.get("/v1/kv/k?index=" + std::to_string(m) + "&wait=20s");
        });
        std::this_thread::sleep_for(200ms);
        REQUIRE(srv.put("/v1/kv/k", "v2").body == "true");
        auto r = fut.get();
        REQUIRE(r.status == 200);
        REQUIRE(r.index() > m);
        REQUIRE(seconds_since(t0) < 5.0);
    }
    SECTION("a timed-out wait on a missing key is a 404 carrying the index") {
        auto missing = srv.get("/v1/kv/missing");
        auto r = srv.get("/v1/kv/missing?index=" + std::to_string(missing.index()) + "&wait=300ms");
        REQUIRE(r.status == 404);
        REQUIRE(r.index() == missing.index());
    }
}

TEST_CASE("consul §13.10: wait is capped at 10 min and defaults to 5 min",
          "[consul][integration]") {
    // --wait-scale=0.005 shrinks the effective timeout: 10 min -> 3 s, 5 min -> 1.5 s.
    ConsulServerProcess srv({"--wait-scale=0.005"});
    REQUIRE(srv.put("/v1/kv/k", "v").body == "true");
    auto m = std::to_string(modify_index(srv, "k"));
    auto t0 = Clock::now();
    auto capped = srv.get("/v1/kv/k?index=" + m + "&wait=30m");
    auto e1 = seconds_since(t0);
    REQUIRE(capped.status == 200);
    REQUIRE(e1 >= 2.9);
    REQUIRE(e1 < 3.0 + 3.0 / 16 + 1.0);
    t0 = Clock::now();
    auto dflt = srv.get("/v1/kv/k?index=" + m);
    auto e2 = seconds_since(t0);
    REQUIRE(dflt.status == 200);
    REQUIRE(e2 >= 1.45);
    REQUIRE(e2 < 1.5 + 1.5 / 16 + 1.0);
}

TEST_CASE(
    "consul §13.11: blocking GET on leader key returns promptly when session invalidation "
    "deletes it",
    "[consul][integration]") {
    ConsulServerProcess srv({"--session-ttl-min=1s"});
    auto sid = srv.create_session(json{{"name", "demo-node1"},
                                       {"checks", json::array()},
                                       {"lockdelay", "0.001s"},
                                       {"behavior", "delete"},
                                       {"ttl", "1s"}});
    auto t0 = Clock::now();
    REQUIRE(srv.put("/v1/kv/service/demo/leader?acquire=" + sid, "node1").body == "true");
    auto m = modify_index(srv, "service/demo/leader");
    auto r = srv.get("/v1/kv/service/demo/leader?index=" + std::to_string(m) + "&wait=30s");
    auto elapsed = seconds_since(t0);
    REQUIRE(r.status == 404);
    REQUIRE(r.body.empty());
    REQUIRE(r.index() > m);
    REQUIRE(elapsed >= 1.9);  // 2 x TTL
    REQUIRE(elapsed < 4.0);

    SECTION("explicit destroy wakes the reader too") {
        auto sid2 = srv.create_session(json{{"checks", json::array()}, {"behavior", "delete"}});
        // The first session's 1 ms lock-delay may still be running right after its expiry.
        REQUIRE(wait_until(
            [&] {
                return srv.put("/v1/kv/service/demo/leader?acquire=" + sid2, "node2").body ==
                       "true";
            },
            std::chrono::seconds(2)));
        auto m2 = modify_index(srv, "service/demo/leader");
        auto t1 = Clock::now();
        auto fut = std::async(std::launch::async, [&srv, m2] {
            return srv.get("/v1/kv/service/demo/leader?index=" + std::to_string(m2) + "&wait=30s");
        });
        std::this_thread::sleep_for(200ms);
        REQUIRE(srv.put("/v1/session/destroy/" + sid2).body == "true");
        auto r2 = fut.get();
        REQUIRE(r2.status == 404);
        REQUIRE(r2.index() > m2);
        REQUIRE(seconds_since(t1) < 5.0);
    }
}

TEST_CASE("consul §13.12: reads carry KnownLeader and LastContact and writes carry no index",
          "[consul][integration]") {
    ConsulServerProcess srv;
    auto put = srv.put("/v1/kv/k", "v");
    REQUIRE_FALSE(put.has_header("X-Consul-Index"));
    for (const char* path : {"/v1/kv/k", "/v1/kv/missing", "/v1/session/list"}) {
        INFO(path);
        auto r = srv.get(path);
        REQUIRE(r.header("X-Consul-KnownLeader") == "true");
        REQUIRE(r.header("X-Consul-LastContact") == "0");
        REQUIRE(r.has_header("X-Consul-Index"));
    }
    REQUIRE_FALSE(srv.del("/v1/kv/k").has_header("X-Consul-Index"));
    REQUIRE_FALSE(srv.put("/v1/session/create", "{}").has_header("X-Consul-Index"));
}

TEST_CASE("consul §13.13: stale with consistent is rejected and each mode alone is accepted",
          "[consul][integration]") {
    ConsulServerProcess srv;
    REQUIRE(srv.put("/v1/kv/k", "v").body == "true");
    auto bad = srv.get("/v1/kv/k?stale&consistent");
    REQUIRE(bad.status == 400);
    REQUIRE(bad.body == "Cannot specify ?stale with ?consistent, conflicting semantics.");
    REQUIRE(srv.get("/v1/kv/k?stale").header("X-Consul-Effective-Consistency") == "stale");
    REQUIRE(srv.get("/v1/kv/k?consistent=").header("X-Consul-Effective-Consistency") ==
            "consistent");
    REQUIRE(srv.get("/v1/kv/k?leader").header("X-Consul-Effective-Consistency") == "leader");
    REQUIRE(srv.put("/v1/kv/k?stale", "w").body == "true");  // ignored on writes
}

TEST_CASE("consul §13.25: acquire on a missing key creates it with LockIndex 1",
          "[consul][integration]") {
    ConsulServerProcess srv;
    auto sid = srv.create_session(json{{"checks", json::array()}});
    REQUIRE(srv.put("/v1/kv/lock?acquire=" + sid, "me").body == "true");
    auto e = entry(srv, "lock");
    REQUIRE(e.at("LockIndex") == 1);
    REQUIRE(e.at("Session") == sid);
    REQUIRE(e.at("Value") == "bWU=");
}

TEST_CASE("consul §13.26: acquire on a key held by another live session fails",
          "[consul][integration]") {
    ConsulServerProcess srv;
    auto s1 = srv.create_session(json{{"checks", json::array()}});
    auto s2 = srv.create_session(json{{"checks", json::array()}});
    REQUIRE(srv.put("/v1/kv/lock?acquire=" + s1, "one").body == "true");
    auto before = entry(srv, "lock");
    REQUIRE(srv.put("/v1/kv/lock?acquire=" + s2, "two").body == "false");
    REQUIRE(entry(srv, "lock") == before);
}

TEST_CASE("consul §13.27: acquire by the holder updates the value and keeps LockIndex",
          "[consul][integration]") {
    ConsulServerProcess srv;
    auto s1 = srv.create_session(json{{"checks", json::array()}});
    REQUIRE(srv.put("/v1/kv/lock?acquire=" + s1, "one").body == "true");
    REQUIRE(srv.put("/v1/kv/lock?acquire=" + s1, "uno").body == "true");
    auto e = entry(srv, "lock");
    REQUIRE(e.at("LockIndex") == 1);
    REQUIRE(e.at("Value") == "dW5v");
    REQUIRE(e.at("Session") == s1);
}

TEST_CASE("consul §13.28: acquire on an unlocked existing key increments LockIndex",
          "[consul][integration]") {
    ConsulServerProcess srv;
    auto s1 = srv.create_session(json{{"checks", json::array()}});
    auto s2 = srv.create_session(json{{"checks", json::array()}});
    REQUIRE(srv.put("/v1/kv/lock", "plain").body == "true");
    REQUIRE(entry(srv, "lock").at("LockIndex") == 0);
    REQUIRE(srv.put("/v1/kv/lock?acquire=" + s1, "a").body == "true");
    REQUIRE(entry(srv, "lock").at("LockIndex") == 1);
    REQUIRE(srv.put("/v1/kv/lock?release=" + s1, "a").body == "true");
    REQUIRE(srv.put("/v1/kv/lock?acquire=" + s2, "b").body == "true");
    REQUIRE(entry(srv, "lock").at("LockIndex") == 2);
}

TEST_CASE("consul §13.29: acquire with an unknown or empty session is a 500",
          "[consul][integration]") {
    SECTION("default: one client-agent prefix") {
        ConsulServerProcess srv;
        auto r = srv.put("/v1/kv/lock?acquire=16492f43-0000-0000-0000-000000000000", "x");
        REQUIRE(r.status == 500);
        REQUIRE(r.body ==
                "rpc error making call: invalid session \"16492f43-0000-0000-0000-000000000000\"");
        auto empty = srv.put("/v1/kv/lock?acquire=", "x");
        REQUIRE(empty.status == 500);
        REQUIRE(empty.body == "rpc error making call: missing session");
    }
    SECTION("--rpc-error-prefix-hops=0 answers like a server") {
        ConsulServerProcess srv({"--rpc-error-prefix-hops=0"});
        auto r = srv.put("/v1/kv/lock?acquire=abc", "x");
        REQUIRE(r.status == 500);
        REQUIRE(r.body == "invalid session \"abc\"");
    }
    SECTION("--rpc-error-prefix-hops=2 prefixes twice") {
        ConsulServerProcess srv({"--rpc-error-prefix-hops=2"});
        auto r = srv.put("/v1/kv/lock?acquire=abc", "x");
        REQUIRE(r.body == "rpc error making call: rpc error making call: invalid session \"abc\"");
    }
}

TEST_CASE("consul §13.30: lock-delay blocks acquire after invalidation until it elapses",
          "[consul][integration]") {
    ConsulServerProcess srv;
    SECTION("LockDelay 1s blocks every session's acquire but not plain PUT") {
        auto s1 = srv.create_session(json{{"checks", json::array()}, {"lockdelay", "1s"}});
        REQUIRE(srv.put("/v1/kv/lock?acquire=" + s1, "one").body == "true");
        auto t0 = Clock::now();
        REQUIRE(srv.put("/v1/session/destroy/" + s1).body == "true");
        auto s2 = srv.create_session(json{{"checks", json::array()}});
        REQUIRE(srv.put("/v1/kv/lock?acquire=" + s2, "two").body == "false");
        REQUIRE(srv.put("/v1/kv/lock", "plain").body == "true");
        REQUIRE(srv.put("/v1/kv/lock?acquire=" + s2, "two").body == "false");
        REQUIRE(wait_until(
            [&] { return srv.put("/v1/kv/lock?acquire=" + s2, "two").body == "true"; }, 3s, 50ms));
        REQUIRE(seconds_since(t0) >= 0.95);
    }
    SECTION("LockDelay 1ms effectively never blocks") {
        auto s1 = srv.create_session(json{{"checks", json::array()}, {"lockdelay", "0.001s"}});
        REQUIRE(srv.put("/v1/kv/lock?acquire=" + s1, "one").body == "true");
        REQUIRE(srv.put("/v1/session/destroy/" + s1).body == "true");
        auto s2 = srv.create_session(json{{"checks", json::array()}});
        REQUIRE(
            wait_until([&] { return srv.put("/v1/kv/lock?acquire=" + s2, "two").body == "true"; },
                       300ms,
                       5ms));
    }
    SECTION("release does not start a lock-delay") {
        auto s1 = srv.create_session(json{{"checks", json::array()}, {"lockdelay", "30s"}});
        auto s2 = srv.create_session(json{{"checks", json::array()}});
        REQUIRE(srv.put("/v1/kv/lock?acquire=" + s1, "one").body == "true");
        REQUIRE(srv.put("/v1/kv/lock?release=" + s1, "one").body == "true");
        REQUIRE(srv.put("/v1/kv/lock?acquire=" + s2, "two").body == "true");
    }
}

TEST_CASE("consul §13.31: release by the holder clears Session and others cannot release",
          "[consul][integration]") {
    ConsulServerProcess srv;
    auto s1 = srv.create_session(json{{"checks", json::array()}});
    auto s2 = srv.create_session(json{{"checks", json::array()}});
    REQUIRE(srv.put("/v1/kv/lock?acquire=" + s1, "one").body == "true");
    REQUIRE(srv.put("/v1/kv/lock?release=" + s2, "x").body == "false");
    REQUIRE(srv.put("/v1/kv/missing?release=" + s1, "x").body == "false");
    REQUIRE(srv.put("/v1/kv/lock?release=" + s1, "done").body == "true");
    auto e = entry(srv, "lock");
    REQUIRE_FALSE(e.contains("Session"));
    REQUIRE(e.at("LockIndex") == 1);
    REQUIRE(e.at("Value") == "ZG9uZQ==");
    auto empty = srv.put("/v1/kv/lock?release=", "x");
    REQUIRE(empty.status == 500);
    REQUIRE(empty.body == "rpc error making call: missing session");
}

TEST_CASE("consul §13.32: plain and cas PUT on a locked key keep the Session",
          "[consul][integration]") {
    ConsulServerProcess srv;
    auto s1 = srv.create_session(json{{"checks", json::array()}});
    REQUIRE(srv.put("/v1/kv/lock?acquire=" + s1, "one").body == "true");
    REQUIRE(srv.put("/v1/kv/lock", "two").body == "true");
    REQUIRE(entry(srv, "lock").at("Session") == s1);
    auto m = modify_index(srv, "lock");
    REQUIRE(srv.put("/v1/kv/lock?cas=" + std::to_string(m), "three").body == "true");
    auto e = entry(srv, "lock");
    REQUIRE(e.at("Session") == s1);
    REQUIRE(e.at("Value") == "dGhyZWU=");
    REQUIRE(e.at("LockIndex") == 1);
}

TEST_CASE("consul §13.33: PUT without flags resets Flags to 0", "[consul][integration]") {
    ConsulServerProcess srv;
    REQUIRE(srv.put("/v1/kv/k?flags=18446744073709551615", "v").body == "true");
    REQUIRE(entry(srv, "k").at("Flags").get<std::uint64_t>() == 18446744073709551615ULL);
    REQUIRE(srv.put("/v1/kv/k?flags=42", "v").body == "true");
    REQUIRE(entry(srv, "k").at("Flags") == 42);
    REQUIRE(srv.put("/v1/kv/k", "v").body == "true");
    REQUIRE(entry(srv, "k").at("Flags") == 0);
}

TEST_CASE("consul §13.34: cas=0 creates only absent keys and cas=N needs ModifyIndex N",
          "[consul][integration]") {
    ConsulServerProcess srv;
    REQUIRE(srv.put("/v1/kv/k?cas=0", "a").body == "true");
    REQUIRE(srv.put("/v1/kv/k?cas=0", "b").body == "false");
    auto m = modify_index(srv, "k");
    REQUIRE(srv.put("/v1/kv/k?cas=" + std::to_string(m + 1000), "c").body == "false");
    REQUIRE(srv.put("/v1/kv/k?cas=" + std::to_string(m), "c").body == "true");
    REQUIRE(srv.put("/v1/kv/k?cas=" + std::to_string(m), "d").body == "false");
    REQUIRE(srv.put("/v1/kv/absent?cas=5", "x").body == "false");
    REQUIRE(entry(srv, "k").at("Value") == "Yw==");
}

TEST_CASE("consul §13.35: two of cas acquire release together are conflicting flags",
          "[consul][integration]") {
    ConsulServerProcess srv;
    auto sid = srv.create_session(json{{"checks", json::array()}});
    const std::vector<std::string> queries = {
        "cas=0&acquire=" + sid, "acquire=" + sid + "&release=" + sid, "cas=1&release=" + sid};
    for (const auto& q : queries) {
        INFO(q);
        auto r = srv.put("/v1/kv/k?" + q, "v");
        REQUIRE(r.status == 400);
        REQUIRE(r.body.rfind("Conflicting flags: ", 0) == 0);
    }
    auto del = srv.del("/v1/kv/k?recurse&cas=1");
    REQUIRE(del.status == 400);
    REQUIRE(del.body.rfind("Conflicting flags: ", 0) == 0);
}

TEST_CASE("consul §13.36: DELETE with cas recurse and plain semantics", "[consul][integration]") {
    ConsulServerProcess srv;
    REQUIRE(srv.del("/v1/kv/absent?cas=7").body == "true");
    REQUIRE(srv.put("/v1/kv/k", "v").body == "true");
    auto m = modify_index(srv, "k");
    REQUIRE(srv.del("/v1/kv/k?cas=0").body == "false");
    REQUIRE(srv.del("/v1/kv/k?cas=" + std::to_string(m + 1)).body == "false");
    REQUIRE(srv.get("/v1/kv/k").status == 200);
    REQUIRE(srv.del("/v1/kv/k?cas=" + std::to_string(m)).body == "true");
    REQUIRE(srv.get("/v1/kv/k").status == 404);

    for (const char* k : {"svc/demo/a", "svc/demo/b/c", "svc/demo2/x", "svc/other"}) {
        REQUIRE(srv.put(std::string("/v1/kv/") + k, "1").body == "true");
    }
    REQUIRE(srv.del("/v1/kv/svc/demo?recurse").body == "true");  // string prefix: demo2 too
    auto left = srv.get("/v1/kv/svc/?keys").json();
    REQUIRE(left == json::array({"svc/other"}));

    auto sid = srv.create_session(json{{"checks", json::array()}});
    REQUIRE(srv.put("/v1/kv/locked?acquire=" + sid, "v").body == "true");
    REQUIRE(srv.del("/v1/kv/locked").body == "true");
    REQUIRE(srv.get("/v1/kv/locked").status == 404);
    REQUIRE(srv.del("/v1/kv/locked").body == "true");  // idempotent
}

TEST_CASE("consul §13.37: value encoding raw reads and keys with separator",
          "[consul][integration]") {
    ConsulServerProcess srv;
    REQUIRE(srv.put("/v1/kv/empty", "").body == "true");
    auto e = entry(srv, "empty");
    REQUIRE(e.at("Value").is_null());
    REQUIRE_FALSE(e.contains("Session"));

    std::string binary;
    for (int i = 0; i < 256; ++i) {
        binary += static_cast<char>(i);
    }
    REQUIRE(srv.put("/v1/kv/bin", binary).body == "true");
    auto raw = srv.get("/v1/kv/bin?raw");
    REQUIRE(raw.status == 200);
    REQUIRE(raw.body == binary);
    REQUIRE(raw.header("Content-Type").rfind("text/plain", 0) == 0);
    REQUIRE(raw.header("X-Content-Type-Options") == "nosniff");
    REQUIRE(entry(srv, "bin").at("Value").get<std::string>().size() == 344);  // padded base64
    REQUIRE(srv.put("/v1/kv/one", "a").body == "true");
    REQUIRE(entry(srv, "one").at("Value") == "YQ==");

    for (const char* k : {"service/demo/config",
                          "service/demo/members/a",
                          "service/demo/members/b",
                          "service/demo/leader"}) {
        REQUIRE(srv.put(std::string("/v1/kv/") + k, "1").body == "true");
    }
    auto keys = srv.get("/v1/kv/service/demo/?keys&separator=/");
    REQUIRE(keys.status == 200);
    REQUIRE(keys.json() ==
            json::array({"service/demo/config", "service/demo/leader", "service/demo/members/"}));
    REQUIRE(srv.get("/v1/kv/nothing/?keys").status == 404);
}

TEST_CASE("consul §13.38: recurse uses string-prefix matching and sorts by key",
          "[consul][integration]") {
    ConsulServerProcess srv;
    for (const char* k : {"service/demo2/x", "service/demo/b", "service/demo/a", "service/dem"}) {
        REQUIRE(srv.put(std::string("/v1/kv/") + k, "1").body == "true");
    }
    auto r = srv.get("/v1/kv/service/demo?recurse");
    REQUIRE(r.status == 200);
    std::vector<std::string> keys;
    for (const auto& e : r.json()) {
        keys.push_back(e.at("Key").get<std::string>());
    }
    REQUIRE(keys ==
            std::vector<std::string>{"service/demo/a", "service/demo/b", "service/demo2/x"});
    REQUIRE(srv.get("/v1/kv/?recurse").json().size() == 4);
    REQUIRE(srv.get("/v1/kv/zzz?recurse").status == 404);
}

TEST_CASE("consul §13.39: missing key names and unsafe keys are rejected with 400",
          "[consul][integration]") {
    ConsulServerProcess srv;
    REQUIRE(srv.get("/v1/kv/").body == "Missing key name");
    REQUIRE(srv.put("/v1/kv/", "v").body == "Missing key name");
    REQUIRE(srv.del("/v1/kv/").body == "Missing key name");
    REQUIRE(srv.put("/v1/kv/a/../b", "v").status == 400);
    REQUIRE(srv.put("/v1/kv/a/%2E%2E/b", "v").status == 400);
    REQUIRE(srv.put("/v1/kv/%20lead", "v").status == 400);
    REQUIRE(srv.put("/v1/kv/trail%20", "v").status == 400);
    REQUIRE(srv.put("/v1/kv/fine..name/x", "v").body == "true");
    REQUIRE(srv.put("/v1/kv/big", std::string(512 * 1024 + 1, 'x')).status == 413);
}

TEST_CASE("consul §13.48: no-leader mode fails default reads and writes but serves stale reads",
          "[consul][integration]") {
    ConsulServerProcess srv;
    REQUIRE(srv.put("/v1/kv/k", "v").body == "true");
    srv.fault("no-leader");
    for (const char* path :
         {"/v1/kv/k", "/v1/kv/k?consistent", "/v1/session/list", "/v1/health/service/x"}) {
        INFO(path);
        auto r = srv.get(path);
        REQUIRE(r.status == 500);
        REQUIRE(r.body == "No cluster leader");
    }
    REQUIRE(srv.put("/v1/kv/k", "w").body == "No cluster leader");
    REQUIRE(srv.del("/v1/kv/k").status == 500);
    REQUIRE(srv.put("/v1/session/create", "{}").status == 500);
    auto first = srv.get("/v1/kv/k?stale");
    REQUIRE(first.status == 200);
    REQUIRE(first.header("X-Consul-KnownLeader") == "false");
    auto first_contact = std::stoll(first.header("X-Consul-LastContact"));
    REQUIRE(wait_until(
        [&] {
            return std::stoll(srv.get("/v1/kv/k?stale").header("X-Consul-LastContact")) >
                   first_contact;
        },
        2s));
    REQUIRE(srv.get("/v1/status/leader").body == "\"\"");
    srv.fault("none");
    auto ok = srv.get("/v1/kv/k");
    REQUIRE(ok.status == 200);
    REQUIRE(ok.header("X-Consul-KnownLeader") == "true");
    REQUIRE(srv.get("/v1/status/leader").body == "\"127.0.0.1:8300\"");
}

TEST_CASE("consul §13.49: index reset moves the KV index backwards and wakes blocked readers",
          "[consul][integration]") {
    ConsulServerProcess srv;
    for (int i = 0; i < 5; ++i) {
        REQUIRE(srv.put("/v1/kv/p/k" + std::to_string(i), "v").body == "true");
    }
    auto before = srv.get("/v1/kv/p/?recurse");
    REQUIRE(before.index() > 5);
    auto t0 = Clock::now();
    auto fut = std::async(std::launch::async, [&srv, &before] {
        return srv.get("/v1/kv/p/?recurse&index=" + std::to_string(before.index()) + "&wait=20s");
    });
    std::this_thread::sleep_for(200ms);
    REQUIRE(srv.put("/_test/fault?mode=index-reset&to=5").status == 200);
    auto woken = fut.get();
    REQUIRE(woken.status == 200);
    REQUIRE(woken.index() < before.index());
    REQUIRE(seconds_since(t0) < 5.0);
    auto after = srv.get("/v1/kv/p/?recurse");
    REQUIRE(after.index() == 5);
    // Writes continue above the reset point.
    REQUIRE(srv.put("/v1/kv/p/new", "v").body == "true");
    REQUIRE(modify_index(srv, "p/new") == 6);
}
