#include "runtime/ha_loop.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

#include "config/dynamic.hpp"
#include "config/pg_parameters.hpp"
#include "core/decide.hpp"
#include "dcs/dcs.hpp"
#include "pg/postgres.hpp"
#include "runtime/rest/status_json.hpp"

namespace net = boost::asio;

namespace pgwarden::runtime {
namespace {

using namespace std::chrono_literals;

std::int64_t epoch_seconds() { return static_cast<std::int64_t>(std::time(nullptr)); }

pg::StopMode to_stop_mode(core::StopKind k) {
    return k == core::StopKind::Immediate ? pg::StopMode::Immediate : pg::StopMode::Fast;
}

}  // namespace

struct HaLoop::Impl : std::enable_shared_from_this<HaLoop::Impl> {
    Impl(net::any_io_executor ex,
         core::Settings settings,
         dcs::Dcs& dcs,
         pg::Postgres& pg,
         MonotonicClock clock)
        : ex_(ex),
          settings_(std::move(settings)),
          dcs_(dcs),
          pg_(pg),
          clock_(std::move(clock)),
          wake_timer_(ex),
          fence_timer_(ex) {
        dynamic_ = settings_.bootstrap.dcs;
        auto st = std::make_shared<core::NodeStatus>();
        st->name = settings_.name;
        st->scope = settings_.scope;
        st->tags = settings_.tags;
        st->dynamic = dynamic_;
        status_ = st;
        conn_url_ = "postgres://" + settings_.postgresql.connect_address + "/" +
                    settings_.postgresql.database;
        api_url_ = "http://" + settings_.restapi.connect_address + "/patroni";
    }

    net::any_io_executor ex_;
    core::Settings settings_;
    dcs::Dcs& dcs_;
    pg::Postgres& pg_;
    MonotonicClock clock_;
    net::steady_timer wake_timer_;
    net::steady_timer fence_timer_;

    core::DynamicSettings dynamic_;
    std::string conn_url_;
    std::string api_url_;

    bool shutdown_requested_ = false;
    bool wake_pending_ = false;
    bool stopped_ = false;
    std::optional<int> exit_code_;

    core::Role role_ = core::Role::Uninitialized;
    std::optional<core::MonoMs> lease_until_;
    std::optional<std::string> action_;  // running long action
    std::optional<core::PgState> state_override_;  // state while a long action runs
    std::string last_reason_;
    std::string last_member_json_;

    std::optional<core::Cluster> cluster_;
    std::shared_ptr<const core::Cluster> last_good_cluster_;
    std::optional<core::MonoMs> cluster_read_at_;
    std::int64_t dcs_last_seen_ = 0;
    core::PgObservation pg_obs_;
    core::MonoMs next_run_ = 0;

    std::shared_ptr<const core::NodeStatus> status_;

    core::MonoMs now() const { return clock_(); }
    core::MonoMs ttl_ms() const { return static_cast<core::MonoMs>(dynamic_.ttl) * 1000; }

    void wakeup() {
        wake_pending_ = true;
        wake_timer_.cancel();
    }

    // ---- observation -------------------------------------------------------------------

    net::awaitable<void> observe() {
        auto cluster = co_await dcs_.get_cluster();
        if (cluster) {
            cluster_ = std::move(*cluster);
            last_good_cluster_ = std::make_shared<const core::Cluster>(*cluster_);
            cluster_read_at_ = now();
            dcs_last_seen_ = epoch_seconds();
            apply_dynamic_config();
        } else {
            if (cluster_ || last_reason_.find("DCS") == std::string::npos) {
                spdlog::warn("DCS read failed: {}", cluster.error().message());
            }
            cluster_.reset();
        }
        pg_obs_ = co_await pg_.observe();
    }

    void apply_dynamic_config() {
        if (!cluster_ || !cluster_->config_json) {
            return;
        }
        auto parsed = config::parse_dynamic_json(*cluster_->config_json);
        for (const auto& p : parsed.problems) {
            spdlog::debug("dynamic config: {}: {}", p.path, p.message);
        }
        const bool timing_changed = parsed.settings.ttl != dynamic_.ttl ||
                                    parsed.settings.loop_wait != dynamic_.loop_wait ||
                                    parsed.settings.retry_timeout != dynamic_.retry_timeout;
        dynamic_ = parsed.settings;
        if (timing_changed) {
            spdlog::info("dynamic configuration: ttl={} loop_wait={} retry_timeout={}",
                         dynamic_.ttl,
                         dynamic_.loop_wait,
                         dynamic_.retry_timeout);
            dcs_.set_timing({dynamic_.ttl, dynamic_.loop_wait, dynamic_.retry_timeout});
        }
    }

    core::Snapshot snapshot(bool lock_lost) const {
        core::Snapshot s;
        s.name = settings_.name;
        s.dynamic = dynamic_;
        s.tags = settings_.tags;
        s.cluster = cluster_;
        if (!cluster_) {
            s.dcs_error = "DCS is not accessible";
        }
        s.pg = pg_obs_;
        s.local.role = role_;
        s.local.lease_valid = lease_until_ && now() < *lease_until_;
        s.local.lock_lost = lock_lost;
        s.local.action_in_progress = action_;
        return s;
    }

    // ---- the lease and the fence ----------------------------------------------------------

    // A lock update that started at `started` succeeded: the DCS keeps the key for ttl from
    // then at least. Arm the fence to stop a writable PostgreSQL before that runs out, in case
    // the loop cannot renew (DESIGN.md invariant 1).
    void lease_renewed(core::MonoMs started) {
        lease_until_ = started + ttl_ms();
        const core::MonoMs margin = std::max<core::MonoMs>(1000, ttl_ms() / 10);
        const core::MonoMs fire_in = std::max<core::MonoMs>(0, *lease_until_ - margin - now());
        fence_timer_.expires_after(std::chrono::milliseconds(fire_in));
        fence_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (!ec) {
                self->fence();
            }
        });
    }

    void lease_lost() {
        lease_until_.reset();
        fence_timer_.cancel();
    }

    void fence() {
        if (!lease_until_) {
            return;
        }
        spdlog::error(
            "leader lease expires in less than the safety margin and could not be renewed: "
            "stopping postgresql now so it cannot accept writes without the lock");
        lease_until_.reset();
        role_ = core::Role::Demoted;
        net::co_spawn(ex_, fence_stop(shared_from_this()), [](std::exception_ptr e) {
            if (e) {
                spdlog::error("fence: stopping postgresql failed with an exception");
            }
        });
    }

    static net::awaitable<void> fence_stop(std::shared_ptr<Impl> self) {
        auto st = co_await self->pg_.stop(pg::StopMode::Immediate, std::chrono::seconds(30));
        if (st) {
            spdlog::error("fence: {}", st->message);
        }
        self->wakeup();
    }

    // ---- actions --------------------------------------------------------------------------

    std::optional<std::int64_t> last_lsn() const {
        if (pg_obs_.query && !pg_obs_.query->in_recovery) {
            return pg_obs_.query->wal_location;
        }
        return std::nullopt;
    }

    pg::ConfigFiles primary_config_files() const {
        pg::ConfigFiles files;
        std::vector<config::Problem> notes;
        const int version = pg_obs_.query ? pg_obs_.query->server_version : 150000;
        files.parameters = config::effective_parameters(settings_, dynamic_, version, &notes);
        files.pg_hba = settings_.postgresql.pg_hba.empty() ? dynamic_.postgresql.pg_hba
                                                           : settings_.postgresql.pg_hba;
        files.pg_ident = settings_.postgresql.pg_ident.empty() ? dynamic_.postgresql.pg_ident
                                                               : settings_.postgresql.pg_ident;
        return files;
    }

    void start_long_action(std::string name, core::Action action) {
        action_ = name;
        net::co_spawn(ex_,
                      run_long_action(shared_from_this(), std::move(name), action),
                      [self = shared_from_this()](std::exception_ptr e) {
                          if (e) {
                              try {
                                  std::rethrow_exception(e);
                              } catch (const std::exception& ex) {
                                  spdlog::error("long action failed with an exception: {}",
                                                ex.what());
                              }
                              self->action_.reset();
                              self->state_override_.reset();
                              self->exit_code_ = kExitInternalBug;
                              self->shutdown_requested_ = true;
                              self->wakeup();
                          }
                      });
    }

    static net::awaitable<void> run_long_action(std::shared_ptr<Impl> self,
                                                std::string name,
                                                core::Action action) {
        spdlog::info("starting long action: {}", name);
        switch (action.kind) {
            case core::ActionKind::Bootstrap: co_await self->bootstrap(); break;
            case core::ActionKind::StartPrimary: co_await self->start_primary(); break;
            case core::ActionKind::Promote: co_await self->promote(); break;
            case core::ActionKind::Demote: co_await self->demote(action); break;
            default: break;
        }
        spdlog::info("long action finished: {}", name);
        self->action_.reset();
        self->state_override_.reset();
        self->publish();
        self->wakeup();
    }

    net::awaitable<void> bootstrap() {
        auto won = co_await dcs_.initialize("", true);
        if (!won || !*won) {
            spdlog::info("bootstrap: another node is initializing the cluster (initialize key "
                         "exists or the DCS failed)");
            co_return;
        }
        spdlog::info("bootstrap: won the initialize race, running initdb");
        state_override_ = core::PgState::Initdb;
        publish();
        if (auto err = co_await pg_.initdb()) {
            spdlog::error("bootstrap: {}", err->message);
            state_override_ = core::PgState::InitdbFailed;
            co_await dcs_.cancel_initialization();
            move_data_dir_aside();
            exit_code_ = kExitPostgresUnusable;
            shutdown_requested_ = true;
            co_return;
        }
        if (auto err = co_await pg_.write_config(primary_config_files())) {
            co_await fail_bootstrap(err->message);
            co_return;
        }
        state_override_ = core::PgState::Starting;
        publish();
        if (auto err = co_await pg_.start(std::chrono::seconds(settings_.postgresql.pg_ctl_timeout))) {
            co_await fail_bootstrap(err->message);
            co_return;
        }
        if (auto err = co_await pg_.create_roles()) {
            co_await fail_bootstrap(err->message);
            co_return;
        }
        pg_obs_ = co_await pg_.observe();
        if (!pg_obs_.sysid) {
            co_await fail_bootstrap("the system identifier could not be read after initdb");
            co_return;
        }
        auto init = co_await dcs_.initialize(*pg_obs_.sysid, false);
        if (!init) {
            spdlog::warn("bootstrap: writing the initialize key failed: {}; the leader will retry",
                         init.error().message());
        }
        auto cfg = co_await dcs_.set_config(settings_.bootstrap.dcs_json, std::nullopt);
        if (!cfg) {
            spdlog::warn("bootstrap: writing the config key failed: {}; the leader will retry",
                         cfg.error().message());
        }
        const core::MonoMs started = now();
        auto got = co_await dcs_.attempt_to_acquire_leader();
        if (got && *got) {
            lease_renewed(started);
            role_ = core::Role::Primary;
            spdlog::info("bootstrap: cluster initialized (system identifier {}), acquired the "
                         "leader lock",
                         *pg_obs_.sysid);
        } else {
            spdlog::error("bootstrap: could not take the leader lock after initializing the "
                          "cluster; the next cycle decides");
        }
    }

    net::awaitable<void> fail_bootstrap(std::string why) {
        spdlog::error("bootstrap failed: {}", why);
        co_await pg_.stop(pg::StopMode::Immediate, std::chrono::seconds(30));
        co_await dcs_.cancel_initialization();
        move_data_dir_aside();
        exit_code_ = kExitPostgresUnusable;
        shutdown_requested_ = true;
    }

    void move_data_dir_aside() {
        namespace fs = std::filesystem;
        const fs::path dir = settings_.postgresql.data_dir;
        std::error_code ec;
        if (!fs::exists(dir, ec) || fs::is_empty(dir, ec)) {
            return;
        }
        const fs::path aside = dir.string() + "_" + std::to_string(epoch_seconds()) + ".failed";
        fs::rename(dir, aside, ec);
        if (ec) {
            spdlog::error("could not move the data directory {} aside: {}", dir.string(), ec.message());
        } else {
            spdlog::error("moved the failed data directory aside to {}", aside.string());
        }
    }

    net::awaitable<void> start_primary() {
        state_override_ = core::PgState::Starting;
        publish();
        if (auto err = co_await pg_.write_config(primary_config_files())) {
            spdlog::error("start primary: {}", err->message);
            co_return;
        }
        if (auto err =
                co_await pg_.start(std::chrono::seconds(settings_.postgresql.pg_ctl_timeout))) {
            spdlog::error("start primary: {}", err->message);
            state_override_ = core::PgState::StartFailed;
            co_return;
        }
        role_ = core::Role::Primary;
    }

    net::awaitable<void> promote() {
        if (auto err = co_await pg_.promote(std::chrono::seconds(settings_.postgresql.pg_ctl_timeout))) {
            spdlog::error("promote: {}", err->message);
            co_return;
        }
        role_ = core::Role::Primary;
    }

    net::awaitable<void> demote(core::Action action) {
        state_override_ = core::PgState::Stopping;
        publish();
        if (auto err = co_await pg_.stop(to_stop_mode(action.stop), std::chrono::seconds(60))) {
            spdlog::error("demote: {}", err->message);
            state_override_ = core::PgState::StopFailed;
            co_return;
        }
        role_ = core::Role::Demoted;
        if (action.release_lock) {
            co_await dcs_.delete_leader(std::nullopt);
            lease_lost();
        }
    }

    // Executes the plan's actions in order. Returns true if the cycle must be re-run at once
    // (the lock turned out to be lost, or the DCS failed mid-cycle).
    net::awaitable<bool> execute(const core::Plan& plan, bool* lock_lost, bool* dcs_failed) {
        for (const auto& a : plan.actions) {
            switch (a.kind) {
                case core::ActionKind::UpdateLock: {
                    const core::MonoMs started = now();
                    auto r = co_await dcs_.update_leader(last_lsn());
                    if (!r) {
                        spdlog::warn("update leader lock failed: {}", r.error().message());
                        *dcs_failed = true;
                        co_return true;
                    }
                    if (!*r) {
                        spdlog::warn("the leader lock is no longer ours");
                        lease_lost();
                        *lock_lost = true;
                        co_return true;
                    }
                    lease_renewed(started);
                    break;
                }
                case core::ActionKind::AcquireLock: {
                    const core::MonoMs started = now();
                    auto r = co_await dcs_.attempt_to_acquire_leader();
                    if (!r || !*r) {
                        spdlog::info("failed to acquire the leader lock{}",
                                     r ? "" : ": " + r.error().message());
                        co_return false;  // skip the rest of the plan
                    }
                    spdlog::info("acquired the leader lock");
                    lease_renewed(started);
                    if (pg_obs_.query && !pg_obs_.query->in_recovery) {
                        role_ = core::Role::Primary;
                    }
                    break;
                }
                case core::ActionKind::ReleaseLock: {
                    co_await dcs_.delete_leader(last_lsn());
                    lease_lost();
                    break;
                }
                case core::ActionKind::WriteInitialize: {
                    if (pg_obs_.sysid) {
                        const bool create_new = !cluster_ || !cluster_->initialize;
                        co_await dcs_.initialize(*pg_obs_.sysid, create_new);
                    }
                    break;
                }
                case core::ActionKind::WriteConfig: {
                    co_await dcs_.set_config(settings_.bootstrap.dcs_json, std::nullopt);
                    break;
                }
                case core::ActionKind::Bootstrap:
                    start_long_action("bootstrap", a);
                    co_return false;
                case core::ActionKind::StartPrimary:
                    start_long_action("starting primary", a);
                    co_return false;
                case core::ActionKind::Promote:
                    role_ = core::Role::Promoted;
                    start_long_action("promote", a);
                    co_return false;
                case core::ActionKind::Demote:
                    if (!a.release_lock) {
                        lease_lost();
                    }
                    start_long_action(a.stop == core::StopKind::Immediate ? "demote (immediate)"
                                                                         : "demote (fast)",
                                      a);
                    co_return false;
                case core::ActionKind::Fatal:
                    exit_code_ = kExitBadOnDiskState;
                    shutdown_requested_ = true;
                    co_return false;
            }
        }
        co_return false;
    }

    // ---- one cycle ----------------------------------------------------------------------

    net::awaitable<void> cycle() {
        co_await observe();
        if (pg_obs_.query && !action_) {
            // What PostgreSQL says wins over what we believed, except mid-promotion.
            if (!pg_obs_.query->in_recovery) {
                role_ = core::Role::Primary;
            } else if (role_ != core::Role::Promoted) {
                role_ = core::Role::Replica;
            }
        }
        bool lock_lost = false;
        bool dcs_failed = false;
        for (int attempt = 0; attempt < 3; ++attempt) {
            if (dcs_failed) {
                cluster_.reset();
            }
            const core::Plan plan = core::decide(snapshot(lock_lost));
            if (plan.reason != last_reason_) {
                spdlog::info("{}", plan.reason);
                last_reason_ = plan.reason;
            } else {
                spdlog::debug("{}", plan.reason);
            }
            if (plan.role != role_ && !plan.actions.empty()) {
                spdlog::info("transition from \"{}\" to \"{}\": {}",
                             core::to_string(role_),
                             core::to_string(plan.role),
                             plan.reason);
            }
            const bool again = co_await execute(plan, &lock_lost, &dcs_failed);
            if (!again) {
                break;
            }
        }
        if (cluster_) {
            co_await touch_member();
        }
        publish();
    }

    net::awaitable<void> touch_member() {
        const auto st = build_status();
        std::string json = rest::member_key_json(*st, conn_url_, api_url_);
        if (json == last_member_json_) {
            co_return;
        }
        auto r = co_await dcs_.touch_member(json);
        if (r && *r) {
            last_member_json_ = std::move(json);
        }
    }

    std::shared_ptr<core::NodeStatus> build_status() const {
        auto st = std::make_shared<core::NodeStatus>();
        st->name = settings_.name;
        st->scope = settings_.scope;
        st->role = role_;
        st->tags = settings_.tags;
        st->dynamic = dynamic_;
        st->sysid = pg_obs_.sysid;
        if (state_override_) {
            st->state = *state_override_;
        } else if (pg_obs_.postmaster_running) {
            st->state = pg_obs_.query ? core::PgState::Running : core::PgState::Starting;
        } else {
            st->state = core::PgState::Stopped;
        }
        if (pg_obs_.postmaster_running) {
            st->pg = pg_obs_.query;
        }
        st->leader_lease_until = lease_until_;
        if (cluster_read_at_) {
            st->cluster_valid_until = *cluster_read_at_ + ttl_ms();
        }
        st->cluster = last_good_cluster_;
        st->dcs_last_seen = dcs_last_seen_;
        st->next_run = next_run_;
        st->last_outcome = last_reason_;
        return st;
    }

    void publish() { status_ = build_status(); }

    // ---- the loop -----------------------------------------------------------------------

    net::awaitable<int> run() {
        auto weak = weak_from_this();
        dcs_.set_timing({dynamic_.ttl, dynamic_.loop_wait, dynamic_.retry_timeout});
        dcs_.start([weak] {
            // The leader does not react to leader-key events: they are its own renewals.
            if (auto self = weak.lock(); self && !self->lease_until_) {
                self->wakeup();
            }
        });
        pg_.start_supervision([weak] {
            if (auto self = weak.lock()) {
                if (self->state_override_ == core::PgState::Stopping) {
                    spdlog::info("postmaster exited");
                } else {
                    spdlog::warn("postmaster exited unexpectedly");
                }
                self->wakeup();
            }
        });
        while (!shutdown_requested_) {
            const core::MonoMs cycle_start = now();
            next_run_ = cycle_start + static_cast<core::MonoMs>(dynamic_.loop_wait) * 1000;
            wake_pending_ = false;
            co_await cycle();
            if (shutdown_requested_) {
                break;
            }
            const core::MonoMs wait = next_run_ - now();
            if (wait > 0 && !wake_pending_) {
                wake_timer_.expires_after(std::chrono::milliseconds(wait));
                co_await wake_timer_.async_wait(net::as_tuple(net::use_awaitable));
            }
        }
        co_await shutdown();
        co_return exit_code_.value_or(kExitOk);
    }

    net::awaitable<void> shutdown() {
        spdlog::info("shutting down");
        // Wait (bounded) for a running long action: stopping PostgreSQL under it would race.
        for (int i = 0; action_ && i < 600; ++i) {
            wake_timer_.expires_after(100ms);
            co_await wake_timer_.async_wait(net::as_tuple(net::use_awaitable));
        }
        const bool was_leader = lease_until_.has_value();
        pg_obs_ = co_await pg_.observe();
        if (pg_obs_.postmaster_running) {
            state_override_ = core::PgState::Stopping;
            publish();
            auto lsn = last_lsn();
            if (auto err = co_await pg_.stop(pg::StopMode::Fast, std::chrono::seconds(60))) {
                spdlog::error("shutdown: {}; keeping the leader key", err->message);
                dcs_.stop();
                co_return;
            }
            spdlog::info("postgresql stopped");
            if (was_leader) {
                auto r = co_await dcs_.delete_leader(lsn);
                if (r && *r) {
                    spdlog::info("released the leader lock");
                }
            }
        } else if (was_leader) {
            co_await dcs_.delete_leader(std::nullopt);
        }
        lease_lost();
        co_await dcs_.close_session();
        dcs_.stop();
        state_override_ = core::PgState::Stopped;
        publish();
    }
};

HaLoop::HaLoop(net::any_io_executor ex,
               core::Settings settings,
               dcs::Dcs& dcs,
               pg::Postgres& pg,
               MonotonicClock clock)
    : impl_(std::make_shared<Impl>(ex, std::move(settings), dcs, pg, std::move(clock))) {}

HaLoop::~HaLoop() = default;

net::awaitable<int> HaLoop::run() {
    auto impl = impl_;
    co_return co_await impl->run();
}

void HaLoop::request_shutdown() {
    impl_->shutdown_requested_ = true;
    impl_->wakeup();
}

void HaLoop::wakeup() { impl_->wakeup(); }

std::shared_ptr<const core::NodeStatus> HaLoop::status() const { return impl_->status_; }

}  // namespace pgwarden::runtime
