// Executes a plan's actions: the short ones inline, returning typed results; the long ones
// spawned (one tracked by the core at a time), their results folded back with core::apply.
#include "dcs/dcs.hpp"
#include "pg/config_files.hpp"
#include "pg/pg_control.hpp"
#include "runtime/executor_internal.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace pgwarden::runtime {

std::optional<std::int64_t> last_lsn(const core::PgObservation& pg) {
    if (pg.query && !pg.query->in_recovery) {
        return pg.query->wal_location;
    }
    return std::nullopt;
}

std::vector<std::string> slot_names(const core::Action& a) {
    std::vector<std::string> names;
    for (const auto& m : a.slots) {
        names.push_back(pg::slot_name_from_member_name(m));
    }
    names.insert(names.end(), a.permanent_slots.begin(), a.permanent_slots.end());
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    return names;
}

core::ActionResult result_of(const core::Action& a) {
    core::ActionResult r;
    r.kind = a.kind;
    r.id = a.id;
    r.target = a.target;
    return r;
}

core::ActionResult failed(core::ActionResult r, core::Failure f, std::string message) {
    r.failure = f;
    r.message = std::move(message);
    return r;
}

Executor::Executor(Runtime& rt) : rt_(rt) {}

namespace {

net::awaitable<core::ActionResult> write_history(Runtime& rt, core::ActionResult r) {
    const core::PgObservation& pg = rt.observer.pg();
    const auto& cluster = rt.observer.cluster();
    if (!pg.query || pg.query->in_recovery || !cluster) {
        co_return failed(std::move(r), core::Failure::Failed, "not a running primary");
    }
    const int tl = pg.query->timeline;
    auto lines = co_await rt.pg.read_timeline_history(tl);
    if (!lines) {
        co_return failed(
            std::move(r), core::Failure::Failed, "reading the timeline history failed");
    }
    nlohmann::json out = nlohmann::json::array();
    int max_known = 0;
    for (const auto& h : cluster->history) {
        nlohmann::json row = {h.timeline, h.lsn, h.reason};
        if (h.timestamp) {
            row.push_back(*h.timestamp);
        }
        if (h.new_leader) {
            row.push_back(*h.new_leader);
        }
        out.push_back(row);
        max_known = std::max(max_known, h.timeline);
    }
    for (const auto& h : *lines) {
        if (h.timeline > max_known) {
            out.push_back({h.timeline,
                           h.lsn,
                           h.reason,
                           core::format_iso8601_utc(rt.now_epoch_ms()),
                           rt.settings.name});
        }
    }
    const int keep = rt.observer.dynamic().max_timelines_history;
    if (keep > 0 && out.size() > static_cast<std::size_t>(keep)) {
        out.erase(out.begin(), out.end() - keep);
    }
    auto w = co_await rt.dcs.set_history(out.dump());
    if (!w || !*w) {
        co_return failed(std::move(r), core::Failure::Dcs, "writing the history key failed");
    }
    r.timeline = tl;
    co_return r;
}

}  // namespace

net::awaitable<core::ActionResult> Executor::run_short(core::Action a) {
    auto keep = rt_.shared_from_this();
    core::ActionResult r = result_of(a);
    const core::PgObservation& pg = rt_.observer.pg();
    const auto& cluster = rt_.observer.cluster();
    switch (a.kind) {
        case core::ActionKind::UpdateLock: {
            r.sent_at = rt_.now();
            auto u = co_await rt_.dcs.update_leader(last_lsn(pg));
            if (!u) {
                spdlog::warn("update leader lock failed: {}", u.error().message());
                co_return failed(std::move(r), core::Failure::Dcs, u.error().message());
            }
            if (!*u) {
                spdlog::warn("the leader lock is no longer ours");
                co_return failed(std::move(r), core::Failure::LockLost, "the key is not ours");
            }
            co_return r;
        }
        case core::ActionKind::AcquireLock: {
            r.sent_at = rt_.now();
            auto got = co_await rt_.dcs.attempt_to_acquire_leader();
            if (!got) {
                spdlog::info("failed to acquire the leader lock: {}", got.error().message());
                co_return failed(std::move(r), core::Failure::Dcs, got.error().message());
            }
            if (!*got) {
                spdlog::info("failed to acquire the leader lock: another member holds it");
                co_return failed(std::move(r), core::Failure::NotAcquired, "held by another");
            }
            spdlog::info("acquired the leader lock");
            co_return r;
        }
        case core::ActionKind::ReleaseLock: {
            auto d = co_await rt_.dcs.delete_leader(a.lsn ? a.lsn : last_lsn(pg));
            if (!d) {
                spdlog::error("releasing the leader lock failed: {}", d.error().message());
                co_return failed(std::move(r), core::Failure::Dcs, d.error().message());
            }
            spdlog::info(*d ? "released the leader lock"
                            : "the leader lock was no longer ours when releasing it");
            co_return r;
        }
        case core::ActionKind::WriteInitialize: {
            if (pg.sysid) {
                const bool create_new = !cluster || !cluster->initialize;
                co_await rt_.dcs.initialize(*pg.sysid, create_new);
            }
            co_return r;
        }
        case core::ActionKind::WriteConfig:
            co_await rt_.dcs.set_config(rt_.settings.bootstrap.dcs_json, std::nullopt);
            co_return r;
        case core::ActionKind::ClearFailover: {
            const auto version = cluster && cluster->failover
                                     ? std::optional<std::int64_t>(cluster->failover->version)
                                     : std::nullopt;
            co_await rt_.dcs.set_failover("{}", version);
            co_return r;
        }
        case core::ActionKind::SyncSlots: {
            if (auto err = co_await rt_.pg.sync_physical_slots(
                    slot_names(a), rt_.observer.dynamic().ignore_slots)) {
                spdlog::warn("replication slots: {}", err->message);
                co_return failed(std::move(r), core::Failure::Failed, err->message);
            }
            r.slots = a.slots;
            r.slots.insert(r.slots.end(), a.permanent_slots.begin(), a.permanent_slots.end());
            r.pm_start = pg.query ? pg.query->postmaster_start_time : "";
            co_return r;
        }
        case core::ActionKind::AdvanceSlots: {
            const std::int64_t replay = pg.query ? pg.query->replay_location : 0;
            if (auto err = co_await rt_.pg.advance_physical_slots(slot_names(a))) {
                spdlog::warn("replication slots: {}", err->message);
                co_return failed(std::move(r), core::Failure::Failed, err->message);
            }
            r.advanced_to = replay;
            co_return r;
        }
        case core::ActionKind::WriteHistory:
            co_return co_await write_history(rt_, std::move(r));
        case core::ActionKind::ClearScheduledRestart:
            rt_.bridge.clear_scheduled_restart();
            co_return r;
        default:
            co_return failed(std::move(r), core::Failure::Failed, "not a short action");
    }
}

void Executor::start_long(core::Action action) {
    ++running_;
    auto rt = rt_.shared_from_this();
    const std::string name(core::to_string(action.kind));
    spawn_logged(rt_.ex, run_long(rt, std::move(action)), "long action " + name, [rt] {
        rt->exit_code = kExitInternalBug;
        rt->shutdown_requested = true;
        rt->wakeup();
    });
}

net::awaitable<void> Executor::run_long(std::shared_ptr<Runtime> rt, core::Action action) {
    const std::string name(core::to_string(action.kind));
    spdlog::info("starting long action: {}", name);
    core::ActionResult r;
    try {
        r = co_await run_long_action(rt, action);
    } catch (...) {
        --rt->executor.running_;
        if (rt->executor.running_ == 0 && rt->executor.idle_) {
            rt->executor.idle_->set();
        }
        throw;
    }
    spdlog::info("long action finished: {}{}", name, r.ok() ? "" : " (failed: " + r.message + ")");
    --rt->executor.running_;
    if (rt->executor.running_ == 0 && rt->executor.idle_) {
        rt->executor.idle_->set();
    }
    if (action.request != 0) {
        // Patroni's answers: only a restart is awaited by its HTTP request.
        const std::string what(core::to_string(action.kind));
        rt->bridge.answer(action.request,
                          r.ok() ? rest::ActionOutcome{200,
                                                       action.kind == core::ActionKind::Restart
                                                           ? "restarted successfully"
                                                           : what + " done"}
                                 : rest::ActionOutcome{503, what + " failed"});
    }
    rt->publisher.show(std::nullopt);
    rt->apply(r);
}

net::awaitable<void> Executor::wait_idle(std::chrono::milliseconds timeout) {
    auto keep = rt_.shared_from_this();
    if (running_ == 0) {
        co_return;
    }
    idle_ = std::make_shared<Event>(rt_.ex);
    auto idle = idle_;
    net::steady_timer deadline(rt_.ex);
    deadline.expires_after(timeout);
    deadline.async_wait([idle](boost::system::error_code ec) {
        if (!ec) {
            idle->set();
        }
    });
    co_await idle->wait();
    deadline.cancel();
}

}  // namespace pgwarden::runtime
