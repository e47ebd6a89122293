// The HA loop: observe (DCS + PostgreSQL) → core::decide() → act, every loop_wait or at once on
// an event (leader key changed, postmaster exited, API request), and publish a NodeStatus.
#pragma once

#include "core/node_state.hpp"
#include "core/node_status.hpp"
#include "core/settings.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <functional>
#include <memory>

namespace pgwarden::dcs {
class Dcs;
}
namespace pgwarden::pg {
class PgControl;
}
namespace pgwarden::rest {
class ApiActions;
}

namespace pgwarden::runtime {

// Exit codes are a contract (STYLE.md point 17).
enum ExitCode : int {
    kExitOk = 0,
    kExitBadConfig = 2,
    kExitBadOnDiskState = 3,
    kExitPostgresUnusable = 4,
    kExitInternalBug = 70,
};

using MonotonicClock = std::function<core::MonoMs()>;
// Wall clock in epoch milliseconds (scheduled switchovers and restarts, history timestamps);
// empty = the system clock.
using WallClock = std::function<std::int64_t()>;

class HaLoop {
public:
    HaLoop(boost::asio::any_io_executor ex,
           core::Settings settings,
           dcs::Dcs& dcs,
           pg::PgControl& pg,
           MonotonicClock clock,
           WallClock wall_clock = {});
    ~HaLoop();
    HaLoop(const HaLoop&) = delete;
    HaLoop& operator=(const HaLoop&) = delete;

    // Runs until shutdown is requested or a fatal decision; returns the process exit code.
    boost::asio::awaitable<int> run();

    // SIGTERM: stop PostgreSQL, then hand the leader key over (delete it) so a successor does
    // not wait for the lease, and release our member key.
    void request_shutdown();
    // Run a cycle now (an event arrived).
    void wakeup();

    // The last published status (never null once constructed). Cheap: a shared_ptr copy.
    std::shared_ptr<const core::NodeStatus> status() const;

    // What the REST API's unsafe endpoints (switchover, restart, ...) act through.
    rest::ApiActions& api_actions();

    // One cycle now, as run() does between two waits: tests drive cycles with a manual clock
    // and fakes (tests/fakes). dcs.start() and supervision are not set up by it.
    boost::asio::awaitable<void> run_cycle_for_test();
    // The shutdown run() ends with.
    boost::asio::awaitable<void> shutdown_for_test();
    // The decision state the core keeps.
    const core::NodeState& state_for_test() const;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace pgwarden::runtime
