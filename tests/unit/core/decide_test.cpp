// decide(): tables of situations → plan (actions and the reason sentence, asserted verbatim).
#include <catch2/catch.hpp>

#include "core/decide.hpp"

using namespace pgwarden::core;

namespace {

constexpr const char* kSysid = "7300000000000000001";

PgObservation pg_empty() { return PgObservation{}; }

PgObservation pg_stopped(const std::string& control_state = "shut down") {
    PgObservation pg;
    pg.data_dir_exists = true;
    pg.data_dir_empty = false;
    pg.sysid = kSysid;
    pg.cluster_state = control_state;
    pg.control_timeline = 1;
    return pg;
}

PgObservation pg_running(bool in_recovery) {
    PgObservation pg = pg_stopped(in_recovery ? "in archive recovery" : "in production");
    pg.postmaster_running = true;
    pg.accepting_connections = true;
    PgQueryResult q;
    q.in_recovery = in_recovery;
    q.timeline = 1;
    q.server_version = 150018;
    pg.query = q;
    return pg;
}

PgObservation pg_running_not_answering() {
    PgObservation pg = pg_stopped("in production");
    pg.postmaster_running = true;
    pg.query_error = "57P03: the database system is starting up";
    return pg;
}

Cluster cluster_empty() { return Cluster{}; }

Cluster cluster_with_leader(const std::string& leader) {
    Cluster c;
    c.initialize = kSysid;
    c.config_json = "{}";
    c.leader = LeaderKey{leader, 5, "lease"};
    return c;
}

Cluster cluster_without_leader() {
    Cluster c;
    c.initialize = kSysid;
    c.config_json = "{}";
    return c;
}

Snapshot snapshot(std::optional<Cluster> cluster, PgObservation pg, Role role = Role::Primary) {
    Snapshot s;
    s.name = "node1";
    s.cluster = std::move(cluster);
    if (!s.cluster) {
        s.dcs_error = "DCS unavailable";
    }
    s.pg = std::move(pg);
    s.local.role = role;
    return s;
}

std::vector<ActionKind> kinds(const Plan& p) {
    std::vector<ActionKind> out;
    for (const auto& a : p.actions) {
        out.push_back(a.kind);
    }
    return out;
}

}  // namespace

TEST_CASE("decide: empty data dir and no initialize key bootstraps", "[core][bootstrap]") {
    auto plan = decide(snapshot(cluster_empty(), pg_empty(), Role::Uninitialized));
    CHECK(kinds(plan) == std::vector{ActionKind::Bootstrap});
    CHECK(plan.reason == "trying to bootstrap a new cluster");
}

TEST_CASE("decide: empty data dir with nofailover tag does not bootstrap", "[core][bootstrap]") {
    auto s = snapshot(cluster_empty(), pg_empty(), Role::Uninitialized);
    SECTION("nofailover") { s.tags.nofailover = true; }
    SECTION("failover_priority 0") { s.tags.failover_priority = 0; }
    auto plan = decide(s);
    CHECK(plan.actions.empty());
    CHECK(plan.reason == "waiting for leader to bootstrap: tagged nofailover, so not bootstrapping");
}

TEST_CASE("decide: empty data dir in an initialized cluster never bootstraps a second cluster",
          "[core][bootstrap]") {
    SECTION("initialize key present, no leader") {
        auto plan = decide(snapshot(cluster_without_leader(), pg_empty(), Role::Uninitialized));
        CHECK(plan.actions.empty());
        CHECK(plan.reason == "waiting for leader to bootstrap");
    }
    SECTION("initialize key present, leader present") {
        auto plan = decide(snapshot(cluster_with_leader("node2"), pg_empty(), Role::Uninitialized));
        CHECK(plan.actions.empty());
        CHECK(plan.reason ==
              "waiting to create a replica of leader node2: replica creation is not available in "
              "this version");
    }
    SECTION("bootstrap in progress elsewhere (initialize is empty)") {
        Cluster c;
        c.initialize = "";
        auto plan = decide(snapshot(c, pg_empty(), Role::Uninitialized));
        CHECK(plan.actions.empty());
        CHECK(plan.reason == "waiting for leader to bootstrap");
    }
}

TEST_CASE("decide: the leader renews its lock every cycle", "[core][leader]") {
    auto plan = decide(snapshot(cluster_with_leader("node1"), pg_running(false)));
    CHECK(kinds(plan) == std::vector{ActionKind::UpdateLock});
    CHECK(plan.role == Role::Primary);
    CHECK(plan.reason == "no action. I am (node1), the leader with the lock");
}

TEST_CASE("decide: the leader restores missing initialize and config keys", "[core][leader]") {
    Cluster c = cluster_with_leader("node1");
    c.initialize.reset();
    c.config_json.reset();
    auto plan = decide(snapshot(c, pg_running(false)));
    CHECK(kinds(plan) == std::vector{ActionKind::UpdateLock,
                                     ActionKind::WriteInitialize,
                                     ActionKind::WriteConfig});
}

TEST_CASE("decide: DCS unreachable is never 'no leader'", "[core][safety]") {
    SECTION("running primary demotes without releasing the key") {
        auto plan = decide(snapshot(std::nullopt, pg_running(false)));
        REQUIRE(kinds(plan) == std::vector{ActionKind::Demote});
        CHECK(plan.actions[0].stop == StopKind::Fast);
        CHECK_FALSE(plan.actions[0].release_lock);
        CHECK(plan.reason == "demoting self because DCS is not accessible and I was a leader");
    }
    SECTION("a primary that does not answer queries is still demoted") {
        auto plan = decide(snapshot(std::nullopt, pg_running_not_answering(), Role::Primary));
        CHECK(kinds(plan) == std::vector{ActionKind::Demote});
    }
    SECTION("a stopped node never acquires or bootstraps") {
        auto plan = decide(snapshot(std::nullopt, pg_stopped(), Role::Primary));
        CHECK(plan.actions.empty());
        CHECK(plan.reason == "DCS is not accessible");
    }
    SECTION("an empty node never bootstraps") {
        auto plan = decide(snapshot(std::nullopt, pg_empty(), Role::Uninitialized));
        CHECK(plan.actions.empty());
        CHECK(plan.reason == "DCS is not accessible");
    }
    SECTION("paused: the primary keeps running") {
        auto s = snapshot(std::nullopt, pg_running(false));
        s.dynamic.pause = true;
        CHECK(decide(s).actions.empty());
    }
}

TEST_CASE("decide: a primary that sees another leader demotes immediately", "[core][safety]") {
    auto plan = decide(snapshot(cluster_with_leader("node2"), pg_running(false)));
    REQUIRE(kinds(plan) == std::vector{ActionKind::Demote});
    CHECK(plan.actions[0].stop == StopKind::Immediate);
    CHECK_FALSE(plan.actions[0].release_lock);
    CHECK(plan.role == Role::Demoted);
    CHECK(plan.reason == "demoting self because I do not have the lock and I was a leader");
}

TEST_CASE("decide: a lost lock update demotes even if the stale view still names us",
          "[core][safety]") {
    auto s = snapshot(cluster_with_leader("node1"), pg_running(false));
    s.local.lock_lost = true;
    auto plan = decide(s);
    CHECK(kinds(plan) == std::vector{ActionKind::Demote});
}

TEST_CASE("decide: an unanswering postmaster we ran as primary demotes when another leads",
          "[core][safety]") {
    auto plan =
        decide(snapshot(cluster_with_leader("node2"), pg_running_not_answering(), Role::Primary));
    CHECK(kinds(plan) == std::vector{ActionKind::Demote});
}

TEST_CASE("decide: crashed postmaster of the leader is restarted as primary", "[core][recovery]") {
    auto plan = decide(snapshot(cluster_with_leader("node1"), pg_stopped("in production")));
    CHECK(kinds(plan) == std::vector{ActionKind::UpdateLock, ActionKind::StartPrimary});
    CHECK(plan.reason == "starting primary after failure");
}

TEST_CASE("decide: a former primary restarts only after taking the free lock", "[core][recovery]") {
    SECTION("clean shutdown") {
        auto plan = decide(snapshot(cluster_without_leader(), pg_stopped("shut down")));
        CHECK(kinds(plan) == std::vector{ActionKind::AcquireLock, ActionKind::StartPrimary});
        CHECK(plan.reason == "acquiring the leader lock to start the former primary");
    }
    SECTION("a member on a later timeline blocks it") {
        Cluster c = cluster_without_leader();
        Member m;
        m.name = "node2";
        m.timeline = 2;
        c.members.push_back(m);
        auto plan = decide(snapshot(c, pg_stopped("shut down")));
        CHECK(plan.actions.empty());
        CHECK(plan.reason == "not taking the leader lock: member node2 is on a later timeline");
    }
    SECTION("replica data waits for a leader") {
        auto plan = decide(snapshot(cluster_without_leader(), pg_stopped("shut down in recovery")));
        CHECK(plan.actions.empty());
    }
    SECTION("nofailover waits") {
        auto s = snapshot(cluster_without_leader(), pg_stopped("shut down"));
        s.tags.nofailover = true;
        CHECK(decide(s).actions.empty());
    }
}

TEST_CASE("decide: a running primary takes the free lock", "[core][leader]") {
    auto plan = decide(snapshot(cluster_without_leader(), pg_running(false)));
    CHECK(kinds(plan) == std::vector{ActionKind::AcquireLock});
}

TEST_CASE("decide: data directory of another cluster is fatal", "[core][safety]") {
    Cluster c = cluster_with_leader("node2");
    c.initialize = "7399999999999999999";
    auto plan = decide(snapshot(c, pg_stopped()));
    CHECK(kinds(plan) == std::vector{ActionKind::Fatal});
    CHECK(plan.reason ==
          "refusing to run: the data directory belongs to another cluster (system identifier "
          "7300000000000000001, the cluster's is 7399999999999999999)");
}

TEST_CASE("decide: while a long action runs only the lock is renewed", "[core][busy]") {
    auto s = snapshot(cluster_with_leader("node1"), pg_stopped());
    s.local.action_in_progress = "starting primary";
    auto plan = decide(s);
    CHECK(kinds(plan) == std::vector{ActionKind::UpdateLock});
    CHECK(plan.reason == "starting primary in progress; keeping the leader lock");

    auto other = snapshot(cluster_with_leader("node2"), pg_empty(), Role::Uninitialized);
    other.local.action_in_progress = "bootstrap";
    CHECK(decide(other).actions.empty());
}

TEST_CASE("decide: leader in recovery promotes", "[core][leader]") {
    auto plan = decide(snapshot(cluster_with_leader("node1"), pg_running(true), Role::Replica));
    CHECK(kinds(plan) == std::vector{ActionKind::UpdateLock, ActionKind::Promote});
    CHECK(plan.role == Role::Promoted);
}

TEST_CASE("decide: a replica follows the leader", "[core][replica]") {
    auto plan = decide(snapshot(cluster_with_leader("node2"), pg_running(true), Role::Replica));
    CHECK(plan.actions.empty());
    CHECK(plan.reason == "no action. I am (node1), a secondary, and following a leader (node2)");
}
