// decide(): tables of situations → plan (actions and the reason sentence, asserted verbatim).
#include "core/decide.hpp"

#include <catch2/catch.hpp>

using namespace pgwarden::core;

namespace {

constexpr const char* kSysid = "7300000000000000001";

PgObservation pg_empty() {
    return PgObservation{};
}

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

Cluster cluster_empty() {
    return Cluster{};
}

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

PgObservation pg_running_replica_at(std::int64_t lsn) {
    PgObservation pg = pg_running(true);
    pg.query->receive_location = lsn;
    pg.query->replay_location = lsn;
    return pg;
}

Cluster with_members(Cluster c, std::vector<std::string> names) {
    for (const auto& n : names) {
        Member m;
        m.name = n;
        m.conn_url = "postgres://127.0.0.1:5432/postgres";
        m.api_url = "http://127.0.0.1:8008/patroni";
        m.state = "running";
        m.role = c.leader && c.leader->name == n ? "primary" : "replica";
        c.members.push_back(m);
    }
    return c;
}

MemberProbe probe_replica(const std::string& name, std::int64_t wal) {
    MemberProbe p;
    p.name = name;
    p.reachable = true;
    p.wal_position = wal;
    p.state = "running";
    return p;
}

MemberProbe unreachable(const std::string& name) {
    MemberProbe p;
    p.name = name;
    return p;
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
    SECTION("nofailover") {
        s.tags.nofailover = true;
    }
    SECTION("failover_priority 0") {
        s.tags.failover_priority = 0;
    }
    auto plan = decide(s);
    CHECK(plan.actions.empty());
    CHECK(plan.reason ==
          "waiting for leader to bootstrap: tagged nofailover, so not bootstrapping");
}

TEST_CASE("decide: empty data dir in an initialized cluster never bootstraps a second cluster",
          "[core][bootstrap]") {
    SECTION("initialize key present, no leader") {
        auto plan = decide(snapshot(cluster_without_leader(), pg_empty(), Role::Uninitialized));
        CHECK(plan.actions.empty());
        CHECK(plan.reason == "waiting for leader to bootstrap");
    }
    SECTION("initialize key present, leader present without a member key") {
        auto plan = decide(snapshot(cluster_with_leader("node2"), pg_empty(), Role::Uninitialized));
        CHECK(plan.actions.empty());
        CHECK(plan.reason == "waiting for the member key of leader node2 to clone from it");
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
    SECTION("a stopped node never acquires or bootstraps: it starts read-only (F20)") {
        auto plan = decide(snapshot(std::nullopt, pg_stopped(), Role::Primary));
        REQUIRE(kinds(plan) == std::vector{ActionKind::StartReplica});
        CHECK(plan.actions[0].target.empty());
        CHECK(plan.reason == "DCS is not accessible: starting postgresql read-only");
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
    auto s = snapshot(
        with_members(cluster_with_leader("node2"), {"node2"}), pg_running(true), Role::Replica);
    SECTION("already following it: nothing to do") {
        s.local.following = "node2";
        auto plan = decide(s);
        CHECK(plan.actions.empty());
        CHECK(plan.reason ==
              "no action. I am (node1), a secondary, and following a leader (node2)");
    }
    SECTION("following someone else, or unknown after a restart: re-point") {
        SECTION("other") {
            s.local.following = "node3";
        }
        SECTION("unknown") {
            s.local.following.reset();
        }
        auto plan = decide(s);
        REQUIRE(kinds(plan) == std::vector{ActionKind::Follow});
        CHECK(plan.actions[0].target == "node2");
    }
}

TEST_CASE("decide: an empty node clones from the leader, or from a clonefrom replica",
          "[core][replica]") {
    Cluster c = with_members(cluster_with_leader("node2"), {"node2", "node3"});
    SECTION("leader") {
        auto plan = decide(snapshot(c, pg_empty(), Role::Uninitialized));
        REQUIRE(kinds(plan) == std::vector{ActionKind::CreateReplica});
        CHECK(plan.actions[0].target == "node2");
        CHECK(plan.reason == "trying to bootstrap from leader 'node2'");
    }
    SECTION("clonefrom") {
        c.members[1].clonefrom = true;
        auto plan = decide(snapshot(c, pg_empty(), Role::Uninitialized));
        REQUIRE(kinds(plan) == std::vector{ActionKind::CreateReplica});
        CHECK(plan.actions[0].target == "node3");
        CHECK(plan.reason == "trying to bootstrap from replica 'node3'");
    }
}

TEST_CASE(
    "decide: a stopped node with another leader starts as its replica, rewinding a former "
    "primary first",
    "[core][rejoin]") {
    Cluster c = with_members(cluster_with_leader("node2"), {"node2"});
    SECTION("replica data: start and follow") {
        auto plan = decide(snapshot(c, pg_stopped("shut down in recovery"), Role::Replica));
        REQUIRE(kinds(plan) == std::vector{ActionKind::StartReplica});
        CHECK(plan.actions[0].target == "node2");
    }
    SECTION("former primary with use_pg_rewind: pg_rewind from the leader") {
        auto s = snapshot(c, pg_stopped("shut down"), Role::Demoted);
        s.use_pg_rewind = true;
        auto plan = decide(s);
        REQUIRE(kinds(plan) == std::vector{ActionKind::Rewind});
        CHECK(plan.actions[0].target == "node2");
        CHECK(plan.reason == "running pg_rewind from leader node2");
        CHECK_FALSE(plan.retry_soon);
    }
    SECTION("former primary: wait for the new leader's post-promote checkpoint") {
        c.members[0].checkpoint_after_promote_pending = true;
        auto s = snapshot(c, pg_stopped("in production"), Role::Demoted);
        s.use_pg_rewind = true;
        auto plan = decide(s);
        CHECK(plan.actions.empty());
        CHECK(plan.reason == "waiting for leader node2 to finish its promotion before pg_rewind");
        CHECK(plan.retry_soon);
    }
    SECTION("former primary without use_pg_rewind: start as replica") {
        auto plan = decide(snapshot(c, pg_stopped("shut down"), Role::Demoted));
        CHECK(kinds(plan) == std::vector{ActionKind::StartReplica});
    }
    SECTION("failed rewind stays stopped with a reason, unless allowed to re-clone") {
        auto s = snapshot(c, pg_stopped("shut down"), Role::Demoted);
        s.use_pg_rewind = true;
        s.local.rewind_failed = "could not find common ancestor";
        auto plan = decide(s);
        CHECK(plan.actions.empty());
        CHECK(plan.reason ==
              "pg_rewind failed (could not find common ancestor); not starting postgresql: "
              "reinitialize this member or set remove_data_directory_on_rewind_failure");
        s.remove_data_directory_on_rewind_failure = true;  // effective: local or dynamic
        CHECK(kinds(decide(s)) == std::vector{ActionKind::Reinitialize});
    }
}

TEST_CASE("decide: a stopped node in a leaderless cluster starts read-only, then races",
          "[core][recovery]") {
    auto plan = decide(snapshot(cluster_without_leader(), pg_stopped("shut down")));
    REQUIRE(kinds(plan) == std::vector{ActionKind::StartReplica});
    CHECK(plan.actions[0].target.empty());
    CHECK(plan.reason == "starting as a secondary");

    Cluster c = cluster_without_leader();
    Member m;
    m.name = "node2";
    m.timeline = 2;
    c.members.push_back(m);
    auto later = decide(snapshot(c, pg_stopped("shut down")));
    CHECK(later.actions.empty());
}

TEST_CASE("decide: the leader race is won only by the healthiest reachable member",
          "[core][failover]") {
    Cluster c = with_members(cluster_without_leader(), {"node2", "node3"});
    auto s = snapshot(c, pg_running_replica_at(1000), Role::Replica);

    SECTION("first probe the others") {
        auto plan = decide(s);
        CHECK(kinds(plan) == std::vector{ActionKind::ProbeMembers});
    }
    SECTION("healthiest: take the lock and promote") {
        s.probes = std::vector{probe_replica("node2", 900), unreachable("node3")};
        auto plan = decide(s);
        CHECK(kinds(plan) == std::vector{ActionKind::AcquireLock, ActionKind::Promote});
        CHECK(plan.reason == "acquiring the leader lock: I am the healthiest member");
    }
    SECTION("another member is ahead") {
        s.probes = std::vector{probe_replica("node2", 1001), probe_replica("node3", 10)};
        auto plan = decide(s);
        CHECK(plan.actions.empty());
        CHECK(plan.reason ==
              "not racing for the leader lock: member node2 is ahead (wal 1001 > 1000)");
    }
    SECTION("a member that is ahead but nofailover does not count") {
        auto p = probe_replica("node2", 5000);
        p.nofailover = true;
        s.probes = std::vector{p};
        CHECK(kinds(decide(s)) == std::vector{ActionKind::AcquireLock, ActionKind::Promote});
    }
    SECTION("the old primary still answers as primary") {
        auto p = probe_replica("node2", 10);
        p.is_primary = true;
        s.probes = std::vector{p};
        auto plan = decide(s);
        CHECK(plan.actions.empty());
        CHECK(plan.reason == "not racing for the leader lock: primary node2 is still alive");
        CHECK(plan.retry_soon);
    }
    SECTION("equal wal: a higher failover_priority wins") {
        auto p = probe_replica("node2", 1000);
        p.failover_priority = 2;
        s.probes = std::vector{p};
        CHECK(decide(s).actions.empty());
    }
    SECTION("too far behind the last known primary position") {
        s.cluster->last_lsn = 1000 + 2 * 1048576;
        auto plan = decide(s);
        CHECK(plan.actions.empty());
        CHECK(plan.reason.rfind("not healthy enough for leader race: lag", 0) == 0);
    }
    SECTION("nofailover never races") {
        s.tags.nofailover = true;
        CHECK(decide(s).actions.empty());
    }
    SECTION("paused never races") {
        s.dynamic.pause = true;
        CHECK(decide(s).actions.empty());
    }
}

TEST_CASE("decide: with a manual failover key only the candidate races", "[core][switchover]") {
    Cluster c = with_members(cluster_without_leader(), {"node2", "node3"});
    c.failover = FailoverKey{std::string("node3"), std::string("node1"), std::nullopt, 7};
    SECTION("I am the candidate: take the lock, clear the key, promote") {
        auto plan = decide(snapshot(c, pg_running_replica_at(5), Role::Replica));
        CHECK(kinds(plan) ==
              std::vector{ActionKind::AcquireLock, ActionKind::ClearFailover, ActionKind::Promote});
    }
    SECTION("another healthy candidate: wait") {
        c.failover->member = "node2";
        auto s = snapshot(c, pg_running_replica_at(5000), Role::Replica);
        s.probes = std::vector{probe_replica("node2", 10)};
        auto plan = decide(s);
        CHECK(plan.actions.empty());
        CHECK(plan.reason == "manual failover to node2 in progress: not racing");
    }
    SECTION("the candidate is unreachable: normal race") {
        c.failover->member = "node2";
        auto s = snapshot(c, pg_running_replica_at(5000), Role::Replica);
        s.probes = std::vector{unreachable("node2")};
        CHECK(kinds(decide(s)) ==
              std::vector{ActionKind::AcquireLock, ActionKind::ClearFailover, ActionKind::Promote});
    }
}

TEST_CASE("decide: the leader hands over on a switchover request", "[core][switchover]") {
    Cluster c = with_members(cluster_with_leader("node1"), {"node1", "node2"});
    c.failover = FailoverKey{std::string("node1"), std::string("node2"), std::nullopt, 9};
    auto s = snapshot(c, pg_running(false));
    SECTION("probe the candidate first") {
        CHECK(kinds(decide(s)) == std::vector{ActionKind::ProbeMembers});
    }
    SECTION("healthy candidate: graceful demote releasing the lock") {
        s.probes = std::vector{probe_replica("node2", 10)};
        auto plan = decide(s);
        REQUIRE(kinds(plan) == std::vector{ActionKind::UpdateLock, ActionKind::Demote});
        CHECK(plan.actions[1].stop == StopKind::Fast);
        CHECK(plan.actions[1].release_lock);
        CHECK(plan.reason == "manual failover: demoting myself");
    }
    SECTION("unhealthy candidate: clear the request") {
        s.probes = std::vector{unreachable("node2")};
        auto plan = decide(s);
        CHECK(kinds(plan) == std::vector{ActionKind::UpdateLock, ActionKind::ClearFailover});
        CHECK(plan.reason ==
              "manual failover: candidate node2 is not healthy, failover is not possible");
    }
    SECTION("wrong leader: clear") {
        s.cluster->failover->leader = "node9";
        CHECK(kinds(decide(s)) == std::vector{ActionKind::UpdateLock, ActionKind::ClearFailover});
    }
    SECTION("scheduled in the future: wait") {
        s.cluster->failover->scheduled_at = "2030-01-01T00:00:00+00:00";
        s.failover_scheduled_at_ms = 1'000'000;
        s.now_epoch_ms = 500'000;
        CHECK(kinds(decide(s)) == std::vector{ActionKind::UpdateLock});
    }
    SECTION("scheduled long ago: stale, clear") {
        s.cluster->failover->scheduled_at = "2020-01-01T00:00:00+00:00";
        s.failover_scheduled_at_ms = 1'000'000;
        s.now_epoch_ms = 1'000'000 + 60'000;
        CHECK(kinds(decide(s)) == std::vector{ActionKind::UpdateLock, ActionKind::ClearFailover});
    }
}

TEST_CASE("decide: a running replica that forked off before the leader's switch point rewinds",
          "[core][rejoin]") {
    Cluster c = with_members(cluster_with_leader("node2"), {"node2"});
    c.members[0].timeline = 4;
    c.history.push_back(
        HistoryLine{3, 1000, "no recovery target specified", std::nullopt, std::nullopt});
    auto pg = pg_running_replica_at(1200);
    pg.query->timeline = 3;
    pg.query->replication_state = "in archive recovery";
    auto s = snapshot(c, pg, Role::Replica);
    s.local.following = "node2";
    s.use_pg_rewind = true;
    s.local.replica_not_streaming_ms = 20000;
    SECTION("not streaming only briefly (reconnecting): no rewind") {
        s.local.replica_not_streaming_ms = 6000;
        CHECK(decide(s).actions.empty());
    }
    SECTION("replayed past the switch point: rewind") {
        auto plan = decide(s);
        REQUIRE(kinds(plan) == std::vector{ActionKind::Rewind});
        CHECK(plan.reason ==
              "diverged from leader node2: replayed past the end of timeline 3 (1200 > 1000); "
              "running pg_rewind");
    }
    SECTION("behind the switch point: it can follow the new timeline") {
        s.pg.query->replay_location = 900;
        s.pg.query->receive_location = 900;
        CHECK(decide(s).actions.empty());
    }
    SECTION("streaming: not diverged") {
        s.pg.query->replication_state = "streaming";
        CHECK(decide(s).actions.empty());
    }
    SECTION("upstream gone after it streamed on the leader's timeline: not diverged") {
        // The walreceiver is gone (the leader crashed, its key not expired yet): the status
        // query reports the last restartpoint's timeline 3, but it replayed timeline 4.
        s.local.streamed_timeline = 4;
        CHECK(decide(s).actions.empty());
        CHECK(decide(s).reason.find("diverged") == std::string::npos);
    }
}

TEST_CASE("decide: a stopped replica that failed to start behind a later leader timeline rewinds",
          "[core][rejoin]") {
    Cluster c = with_members(cluster_with_leader("node2"), {"node2"});
    c.members[0].timeline = 4;
    auto s = snapshot(c, pg_stopped("shut down in recovery"), Role::Replica);
    s.pg.control_timeline = 3;
    s.use_pg_rewind = true;
    SECTION("first try: just start") {
        CHECK(kinds(decide(s)) == std::vector{ActionKind::StartReplica});
    }
    SECTION("the start failed: rewind") {
        s.local.replica_start_failed = true;
        auto plan = decide(s);
        REQUIRE(kinds(plan) == std::vector{ActionKind::Rewind});
        CHECK(plan.reason ==
              "starting as a replica of node2 failed and it is on a later timeline (4 > 3): "
              "running pg_rewind");
    }
}
