// The REST API's HTTP server: Beast over one io_context thread, coroutine per connection, a thin
// layer around rest::handle() and, once set_actions() was called, rest::handle_unsafe(). Beast
// stays inside server.cpp (pimpl).
#pragma once

#include "core/node_status.hpp"
#include "core/settings.hpp"
#include "runtime/rest/api_actions.hpp"
#include "runtime/rest/handlers.hpp"
#include "runtime/rest/unsafe.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace pgwarden::rest {

namespace detail {
struct ServerImpl;  // defined in server.cpp (Beast stays there)
}

// Raises the soft RLIMIT_NOFILE to the hard limit when it is lower (systemd's default soft
// limit is 1024). Returns the soft limit in force afterwards. Called by Server::start().
std::size_t raise_fd_limit();

class Server {
public:
    struct Options {
        // host:port; host "*", "" or "0.0.0.0"/"::" = any address; port 0 = pick a free port.
        std::string listen;
        core::RestApiSettings settings;
        // Connection caps (F16): a connection above either is accepted and closed at once, so one
        // client cannot starve HAProxy checks and member probes, nor the HA loop of fds.
        // 0 = min(512, RLIMIT_NOFILE soft limit / 2): the other half stays for the DCS,
        // libpq and pg_ctl.
        std::size_t max_connections = 0;
        std::size_t max_connections_per_ip = 32;  // concurrent connections from one client IP
        std::size_t max_body_bytes = std::size_t{64} * 1024;    // larger bodies: 413 and close
        std::size_t max_header_bytes = std::size_t{16} * 1024;  // larger headers: 431 and close
        int idle_timeout_ms = 10000;                            // deadline of every read and write
        // How long a keep-alive connection may wait for its next request before it is closed.
        int keepalive_idle_ms = 2000;
        // Poll/probe timing of the unsafe endpoints (tests shrink it; `stopped` is set by the
        // server). A switchover request keeps its connection busy for up to
        // 2 * max(10, loop_wait) s; no socket operation is pending meanwhile, so idle_timeout_ms
        // does not cut it short (the deadline is re-armed for the write of the answer), and
        // stop() ends the poll at its next tick.
        UnsafeOptions unsafe_options;
    };
    // The latest published status (may be null before the first HA cycle: 503 then).
    using StatusSource = std::function<std::shared_ptr<const core::NodeStatus>()>;
    using Clock = std::function<Context()>;

    Server(boost::asio::any_io_executor ex, Options options, StatusSource source, Clock clock);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Resolve, bind and listen, then start accepting. Logs and returns the error (e.g. address
    // in use, bad listen string). Call once, before or on the executor's thread.
    boost::system::error_code start();

    // The bound port (the actual one when listening on port 0); 0 before start().
    unsigned short port() const;

    // Close the acceptor and every open connection. Safe from any thread: the work is dispatched
    // to the server's executor (run inline when called on it). Idempotent.
    void stop();

    // Serve the unsafe endpoints (POST /switchover, PATCH /config, ...) through `actions`, which
    // must outlive the server (or be reset with nullptr first). Without actions they answer
    // 503 "not supported by this pgwarden version yet" after the access check. Call on the
    // executor's thread (or before start()).
    void set_actions(ApiActions* actions);

    // Number of open connections (for tests and diagnostics; read on the executor's thread).
    std::size_t connection_count() const;

    // The total connection cap in force (Options::max_connections, or computed by start()).
    std::size_t connection_limit() const;

private:
    std::shared_ptr<detail::ServerImpl> impl_;  // shared with the running coroutines
    bool stop_requested_ = false;
};

}  // namespace pgwarden::rest
