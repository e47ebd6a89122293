// The runtime executes what the core decides: HaLoop driven cycle by cycle over FakeDcs and
// FakePostgres (behind GatedPostgres, which can hold an operation so a long action keeps
// running), with a manual monotonic clock and wall clock. No sockets (members have no api_url,
// so the leader race probes nobody), no sleeps: every wait is bounded by a real deadline.
// Each test names the safety finding (reviews/safety.md) it covers.
#include "runtime/ha_loop.hpp"

#include "core/iso8601.hpp"
#include "fakes/fake_dcs.hpp"
#include "fakes/fake_postgres.hpp"
#include "gated_postgres.hpp"
#include "runtime/rest/api_actions.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <string>

namespace pgwarden {
namespace {

namespace net = boost::asio;
using fakes::PgOp;
using namespace std::chrono_literals;

constexpr core::MonoMs kTtlMs = 30000;
constexpr core::MonoMs kLoopWaitMs = 10000;

core::Settings settings_for(std::string name) {
    core::Settings s;
    s.name = std::move(name);
    s.scope = "demo";
    s.restapi.connect_address = "127.0.0.1:8008";
    s.postgresql.connect_address = "127.0.0.1:5432";
    s.postgresql.data_dir = "/nonexistent/pgwarden-runtime-test/data";
    s.bootstrap.dcs.ttl = 30;
    s.bootstrap.dcs.loop_wait = 10;
    s.bootstrap.dcs.retry_timeout = 10;
    return s;
}

// Another member as the DCS shows it: no api_url, so the observer never probes it over the
// network (Observer::members_to_probe skips members without one).
core::Member other_member(std::string name) {
    core::Member m;
    m.name = std::move(name);
    m.conn_url = "postgres://127.0.0.2:5432/postgres";
    m.state = "running";
    m.role = "replica";
    m.timeline = 1;
    return m;
}

struct Harness {
    net::io_context io;
    core::MonoMs now = 1'000'000;           // the manual monotonic clock (ms)
    std::int64_t wall = 1'767'225'600'000;  // the manual wall clock: 2026-01-01T00:00:00Z
    fakes::FakePostgres fake;
    tests::GatedPostgres pg{io.get_executor(), fake};
    fakes::FakeDcs dcs{"node1"};
    std::unique_ptr<runtime::HaLoop> loop;

    Harness() {
        fake.data_dir_exists = true;
        fake.initialized = true;
        dcs.cluster.initialize = fake.sysid;
        dcs.cluster.members.push_back(other_member("node2"));
    }

    ~Harness() {
        // Let every held long action finish before the loop and the io_context go.
        pg.release_all();
        drain();
        loop.reset();
        drain();
    }

    void make_loop() {
        loop = std::make_unique<runtime::HaLoop>(
            io.get_executor(),
            settings_for("node1"),
            dcs,
            pg,
            [this] { return now; },
            [this] { return wall; });
    }

    // Runs every handler that is ready (long actions progress up to their next held
    // operation); never blocks.
    void drain() {
        for (int i = 0; i < 100000; ++i) {
            if (io.stopped()) {
                io.restart();
            }
            if (io.poll() == 0) {
                return;
            }
        }
        FAIL("the io_context never ran out of ready handlers");
    }

    // Runs `task` on the io_context until it completes (bounded by a real deadline), then the
    // handlers it made ready.
    void run(net::awaitable<void> task) {
        bool done = false;
        std::exception_ptr error;
        net::co_spawn(io, std::move(task), [&](std::exception_ptr e) {
            done = true;
            error = e;
        });
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (!done && std::chrono::steady_clock::now() < deadline) {
            if (io.stopped()) {
                io.restart();
            }
            io.run_one_for(100ms);
        }
        REQUIRE(done);
        if (error) {
            std::rethrow_exception(error);
        }
        drain();
    }

    void cycle() { run(loop->run_cycle_for_test()); }
    const core::NodeState& state() const { return loop->state_for_test(); }
    std::string outcome() const { return loop->status()->last_outcome; }

    // A running primary (timeline 1) whose leader key is ours: after one cycle the node is the
    // leader with the lock.
    void become_leader() {
        fake.running = true;
        fake.in_recovery = false;
        fake.cluster_state = "in production";
        dcs.cluster.leader = core::LeaderKey{"node1", 1, dcs.owner};
        make_loop();
        cycle();
        INFO(outcome());
        REQUIRE(state().role == core::Role::Primary);
        REQUIRE(state().lock_held);
    }
};

// ---- the leader race, executed (F3, acquire half) --------------------------------------------

TEST_CASE(
    "F3: a replica whose leader key vanished and whose peers are unreachable takes the "
    "lock and promotes with the lease counted from the acquire request",
    "[runtime][unit]") {
    Harness h;
    h.fake.running = true;
    h.fake.in_recovery = true;
    h.fake.cluster_state = "in archive recovery";
    h.make_loop();
    // No leader key; node2 has no api_url, so the race probes nobody: we are the healthiest.
    // The acquire request takes 700 ms on the wire: the lease counts from when it was sent.
    const core::MonoMs sent = h.now;
    h.dcs.on_lock_request = [&h] {
        h.now += 700;
    };
    h.pg.hold(PgOp::Promote);
    h.cycle();
    INFO(h.outcome());
    CHECK(h.dcs.acquire_calls == 1);
    CHECK(h.dcs.leader_is_ours());
    CHECK(h.outcome() == "acquiring the leader lock: I am the healthiest member");
    // The promotion is the long action: running, not done.
    CHECK(h.pg.waiting(PgOp::Promote) == 1);
    CHECK(h.state().role == core::Role::Promoted);
    REQUIRE(h.state().in_flight);
    CHECK(h.state().in_flight->kind == core::ActionKind::Promote);
    CHECK(h.state().lease_until == sent + kTtlMs);

    h.pg.release(PgOp::Promote);
    h.drain();
    CHECK(h.fake.count(PgOp::Promote) == 1);
    CHECK_FALSE(h.fake.in_recovery);
    CHECK(h.fake.executed == std::vector<std::string>{"CHECKPOINT"});
    CHECK(h.state().role == core::Role::Primary);
    CHECK_FALSE(h.state().in_flight);
    // /primary answers 200: the published status carries the lease.
    CHECK(h.loop->status()->leader_lease_until == sent + kTtlMs);
    CHECK(h.loop->status()->is_leader(h.now));
    // The member key we wrote says who we are.
    REQUIRE_FALSE(h.dcs.touch_member_values.empty());
    const core::Member* me = h.dcs.cluster.member("node1");
    REQUIRE(me != nullptr);
    CHECK(me->api_url == "http://127.0.0.1:8008/patroni");
}

// ---- F3: the lease deadline, runtime half -----------------------------------------------------

TEST_CASE(
    "F3: after a successful update_leader sent at T, lease_until is T + ttl (not the "
    "response time + ttl)",
    "[runtime][unit]") {
    Harness h;
    h.become_leader();
    h.now += kLoopWaitMs;
    const core::MonoMs sent = h.now;
    h.dcs.on_lock_request = [&h] {
        h.now += 1500;
    };  // a slow renewal
    h.cycle();
    CHECK(h.dcs.update_leader_calls == 2);
    CHECK(h.state().lease_until == sent + kTtlMs);
    CHECK(h.loop->status()->leader_lease_until == sent + kTtlMs);

    SECTION("a renewal that fails demotes, and the fence stays armed until postgresql stopped") {
        h.dcs.on_lock_request = nullptr;
        h.dcs.fail_writes = true;
        h.pg.hold(PgOp::Stop);
        h.now += kLoopWaitMs;
        h.cycle();
        CHECK(h.dcs.update_leader_calls == 3);
        CHECK(h.outcome() == "demoting self because DCS is not accessible and I was a leader");
        REQUIRE(h.state().in_flight);
        CHECK(h.state().in_flight->kind == core::ActionKind::Demote);
        CHECK(h.state().lease_until == sent + kTtlMs);
        h.pg.release(PgOp::Stop);
        h.drain();
        CHECK_FALSE(h.fake.running);
        CHECK_FALSE(h.state().lease_until);
        CHECK_FALSE(h.state().lock_held);
    }
}

// ---- F1: the in-process fence -------------------------------------------------------------

TEST_CASE(
    "F1/F3: a renewal answered only after the lease it renewed ran out fences postgresql "
    "at once (immediate stop)",
    "[runtime][unit]") {
    Harness h;
    h.become_leader();
    REQUIRE(h.fake.count(PgOp::Stop) == 0);
    // The renewal is sent at T and answered at T + ttl: the lease (T + ttl) is already over
    // when its deadline is armed, so the fence timer fires at once, outside any cycle.
    h.now += kLoopWaitMs;
    const core::MonoMs sent = h.now;
    h.dcs.on_lock_request = [&h] {
        h.now += kTtlMs;
    };
    h.cycle();
    CHECK(h.dcs.update_leader_calls == 2);
    CHECK(h.fake.count(PgOp::Stop) == 1);
    CHECK(h.fake.last_stop_mode == pg::StopMode::Immediate);
    CHECK_FALSE(h.fake.running);
    CHECK(h.state().role == core::Role::Demoted);
    CHECK_FALSE(h.state().lease_until);  // postgresql is stopped: nothing left to fence
    CHECK_FALSE(h.loop->status()->leader_lease_until);
    CHECK(h.now == sent + kTtlMs);
}

// ---- F12: losing the lock pre-empts a running long action -------------------------------------

TEST_CASE(
    "F12: the leader whose update_leader returns false demotes at once (immediate stop) "
    "while a reload is still running",
    "[runtime][unit]") {
    Harness h;
    h.become_leader();
    h.pg.hold(PgOp::Reload);
    h.loop->api_actions().reload();
    h.now += kLoopWaitMs;
    h.cycle();
    REQUIRE(h.state().in_flight);
    REQUIRE(h.state().in_flight->kind == core::ActionKind::Reload);
    REQUIRE(h.pg.waiting(PgOp::Reload) == 1);

    // node2 takes the key after our read and before our renewal: the renewal says it is not
    // ours (a key already taken at the read demotes without asking).
    h.dcs.on_lock_request = [&h] {
        h.dcs.set_leader("node2");
    };
    const int reloads = h.fake.count(PgOp::Reload);
    h.now += kLoopWaitMs;
    h.cycle();
    INFO(h.outcome());
    CHECK(h.dcs.update_leader_calls == 3);
    CHECK(h.outcome() ==
          "demoting self because I do not have the lock and I was a leader (pre-empting reload)");
    CHECK(h.fake.count(PgOp::Stop) == 1);
    CHECK(h.fake.last_stop_mode == pg::StopMode::Immediate);
    CHECK_FALSE(h.fake.running);
    CHECK(h.pg.waiting(PgOp::Reload) == 1);  // the reload is still running: it did not delay us
    CHECK_FALSE(h.state().lock_held);
    CHECK_FALSE(h.loop->status()->leader_lease_until);
    CHECK(h.state().role == core::Role::Demoted);
    CHECK(h.dcs.leader_deletes == 0);  // not ours to delete

    // The pre-empted reload's late result changes nothing.
    const core::NodeState before = h.state();
    h.pg.release(PgOp::Reload);
    h.drain();
    CHECK(h.fake.count(PgOp::Reload) == reloads + 1);
    CHECK(h.state() == before);
}

// ---- F6: pause
// -----------------------------------------------------------------------------------

TEST_CASE(
    "F6: in pause the leader never starts a stopped postgresql but releases the lock and "
    "shutdown leaves postgresql running",
    "[runtime][unit]") {
    Harness h;
    h.become_leader();
    h.dcs.cluster.config_json = R"({"pause": true})";

    SECTION("postgresql stopped: no start, the lock is released") {
        h.fake.running = false;
        h.fake.cluster_state = "shut down";
        h.now += kLoopWaitMs;
        h.cycle();
        CHECK(h.outcome() ==
              "cluster is paused and postgresql is not running: releasing the leader lock");
        CHECK(h.fake.count(PgOp::Start) == 0);
        CHECK(h.dcs.leader_deletes == 1);
        CHECK_FALSE(h.dcs.cluster.leader);
        CHECK_FALSE(h.state().lock_held);

        h.now += kLoopWaitMs;
        h.cycle();
        CHECK(h.outcome() == "postgresql is not running; cluster is paused, not starting it");
        CHECK(h.fake.count(PgOp::Start) == 0);
        CHECK(h.dcs.acquire_calls == 0);

        h.run(h.loop->shutdown_for_test());
        CHECK(h.fake.count(PgOp::Start) == 0);
        CHECK(h.fake.count(PgOp::Stop) == 0);
    }

    SECTION("postgresql running: shutdown neither stops it nor hands the key over") {
        h.now += kLoopWaitMs;
        h.cycle();
        REQUIRE(h.loop->status()->dynamic.pause);
        CHECK(h.state().lock_held);
        h.run(h.loop->shutdown_for_test());
        CHECK(h.fake.count(PgOp::Stop) == 0);
        CHECK(h.fake.running);
        CHECK(h.dcs.delete_leader_calls == 0);
        CHECK(h.dcs.leader_is_ours());
    }
}

// ---- F10: the scheduled restart is a long action ---------------------------------------------

TEST_CASE(
    "F10: a scheduled restart runs as the long action while the next cycle still renews "
    "the lock",
    "[runtime][unit]") {
    Harness h;
    h.become_leader();
    rest::RestartRequest req;
    req.schedule = "2026-01-01T00:00:05+00:00";  // 5 s after the wall clock: within loop_wait
    REQUIRE(core::parse_iso8601_ms(*req.schedule) == h.wall + 5000);
    REQUIRE(h.loop->api_actions().schedule_restart(req).status == 202);
    REQUIRE(h.loop->status()->scheduled_restart_json);

    h.pg.hold(PgOp::Start);  // the restart stops postgresql, then waits in its start
    h.now += kLoopWaitMs;
    h.cycle();
    INFO(h.outcome());
    CHECK(h.outcome() ==
          "no action. I am (node1), the leader with the lock; running the scheduled restart");
    REQUIRE(h.state().in_flight);
    CHECK(h.state().in_flight->kind == core::ActionKind::Restart);
    CHECK(h.fake.count(PgOp::Stop) == 1);
    CHECK(h.fake.last_stop_mode == pg::StopMode::Fast);
    CHECK(h.pg.waiting(PgOp::Start) == 1);
    CHECK_FALSE(h.loop->status()->scheduled_restart_json);
    CHECK(h.dcs.update_leader_calls == 2);

    // The next cycle runs while postgresql is down mid-restart: it renews and starts nothing.
    h.now += kLoopWaitMs;
    h.wall += kLoopWaitMs;
    const core::MonoMs sent = h.now;
    h.cycle();
    CHECK(h.outcome() == "restart in progress; keeping the leader lock");
    CHECK(h.dcs.update_leader_calls == 3);
    CHECK(h.state().lock_held);
    CHECK(h.state().lease_until == sent + kTtlMs);
    CHECK(h.pg.waiting(PgOp::Start) == 1);  // still the restart's one start, no other

    h.pg.release(PgOp::Start);
    h.drain();
    CHECK(h.fake.count(PgOp::Start) == 1);
    CHECK(h.fake.running);
    CHECK_FALSE(h.fake.in_recovery);
    CHECK_FALSE(h.state().in_flight);
    CHECK(h.state().role == core::Role::Primary);
}

// ---- F7: a bad dynamic configuration value --------------------------------------------------

TEST_CASE(
    "F7: a bad dynamic configuration value neither breaks the cycle nor resets the other "
    "keys",
    "[runtime][unit]") {
    Harness h;
    h.become_leader();
    h.dcs.cluster.config_json = R"({"ttl": "soon", "pause": true, "loop_wait": 7})";
    h.now += kLoopWaitMs;
    REQUIRE_NOTHROW(h.cycle());
    auto st = h.loop->status();
    CHECK(st->dynamic.pause);
    CHECK(st->dynamic.loop_wait == 7);
    CHECK(st->dynamic.ttl == 30);  // the last good value
    CHECK(h.state().lock_held);
    CHECK(h.dcs.update_leader_calls == 2);
    REQUIRE(h.dcs.timing);  // loop_wait changed: the backend was told, with the good ttl
    CHECK(h.dcs.timing->ttl == 30);
    CHECK(h.dcs.timing->loop_wait == 7);

    SECTION("an out-of-range number") {
        h.dcs.cluster.config_json =
            R"({"ttl": 99999999999999999999999, "pause": true, "loop_wait": 7,)"
            R"( "maximum_lag_on_failover": "99999999999999999999999"})";
    }
    SECTION("an out-of-range PostgreSQL parameter") {
        h.dcs.cluster.config_json =
            R"({"pause": true, "loop_wait": 7,)"
            R"( "postgresql": {"parameters": {"max_connections": "99999999999999999999999"}}})";
    }
    SECTION("not JSON at all") {
        h.dcs.cluster.config_json = "{not json";
    }
    SECTION("not an object") {
        h.dcs.cluster.config_json = "[1, 2]";
    }
    h.now += kLoopWaitMs;
    REQUIRE_NOTHROW(h.cycle());
    st = h.loop->status();
    CHECK(st->dynamic.pause);
    CHECK(st->dynamic.loop_wait == 7);
    CHECK(st->dynamic.ttl == 30);
    CHECK(h.state().lock_held);
    CHECK(h.dcs.update_leader_calls == 3);
}

// ---- F15: the leader is woken by changes of its own key ----------------------------------------

TEST_CASE("F15: a leader-key change wakes the leader's loop at once, not after loop_wait",
          "[runtime][unit]") {
    Harness h;
    h.fake.running = true;
    h.fake.cluster_state = "in production";
    h.dcs.cluster.leader = core::LeaderKey{"node1", 1, h.dcs.owner};
    h.make_loop();
    // The real loop; the manual clock stands still, so every wait is a full loop_wait (10 s
    // of real time) unless something wakes the loop.
    bool finished = false;
    int exit_code = -1;
    net::co_spawn(h.io, h.loop->run(), [&](std::exception_ptr e, int code) {
        finished = true;
        exit_code = e ? -2 : code;
    });
    // Runs the io_context until `cond` holds or `limit` (real time) passes.
    auto run_until = [&h](auto cond, std::chrono::milliseconds limit) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (!cond() && std::chrono::steady_clock::now() < deadline) {
            if (h.io.stopped()) {
                h.io.restart();
            }
            h.io.run_one_for(10ms);
        }
        return cond();
    };
    auto cycles = [&h] {
        return h.dcs.touch_member_values.size();
    };
    REQUIRE(run_until([&] { return cycles() >= 1; }, 5s));
    REQUIRE(h.dcs.started);
    // The first cycle's own follow-ups (its reload's result wakes the loop) settle; then the
    // loop waits: nothing runs before loop_wait without an event.
    run_until([] { return false; }, 200ms);
    const auto settled = cycles();
    const int renewals = h.dcs.update_leader_calls;
    REQUIRE(renewals >= 1);
    run_until([] { return false; }, 100ms);
    REQUIRE(cycles() == settled);

    h.dcs.set_leader("node2");  // taken out of band
    h.dcs.fire_leader_change();
    CHECK(run_until([&] { return cycles() > settled; }, 3s));  // far less than loop_wait
    CHECK(h.dcs.update_leader_calls == renewals);  // the key is node2's: no renewal, a demotion
    CHECK(h.fake.count(PgOp::Stop) == 1);
    CHECK(h.fake.last_stop_mode == pg::StopMode::Immediate);
    CHECK_FALSE(h.state().lock_held);

    h.loop->request_shutdown();
    REQUIRE(run_until([&] { return finished; }, 5s));
    CHECK(exit_code == runtime::kExitOk);
    CHECK(h.dcs.stopped);
}

}  // namespace
}  // namespace pgwarden
