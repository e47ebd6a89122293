// The runtime's parts and what ties them together; private to lib/runtime. None of them decides
// anything: core::step()/apply() do; these observe, execute, publish and bridge the REST API.
#pragma once

#include "asio/event.hpp"
#include "asio/spawn.hpp"
#include "core/node_state.hpp"
#include "core/settings.hpp"
#include "runtime/ha_loop.hpp"
#include "runtime/rest/api_actions.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pgwarden::dcs {
class Dcs;
}
namespace pgwarden::pg {
class PgControl;
struct ConfigFiles;
}  // namespace pgwarden::pg

namespace pgwarden::runtime {

namespace net = boost::asio;

using async::Event;
using async::spawn_logged;

struct Runtime;

// DCS + PostgreSQL → core::Observation. Keeps the last good dynamic configuration (a bad value
// in the DCS keeps the previous one for that key) and the last view that had a leader.
class Observer {
public:
    explicit Observer(Runtime& rt);
    net::awaitable<core::Observation> observe();
    // The observation of this cycle, with `probes` set (the leader race, a switchover).
    net::awaitable<std::vector<core::MemberProbe>> probe_members();
    std::vector<core::Member> members_to_probe() const;

    const std::optional<core::Cluster>& cluster() const { return cluster_; }
    void forget_cluster() { cluster_.reset(); }
    std::shared_ptr<const core::Cluster> last_good_cluster() const { return last_good_cluster_; }
    const core::PgObservation& pg() const { return pg_; }
    void set_pg(core::PgObservation pg) { pg_ = std::move(pg); }
    const core::DynamicSettings& dynamic() const { return dynamic_; }
    std::optional<core::MonoMs> cluster_read_at() const { return cluster_read_at_; }
    std::int64_t dcs_last_seen() const { return dcs_last_seen_; }
    // The unsupported settings that arrived through the DCS config (logged once each).
    const std::vector<std::string>& unsupported() const { return unsupported_; }

private:
    void apply_dynamic_config();

    Runtime& rt_;
    core::DynamicSettings dynamic_;
    std::string applied_config_json_;
    std::optional<core::Cluster> cluster_;
    std::shared_ptr<const core::Cluster> last_good_cluster_;
    std::vector<core::Member> old_members_;  // members of the last view that had a leader
    std::optional<core::MonoMs> cluster_read_at_;
    std::int64_t dcs_last_seen_ = 0;
    core::PgObservation pg_;
    bool dcs_failed_ = false;
    std::vector<std::string> unsupported_;
};

// The NodeStatus the REST API answers from, rebuilt after every change; GET /patroni's fresh
// WAL positions (one status query shared by concurrent requests).
class StatusPublisher {
public:
    explicit StatusPublisher(Runtime& rt);
    void publish();
    std::shared_ptr<const core::NodeStatus> status() const { return status_; }
    std::shared_ptr<core::NodeStatus> build() const;
    net::awaitable<std::shared_ptr<const core::NodeStatus>> fresh_status();
    // The state a long action shows (initializing, stopping, ...) instead of the observed one.
    void show(std::optional<core::PgState> state) {
        shown_ = state;
        publish();
    }
    std::optional<core::PgState> shown() const { return shown_; }
    void set_last_outcome(std::string reason) { last_outcome_ = std::move(reason); }
    const std::string& last_outcome() const { return last_outcome_; }
    void set_next_run(core::MonoMs t) { next_run_ = t; }
    core::MonoMs next_run() const { return next_run_; }

private:
    struct FreshQuery;
    Runtime& rt_;
    std::shared_ptr<const core::NodeStatus> status_;
    std::optional<core::PgState> shown_;
    std::string last_outcome_;
    core::MonoMs next_run_ = 0;
    std::shared_ptr<FreshQuery> fresh_inflight_;
};

// rest::ApiActions for the REST API: reads and writes of DCS keys go straight to the DCS;
// restart, reinitialize and reload are queued into the loop, which decides and runs them.
class ApiBridge final : public rest::ApiActions {
public:
    explicit ApiBridge(Runtime& rt);

    net::awaitable<rest::ApiResult<core::Cluster>> read_cluster() override;
    net::awaitable<rest::ApiResult<bool>> write_failover(
        std::string json, std::optional<std::int64_t> version) override;
    net::awaitable<rest::ApiResult<bool>> write_config(
        std::string json, std::optional<std::int64_t> version) override;
    net::awaitable<core::MemberProbe> probe_member(core::Member member) override;
    net::awaitable<std::shared_ptr<const core::NodeStatus>> fresh_status() override;
    void wakeup() override;
    void reload() override;
    net::awaitable<rest::ActionOutcome> restart(rest::RestartRequest request) override;
    rest::ActionOutcome schedule_restart(rest::RestartRequest request) override;
    rest::ActionOutcome delete_scheduled_restart() override;
    rest::ActionOutcome reinitialize(bool force, bool from_leader) override;

    // For the loop: queued requests (taken once), answers, the scheduled restart.
    std::vector<core::Request> take_requests();
    void answer(std::uint64_t id, rest::ActionOutcome outcome);
    const std::optional<rest::RestartRequest>& scheduled_restart() const { return scheduled_; }
    void clear_scheduled_restart() { scheduled_.reset(); }

private:
    struct Pending;
    std::uint64_t enqueue(core::RequestKind kind, std::shared_ptr<Pending> waiter);

    Runtime& rt_;
    std::uint64_t next_id_ = 1;
    std::vector<core::Request> queued_;
    std::map<std::uint64_t, std::shared_ptr<Pending>> waiting_;
    std::optional<rest::RestartRequest> scheduled_;
};

// Runs a plan's actions: short ones inline (their results returned), long ones spawned (their
// results delivered to `on_result` on the executor, with the id step() gave them).
class Executor {
public:
    explicit Executor(Runtime& rt);
    net::awaitable<core::ActionResult> run_short(core::Action action);
    void start_long(core::Action action);
    // Long actions still running (a pre-empted one keeps running until it notices).
    int running() const { return running_; }
    // Completes when no long action runs any more, or after `timeout`.
    net::awaitable<void> wait_idle(std::chrono::milliseconds timeout);

private:
    static net::awaitable<void> run_long(std::shared_ptr<Runtime> rt, core::Action action);
    Runtime& rt_;
    int running_ = 0;
    std::shared_ptr<Event> idle_;
};

// Self-fencing inside the daemon: a timer at core::fence_deadline() that stops a writable
// PostgreSQL when the lease ran out without a renewal, even while the loop waits on the DCS.
class LeaseFence {
public:
    explicit LeaseFence(Runtime& rt);
    // Re-arms the timer after the node state changed.
    void update();
    void cancel();

private:
    void fire();
    Runtime& rt_;
    net::steady_timer timer_;
    std::optional<core::MonoMs> armed_for_;
};

// Everything one node's runtime holds; owned by HaLoop through a shared_ptr so that spawned
// coroutines keep it alive.
struct Runtime : std::enable_shared_from_this<Runtime> {
    Runtime(net::any_io_executor ex,
            core::Settings settings,
            dcs::Dcs& dcs,
            pg::PgControl& pg,
            MonotonicClock clock,
            WallClock wall_clock);

    core::MonoMs now() const { return clock(); }
    std::int64_t now_epoch_ms() const;
    // Applies an action result to the node state (core::apply), re-arms the fence, logs a
    // role change, and wakes the loop when a long action finished.
    void apply(const core::ActionResult& result);
    void set_state(core::NodeState next);
    void wakeup();

    net::any_io_executor ex;
    core::Settings settings;
    dcs::Dcs& dcs;
    pg::PgControl& pg;
    MonotonicClock clock;
    WallClock wall_clock;
    std::string conn_url;
    std::string api_url;

    core::NodeState state;
    Observer observer;
    StatusPublisher publisher;
    ApiBridge bridge;
    Executor executor;
    LeaseFence fence;

    net::steady_timer wake_timer;
    bool wake_pending = false;
    // A switchover hand-over step finished (clean stop, candidate found): the next step reuses
    // the last observation instead of reading the DCS and PostgreSQL again, so the hand-over
    // does not wait on two more full observations. Its lock operations check ownership in the
    // DCS themselves.
    bool quick_step = false;
    bool shutdown_requested = false;
    std::optional<int> exit_code;
};

// The managed configuration files for the node's role (the desired state; pure).
pg::ConfigFiles desired_files(const core::Settings& settings,
                              const core::DynamicSettings& dynamic,
                              const std::optional<core::Cluster>& cluster,
                              core::Role role,
                              const std::optional<std::string>& following,
                              int server_version);
pg::ConfigFiles primary_files(const core::Settings& settings,
                              const core::DynamicSettings& dynamic,
                              int server_version);
pg::ConfigFiles replica_files(const core::Settings& settings,
                              const core::DynamicSettings& dynamic,
                              const std::optional<core::Cluster>& cluster,
                              const std::string& leader,
                              int server_version);
// What a reload compares: parameters, pg_hba, pg_ident (recovery settings follow the leader
// through Follow instead).
std::string files_signature(const pg::ConfigFiles& files);
// "postgres://host:port/db" -> host, port (5432 if absent); host "" when unusable.
std::pair<std::string, int> host_port_of(const std::string& conn_url);

}  // namespace pgwarden::runtime
