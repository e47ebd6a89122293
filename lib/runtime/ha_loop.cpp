#include "runtime/ha_loop.hpp"

#include "config/dynamic.hpp"
#include "config/pg_parameters.hpp"
#include "core/decide.hpp"
#include "dcs/dcs.hpp"
#include "pg/config_files.hpp"
#include "pg/postgres.hpp"
#include "runtime/member_probe.hpp"
#include "runtime/rest/api_actions.hpp"
#include "runtime/rest/status_json.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

namespace net = boost::asio;

namespace pgwarden::runtime {
namespace {

using namespace std::chrono_literals;

std::int64_t epoch_seconds() {
    return static_cast<std::int64_t>(std::time(nullptr));
}

pg::StopMode to_stop_mode(core::StopKind k) {
    return k == core::StopKind::Immediate ? pg::StopMode::Immediate : pg::StopMode::Fast;
}

std::int64_t epoch_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// "postgres://host:port/db" -> host, port (0 if absent).
std::pair<std::string, int> host_port_of(const std::string& conn_url) {
    std::string rest = conn_url;
    if (auto pos = rest.find("://"); pos != std::string::npos) {
        rest = rest.substr(pos + 3);
    }
    if (auto pos = rest.find('/'); pos != std::string::npos) {
        rest = rest.substr(0, pos);
    }
    if (auto at = rest.rfind('@'); at != std::string::npos) {
        rest = rest.substr(at + 1);
    }
    auto colon = rest.rfind(':');
    if (colon == std::string::npos || rest.find(']', colon) != std::string::npos) {
        return {rest, 5432};
    }
    std::string host = rest.substr(0, colon);
    if (host.size() > 1 && host.front() == '[') {
        host = host.substr(1, host.size() - 2);
    }
    return {host, std::atoi(rest.substr(colon + 1).c_str())};
}

// ISO 8601 with a timezone (as Patroni stores scheduled_at) -> epoch ms.
std::optional<std::int64_t> parse_iso8601_ms(const std::string& text) {
    int y = 0, mo = 0, d = 0, h = 0, mi = 0;
    double sec = 0;
    char sep = 0;
    int consumed = 0;
    if (std::sscanf(text.c_str(),
                    "%4d-%2d-%2d%c%2d:%2d:%lf%n",
                    &y,
                    &mo,
                    &d,
                    &sep,
                    &h,
                    &mi,
                    &sec,
                    &consumed) < 7 ||
        (sep != 'T' && sep != 't' && sep != ' ')) {
        return std::nullopt;
    }
    std::string tz = text.substr(static_cast<std::size_t>(consumed));
    int offset_min = 0;
    if (tz == "Z" || tz == "z") {
        offset_min = 0;
    } else if (tz.size() >= 3 && (tz[0] == '+' || tz[0] == '-')) {
        int th = 0, tm = 0;
        if (std::sscanf(tz.c_str() + 1, "%2d:%2d", &th, &tm) < 1 &&
            std::sscanf(tz.c_str() + 1, "%2d%2d", &th, &tm) < 1) {
            return std::nullopt;
        }
        offset_min = (tz[0] == '-' ? -1 : 1) * (th * 60 + tm);
    } else {
        return std::nullopt;  // Patroni requires the timezone
    }
    std::tm t{};
    t.tm_year = y - 1900;
    t.tm_mon = mo - 1;
    t.tm_mday = d;
    t.tm_hour = h;
    t.tm_min = mi;
    t.tm_sec = static_cast<int>(sec);
    const std::int64_t base = static_cast<std::int64_t>(timegm(&t));
    return (base - offset_min * 60) * 1000 +
           static_cast<std::int64_t>((sec - static_cast<int>(sec)) * 1000);
}

std::string iso_now() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    return buf;
}

}  // namespace

// The next cycle after a Plan with retry_soon (instead of loop_wait).
constexpr core::MonoMs kRetrySoonMs = 250;

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
          fence_timer_(ex),
          api_(this) {
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

    // The REST API's unsafe endpoints, served by this loop.
    class Api final : public rest::ApiActions {
    public:
        explicit Api(Impl* impl) : impl_(impl) {}
        net::awaitable<rest::ApiResult<core::Cluster>> read_cluster() override {
            auto r = co_await impl_->dcs_.get_cluster();
            if (!r) {
                co_return r.error();
            }
            co_return std::move(*r);
        }
        net::awaitable<rest::ApiResult<bool>> write_failover(
            std::string json, std::optional<std::int64_t> version) override {
            auto r = co_await impl_->dcs_.set_failover(std::move(json), version);
            if (!r) {
                co_return rest::ApiResult<bool>(boost::system::in_place_error, r.error());
            }
            co_return *r;
        }
        net::awaitable<rest::ApiResult<bool>> write_config(
            std::string json, std::optional<std::int64_t> version) override {
            auto r = co_await impl_->dcs_.set_config(std::move(json), version);
            if (!r) {
                co_return rest::ApiResult<bool>(boost::system::in_place_error, r.error());
            }
            co_return *r;
        }
        net::awaitable<core::MemberProbe> probe_member(core::Member member) override {
            co_return co_await runtime::probe_member(impl_->ex_, std::move(member), 2s);
        }
        net::awaitable<std::shared_ptr<const core::NodeStatus>> fresh_status() override {
            co_return co_await impl_->fresh_status();
        }
        void wakeup() override { impl_->wakeup(); }
        void reload() override {
            spdlog::info(
                "reload requested: rewriting the managed configuration and reloading postgresql");
            if (!impl_->action_) {
                impl_->start_long_action("reload", core::Action{}, /*reload=*/true);
            }
        }
        net::awaitable<rest::ActionOutcome> restart(rest::RestartRequest) override {
            co_return co_await impl_->restart_now();
        }
        rest::ActionOutcome schedule_restart(rest::RestartRequest request) override {
            if (impl_->scheduled_restart_) {
                return {409, "Another restart is already scheduled"};
            }
            impl_->scheduled_restart_ = request;
            impl_->publish();
            return {202, "Restart scheduled"};
        }
        rest::ActionOutcome delete_scheduled_restart() override {
            if (!impl_->scheduled_restart_) {
                return {404, "no restarts are scheduled"};
            }
            impl_->scheduled_restart_.reset();
            impl_->publish();
            return {200, "scheduled restart deleted"};
        }
        rest::ActionOutcome reinitialize(bool, bool) override {
            if (impl_->action_) {
                return {503, *impl_->action_ + " already in progress"};
            }
            if (!impl_->cluster_ || !impl_->cluster_->is_locked()) {
                return {503, "Cluster has no leader, can not reinitialize"};
            }
            const std::string leader = impl_->cluster_->leader->name;
            if (leader == impl_->settings_.name) {
                return {503, "I am the leader, can not reinitialize"};
            }
            core::Action a;
            a.kind = core::ActionKind::Reinitialize;
            a.target = leader;
            impl_->start_long_action("reinitialize", a);
            return {200, "reinitialize started"};
        }

    private:
        Impl* impl_;
    };

    net::any_io_executor ex_;
    core::Settings settings_;
    dcs::Dcs& dcs_;
    pg::Postgres& pg_;
    MonotonicClock clock_;
    net::steady_timer wake_timer_;
    net::steady_timer fence_timer_;
    Api api_;

    core::DynamicSettings dynamic_;
    std::string conn_url_;
    std::string api_url_;

    bool shutdown_requested_ = false;
    bool wake_pending_ = false;
    std::optional<int> exit_code_;

    core::Role role_ = core::Role::Uninitialized;
    std::optional<core::MonoMs> lease_until_;
    std::optional<std::string> action_;            // running long action
    std::optional<core::PgState> state_override_;  // state while a long action runs
    std::string last_reason_;
    std::optional<std::string> following_;  // leader our primary_conninfo points at
    std::optional<std::string> rewind_failed_;
    bool replica_start_failed_ = false;
    std::string rewind_failed_leader_;
    std::optional<core::MonoMs> not_streaming_since_;
    int streamed_timeline_ = 0;        // highest timeline streamed on since the postmaster started
    std::string streamed_pm_start_;    // ... whose start time this is
    std::string written_signature_;    // parameters/pg_hba/pg_ident we last wrote
    bool checkpoint_pending_ = false;  // promoted, post-promote CHECKPOINT not done yet
    std::optional<rest::RestartRequest> scheduled_restart_;
    std::vector<std::string> applied_slots_;
    bool slots_applied_ = false;
    std::int64_t slots_advanced_to_ = 0;  // replica: replay position the slots were moved to
    std::string slots_pm_start_;          // postmaster start time when the slots were checked
    int history_timeline_ = 0;            // the timeline whose history we last wrote

    std::optional<core::Cluster> cluster_;
    std::shared_ptr<const core::Cluster> last_good_cluster_;
    std::vector<core::Member> old_members_;  // members of the last view that had a leader
    std::optional<core::MonoMs> cluster_read_at_;
    std::int64_t dcs_last_seen_ = 0;
    core::PgObservation pg_obs_;
    core::MonoMs next_run_ = 0;

    std::shared_ptr<const core::NodeStatus> status_;

    core::MonoMs now() const { return clock_(); }
    core::MonoMs ttl_ms() const { return static_cast<core::MonoMs>(dynamic_.ttl) * 1000; }
    bool use_pg_rewind() const {
        return settings_.postgresql.use_pg_rewind.value_or(dynamic_.postgresql.use_pg_rewind);
    }
    std::chrono::seconds pg_ctl_timeout() const {
        return std::chrono::seconds(std::max(settings_.postgresql.pg_ctl_timeout, 1));
    }

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
            if (cluster_->is_locked()) {
                old_members_ = cluster_->members;
            }
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
        s.local.following = following_;
        s.local.rewind_failed = rewind_failed_;
        s.local.replica_start_failed = replica_start_failed_;
        s.local.replica_not_streaming_ms = not_streaming_since_ ? now() - *not_streaming_since_ : 0;
        s.local.streamed_timeline = streamed_timeline_;
        // A rewind failure counts against the leader it was tried from only.
        if (rewind_failed_ && (!cluster_ || !cluster_->is_locked() ||
                               cluster_->leader->name != rewind_failed_leader_)) {
            s.local.rewind_failed.reset();
        }
        s.use_pg_rewind = use_pg_rewind();
        s.now_epoch_ms = epoch_ms();
        if (cluster_ && cluster_->failover && cluster_->failover->scheduled_at) {
            s.failover_scheduled_at_ms = parse_iso8601_ms(*cluster_->failover->scheduled_at);
            s.failover_schedule_invalid = !s.failover_scheduled_at_ms;
        }
        return s;
    }

    // Members to ask in the leader race: the current ones and those of the last view with a
    // leader (their keys may be gone already), never ourselves.
    std::vector<core::Member> members_to_probe() const {
        std::vector<core::Member> out;
        auto add = [&](const core::Member& m) {
            if (m.name == settings_.name || m.api_url.empty()) {
                return;
            }
            for (const auto& o : out) {
                if (o.name == m.name) {
                    return;
                }
            }
            out.push_back(m);
        };
        if (cluster_) {
            for (const auto& m : cluster_->members) {
                add(m);
            }
        }
        for (const auto& m : old_members_) {
            add(m);
        }
        return out;
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

    // ---- configuration files ----------------------------------------------------------------

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

    // Standby configuration following `leader` ("" = no leader known yet).
    pg::ConfigFiles replica_config_files(const std::string& leader) const {
        pg::ConfigFiles files = primary_config_files();
        std::map<std::string, std::string> recovery{{"recovery_target_timeline", "latest"}};
        const core::Member* m = cluster_ && !leader.empty() ? cluster_->member(leader) : nullptr;
        if (m != nullptr && !m->conn_url.empty()) {
            const auto [host, port] = host_port_of(m->conn_url);
            recovery["primary_conninfo"] = pg::primary_conninfo(settings_, host, port);
            if (dynamic_.postgresql.use_slots) {
                recovery["primary_slot_name"] = pg::slot_name_from_member_name(settings_.name);
            }
        }
        files.recovery = std::move(recovery);
        return files;
    }

    // Writes the managed configuration files and remembers what they say, so that a change of
    // the dynamic configuration can be told apart from what PostgreSQL already has.
    net::awaitable<pg::Status> write_files(pg::ConfigFiles files) {
        const std::string signature = files_signature(files);
        auto err = co_await pg_.write_config(std::move(files));
        if (!err) {
            written_signature_ = signature;
        }
        co_return err;
    }

    static std::string files_signature(const pg::ConfigFiles& f) {
        std::string sig;
        for (const auto& [k, v] : f.parameters) {
            sig += k + '=' + v + '\n';
        }
        for (const auto& l : f.pg_hba) {
            sig += "hba:" + l + '\n';
        }
        for (const auto& l : f.pg_ident) {
            sig += "ident:" + l + '\n';
        }
        return sig;
    }

    pg::ConfigFiles config_files_for_role() const {
        if (role_ == core::Role::Primary || role_ == core::Role::Promoted) {
            return primary_config_files();
        }
        return replica_config_files(following_.value_or(""));
    }

    // ---- long actions -----------------------------------------------------------------------

    // Runs `action` (or a configuration reload) as the one long action in progress.
    void start_long_action(std::string name, core::Action action, bool reload = false) {
        action_ = name;
        net::co_spawn(ex_,
                      run_long_action(shared_from_this(), std::move(name), action, reload),
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
                                                core::Action action,
                                                bool reload) {
        spdlog::info("starting long action: {}", name);
        if (reload) {
            co_await self->reload_config();
        } else {
            co_await self->run_action(action);
        }
        spdlog::info("long action finished: {}", name);
        self->action_.reset();
        self->state_override_.reset();
        self->publish();
        self->wakeup();
    }

    net::awaitable<void> run_action(core::Action action) {
        auto self = shared_from_this();
        switch (action.kind) {
            case core::ActionKind::Bootstrap:
                co_await self->bootstrap();
                break;
            case core::ActionKind::StartPrimary:
                co_await self->start_primary();
                break;
            case core::ActionKind::Promote:
                co_await self->promote();
                break;
            case core::ActionKind::Demote:
                co_await self->demote(action);
                break;
            case core::ActionKind::CreateReplica:
                co_await self->create_replica(action.target);
                break;
            case core::ActionKind::StartReplica:
                co_await self->start_replica(action.target);
                break;
            case core::ActionKind::Follow:
                co_await self->follow(action.target);
                break;
            case core::ActionKind::Rewind:
                co_await self->rewind(action.target);
                break;
            case core::ActionKind::Reinitialize:
                co_await self->reinitialize(action.target);
                break;
            default:
                break;
        }
    }

    net::awaitable<void> bootstrap() {
        auto won = co_await dcs_.initialize("", true);
        if (!won || !*won) {
            spdlog::info(
                "bootstrap: another node is initializing the cluster (initialize key "
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
        if (auto err = co_await write_files(primary_config_files())) {
            co_await fail_bootstrap(err->message);
            co_return;
        }
        state_override_ = core::PgState::Starting;
        publish();
        if (auto err = co_await pg_.start(pg_ctl_timeout())) {
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
            spdlog::info(
                "bootstrap: cluster initialized (system identifier {}), acquired the "
                "leader lock",
                *pg_obs_.sysid);
        } else {
            spdlog::error(
                "bootstrap: could not take the leader lock after initializing the "
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
            spdlog::error(
                "could not move the data directory {} aside: {}", dir.string(), ec.message());
        } else {
            spdlog::error("moved the failed data directory aside to {}", aside.string());
        }
    }

    net::awaitable<void> start_primary() {
        state_override_ = core::PgState::Starting;
        publish();
        if (auto err = co_await write_files(primary_config_files())) {
            spdlog::error("start primary: {}", err->message);
            co_return;
        }
        if (auto err = co_await pg_.start(pg_ctl_timeout())) {
            spdlog::error("start primary: {}", err->message);
            state_override_ = core::PgState::StartFailed;
            co_return;
        }
        role_ = core::Role::Primary;
        following_ = "";
    }

    // Slots the primary keeps: one per other member (use_slots).
    std::vector<std::string> wanted_slots() const {
        std::vector<std::string> names;
        if (!dynamic_.postgresql.use_slots || !cluster_) {
            return names;
        }
        // Members of the current view and of the last view that had a leader: a member whose
        // key is briefly missing (restarting daemon, session re-created) keeps its slot.
        for (const auto& m : members_to_probe()) {
            names.push_back(pg::slot_name_from_member_name(m.name));
        }
        std::sort(names.begin(), names.end());
        names.erase(std::unique(names.begin(), names.end()), names.end());
        return names;
    }

    net::awaitable<void> sync_slots() {
        auto names = wanted_slots();
        // A restarted, rewound or re-cloned PostgreSQL may have lost slots: check again.
        const std::string pm_start = pg_obs_.query ? pg_obs_.query->postmaster_start_time : "";
        if (!dynamic_.postgresql.use_slots ||
            (slots_applied_ && names == applied_slots_ && pm_start == slots_pm_start_)) {
            co_return;
        }
        if (auto err = co_await pg_.sync_physical_slots(names)) {
            spdlog::warn("replication slots: {}", err->message);
            co_return;
        }
        applied_slots_ = std::move(names);
        slots_applied_ = true;
        slots_advanced_to_ = 0;
        slots_pm_start_ = pm_start;
    }

    net::awaitable<void> advance_slots() {
        const std::int64_t replay = pg_obs_.query ? pg_obs_.query->replay_location : 0;
        if (!dynamic_.postgresql.use_slots || !slots_applied_ || applied_slots_.empty() ||
            replay <= slots_advanced_to_) {
            co_return;
        }
        if (auto err = co_await pg_.advance_physical_slots(applied_slots_)) {
            spdlog::warn("replication slots: {}", err->message);
            co_return;
        }
        slots_advanced_to_ = replay;
    }

    net::awaitable<void> promote() {
        checkpoint_pending_ = true;
        // Slots first: the other replicas re-point at us as soon as they see our lock.
        slots_applied_ = false;
        co_await sync_slots();
        if (auto err = co_await pg_.promote(pg_ctl_timeout())) {
            spdlog::error("promote: {}", err->message);
            checkpoint_pending_ = false;
            co_return;
        }
        role_ = core::Role::Primary;
        following_ = "";
        spdlog::info("promoted self to leader");
        // /primary answers 200 from here on, not only after the checkpoint below.
        pg_obs_ = co_await pg_.observe();
        publish();
        // pg_rewind on the former primary reads our timeline from pg_control, which only a
        // checkpoint updates (Patroni's checkpoint_after_promote).
        if (auto err = co_await pg_.execute("CHECKPOINT")) {
            spdlog::warn("post-promote checkpoint: {}", err->message);
        }
        checkpoint_pending_ = false;
        pg_obs_ = co_await pg_.observe();
        co_await write_history();
    }

    net::awaitable<void> write_history() {
        if (!pg_obs_.query || pg_obs_.query->in_recovery || !cluster_) {
            co_return;
        }
        const int tl = pg_obs_.query->timeline;
        if (tl <= 1 || tl == history_timeline_) {
            co_return;
        }
        auto lines = co_await pg_.read_timeline_history(tl);
        if (!lines) {
            co_return;
        }
        nlohmann::json out = nlohmann::json::array();
        int max_known = 0;
        for (const auto& h : cluster_->history) {
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
                out.push_back({h.timeline, h.lsn, h.reason, iso_now(), settings_.name});
            }
        }
        if (dynamic_.max_timelines_history > 0 &&
            out.size() > static_cast<std::size_t>(dynamic_.max_timelines_history)) {
            out.erase(out.begin(), out.end() - dynamic_.max_timelines_history);
        }
        auto r = co_await dcs_.set_history(out.dump());
        if (r && *r) {
            history_timeline_ = tl;
        }
    }

    net::awaitable<void> demote(core::Action action) {
        state_override_ = core::PgState::Stopping;
        publish();
        const auto lsn = last_lsn();
        if (auto err = co_await pg_.stop(to_stop_mode(action.stop), std::chrono::seconds(60))) {
            spdlog::error("demote: {}", err->message);
            state_override_ = core::PgState::StopFailed;
            co_return;
        }
        role_ = core::Role::Demoted;
        following_.reset();
        if (action.release_lock) {
            // Switchover: hand the key over only once a candidate has received our shutdown
            // checkpoint, so that nothing acknowledged is lost (Patroni's graceful demote). A
            // fast shutdown sends all WAL to connected replicas, but a candidate that was not
            // connected at that moment would promote without the tail.
            pg_obs_ = co_await pg_.observe();
            const std::int64_t checkpoint = pg_obs_.checkpoint_lsn;
            if (auto who = co_await wait_for_candidate(checkpoint)) {
                co_await dcs_.delete_leader(checkpoint > 0 ? std::optional<std::int64_t>(checkpoint)
                                                           : lsn);
                lease_lost();
                spdlog::info(
                    "demoted: {} has received the shutdown checkpoint; released the leader lock",
                    *who);
            } else {
                spdlog::error(
                    "switchover: no candidate received the shutdown checkpoint {} in time; "
                    "keeping the leader lock, clearing the request and starting as "
                    "primary again",
                    checkpoint);
                const auto version = cluster_ && cluster_->failover
                                         ? std::optional<std::int64_t>(cluster_->failover->version)
                                         : std::nullopt;
                co_await dcs_.set_failover("{}", version);
                role_ = core::Role::Primary;
            }
        }
    }

    // Probes the switchover candidate (or, without one, every other member) until one that
    // may take over reports WAL beyond `checkpoint`; bounded by 10 s.
    net::awaitable<std::optional<std::string>> wait_for_candidate(std::int64_t checkpoint) {
        std::vector<core::Member> candidates;
        const std::optional<std::string> named = cluster_ && cluster_->failover &&
                                                         cluster_->failover->member &&
                                                         !cluster_->failover->member->empty()
                                                     ? cluster_->failover->member
                                                     : std::nullopt;
        for (const auto& m : members_to_probe()) {
            if (!named || m.name == *named) {
                candidates.push_back(m);
            }
        }
        net::steady_timer pause(ex_);
        const core::MonoMs deadline = now() + 10000;
        while (!candidates.empty()) {
            auto probes = co_await probe_members(ex_, candidates, 1s);
            for (const auto& p : probes) {
                if (p.reachable && !p.nofailover && !p.is_primary && p.wal_position > checkpoint) {
                    co_return p.name;
                }
            }
            if (now() >= deadline) {
                break;
            }
            pause.expires_after(25ms);
            co_await pause.async_wait(net::as_tuple(net::use_awaitable));
        }
        co_return std::nullopt;
    }

    std::optional<std::pair<std::string, int>> member_address(const std::string& name) const {
        const core::Member* m = cluster_ ? cluster_->member(name) : nullptr;
        if (m == nullptr || m->conn_url.empty()) {
            return std::nullopt;
        }
        return host_port_of(m->conn_url);
    }

    net::awaitable<void> create_replica(std::string source) {
        auto addr = member_address(source);
        if (!addr) {
            co_return;
        }
        state_override_ = core::PgState::CreatingReplica;
        publish();
        spdlog::info(
            "cloning from {} ({}:{}) with pg_basebackup", source, addr->first, addr->second);
        if (auto err = co_await pg_.clone_from(
                addr->first, addr->second, settings_.postgresql.basebackup_args)) {
            spdlog::error("creating a replica from {} failed: {}", source, err->message);
            co_return;
        }
        const std::string leader =
            cluster_ && cluster_->is_locked() ? cluster_->leader->name : source;
        co_await start_replica(leader);
    }

    net::awaitable<void> start_replica(std::string leader) {
        state_override_ = core::PgState::Starting;
        publish();
        if (auto err = co_await write_files(replica_config_files(leader))) {
            spdlog::error("start replica: {}", err->message);
            co_return;
        }
        if (auto err = co_await pg_.start(pg_ctl_timeout())) {
            spdlog::error("start replica: {}", err->message);
            state_override_ = core::PgState::StartFailed;
            replica_start_failed_ = true;
            co_return;
        }
        replica_start_failed_ = false;
        role_ = core::Role::Replica;
        following_ = leader;
    }

    net::awaitable<void> follow(std::string leader) {
        if (auto err = co_await write_files(replica_config_files(leader))) {
            spdlog::error("follow {}: {}", leader, err->message);
            co_return;
        }
        if (auto err = co_await pg_.reload()) {
            spdlog::error("follow {}: {}", leader, err->message);
            co_return;
        }
        spdlog::info("following new leader {}", leader);
        following_ = leader;
    }

    net::awaitable<void> reload_config() {
        if (auto err = co_await write_files(config_files_for_role())) {
            spdlog::error("reload: {}", err->message);
            co_return;
        }
        if (pg_obs_.postmaster_running) {
            if (auto err = co_await pg_.reload()) {
                spdlog::error("reload: {}", err->message);
            }
        }
    }

    net::awaitable<void> rewind(std::string leader) {
        auto addr = member_address(leader);
        if (!addr) {
            co_return;
        }
        if (pg_obs_.postmaster_running) {
            state_override_ = core::PgState::Stopping;
            publish();
            if (auto err = co_await pg_.stop(pg::StopMode::Fast, std::chrono::seconds(60))) {
                spdlog::error("pg_rewind: stopping postgresql first: {}", err->message);
                co_return;
            }
            state_override_.reset();
        }
        spdlog::info("running pg_rewind from {} ({}:{})", leader, addr->first, addr->second);
        if (auto err = co_await pg_.rewind_from(addr->first, addr->second)) {
            spdlog::error("pg_rewind from {} failed: {}", leader, err->message);
            // An unreachable source is retried (the leader may be going away); anything else is
            // a verdict on this data directory against this leader.
            if (err->message.find("could not connect") == std::string::npos &&
                err->message.find("Connection refused") == std::string::npos &&
                err->message.find("timeout") == std::string::npos) {
                rewind_failed_ = err->message.substr(0, 300);
                rewind_failed_leader_ = leader;
            }
            co_return;
        }
        rewind_failed_.reset();
        co_await start_replica(leader);
    }

    net::awaitable<void> reinitialize(std::string leader) {
        if (pg_obs_.postmaster_running) {
            if (auto err = co_await pg_.stop(pg::StopMode::Immediate, std::chrono::seconds(60))) {
                spdlog::error("reinitialize: {}", err->message);
                co_return;
            }
        }
        if (auto err = co_await pg_.remove_data_directory()) {
            spdlog::error("reinitialize: {}", err->message);
            co_return;
        }
        rewind_failed_.reset();
        role_ = core::Role::Uninitialized;
        co_await create_replica(leader);
    }

    net::awaitable<rest::ActionOutcome> restart_now() {
        if (action_) {
            co_return rest::ActionOutcome{503, *action_ + " already in progress"};
        }
        action_ = "restart";
        state_override_ = core::PgState::Restarting;
        publish();
        rest::ActionOutcome out{200, "restarted successfully"};
        if (auto err = co_await pg_.stop(pg::StopMode::Fast, std::chrono::seconds(60))) {
            spdlog::error("restart: {}", err->message);
            out = {503, "restart failed"};
        } else if (auto err2 = co_await write_files(config_files_for_role())) {
            spdlog::error("restart: {}", err2->message);
            out = {503, "restart failed"};
        } else if (auto err3 = co_await pg_.start(pg_ctl_timeout())) {
            spdlog::error("restart: {}", err3->message);
            out = {503, "restart failed"};
        }
        action_.reset();
        state_override_.reset();
        publish();
        wakeup();
        co_return out;
    }

    // ---- executing a plan ---------------------------------------------------------------------

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
                case core::ActionKind::ClearFailover: {
                    const auto version =
                        cluster_ && cluster_->failover
                            ? std::optional<std::int64_t>(cluster_->failover->version)
                            : std::nullopt;
                    co_await dcs_.set_failover("{}", version);
                    break;
                }
                case core::ActionKind::ProbeMembers:
                    break;  // handled by cycle()
                case core::ActionKind::Bootstrap:
                    start_long_action("bootstrap", a);
                    co_return false;
                case core::ActionKind::StartPrimary:
                    start_long_action("starting primary", a);
                    co_return false;
                case core::ActionKind::Promote:
                    role_ = core::Role::Promoted;
                    checkpoint_pending_ = true;
                    start_long_action("promote", a);
                    co_return false;
                case core::ActionKind::Demote:
                    if (!a.release_lock) {
                        lease_lost();
                    }
                    start_long_action(a.release_lock                        ? "demote (graceful)"
                                      : a.stop == core::StopKind::Immediate ? "demote (immediate)"
                                                                            : "demote (fast)",
                                      a);
                    co_return false;
                case core::ActionKind::CreateReplica:
                    start_long_action("creating replica", a);
                    co_return false;
                case core::ActionKind::StartReplica:
                    start_long_action("starting replica", a);
                    co_return false;
                case core::ActionKind::Follow:
                    start_long_action("following " + a.target, a);
                    co_return false;
                case core::ActionKind::Rewind:
                    start_long_action("pg_rewind", a);
                    co_return false;
                case core::ActionKind::Reinitialize:
                    start_long_action("reinitialize", a);
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
        if (pg_obs_.query && pg_obs_.query->in_recovery &&
            pg_obs_.query->replication_state != std::optional<std::string>("streaming")) {
            if (!not_streaming_since_) {
                not_streaming_since_ = now();
            }
        } else {
            not_streaming_since_.reset();
        }
        // The timeline a replica has streamed on since its postmaster started: once the
        // walreceiver is gone, the status query can only report the timeline of the last
        // restartpoint, which may be older than the one it replays.
        if (!pg_obs_.query || pg_obs_.query->postmaster_start_time != streamed_pm_start_) {
            streamed_timeline_ = 0;
            streamed_pm_start_ = pg_obs_.query ? pg_obs_.query->postmaster_start_time : "";
        }
        if (pg_obs_.query && pg_obs_.query->in_recovery &&
            pg_obs_.query->replication_state == std::optional<std::string>("streaming")) {
            streamed_timeline_ = std::max(streamed_timeline_, pg_obs_.query->timeline);
        }
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
        std::optional<std::vector<core::MemberProbe>> probes;
        for (int attempt = 0; attempt < 4; ++attempt) {
            if (dcs_failed) {
                cluster_.reset();
            }
            core::Snapshot snap = snapshot(lock_lost);
            snap.probes = probes;
            const core::Plan plan = core::decide(snap);
            if (plan.retry_soon) {
                next_run_ = std::min(next_run_, now() + kRetrySoonMs);
            }
            if (plan.reason != last_reason_) {
                spdlog::info("{}", plan.reason);
                last_reason_ = plan.reason;
            } else {
                spdlog::debug("{}", plan.reason);
            }
            if (plan.actions.size() == 1 &&
                plan.actions[0].kind == core::ActionKind::ProbeMembers) {
                if (probes) {
                    break;  // decide() asked twice: a bug; do nothing this cycle
                }
                probes = co_await probe_members(ex_, members_to_probe(), 2s);
                continue;
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
        if (cluster_ && !action_ && lease_until_ && role_ == core::Role::Primary && pg_obs_.query &&
            !pg_obs_.query->in_recovery) {
            co_await sync_slots();
            co_await write_history();
        } else if (cluster_ && !action_ && role_ == core::Role::Replica && following_ &&
                   pg_obs_.query && pg_obs_.query->in_recovery) {
            // A replica keeps the other members' slots too (advanced to its replay position):
            // promoted, it has them at once, and no follower that re-points at it fails on a
            // missing slot and then waits wal_retrieve_retry_interval.
            co_await sync_slots();
            co_await advance_slots();
        }
        // The dynamic configuration changed (PATCH /config, edit-config): rewrite the managed
        // files and reload; parameters that need a restart show up as pending_restart.
        // (After a daemon restart nothing is known about the files: rewrite them once. A replica
        // waits until it knows whom it follows, so primary_conninfo is never dropped.)
        if (cluster_ && !action_ && pg_obs_.postmaster_running && pg_obs_.query &&
            (role_ == core::Role::Primary || following_.has_value()) &&
            files_signature(config_files_for_role()) != written_signature_) {
            spdlog::info("the configuration changed: rewriting the managed files and reloading");
            start_long_action("reload", core::Action{}, /*reload=*/true);
        }
        co_await maybe_scheduled_restart();
        if (cluster_) {
            co_await touch_member();
        }
        publish();
    }

    net::awaitable<void> maybe_scheduled_restart() {
        if (!scheduled_restart_ || action_ || !scheduled_restart_->schedule) {
            co_return;
        }
        auto at = parse_iso8601_ms(*scheduled_restart_->schedule);
        const std::int64_t now_ms = epoch_ms();
        if (!at || now_ms > *at + static_cast<std::int64_t>(dynamic_.loop_wait) * 1500) {
            spdlog::warn("dropping a stale or invalid scheduled restart");
            scheduled_restart_.reset();
            co_return;
        }
        if (*at - now_ms > static_cast<std::int64_t>(dynamic_.loop_wait) * 1000) {
            co_return;
        }
        scheduled_restart_.reset();
        spdlog::info("running the scheduled restart");
        co_await restart_now();
    }

    net::awaitable<void> touch_member() {
        const auto st = build_status();
        // Called every cycle even when the value is unchanged: it is what keeps our lease or
        // session alive on a replica (the backend skips writing an unchanged value).
        std::string json = rest::member_key_json(*st, conn_url_, api_url_);
        co_await dcs_.touch_member(std::move(json));
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
        st->checkpoint_after_promote_pending = checkpoint_pending_;
        if (pg_obs_.postmaster_running && pg_obs_.query &&
            pg_obs_.query->pending_restart_json != "{}") {
            st->pending_restart = true;
            st->pending_restart_reason_json = pg_obs_.query->pending_restart_json;
        }
        if (scheduled_restart_ && scheduled_restart_->schedule) {
            nlohmann::json j = nlohmann::json::parse(scheduled_restart_->raw_json, nullptr, false);
            if (!j.is_object()) {
                j = nlohmann::json::object();
            }
            j["schedule"] = *scheduled_restart_->schedule;
            st->scheduled_restart_json = j.dump();
        }
        return st;
    }

    void publish() { status_ = build_status(); }

    // GET /patroni: the published status with the WAL positions of a status query run now.
    // Concurrent requests share one query; a running long action, a stopped PostgreSQL, a failed
    // query or a role change under way answer from the published status.
    struct FreshQuery {
        explicit FreshQuery(net::any_io_executor ex)
            : done(ex, net::steady_timer::time_point::max()) {}
        net::steady_timer done;
        std::optional<core::PgQueryResult> result;
    };
    std::shared_ptr<FreshQuery> fresh_inflight_;

    net::awaitable<std::shared_ptr<const core::NodeStatus>> fresh_status() {
        auto published = status_;
        if (action_ || !published || published->state != core::PgState::Running || !published->pg) {
            co_return published;
        }
        auto query = fresh_inflight_;
        if (query) {
            co_await query->done.async_wait(net::as_tuple(net::use_awaitable));
        } else {
            query = std::make_shared<FreshQuery>(ex_);
            fresh_inflight_ = query;
            auto self = shared_from_this();
            query->result = co_await pg_.query_status();
            if (fresh_inflight_ == query) {
                fresh_inflight_.reset();
            }
            query->done.cancel();
        }
        auto current = status_;
        if (!query->result || action_ || !current || current->state != core::PgState::Running ||
            !current->pg || current->pg->in_recovery != query->result->in_recovery) {
            co_return current;
        }
        auto st = std::make_shared<core::NodeStatus>(*current);
        const std::string pending = current->pg->pending_restart_json;
        st->pg = query->result;
        st->pg->pending_restart_json = pending;
        co_return st;
    }

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
                if (self->state_override_ == core::PgState::Stopping ||
                    self->state_override_ == core::PgState::Restarting) {
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
        if (!action_ && pg_obs_.postmaster_running) {
            // /primary answers 503 from now on, before PostgreSQL refuses writes.
            state_override_ = core::PgState::Stopping;
            publish();
        }
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
            // Before the key goes: a member probing us in its leader race must not see a
            // primary that is still alive (our /patroni reports "stopped" without WAL now).
            pg_obs_ = co_await pg_.observe();
            state_override_ = core::PgState::Stopped;
            publish();
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

void HaLoop::wakeup() {
    impl_->wakeup();
}

std::shared_ptr<const core::NodeStatus> HaLoop::status() const {
    return impl_->status_;
}

rest::ApiActions& HaLoop::api_actions() {
    return impl_->api_;
}

}  // namespace pgwarden::runtime
