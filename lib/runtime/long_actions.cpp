// The long actions: bootstrap, start, promote, demote, the switchover hand-over wait, clone,
// follow, pg_rewind, reinitialize, reload and restart. Each reports what happened as a typed
// ActionResult; none assigns a role or decides what comes next (core::apply and step do).
#include "dcs/dcs.hpp"
#include "pg/config_files.hpp"
#include "pg/pg_control.hpp"
#include "runtime/executor_internal.hpp"
#include "runtime/member_probe.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>

namespace pgwarden::runtime {
namespace {

using namespace std::chrono_literals;
using core::ActionResult;
using core::Failure;

// How long the old primary waits for a switchover candidate to receive its shutdown checkpoint.
constexpr core::MonoMs kHandoverWaitMs = 10000;

pg::StopMode to_stop_mode(core::StopKind k) {
    return k == core::StopKind::Immediate ? pg::StopMode::Immediate : pg::StopMode::Fast;
}

std::chrono::seconds pg_ctl_timeout(const Runtime& rt) {
    return std::chrono::seconds(std::max(rt.settings.postgresql.pg_ctl_timeout, 1));
}

int server_version(const Runtime& rt) {
    const auto& pg = rt.observer.pg();
    return pg.query ? pg.query->server_version : 150000;
}

// The standby configuration following `leader` as the current view and settings say.
pg::ConfigFiles replica_files_following(const Runtime& rt, const std::string& leader) {
    return replica_files(rt.settings,
                         rt.observer.dynamic(),
                         rt.observer.cluster(),
                         leader,
                         rt.observer.pg().query ? rt.observer.pg().query->server_version : 150000);
}

// Writes the managed files; the signature written is returned through `r`.
net::awaitable<pg::Status> write_files(std::shared_ptr<Runtime> rt,
                                       pg::ConfigFiles files,
                                       ActionResult* r) {
    const std::string signature = files_signature(files);
    auto err = co_await rt->pg.write_config(std::move(files));
    if (!err) {
        r->written_config = signature;
    }
    co_return err;
}

// The verdict on a failed pg_rewind, from its typed kind: a source that does not accept a
// connection or has not checkpointed after its promotion is a passing fault (retried);
// anything else is a verdict on this data directory against this leader.
Failure rewind_failure(const pg::PgError& err) {
    switch (err.kind) {
        case pg::ErrorKind::SourceUnreachable:
        case pg::ErrorKind::ConnectionFailed:
        case pg::ErrorKind::Timeout:
            return Failure::SourceUnreachable;
        case pg::ErrorKind::SourceNotReady:
            return Failure::SourceNotReady;
        default:
            return Failure::Failed;
    }
}

void move_data_dir_aside(const Runtime& rt) {
    namespace fs = std::filesystem;
    const fs::path dir = rt.settings.postgresql.data_dir;
    std::error_code ec;
    if (!fs::exists(dir, ec) || fs::is_empty(dir, ec)) {
        return;
    }
    const fs::path aside =
        dir.string() + "_" + std::to_string(rt.now_epoch_ms() / 1000) + ".failed";
    fs::rename(dir, aside, ec);
    if (ec) {
        spdlog::error("could not move the data directory {} aside: {}", dir.string(), ec.message());
    } else {
        spdlog::error("moved the failed data directory aside to {}", aside.string());
    }
}

net::awaitable<ActionResult> fail_bootstrap(std::shared_ptr<Runtime> rt,
                                            ActionResult r,
                                            std::string why) {
    spdlog::error("bootstrap failed: {}", why);
    co_await rt->pg.stop(pg::StopMode::Immediate, std::chrono::seconds(30));
    co_await rt->dcs.cancel_initialization();
    move_data_dir_aside(*rt);
    rt->exit_code = kExitPostgresUnusable;
    rt->shutdown_requested = true;
    co_return failed(std::move(r), Failure::Failed, why);
}

net::awaitable<ActionResult> bootstrap(std::shared_ptr<Runtime> rt, ActionResult r) {
    auto won = co_await rt->dcs.initialize("", true);
    if (!won || !*won) {
        spdlog::info(
            "bootstrap: another node is initializing the cluster (initialize key exists or the "
            "DCS failed)");
        co_return failed(std::move(r), Failure::NotAcquired, "lost the initialize race");
    }
    spdlog::info("bootstrap: won the initialize race, running initdb");
    rt->publisher.show(core::PgState::Initdb);
    if (auto err = co_await rt->pg.initdb()) {
        spdlog::error("bootstrap: {}", err->message);
        rt->publisher.show(core::PgState::InitdbFailed);
        co_await rt->dcs.cancel_initialization();
        move_data_dir_aside(*rt);
        rt->exit_code = kExitPostgresUnusable;
        rt->shutdown_requested = true;
        co_return failed(std::move(r), Failure::Failed, err->message);
    }
    if (auto err = co_await write_files(
            rt, primary_files(rt->settings, rt->observer.dynamic(), server_version(*rt)), &r)) {
        co_return co_await fail_bootstrap(rt, std::move(r), err->message);
    }
    rt->publisher.show(core::PgState::Starting);
    if (auto err = co_await rt->pg.start(pg_ctl_timeout(*rt))) {
        co_return co_await fail_bootstrap(rt, std::move(r), err->message);
    }
    if (auto err = co_await rt->pg.create_roles()) {
        co_return co_await fail_bootstrap(rt, std::move(r), err->message);
    }
    rt->observer.set_pg(co_await rt->pg.observe());
    const auto sysid = rt->observer.pg().sysid;
    if (!sysid) {
        co_return co_await fail_bootstrap(
            rt, std::move(r), "the system identifier could not be read after initdb");
    }
    auto init = co_await rt->dcs.initialize(*sysid, false);
    if (!init) {
        spdlog::warn("bootstrap: writing the initialize key failed: {}; the leader will retry",
                     init.error().message());
    }
    auto cfg = co_await rt->dcs.set_config(rt->settings.bootstrap.dcs_json, std::nullopt);
    if (!cfg) {
        spdlog::warn("bootstrap: writing the config key failed: {}; the leader will retry",
                     cfg.error().message());
    }
    r.sent_at = rt->now();
    auto got = co_await rt->dcs.attempt_to_acquire_leader();
    if (!got || !*got) {
        spdlog::error(
            "bootstrap: could not take the leader lock after initializing the cluster; the next "
            "cycle decides");
        co_return failed(std::move(r), Failure::NotAcquired, "leader lock not acquired");
    }
    spdlog::info("bootstrap: cluster initialized (system identifier {}), acquired the leader lock",
                 *sysid);
    co_return r;
}

net::awaitable<ActionResult> start_primary(std::shared_ptr<Runtime> rt, ActionResult r) {
    rt->publisher.show(core::PgState::Starting);
    if (auto err = co_await write_files(
            rt, primary_files(rt->settings, rt->observer.dynamic(), server_version(*rt)), &r)) {
        co_return failed(std::move(r), Failure::Failed, err->message);
    }
    if (auto err = co_await rt->pg.start(pg_ctl_timeout(*rt))) {
        rt->publisher.show(core::PgState::StartFailed);
        co_return failed(std::move(r), Failure::Failed, err->message);
    }
    co_return r;
}

net::awaitable<ActionResult> promote(std::shared_ptr<Runtime> rt, core::Action a, ActionResult r) {
    if (!a.slots.empty() || !a.permanent_slots.empty()) {
        if (auto err = co_await rt->pg.sync_physical_slots(slot_names(a),
                                                           rt->observer.dynamic().ignore_slots)) {
            spdlog::warn("replication slots before promotion: {}", err->message);
        }
    }
    if (auto err = co_await rt->pg.promote(pg_ctl_timeout(*rt))) {
        co_return failed(std::move(r), Failure::Failed, err->message);
    }
    spdlog::info("promoted self to leader");
    // /primary answers 200 from here on, not only after the checkpoint below.
    rt->observer.set_pg(co_await rt->pg.observe());
    ActionResult progress = r;
    progress.progress = true;
    rt->apply(progress);
    // pg_rewind on the former primary reads our timeline from pg_control, which only a
    // checkpoint updates (Patroni's checkpoint_after_promote).
    if (auto err = co_await rt->pg.execute("CHECKPOINT")) {
        spdlog::warn("post-promote checkpoint: {}", err->message);
    }
    rt->observer.set_pg(co_await rt->pg.observe());
    co_return r;
}

net::awaitable<ActionResult> demote(std::shared_ptr<Runtime> rt, core::Action a, ActionResult r) {
    rt->publisher.show(core::PgState::Stopping);
    if (auto err = co_await rt->pg.stop(to_stop_mode(a.stop), std::chrono::seconds(60))) {
        rt->publisher.show(core::PgState::StopFailed);
        co_return failed(std::move(r), Failure::Failed, err->message);
    }
    if (a.release_lock) {
        // Switchover: what the candidate must have is the end of our shutdown checkpoint, valid
        // only after a clean shutdown.
        rt->observer.set_pg(co_await rt->pg.observe());
        const auto& pg = rt->observer.pg();
        r.checkpoint_end_lsn = pg.cluster_state == "shut down" ? pg.checkpoint_end_lsn : 0;
    }
    co_return r;
}

net::awaitable<ActionResult> wait_for_candidate(std::shared_ptr<Runtime> rt,
                                                core::Action a,
                                                ActionResult r) {
    const std::int64_t lsn = a.lsn.value_or(0);
    std::vector<core::Member> candidates;
    for (const auto& m : rt->observer.members_to_probe()) {
        if (a.target.empty() || m.name == a.target) {
            candidates.push_back(m);
        }
    }
    net::steady_timer pause(rt->ex);
    const core::MonoMs deadline = rt->now() + kHandoverWaitMs;
    while (!candidates.empty()) {
        auto probes = co_await probe_members(rt->ex, candidates, 1s);
        for (const auto& p : probes) {
            if (core::candidate_has(p, lsn)) {
                r.target = p.name;
                co_return r;
            }
        }
        if (rt->now() >= deadline) {
            break;
        }
        pause.expires_after(25ms);
        co_await pause.async_wait(net::as_tuple(net::use_awaitable));
    }
    co_return failed(std::move(r),
                     Failure::NoCandidate,
                     "no candidate received the shutdown checkpoint " + std::to_string(lsn));
}

std::optional<std::pair<std::string, int>> member_address(const Runtime& rt,
                                                          const std::string& name) {
    const auto& cluster = rt.observer.cluster();
    const core::Member* m = cluster ? cluster->member(name) : nullptr;
    if (m == nullptr) {
        return std::nullopt;
    }
    auto hp = host_port_of(m->conn_url);
    if (hp.first.empty()) {
        return std::nullopt;
    }
    return hp;
}

net::awaitable<ActionResult> start_replica(std::shared_ptr<Runtime> rt,
                                           std::string leader,
                                           ActionResult r) {
    r.target = leader;
    rt->publisher.show(core::PgState::Starting);
    if (auto err = co_await write_files(rt, replica_files_following(*rt, leader), &r)) {
        co_return failed(std::move(r), Failure::Failed, err->message);
    }
    if (auto err = co_await rt->pg.start(pg_ctl_timeout(*rt))) {
        rt->publisher.show(core::PgState::StartFailed);
        co_return failed(std::move(r), Failure::Failed, err->message);
    }
    co_return r;
}

net::awaitable<ActionResult> create_replica(std::shared_ptr<Runtime> rt,
                                            std::string source,
                                            ActionResult r) {
    auto addr = member_address(*rt, source);
    if (!addr) {
        co_return failed(std::move(r), Failure::SourceUnreachable, "no address for " + source);
    }
    rt->publisher.show(core::PgState::CreatingReplica);
    spdlog::info("cloning from {} ({}:{}) with pg_basebackup", source, addr->first, addr->second);
    if (auto err = co_await rt->pg.clone_from(
            addr->first, addr->second, rt->settings.postgresql.basebackup_args)) {
        spdlog::error("creating a replica from {} failed: {}", source, err->message);
        co_return failed(std::move(r), Failure::Failed, err->message);
    }
    const auto& cluster = rt->observer.cluster();
    const std::string leader = cluster && cluster->is_locked() ? cluster->leader->name : source;
    co_return co_await start_replica(rt, leader, std::move(r));
}

net::awaitable<ActionResult> follow(std::shared_ptr<Runtime> rt,
                                    std::string leader,
                                    ActionResult r) {
    if (auto err = co_await write_files(rt, replica_files_following(*rt, leader), &r)) {
        co_return failed(std::move(r), Failure::Failed, err->message);
    }
    if (auto err = co_await rt->pg.reload()) {
        co_return failed(std::move(r), Failure::Failed, err->message);
    }
    spdlog::info("following new leader {}", leader);
    co_return r;
}

net::awaitable<ActionResult> rewind(std::shared_ptr<Runtime> rt,
                                    std::string leader,
                                    ActionResult r) {
    auto addr = member_address(*rt, leader);
    if (!addr) {
        co_return failed(std::move(r), Failure::SourceUnreachable, "no address for " + leader);
    }
    if (rt->observer.pg().postmaster_running) {
        rt->publisher.show(core::PgState::Stopping);
        if (auto err = co_await rt->pg.stop(pg::StopMode::Fast, std::chrono::seconds(60))) {
            co_return failed(std::move(r), Failure::Failed, "stopping postgresql: " + err->message);
        }
        rt->publisher.show(std::nullopt);
    }
    spdlog::info("running pg_rewind from {} ({}:{})", leader, addr->first, addr->second);
    if (auto err = co_await rt->pg.rewind_from(addr->first, addr->second)) {
        spdlog::error("pg_rewind from {} failed: {}", leader, err->message);
        co_return failed(std::move(r), rewind_failure(*err), err->message);
    }
    co_return co_await start_replica(rt, leader, std::move(r));
}

net::awaitable<ActionResult> reinitialize(std::shared_ptr<Runtime> rt,
                                          std::string leader,
                                          ActionResult r) {
    if (rt->observer.pg().postmaster_running) {
        if (auto err = co_await rt->pg.stop(pg::StopMode::Immediate, std::chrono::seconds(60))) {
            co_return failed(std::move(r), Failure::Failed, err->message);
        }
    }
    if (auto err = co_await rt->pg.remove_data_directory()) {
        co_return failed(std::move(r), Failure::Failed, err->message);
    }
    co_return co_await create_replica(rt, leader, std::move(r));
}

net::awaitable<ActionResult> reload(std::shared_ptr<Runtime> rt, ActionResult r) {
    spdlog::info("the configuration changed: rewriting the managed files and reloading");
    const auto files = desired_files(rt->settings,
                                     rt->observer.dynamic(),
                                     rt->observer.cluster(),
                                     rt->state.role,
                                     rt->state.following,
                                     server_version(*rt));
    if (auto err = co_await write_files(rt, files, &r)) {
        co_return failed(std::move(r), Failure::Failed, err->message);
    }
    if (rt->observer.pg().postmaster_running) {
        if (auto err = co_await rt->pg.reload()) {
            co_return failed(std::move(r), Failure::Failed, err->message);
        }
    }
    co_return r;
}

net::awaitable<ActionResult> restart(std::shared_ptr<Runtime> rt, ActionResult r) {
    rt->publisher.show(core::PgState::Restarting);
    if (auto err = co_await rt->pg.stop(pg::StopMode::Fast, std::chrono::seconds(60))) {
        co_return failed(std::move(r), Failure::Failed, err->message);
    }
    const auto files = desired_files(rt->settings,
                                     rt->observer.dynamic(),
                                     rt->observer.cluster(),
                                     rt->state.role,
                                     rt->state.following,
                                     server_version(*rt));
    if (auto err = co_await write_files(rt, files, &r)) {
        co_return failed(std::move(r), Failure::Failed, err->message);
    }
    if (auto err = co_await rt->pg.start(pg_ctl_timeout(*rt))) {
        co_return failed(std::move(r), Failure::Failed, err->message);
    }
    co_return r;
}

}  // namespace

net::awaitable<ActionResult> run_long_action(std::shared_ptr<Runtime> rt, core::Action a) {
    ActionResult r = result_of(a);
    switch (a.kind) {
        case core::ActionKind::Bootstrap:
            co_return co_await bootstrap(rt, std::move(r));
        case core::ActionKind::StartPrimary:
            co_return co_await start_primary(rt, std::move(r));
        case core::ActionKind::Promote:
            co_return co_await promote(rt, a, std::move(r));
        case core::ActionKind::Demote:
            co_return co_await demote(rt, a, std::move(r));
        case core::ActionKind::WaitForCandidate:
            co_return co_await wait_for_candidate(rt, a, std::move(r));
        case core::ActionKind::CreateReplica:
            co_return co_await create_replica(rt, a.target, std::move(r));
        case core::ActionKind::StartReplica:
            co_return co_await start_replica(rt, a.target, std::move(r));
        case core::ActionKind::Follow:
            co_return co_await follow(rt, a.target, std::move(r));
        case core::ActionKind::Rewind:
            co_return co_await rewind(rt, a.target, std::move(r));
        case core::ActionKind::Reinitialize:
            co_return co_await reinitialize(rt, a.target, std::move(r));
        case core::ActionKind::Reload:
            co_return co_await reload(rt, std::move(r));
        case core::ActionKind::Restart:
            co_return co_await restart(rt, std::move(r));
        default:
            co_return failed(std::move(r), Failure::Failed, "not a long action");
    }
}

}  // namespace pgwarden::runtime
