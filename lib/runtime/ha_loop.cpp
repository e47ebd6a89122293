// The loop only: wait for a tick or an event → observe → core::step → execute → core::apply →
// publish; and the shutdown. Every decision is the core's; see lib/core/node_state.hpp.
#include "runtime/ha_loop.hpp"

#include "dcs/dcs.hpp"
#include "pg/pg_control.hpp"
#include "runtime/rest/status_json.hpp"
#include "runtime/runtime.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <exception>

namespace pgwarden::runtime {

using namespace std::chrono_literals;

namespace {

// The next cycle after a Plan with retry_soon (instead of loop_wait).
constexpr core::MonoMs kRetrySoonMs = 250;

bool is_probe(const core::Plan& p) {
    return p.actions.size() == 1 && p.actions[0].kind == core::ActionKind::ProbeMembers;
}

}  // namespace

Runtime::Runtime(net::any_io_executor ex_,
                 core::Settings settings_,
                 dcs::Dcs& dcs_,
                 pg::PgControl& pg_,
                 MonotonicClock clock_,
                 WallClock wall_clock_)
    : ex(ex_),
      settings(std::move(settings_)),
      dcs(dcs_),
      pg(pg_),
      clock(std::move(clock_)),
      wall_clock(std::move(wall_clock_)),
      observer(*this),
      publisher(*this),
      bridge(*this),
      executor(*this),
      fence(*this),
      wake_timer(ex_) {
    conn_url =
        "postgres://" + settings.postgresql.connect_address + "/" + settings.postgresql.database;
    api_url = "http://" + settings.restapi.connect_address + "/patroni";
    state.ttl_ms = static_cast<core::MonoMs>(settings.bootstrap.dcs.ttl) * 1000;
}

std::int64_t Runtime::now_epoch_ms() const {
    if (wall_clock) {
        return wall_clock();
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void Runtime::set_state(core::NodeState next) {
    if (next.role != state.role) {
        const core::Transition* t = core::find_transition(state.role, next.role);
        if (t != nullptr) {
            spdlog::info("transition from \"{}\" to \"{}\": {}",
                         core::to_string(state.role),
                         core::to_string(next.role),
                         t->when);
        } else {
            spdlog::error(
                "transition from \"{}\" to \"{}\" is not in the transition table "
                "(a bug): please report it",
                core::to_string(state.role),
                core::to_string(next.role));
        }
    }
    state = std::move(next);
    fence.update();
}

void Runtime::apply(const core::ActionResult& result) {
    const bool was_in_flight = state.in_flight && state.in_flight->id == result.id;
    const bool handover =
        was_in_flight && result.ok() &&
        ((result.kind == core::ActionKind::Demote && state.in_flight->release_lock) ||
         result.kind == core::ActionKind::WaitForCandidate);
    set_state(core::apply(state, result, now()));
    publisher.publish();
    if (was_in_flight && !result.progress) {
        quick_step = quick_step || handover;
        wakeup();
    }
}

void Runtime::wakeup() {
    wake_pending = true;
    wake_timer.cancel();
}

struct HaLoop::Impl {
    std::shared_ptr<Runtime> rt;
    core::MonoMs next_run = 0;

    net::awaitable<void> touch_member() {
        // Called every cycle even when the value is unchanged: it is what keeps our lease or
        // session alive on a replica (the backend skips writing an unchanged value).
        const auto st = rt->publisher.build();
        co_await rt->dcs.touch_member(rest::member_key_json(*st, rt->conn_url, rt->api_url));
    }

    // A long action the plan held was not started (an earlier action failed): tell the core,
    // which still counts it in flight.
    void not_started(const core::Action& a) {
        core::ActionResult r;
        r.kind = a.kind;
        r.id = a.id;
        r.target = a.target;
        r.failure = core::Failure::Failed;
        r.message = "not started: an earlier action of the plan failed";
        rt->apply(r);
    }

    std::optional<core::Observation> last_obs;

    net::awaitable<void> cycle() {
        core::Observation obs;
        if (rt->quick_step && last_obs) {
            rt->quick_step = false;
            obs = *last_obs;
            obs.pg = rt->observer.pg();
            obs.now_epoch_ms = rt->now_epoch_ms();
            obs.requests = rt->bridge.take_requests();
        } else {
            rt->quick_step = false;
            obs = co_await rt->observer.observe();
        }
        last_obs = obs;
        last_obs->probes.reset();
        last_obs->requests.clear();
        last_obs->lock_lost = false;
        for (int attempt = 0; attempt < 4; ++attempt) {
            obs.now = rt->now();
            core::StepResult r = core::step(rt->state, obs);
            rt->set_state(r.next);
            for (const auto& a : r.answers) {
                rt->bridge.answer(a.id, {a.accepted ? 200 : 503, a.message});
            }
            const core::Plan& plan = r.plan;
            if (plan.retry_soon) {
                next_run = std::min(next_run, rt->now() + kRetrySoonMs);
            }
            if (plan.reason != rt->publisher.last_outcome()) {
                spdlog::info("{}", plan.reason);
                rt->publisher.set_last_outcome(plan.reason);
            } else {
                spdlog::debug("{}", plan.reason);
            }
            if (is_probe(plan)) {
                if (obs.probes) {
                    spdlog::error("the core asked to probe the members twice in one cycle (a bug)");
                    break;
                }
                obs.probes = co_await rt->observer.probe_members();
                continue;
            }
            obs.requests.clear();
            if (!plan.actions.empty()) {
                spdlog::debug("plan: {}", core::describe(plan.actions));
            }
            bool again = false;
            bool stop = false;
            for (const auto& a : plan.actions) {
                if (stop) {
                    if (a.id != 0) {
                        not_started(a);
                    }
                    continue;
                }
                if (a.kind == core::ActionKind::Fatal) {
                    spdlog::critical("{}", plan.reason);
                    rt->exit_code = kExitBadOnDiskState;
                    rt->shutdown_requested = true;
                    stop = true;
                    continue;
                }
                if (a.kind == core::ActionKind::ProbeMembers) {
                    continue;
                }
                if (a.id != 0) {
                    rt->executor.start_long(a);
                    continue;
                }
                core::ActionResult res = co_await rt->executor.run_short(a);
                rt->apply(res);
                if (a.kind == core::ActionKind::UpdateLock && !res.ok()) {
                    if (res.failure == core::Failure::LockLost) {
                        obs.lock_lost = true;
                    } else {
                        rt->observer.forget_cluster();
                        obs.cluster.reset();
                    }
                    again = true;
                    stop = true;
                } else if (a.kind == core::ActionKind::AcquireLock && !res.ok()) {
                    stop = true;  // the rest of the plan needs the lock
                }
            }
            if (!again) {
                break;
            }
            obs.probes.reset();
        }
        if (rt->observer.cluster()) {
            co_await touch_member();
        }
        rt->publisher.publish();
    }

    net::awaitable<int> run() {
        auto keep = rt;
        const auto& d = rt->observer.dynamic();
        rt->dcs.set_timing({d.ttl, d.loop_wait, d.retry_timeout});
        std::weak_ptr<Runtime> weak = rt;
        // Every change of the leader key wakes the loop, the leader's own included (F15): a key
        // deleted or taken out of band is acted on at once. The backends report changes only,
        // not our own renewals.
        rt->dcs.start([weak] {
            if (auto self = weak.lock()) {
                self->wakeup();
            }
        });
        rt->pg.start_supervision([weak] {
            if (auto self = weak.lock()) {
                const auto shown = self->publisher.shown();
                if (shown == core::PgState::Stopping || shown == core::PgState::Restarting) {
                    spdlog::info("postmaster exited");
                } else {
                    spdlog::warn("postmaster exited unexpectedly");
                }
                self->wakeup();
            }
        });
        while (!rt->shutdown_requested) {
            const core::MonoMs cycle_start = rt->now();
            next_run =
                cycle_start + static_cast<core::MonoMs>(rt->observer.dynamic().loop_wait) * 1000;
            rt->publisher.set_next_run(next_run);
            rt->wake_pending = false;
            try {
                co_await cycle();
            } catch (const std::exception& e) {
                // A bug in one cycle must not take the REST API and the lease renewals down
                // with it: log, and run the next cycle (the fence guards the lease meanwhile).
                spdlog::error("HA cycle failed: {}", e.what());
            }
            rt->publisher.set_next_run(next_run);
            if (rt->shutdown_requested) {
                break;
            }
            const core::MonoMs wait = next_run - rt->now();
            if (wait > 0 && !rt->wake_pending) {
                rt->wake_timer.expires_after(std::chrono::milliseconds(wait));
                co_await rt->wake_timer.async_wait(net::as_tuple(net::use_awaitable));
            }
        }
        co_await shutdown();
        co_return rt->exit_code.value_or(kExitOk);
    }

    net::awaitable<void> shutdown() {
        spdlog::info("shutting down");
        const core::ShutdownPlan sp = core::shutdown_plan(rt->state, rt->observer.dynamic());
        if (!sp.stop_postgres) {
            spdlog::info("{}", sp.reason);
            rt->fence.cancel();
            rt->dcs.stop();
            co_return;
        }
        if (rt->executor.running() == 0 && rt->observer.pg().postmaster_running) {
            // /primary answers 503 from now on, before PostgreSQL refuses writes.
            rt->publisher.show(core::PgState::Stopping);
        }
        // A running long action finishes first: stopping PostgreSQL under it would race.
        co_await rt->executor.wait_idle(60s);
        const bool was_leader = rt->state.lock_held;
        rt->observer.set_pg(co_await rt->pg.observe());
        if (rt->observer.pg().postmaster_running) {
            rt->publisher.show(core::PgState::Stopping);
            const auto lsn =
                rt->observer.pg().query && !rt->observer.pg().query->in_recovery
                    ? std::optional<std::int64_t>(rt->observer.pg().query->wal_location)
                    : std::nullopt;
            if (auto err = co_await rt->pg.stop(pg::StopMode::Fast, std::chrono::seconds(60))) {
                spdlog::error("shutdown: {}; keeping the leader key", err->message);
                rt->dcs.stop();
                co_return;
            }
            spdlog::info("postgresql stopped");
            // Before the key goes: a member probing us in its leader race must not see a
            // primary that is still alive (our /patroni reports "stopped" without WAL now).
            rt->observer.set_pg(co_await rt->pg.observe());
            rt->publisher.show(core::PgState::Stopped);
            if (was_leader) {
                auto r = co_await rt->dcs.delete_leader(lsn);
                if (r && *r) {
                    spdlog::info("released the leader lock");
                }
            }
        } else if (was_leader) {
            co_await rt->dcs.delete_leader(std::nullopt);
        }
        rt->fence.cancel();
        co_await rt->dcs.close_session();
        rt->dcs.stop();
        rt->publisher.show(core::PgState::Stopped);
    }
};

HaLoop::HaLoop(net::any_io_executor ex,
               core::Settings settings,
               dcs::Dcs& dcs,
               pg::PgControl& pg,
               MonotonicClock clock,
               WallClock wall_clock)
    : impl_(std::make_shared<Impl>()) {
    impl_->rt = std::make_shared<Runtime>(
        ex, std::move(settings), dcs, pg, std::move(clock), std::move(wall_clock));
}

net::awaitable<void> HaLoop::run_cycle_for_test() {
    auto impl = impl_;
    impl->next_run =
        impl->rt->now() + static_cast<core::MonoMs>(impl->rt->observer.dynamic().loop_wait) * 1000;
    co_await impl->cycle();
}

net::awaitable<void> HaLoop::shutdown_for_test() {
    auto impl = impl_;
    co_await impl->shutdown();
}

const core::NodeState& HaLoop::state_for_test() const {
    return impl_->rt->state;
}

HaLoop::~HaLoop() = default;

net::awaitable<int> HaLoop::run() {
    auto impl = impl_;
    co_return co_await impl->run();
}

void HaLoop::request_shutdown() {
    impl_->rt->shutdown_requested = true;
    impl_->rt->wakeup();
}

void HaLoop::wakeup() {
    impl_->rt->wakeup();
}

std::shared_ptr<const core::NodeStatus> HaLoop::status() const {
    return impl_->rt->publisher.status();
}

rest::ApiActions& HaLoop::api_actions() {
    return impl_->rt->bridge;
}

}  // namespace pgwarden::runtime
