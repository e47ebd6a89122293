// The DCS contract (lib/dcs/dcs.hpp) checked against every backend: etcd 3.4, the Consul test
// server and — when a `consul` binary is on PATH — a real `consul agent -dev`. Each scenario
// is a TEMPLATE_TEST_CASE over the backend kinds (dcs_backends.hpp), so the backend is part of
// the test name ("... - Etcd3", "... - ConsulTestServer", "... - ConsulAgentDev") and of every
// failure message. Backend-specific behaviour lives in etcd3_dcs_test.cpp and
// consul_dcs_test.cpp.
#include "dcs_backends.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <netinet/tcp.h>
#include <vector>

using namespace pgwarden::dcs_test;
using pgwarden::dcs::Errc;

#define PGW_BACKEND_KINDS Etcd3, ConsulTestServer, ConsulAgentDev

// Binds `b` to the shared backend of this test's kind, or returns (skipped) when unavailable.
#define PGW_SHARED_BACKEND_OR_SKIP(b)        \
    Backend* b = shared_backend<TestType>(); \
    if (b == nullptr) {                      \
        return;                              \
    }                                        \
    INFO("backend: " << b->name())

TEMPLATE_TEST_CASE("get_cluster on an empty scope returns an empty cluster",
                   "[dcs][contract]",
                   PGW_BACKEND_KINDS) {
    PGW_SHARED_BACKEND_OR_SKIP(b);
    net::io_context io;
    auto dcs = b->make_dcs(io, unique_scope("empty"), "node1");
    auto c = cluster_of(io, *dcs);
    CHECK_FALSE(c.leader);
    CHECK(c.members.empty());
    CHECK_FALSE(c.initialize);
    CHECK_FALSE(c.config_json);
    CHECK_FALSE(c.failover);
    CHECK(c.history.empty());
}

TEMPLATE_TEST_CASE("initialize race: exactly one of two nodes wins, overwrite and cancel work",
                   "[dcs][contract]",
                   PGW_BACKEND_KINDS) {
    PGW_SHARED_BACKEND_OR_SKIP(b);
    net::io_context io;
    const auto scope = unique_scope("init");
    auto a = b->make_dcs(io, scope, "node1");
    auto c2 = b->make_dcs(io, scope, "node2");
    auto [ra, rb] = run_both(io,
                             a->initialize("7000000000000000001", true),
                             c2->initialize("7000000000000000002", true));
    REQUIRE(ra.has_value());
    REQUIRE(rb.has_value());
    CHECK(*ra != *rb);
    const std::string winner = *ra ? "7000000000000000001" : "7000000000000000002";
    auto c = cluster_of(io, *a);
    REQUIRE(c.initialize);
    CHECK(*c.initialize == winner);
    auto raw = b->read_key(scope, "initialize");
    REQUIRE(raw);
    CHECK(raw->value == winner);
    CHECK(raw->owner.empty());  // not ephemeral

    // create_new = true again: the key exists, so the compare fails.
    auto again = run(io, a->initialize("7000000000000000003", true));
    REQUIRE(again.has_value());
    CHECK_FALSE(*again);

    // create_new = false overwrites, cancel_initialization deletes.
    auto w = run(io, c2->initialize("7000000000000000009", false));
    REQUIRE(w.has_value());
    CHECK(*w);
    CHECK(*cluster_of(io, *a).initialize == "7000000000000000009");
    REQUIRE(run(io, a->cancel_initialization()));
    CHECK_FALSE(cluster_of(io, *a).initialize);
    CHECK_FALSE(b->read_key(scope, "initialize"));
}

TEMPLATE_TEST_CASE("leader race: exactly one wins and the other sees its name and owner",
                   "[dcs][contract]",
                   PGW_BACKEND_KINDS) {
    PGW_SHARED_BACKEND_OR_SKIP(b);
    net::io_context io;
    const auto scope = unique_scope("race");
    auto a = b->make_dcs(io, scope, "node1");
    auto c2 = b->make_dcs(io, scope, "node2");
    auto [ra, rb] = run_both(io, a->attempt_to_acquire_leader(), c2->attempt_to_acquire_leader());
    REQUIRE(ra.has_value());
    REQUIRE(rb.has_value());
    CHECK(*ra != *rb);
    const std::string winner = *ra ? "node1" : "node2";
    auto& won = *ra ? *a : *c2;
    auto& loser = *ra ? *c2 : *a;
    auto c = cluster_of(io, loser);
    REQUIRE(c.leader);
    CHECK(c.leader->name == winner);
    CHECK_FALSE(c.leader->owner.empty());
    CHECK(c.leader->owner == b->owner_of(won));
    auto raw = b->read_key(scope, "leader");
    REQUIRE(raw);
    CHECK(raw->value == winner);
    CHECK(raw->owner == b->owner_of(won));
    // A second attempt by the loser still fails.
    auto again = run(io, loser.attempt_to_acquire_leader());
    REQUIRE(again.has_value());
    CHECK_FALSE(*again);
}

TEMPLATE_TEST_CASE("update_leader keeps the leader key alive past the ttl and writes status",
                   "[dcs][contract]",
                   PGW_BACKEND_KINDS) {
    PGW_SHARED_BACKEND_OR_SKIP(b);
    net::io_context io;
    const auto scope = unique_scope("keep");
    const auto timing = b->fast_timing();
    auto a = b->make_dcs(io, scope, "node1");
    auto won = run(io, a->attempt_to_acquire_leader());
    REQUIRE(won.has_value());
    REQUIRE(*won);
    const auto owner = b->owner_of(*a);
    // The lease/session would be gone after ttl without renewal; keep going well past it.
    const auto until = Clock::now() + std::chrono::seconds(timing.ttl) + 3s;
    while (Clock::now() < until) {
        auto r = run(io, a->update_leader(std::int64_t{50331648}));
        REQUIRE(r.has_value());
        REQUIRE(*r);
        pump_for(io, 500ms);  // the HA loop's pace (loop_wait is 1 s)
    }
    auto c = cluster_of(io, *a);
    REQUIRE(c.leader);
    CHECK(c.leader->name == "node1");
    CHECK(b->owner_of(*a) == owner);  // renewed, not re-created
    CHECK(c.leader->owner == owner);
    CHECK(c.last_lsn == 50331648);  // update_leader writes /status
}

TEMPLATE_TEST_CASE("update_leader returns false when another member holds the key",
                   "[dcs][contract]",
                   PGW_BACKEND_KINDS) {
    PGW_SHARED_BACKEND_OR_SKIP(b);
    net::io_context io;
    const auto scope = unique_scope("other");
    auto a = b->make_dcs(io, scope, "node1");
    auto c2 = b->make_dcs(io, scope, "node2");
    REQUIRE(*run(io, a->attempt_to_acquire_leader()));
    auto r = run(io, c2->update_leader(std::int64_t{42}));
    REQUIRE(r.has_value());
    CHECK_FALSE(*r);
    auto c = cluster_of(io, *a);
    REQUIRE(c.leader);
    CHECK(c.leader->name == "node1");
    CHECK(c.leader->owner == b->owner_of(*a));
    CHECK(c.last_lsn != 42);  // the loser must not write /status
}

TEMPLATE_TEST_CASE(
    "after the lease or session vanished, update_leader re-takes the free key with a new one",
    "[dcs][contract]",
    PGW_BACKEND_KINDS) {
    PGW_SHARED_BACKEND_OR_SKIP(b);
    net::io_context io;
    const auto scope = unique_scope("relea");
    auto a = b->make_dcs(io, scope, "node1");
    REQUIRE(*run(io, a->touch_member(R"({"role":"primary","state":"running"})")));
    REQUIRE(*run(io, a->attempt_to_acquire_leader()));
    const auto old_owner = b->owner_of(*a);
    REQUIRE_FALSE(old_owner.empty());
    // Behind the node's back: its ephemeral keys go with the lease/session.
    REQUIRE(b->revoke_owner(old_owner));
    CHECK_FALSE(b->read_key(scope, "leader"));
    CHECK_FALSE(cluster_of(io, *a).leader);

    auto r = run(io, a->update_leader(std::nullopt));
    REQUIRE(r.has_value());
    CHECK(*r);
    const auto new_owner = b->owner_of(*a);
    CHECK_FALSE(new_owner.empty());
    CHECK(new_owner != old_owner);
    auto raw = b->read_key(scope, "leader");
    REQUIRE(raw);
    CHECK(raw->value == "node1");
    CHECK(raw->owner == new_owner);
    // The member key comes back with the next touch_member, bound to the new owner.
    REQUIRE(*run(io, a->touch_member(R"({"role":"primary","state":"running"})")));
    auto c = cluster_of(io, *a);
    REQUIRE(c.leader);
    CHECK(c.leader->owner == new_owner);
    const auto* m = c.member("node1");
    REQUIRE(m != nullptr);
    CHECK(m->owner == new_owner);
}

TEMPLATE_TEST_CASE(
    "after the lease or session vanished and another node took the key, update_leader is false",
    "[dcs][contract]",
    PGW_BACKEND_KINDS) {
    PGW_SHARED_BACKEND_OR_SKIP(b);
    net::io_context io;
    const auto scope = unique_scope("lost");
    auto a = b->make_dcs(io, scope, "node1");
    auto c2 = b->make_dcs(io, scope, "node2");
    REQUIRE(*run(io, a->attempt_to_acquire_leader()));
    REQUIRE(b->revoke_owner(b->owner_of(*a)));
    // Lock-delay (Consul: 1 ms as configured) must not keep node2 out for long.
    bool taken = false;
    REQUIRE(pump_until(
        io,
        [&] {
            auto t = run(io, c2->attempt_to_acquire_leader());
            REQUIRE(t.has_value());
            taken = *t;
            return taken;
        },
        5s));
    auto r = run(io, a->update_leader(std::nullopt));
    REQUIRE(r.has_value());
    CHECK_FALSE(*r);
    auto raw = b->read_key(scope, "leader");
    REQUIRE(raw);
    CHECK(raw->value == "node2");
    CHECK(raw->owner == b->owner_of(*c2));
}

TEMPLATE_TEST_CASE("delete_leader only deletes our own key and writes status first",
                   "[dcs][contract]",
                   PGW_BACKEND_KINDS) {
    PGW_SHARED_BACKEND_OR_SKIP(b);
    net::io_context io;
    const auto scope = unique_scope("del");
    auto a = b->make_dcs(io, scope, "node1");
    auto c2 = b->make_dcs(io, scope, "node2");
    REQUIRE(*run(io, a->attempt_to_acquire_leader()));
    auto rb = run(io, c2->delete_leader(std::nullopt));
    REQUIRE(rb.has_value());
    CHECK_FALSE(*rb);
    CHECK(leader_name(io, *a) == "node1");
    auto ra = run(io, a->delete_leader(std::int64_t{1234}));
    REQUIRE(ra.has_value());
    CHECK(*ra);
    auto c = cluster_of(io, *a);
    CHECK_FALSE(c.leader);
    CHECK_FALSE(b->read_key(scope, "leader"));
    CHECK(c.last_lsn == 1234);  // status written before the release
}

TEMPLATE_TEST_CASE("close_session deletes the leader and member keys at once",
                   "[dcs][contract]",
                   PGW_BACKEND_KINDS) {
    PGW_SHARED_BACKEND_OR_SKIP(b);
    net::io_context io;
    const auto scope = unique_scope("close");
    auto a = b->make_dcs(io, scope, "node1");
    auto c2 = b->make_dcs(io, scope, "node2");
    REQUIRE(*run(io, a->touch_member(R"({"role":"primary","state":"running"})")));
    REQUIRE(*run(io, c2->touch_member(R"({"role":"replica","state":"running"})")));
    REQUIRE(*run(io, a->attempt_to_acquire_leader()));
    auto before = cluster_of(io, *c2);
    REQUIRE(before.leader);
    REQUIRE(before.members.size() == 2);
    REQUIRE(run(io, a->close_session()));
    CHECK(b->owner_of(*a).empty());
    // At once: no waiting for a ttl.
    auto after = cluster_of(io, *c2);
    CHECK_FALSE(after.leader);
    REQUIRE(after.members.size() == 1);
    CHECK(after.members[0].name == "node2");
    CHECK_FALSE(b->read_key(scope, "leader"));
    CHECK_FALSE(b->read_key(scope, "members/node1"));
    CHECK(b->read_key(scope, "members/node2"));
}

TEMPLATE_TEST_CASE("lease or session expiry removes the leader key within ttl and fires the watch",
                   "[dcs][contract]",
                   PGW_BACKEND_KINDS) {
    PGW_SHARED_BACKEND_OR_SKIP(b);
    net::io_context io;
    const auto scope = unique_scope("expiry");
    const auto ttl = std::chrono::seconds(b->fast_timing().ttl);
    auto a = b->make_dcs(io, scope, "node1");
    auto c2 = b->make_dcs(io, scope, "node2");
    int events = 0;
    c2->start([&events] { ++events; });
    pump_for(io, 300ms);  // let the watch get established
    REQUIRE(*run(io, a->attempt_to_acquire_leader()));
    CHECK(pump_until(
        io, [&events] { return events >= 1; }, 5s));  // the key appeared
    const int after_put = events;
    const auto stopped_at = Clock::now();
    a.reset();  // the node dies: no renewal, no revoke
    const bool gone = pump_until(
        io, [&] { return !cluster_of(io, *c2).leader.has_value(); }, ttl + 4s);
    const auto took = Clock::now() - stopped_at;
    CHECK(gone);
    CHECK(took < ttl + 4s);
    CHECK(pump_until(
        io, [&] { return events > after_put; }, 3s));  // the key went
    c2->stop();
    pump_for(io, 100ms);
}

TEMPLATE_TEST_CASE("the watch fires when another node takes over the leader key",
                   "[dcs][contract]",
                   PGW_BACKEND_KINDS) {
    PGW_SHARED_BACKEND_OR_SKIP(b);
    net::io_context io;
    const auto scope = unique_scope("watch");
    auto a = b->make_dcs(io, scope, "node1");
    auto c2 = b->make_dcs(io, scope, "node2");
    REQUIRE(*run(io, a->attempt_to_acquire_leader()));
    int events = 0;
    c2->start([&events] { ++events; });
    pump_for(io, 300ms);
    CHECK(events == 0);  // no replay of old events
    REQUIRE(*run(io, a->delete_leader(std::nullopt)));
    CHECK(pump_until(
        io, [&events] { return events >= 1; }, 5s));
    const int seen = events;
    REQUIRE(*run(io, c2->attempt_to_acquire_leader()));
    CHECK(pump_until(
        io, [&] { return events > seen; }, 5s));
    c2->stop();
    pump_for(io, 100ms);
}

TEMPLATE_TEST_CASE("touch_member JSON round-trips into core::Member and delete_member removes it",
                   "[dcs][contract]",
                   PGW_BACKEND_KINDS) {
    PGW_SHARED_BACKEND_OR_SKIP(b);
    net::io_context io;
    const auto scope = unique_scope("member");
    auto a = b->make_dcs(io, scope, "node1");
    const std::string data =
        R"({"conn_url":"postgres://127.0.0.1:5432/postgres","api_url":"http://127.0.0.1:8008/patroni",)"
        R"("state":"running","role":"replica","xlog_location":50331648,"replay_lsn":50331600,)"
        R"("receive_lsn":50331648,"replication_state":"streaming","timeline":3,)"
        R"("tags":{"nofailover":true,"clonefrom":true},"version":"4.1.4"})";
    auto r = run(io, a->touch_member(data));
    REQUIRE(r.has_value());
    CHECK(*r);
    auto raw = b->read_key(scope, "members/node1");
    REQUIRE(raw);
    CHECK(raw->value == data);
    CHECK(raw->owner == b->owner_of(*a));
    auto c = cluster_of(io, *a);
    const auto* m = c.member("node1");
    REQUIRE(m != nullptr);
    CHECK(m->data_json == data);
    CHECK(m->conn_url == "postgres://127.0.0.1:5432/postgres");
    CHECK(m->api_url == "http://127.0.0.1:8008/patroni");
    CHECK(m->state == "running");
    CHECK(m->role == "replica");
    CHECK(m->xlog_location == 50331648);
    CHECK(m->replay_lsn == 50331600);
    CHECK(m->receive_lsn == 50331648);
    CHECK(m->replication_state == "streaming");
    CHECK(m->timeline == 3);
    CHECK(m->nofailover);
    CHECK(m->clonefrom);
    CHECK(m->owner == b->owner_of(*a));
    CHECK(m->version > 0);

    // Unchanged data: no new version.
    REQUIRE(*run(io, a->touch_member(data)));
    CHECK(cluster_of(io, *a).member("node1")->version == m->version);
    // Changed data: written.
    REQUIRE(*run(io, a->touch_member(R"({"role":"primary"})")));
    CHECK(cluster_of(io, *a).member("node1")->role == "primary");
    CHECK(b->read_key(scope, "members/node1")->value == R"({"role":"primary"})");
    // delete_member removes it.
    REQUIRE(run(io, a->delete_member()));
    CHECK(cluster_of(io, *a).members.empty());
    CHECK_FALSE(b->read_key(scope, "members/node1"));
}

TEMPLATE_TEST_CASE("config, failover and sync compare-and-swap on the version",
                   "[dcs][contract]",
                   PGW_BACKEND_KINDS) {
    PGW_SHARED_BACKEND_OR_SKIP(b);
    net::io_context io;
    const auto scope = unique_scope("cas");
    auto a = b->make_dcs(io, scope, "node1");
    REQUIRE(*run(io, a->set_config(R"({"ttl":30})", std::nullopt)));
    auto c1 = cluster_of(io, *a);
    REQUIRE(c1.config_json);
    CHECK(*c1.config_json == R"({"ttl":30})");
    const auto v1 = c1.config_version;

    auto ok = run(io, a->set_config(R"({"ttl":40})", v1));
    REQUIRE(ok.has_value());
    CHECK(*ok);
    auto stale = run(io, a->set_config(R"({"ttl":50})", v1));
    REQUIRE(stale.has_value());
    CHECK_FALSE(*stale);
    auto c2 = cluster_of(io, *a);
    CHECK(*c2.config_json == R"({"ttl":40})");
    CHECK(c2.config_version > v1);
    CHECK(b->read_key(scope, "config")->value == R"({"ttl":40})");

    REQUIRE(*run(io, a->set_failover(R"({"leader":"node1","member":"node2"})", std::nullopt)));
    auto f = cluster_of(io, *a).failover;
    REQUIRE(f.has_value());
    CHECK(f->member == "node2");
    CHECK_FALSE(*run(io, a->set_failover("{}", f->version - 1)));
    CHECK(*run(io, a->set_failover("{}", f->version)));
    CHECK(cluster_of(io, *a).failover->empty());

    REQUIRE(*run(io, a->set_sync(R"({"leader":"node1","sync_standby":null})", std::nullopt)));
    auto sv = cluster_of(io, *a).sync_version;
    CHECK_FALSE(*run(io, a->set_sync(R"({"leader":"node1","sync_standby":"node2"})", sv + 100)));
    CHECK(*run(io, a->set_sync(R"({"leader":"node1","sync_standby":"node2"})", sv)));
    CHECK(b->read_key(scope, "sync")->value == R"({"leader":"node1","sync_standby":"node2"})");

    REQUIRE(*run(io, a->set_history(R"([[1,25165984,"no recovery target specified"]])")));
    auto h = cluster_of(io, *a).history;
    REQUIRE(h.size() == 1);
    CHECK(h[0].lsn == 25165984);
}

TEMPLATE_TEST_CASE(
    "a stopped server makes get_cluster and the leader race fail within the "
    "retry deadline",
    "[dcs][contract]",
    PGW_BACKEND_KINDS) {
    auto own = own_backend<TestType>();  // a server of our own to stop
    if (own == nullptr) {
        return;
    }
    INFO("backend: " << own->name());
    net::io_context io;
    auto timing = own->fast_timing();
    timing.retry_timeout = 3;
    auto dcs = own->make_dcs(io, unique_scope("down"), "node1", timing);
    auto up = run(io, dcs->get_cluster());
    REQUIRE(up.has_value());
    own->stop();
    const auto started = Clock::now();
    auto r = run(io, dcs->get_cluster());
    const auto took = Clock::now() - started;
    REQUIRE_FALSE(r.has_value());  // an error, never an empty cluster
    CHECK((r.error() == Errc::Unavailable || r.error() == Errc::Timeout));
    CHECK(took <= 3s + 1500ms);
    const auto started2 = Clock::now();
    auto w = run(io, dcs->attempt_to_acquire_leader());
    REQUIRE_FALSE(w.has_value());
    CHECK(Clock::now() - started2 <= 3s + 1500ms);
}

// With the background work running (etcd: the watch-fed cache), get_cluster still sees another
// node's writes within a bounded time, and our own writes at once.
TEMPLATE_TEST_CASE("while watching, another node's writes show within a bounded wait",
                   "[dcs][contract][watch]",
                   PGW_BACKEND_KINDS) {
    PGW_SHARED_BACKEND_OR_SKIP(b);
    net::io_context io;
    const auto scope = unique_scope("seen");
    auto a = b->make_dcs(io, scope, "node1");
    auto c2 = b->make_dcs(io, scope, "node2");
    a->start([] {});
    pump_for(io, 300ms);  // let the watch get established
    REQUIRE(cluster_of(io, *a).members.empty());

    REQUIRE(*run(io, c2->touch_member(R"({"role":"replica","state":"running"})")));
    CHECK(pump_until(
        io, [&] { return cluster_of(io, *a).member("node2") != nullptr; }, 5s));
    REQUIRE(*run(io, c2->attempt_to_acquire_leader()));
    CHECK(pump_until(
        io,
        [&] {
            auto c = cluster_of(io, *a);
            return c.leader && c.leader->name == "node2" && c.leader->owner == b->owner_of(*c2);
        },
        5s));
    REQUIRE(*run(io, c2->set_config(R"({"ttl":20})", std::nullopt)));
    CHECK(pump_until(
        io,
        [&] {
            auto c = cluster_of(io, *a);
            return c.config_json && *c.config_json == R"({"ttl":20})";
        },
        5s));
    REQUIRE(*run(io, c2->delete_leader(std::nullopt)));
    REQUIRE(run(io, c2->delete_member()));
    CHECK(pump_until(
        io,
        [&] {
            auto c = cluster_of(io, *a);
            return !c.leader && c.members.empty();
        },
        5s));
    a->stop();
    pump_for(io, 100ms);
}

TEMPLATE_TEST_CASE("while watching, our own writes show on the very next get_cluster",
                   "[dcs][contract][watch]",
                   PGW_BACKEND_KINDS) {
    PGW_SHARED_BACKEND_OR_SKIP(b);
    net::io_context io;
    const auto scope = unique_scope("ryw");
    auto a = b->make_dcs(io, scope, "node1");
    a->start([] {});
    pump_for(io, 300ms);
    REQUIRE_FALSE(cluster_of(io, *a).leader);

    // Each check runs right after the write, without giving the watch any time of its own.
    REQUIRE(*run(io, a->touch_member(R"({"role":"replica","state":"running"})")));
    const auto* m = cluster_of(io, *a).member("node1");
    CHECK((m != nullptr && m->role == "replica"));
    REQUIRE(*run(io, a->touch_member(R"({"role":"primary","state":"running"})")));
    auto c = cluster_of(io, *a);
    REQUIRE(c.member("node1") != nullptr);
    CHECK(c.member("node1")->role == "primary");

    REQUIRE(*run(io, a->attempt_to_acquire_leader()));
    c = cluster_of(io, *a);
    REQUIRE(c.leader);
    CHECK(c.leader->name == "node1");
    CHECK(c.leader->owner == b->owner_of(*a));

    for (int i = 0; i < 5; ++i) {
        const std::string cfg = R"({"ttl":)" + std::to_string(30 + i) + "}";
        REQUIRE(*run(io, a->set_config(cfg, std::nullopt)));
        c = cluster_of(io, *a);
        REQUIRE(c.config_json);
        CHECK(*c.config_json == cfg);
        // Compare-and-swap on the version just read.
        REQUIRE(
            *run(io,
                 a->set_failover(R"({"member":"node)" + std::to_string(i) + R"("})",
                                 c.failover ? std::optional(c.failover->version) : std::nullopt)));
        auto f = cluster_of(io, *a).failover;
        REQUIRE(f);
        CHECK(f->member == "node" + std::to_string(i));
    }

    REQUIRE(*run(io, a->update_leader(std::int64_t{777})));
    CHECK(cluster_of(io, *a).last_lsn == 777);
    REQUIRE(*run(io, a->delete_leader(std::nullopt)));
    CHECK_FALSE(cluster_of(io, *a).leader);
    REQUIRE(run(io, a->delete_member()));
    CHECK(cluster_of(io, *a).members.empty());
    a->stop();
    pump_for(io, 100ms);
}

TEMPLATE_TEST_CASE("while watching, a stopped server makes get_cluster fail, never answer empty",
                   "[dcs][contract][watch]",
                   PGW_BACKEND_KINDS) {
    auto own = own_backend<TestType>();  // a server of our own to stop
    if (own == nullptr) {
        return;
    }
    INFO("backend: " << own->name());
    net::io_context io;
    auto timing = own->fast_timing();
    timing.retry_timeout = 2;
    const auto scope = unique_scope("down-watch");
    auto dcs = own->make_dcs(io, scope, "node1", timing);
    REQUIRE(*run(io, dcs->touch_member(R"({"role":"replica","state":"running"})")));
    REQUIRE(*run(io, dcs->attempt_to_acquire_leader()));
    dcs->start([] {});
    pump_for(io, 300ms);
    auto up = cluster_of(io, *dcs);
    REQUIRE(up.leader);
    REQUIRE(up.members.size() == 1);

    own->stop();
    // The watch learns of the outage at once (its stream breaks); from then on every read is
    // an error.
    const auto stopped_at = Clock::now();
    bool failed = false;
    for (int i = 0; i < 20 && !failed; ++i) {
        auto r = run(io, dcs->get_cluster());
        if (r) {
            // Still the cluster as it was a moment ago: never empty.
            CHECK(r->leader);
            CHECK(r->members.size() == 1);
            pump_for(io, 50ms);
        } else {
            failed = true;
            CHECK((r.error() == Errc::Unavailable || r.error() == Errc::Timeout));
        }
    }
    CHECK(failed);
    CHECK(Clock::now() - stopped_at < 5s);
    for (int i = 0; i < 2; ++i) {
        auto r = run(io, dcs->get_cluster());
        REQUIRE_FALSE(r.has_value());
        CHECK((r.error() == Errc::Unavailable || r.error() == Errc::Timeout));
    }
    // A failing renewal is an error too, not a success from the cache.
    auto u = run(io, dcs->update_leader(std::nullopt));
    CHECK_FALSE(u.has_value());
    dcs->stop();
    pump_for(io, 100ms);
}

// F3: the runtime arms its fence at (time the call started) + ttl when attempt_to_acquire_leader
// returns true, so the acquire must renew the lease/session itself: the one the member key write
// started may be almost used up. loop_wait is huge here so that only a forced renewal happens.
TEMPLATE_TEST_CASE("a won leader race renews the lease or session: it lasts ttl from the acquire",
                   "[dcs][contract][lease]",
                   PGW_BACKEND_KINDS) {
    PGW_SHARED_BACKEND_OR_SKIP(b);
    net::io_context io;
    const auto scope = unique_scope("renew");
    DcsTiming timing = b->fast_timing();
    timing.ttl = std::max(timing.ttl, 4);
    timing.loop_wait = 1000;
    const std::chrono::milliseconds ttl = std::chrono::seconds(timing.ttl);
    auto a = b->make_dcs(io, scope, "node1", timing);
    const auto member_written = Clock::now();
    REQUIRE(*run(io, a->touch_member(R"({"role":"replica","state":"running"})")));
    const auto owner = b->owner_of(*a);
    REQUIRE_FALSE(owner.empty());
    pump_for(io, ttl / 2);  // half of the lease the member write started is used up

    const auto acquire_started = Clock::now();
    auto won = run(io, a->attempt_to_acquire_leader());
    REQUIRE(won.has_value());
    REQUIRE(*won);
    REQUIRE(b->owner_of(*a) == owner);  // the same lease/session, renewed
    if (auto left = b->owner_ttl_left(owner)) {
        // The server's own view (etcd LeaseTimeToLive, whole seconds): renewed just now.
        CHECK(*left >= timing.ttl - 1);
    }
    // Past the end of the lease as the member write left it, before the end of a lease renewed
    // by the acquire: the key must still be there, held by us.
    const auto check_at = member_written + ttl + ttl / 4;
    REQUIRE(check_at < acquire_started + ttl);
    pump_until(
        io, [&] { return Clock::now() >= check_at; }, ttl * 2);
    auto raw = b->read_key(scope, "leader");
    REQUIRE(raw);
    CHECK(raw->value == "node1");
    CHECK(raw->owner == owner);
    REQUIRE(run(io, a->close_session()));
}

// F15: on_leader_change fires on every real change of the leader key (deleted, other value or
// owner) and never for the holder's own renewals or unchanged rewrites.
TEMPLATE_TEST_CASE("the leader callback fires on an out-of-band delete, not on our own renewals",
                   "[dcs][contract][watch]",
                   PGW_BACKEND_KINDS) {
    PGW_SHARED_BACKEND_OR_SKIP(b);
    net::io_context io;
    const auto scope = unique_scope("wake");
    auto a = b->make_dcs(io, scope, "node1");
    auto c2 = b->make_dcs(io, scope, "node2");
    int events = 0;
    a->start([&events] { ++events; });
    pump_for(io, 300ms);  // let the watch get established
    // No leader key yet: other keys changing is not a leader change.
    REQUIRE(*run(io, c2->touch_member(R"({"role":"replica","state":"running"})")));
    REQUIRE(*run(io, c2->touch_member(R"({"role":"replica","state":"streaming"})")));
    REQUIRE(*run(io, c2->set_history("[]")));
    pump_for(io, 1500ms);  // longer than one blocking-query wait (loop_wait = 1 s)
    CHECK(events == 0);

    REQUIRE(*run(io, a->attempt_to_acquire_leader()));
    REQUIRE(pump_until(
        io, [&events] { return events >= 1; }, 5s));  // the key appeared
    pump_for(io, 300ms);
    const int after_acquire = events;
    // The holder renews (and writes /status) over more than a loop_wait: no wake-ups.
    for (std::int64_t i = 0; i < 4; ++i) {
        auto r = run(io, a->update_leader(50331648 + i));
        REQUIRE(r.has_value());
        REQUIRE(*r);
        pump_for(io, 400ms);
    }
    CHECK(events == after_acquire);

    // Deleted behind the holder's back: wakes it within a bounded wait.
    REQUIRE(b->delete_key(scope, "leader"));
    CHECK(pump_until(
        io, [&] { return events > after_acquire; }, 5s));
    a->stop();
    pump_for(io, 100ms);
}

// F18: the watch (etcd stream / Consul blocking query) survives its server going away: it is
// restarted with backoff and resumes once the server is back.
TEMPLATE_TEST_CASE("the watch resumes after its server was killed and restarted",
                   "[dcs][contract][watch]",
                   PGW_BACKEND_KINDS) {
    auto server = own_backend<TestType>();  // a server of our own to restart
    if (server == nullptr) {
        return;
    }
    INFO("backend: " << server->name());
    net::io_context io;
    const auto scope = unique_scope("restart");
    auto watcher = server->make_dcs(io, scope, "node2");
    auto holder = server->make_dcs(io, scope, "node1");
    int events = 0;
    watcher->start([&events] { ++events; });
    pump_for(io, 300ms);
    REQUIRE(*run(io, holder->attempt_to_acquire_leader()));
    REQUIRE(pump_until(
        io, [&events] { return events >= 1; }, 5s));

    server->stop();        // mid-watch
    pump_for(io, 1500ms);  // the watch fails and retries while the server is down
    server->restart();
    // The key goes with the holder's lease/session (not renewed here; the Consul servers even
    // start empty); then every leader change wakes the watcher: take the key, release it.
    REQUIRE(pump_until(
        io, [&] { return !cluster_of(io, *holder).leader; }, 10s));
    pump_for(io, 1500ms);  // whatever the restart itself reported has been delivered
    for (int round = 0; round < 2; ++round) {
        const int before = events;
        auto changed = round == 0 ? run(io, holder->attempt_to_acquire_leader())
                                  : run(io, holder->delete_leader(std::nullopt));
        REQUIRE(changed.has_value());
        REQUIRE(*changed);
        CHECK(pump_until(
            io, [&] { return events > before; }, 10s));
        pump_for(io, 300ms);
    }
    watcher->stop();
    pump_for(io, 100ms);
}

namespace {

// Our TCP connections to 127.0.0.1:<port> (the fds of this process).
std::vector<int> connections_to(unsigned short port) {
    std::vector<int> out;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
        int fd = -1;
        const auto name = entry.path().filename().string();
        if (std::from_chars(name.data(), name.data() + name.size(), fd).ec != std::errc{}) {
            continue;
        }
        sockaddr_in peer{};
        socklen_t len = sizeof peer;
        if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0 &&
            peer.sin_family == AF_INET && ntohs(peer.sin_port) == port) {
            out.push_back(fd);
        }
    }
    return out;
}

int int_option(int fd, int level, int name) {
    int value = -1;
    socklen_t len = sizeof value;
    REQUIRE(::getsockopt(fd, level, name, &value, &len) == 0);
    return value;
}

}  // namespace

// F18: a DCS server that vanishes without a FIN/RST (half-open TCP: a partition, a dead host)
// is noticed on an idle connection, the watch's included, within seconds, not hours.
TEMPLATE_TEST_CASE("DCS connections use TCP keepalive that gives up within seconds",
                   "[dcs][contract][watch]",
                   PGW_BACKEND_KINDS) {
    PGW_SHARED_BACKEND_OR_SKIP(b);
    net::io_context io;
    auto a = b->make_dcs(io, unique_scope("keepalive"), "node1");
    a->start([] {});
    pump_for(io, 300ms);
    REQUIRE(*run(io, a->touch_member(R"({"role":"replica","state":"running"})")));
    const auto fds = connections_to(b->port());
    CHECK(fds.size() >= 2);  // the watch's and the (idle, kept) request connection
    for (int fd : fds) {
        INFO("fd " << fd);
        CHECK(int_option(fd, SOL_SOCKET, SO_KEEPALIVE) == 1);
        const int idle = int_option(fd, IPPROTO_TCP, TCP_KEEPIDLE);
        const int interval = int_option(fd, IPPROTO_TCP, TCP_KEEPINTVL);
        const int count = int_option(fd, IPPROTO_TCP, TCP_KEEPCNT);
        CHECK(idle + interval * count <= 10);  // below loop_wait's default and any sane ttl
        const int user_timeout_ms = int_option(fd, IPPROTO_TCP, TCP_USER_TIMEOUT);
        CHECK(user_timeout_ms > 0);
        CHECK(user_timeout_ms <= 10000);
    }
    a->stop();
    pump_for(io, 100ms);
}
