// The REST API's unsafe endpoints (POST/PUT/PATCH/DELETE): switchover/failover, config, restart,
// reload, reinitialize. Request validation is pure; every effect goes through ApiActions.
// Contract: /work/shared/spec/patroni-rest-api.md sections 1.1, 6-10 (Patroni 4.1.4 api.py).
//
// Deliberate differences from Patroni (each also noted where it is implemented):
// - A failed DCS read (Patroni: an exception, the connection is closed without any response) is
//   answered with 503 and kDcsReadFailed, so clients see why.
// - The switchover/failover result is polled every 250 ms (Patroni: every 1 s) for the same total
//   time, so a quick switchover is reported sooner.
// - POST /restart takes the pause flag from the published NodeStatus (the HA loop's effective
//   dynamic configuration) instead of a fresh DCS read, so a restart works while the DCS is down.
// - A body that is not valid JSON on POST /reinitialize gets only the 400 page (Patroni writes
//   the 400 page and then continues and writes a second response).
// - A non-string postgres_version is a 400 "Invalid PostgreSQL version: ..." (Patroni raises).
#pragma once

#include "core/iso8601.hpp"
#include "core/node_status.hpp"
#include "core/settings.hpp"
#include "runtime/rest/api_actions.hpp"
#include "runtime/rest/http_types.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace pgwarden::rest {

// Timing of the long operations (tests shrink them) and the server's stop flag.
struct UnsafeOptions {
    // Period of the fresh cluster reads after an immediate switchover/failover was requested.
    std::chrono::milliseconds poll_interval{250};
    // Total poll time; nullopt: 2 * max(10, loop_wait) seconds, as Patroni.
    std::optional<std::chrono::milliseconds> poll_timeout;
    // How long to wait for all candidate probes together (each probe has its own 2 s deadline in
    // ApiActions::probe_member; this only bounds a misbehaving implementation).
    std::chrono::milliseconds probe_wait{3000};
    // Set to true by the server when it stops: a switchover poll then ends at its next tick
    // instead of keeping the io_context busy for the rest of its timeout. May be null.
    std::shared_ptr<const bool> stopped;
};

// Answer to a DCS read that failed (Patroni closes the connection without a response instead).
inline constexpr std::string_view kDcsReadFailed = "failed to read the cluster state from DCS";

// Answers an unsafe request: routes by (method, first path segment) as Patroni's parse_request,
// returns 501 for pairs Patroni has no handler for, applies check_access() to every endpoint,
// then validates and acts. Endpoints not implemented here (failsafe, sigterm, citus, mpp) are
// answered as handle_unsafe_not_supported() does. `status` may be null (no HA cycle yet): 503.
// Parameters are by value (coroutine; g++ 12 rule). `actions` must outlive the coroutine.
boost::asio::awaitable<Response> handle_unsafe(Request req,
                                               std::shared_ptr<const core::NodeStatus> status,
                                               ApiActions* actions,
                                               Context ctx,
                                               core::RestApiSettings settings,
                                               UnsafeOptions options = {});

// ISO 8601: the one parser and formatter, in core.
using core::format_iso8601;
using core::IsoTimestamp;
using core::parse_iso8601;

// Patroni's postgres_version_to_int: "X.Y.Z" or "X.Y" (X >= 10) -> 90503 / 100001. On failure
// nullopt and *error (if given) = Patroni's message ("Invalid PostgreSQL version: a.b.c" or
// "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6").
std::optional<int> postgres_version_to_int(std::string_view version, std::string* error = nullptr);

// Patroni's parse_int(value, 's') on the text of a value: "30", "1.5min", "2h", "1500ms";
// units case-sensitive us/ms/s/min/h/d; hex (0x1f) and octal (017) integers as strtol.
// nullopt when unparsable.
std::optional<std::int64_t> parse_seconds(std::string_view value);

// Patroni's parse_bool on the text of a value: on/true/yes/1 -> true, off/false/no/0 -> false,
// case-insensitive; anything else nullopt.
std::optional<bool> parse_bool(std::string_view value);

}  // namespace pgwarden::rest
