// Private to pgw_rest: the endpoint handlers the router (router.cpp) dispatches to, one group per
// file, and what the unsafe ones share (Env, the request-body and cluster-read opening).
#pragma once

#include "core/cluster.hpp"
#include "core/node_status.hpp"
#include "core/settings.hpp"
#include "runtime/rest/api_actions.hpp"
#include "runtime/rest/http_types.hpp"
#include "runtime/rest/json_util.hpp"
#include "runtime/rest/request_target.hpp"
#include "runtime/rest/unsafe.hpp"

#include <boost/asio/awaitable.hpp>

#include <memory>
#include <optional>
#include <string>

namespace pgwarden::rest {

// --- health.cpp: health checks (spec 2) ---

// GET (only_status=false) or HEAD/OPTIONS health check of `t.path`: the status code and, for GET,
// the /patroni body.
Response get_health(const Target& t,
                    const core::NodeStatus& status,
                    const Context& ctx,
                    bool only_status);
// spec 2.1
Response get_liveness(const core::NodeStatus& status, const Context& ctx);
// spec 2.2: nullopt = ready, else the reason (Patroni logs it at DEBUG).
std::optional<std::string> readiness_failure(const Target& t,
                                             const core::NodeStatus& status,
                                             const Context& ctx);

// --- read_endpoints.cpp: /cluster, /history, /config, /failsafe ---

Response get_cluster(const core::NodeStatus& status);
Response get_history(const core::NodeStatus& status);
Response get_config(const core::NodeStatus& status);
Response get_failsafe(const core::NodeStatus& status);

// --- metrics.cpp: /metrics (spec 11) ---

Response get_metrics(const core::NodeStatus& status, const Context& ctx);

// --- unsafe endpoints ---

// Everything an unsafe handler needs besides the request; by value into every coroutine.
struct Env {
    std::shared_ptr<const core::NodeStatus> status;
    ApiActions* actions = nullptr;
    Context ctx;
    core::RestApiSettings settings;
    UnsafeOptions options;
};

// The opening shared by the unsafe handlers (router.cpp): the JSON body (Patroni's
// _read_json_content), then a fresh cluster read. `error` is the answer when either failed.
struct Opening {
    OJson body = OJson::object();
    std::optional<core::Cluster> cluster;  // set when error is not
    std::optional<Response> error;
};
// read_cluster = false: only the body is read.
boost::asio::awaitable<Opening> open_request(Request req,
                                             Env env,
                                             bool body_is_optional,
                                             bool read_cluster = true);

// --- switchover.cpp: POST /failover, POST /switchover, DELETE /switchover ---

// Patroni's parse_schedule: the isoformat() of a scheduled_at / schedule value, or the answer.
struct Schedule {
    std::optional<Response> error;
    std::string iso;
};
Schedule parse_schedule(const OJson& value, const std::string& action, const Env& env);

boost::asio::awaitable<Response> post_failover(Request req, Env env, std::string action);
boost::asio::awaitable<Response> delete_switchover(Env env);

// --- config_endpoints.cpp: PATCH /config, PUT /config ---

boost::asio::awaitable<Response> patch_config(Request req, Env env);
boost::asio::awaitable<Response> put_config(Request req, Env env);

// --- restart.cpp: POST/DELETE /restart, POST /reload, POST /reinitialize ---

boost::asio::awaitable<Response> post_restart(Request req, Env env);
boost::asio::awaitable<Response> delete_restart(Env env);
boost::asio::awaitable<Response> post_reload(Env env);
boost::asio::awaitable<Response> post_reinitialize(Request req, Env env);

}  // namespace pgwarden::rest
