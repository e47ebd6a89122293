// Routing of every request (Patroni's parse_request: method and first path segment) through one
// table per method class, and the opening the unsafe endpoints share (access, body, cluster).
#include "runtime/rest/endpoints.hpp"
#include "runtime/rest/handlers.hpp"
#include "runtime/rest/parse_util.hpp"
#include "runtime/rest/response_util.hpp"
#include "runtime/rest/status_json.hpp"
#include "runtime/rest/unsafe.hpp"

#include <utility>

namespace pgwarden::rest {

namespace net = boost::asio;

namespace {

using core::NodeStatus;

constexpr std::string_view kNotSupported = "not supported by this pgwarden version yet";

// GET endpoints with a first path segment of their own; any other GET is a health check.
struct SafeRow {
    std::string_view segment;
    Response (*handler)(const Target&, const NodeStatus&, const Context&);
};
constexpr SafeRow kSafeEndpoints[] = {
    {"patroni",
     [](const Target&, const NodeStatus& s, const Context& c) {
         return json_response(200, patroni_status_json(s, c.now));
     }},
    {"cluster",
     [](const Target&, const NodeStatus& s, const Context&) {
         return get_cluster(s);
     }},
    {"history",
     [](const Target&, const NodeStatus& s, const Context&) {
         return get_history(s);
     }},
    {"config",
     [](const Target&, const NodeStatus& s, const Context&) {
         return get_config(s);
     }},
    {"metrics",
     [](const Target&, const NodeStatus& s, const Context& c) {
         return get_metrics(s, c);
     }},
    {"failsafe",
     [](const Target&, const NodeStatus& s, const Context&) {
         return get_failsafe(s);
     }},
};

// Patroni's do_<METHOD>_<segment> handlers that exist for unsafe methods; `handler` null: not
// implemented by pgwarden (answered 503 kNotSupported after the access check).
using UnsafeHandler = net::awaitable<Response> (*)(Request, Env);
struct UnsafeRow {
    std::string_view method;
    std::string_view segment;
    bool allowlist_check_members;
    UnsafeHandler handler;
};
constexpr UnsafeRow kUnsafeEndpoints[] = {
    {"POST",
     "reload",
     true,
     [](Request, Env e) {
         return post_reload(std::move(e));
     }},
    {"POST", "restart", true, &post_restart},
    {"POST", "reinitialize", true, &post_reinitialize},
    {"POST",
     "failover",
     true,
     [](Request r, Env e) {
         return post_failover(std::move(r), std::move(e), "failover");
     }},
    {"POST",
     "switchover",
     true,
     [](Request r, Env e) {
         return post_failover(std::move(r), std::move(e), "switchover");
     }},
    {"POST", "failsafe", false, nullptr},  // member allowlist not applied, as Patroni
    {"POST", "sigterm", true, nullptr},
    {"POST", "citus", true, nullptr},
    {"POST", "mpp", true, nullptr},  // Patroni forgot check_access here; pgwarden applies it
    {"PATCH", "config", true, &patch_config},
    {"PUT", "config", true, &put_config},
    {"DELETE",
     "restart",
     true,
     [](Request, Env e) {
         return delete_restart(std::move(e));
     }},
    {"DELETE",
     "switchover",
     true,
     [](Request, Env e) {
         return delete_switchover(std::move(e));
     }},
};

// path.lstrip('/').split('/')[0] of urlparse(target).path
std::string_view first_segment(std::string_view target) {
    target = strip_absolute_form(target);
    return first_path_segment(target.substr(0, target.find_first_of("?#")));
}

// The opening of every unsafe request: the endpoint's row, or the answer (501 for a pair Patroni
// has no handler for, 403/401 from check_access).
struct Routed {
    const UnsafeRow* row = nullptr;
    std::optional<Response> answer;
};
Routed route_unsafe(const Request& req,
                    const core::RestApiSettings& settings,
                    const core::Cluster* cluster) {
    const std::string_view seg = first_segment(req.target);
    Routed out;
    for (const auto& row : kUnsafeEndpoints) {
        if (row.method == req.method && row.segment == seg) {
            out.row = &row;
            break;
        }
    }
    if (out.row == nullptr) {
        // Python's BaseHTTPRequestHandler: no do_<METHOD> -> 501 "Unsupported method ('X')"
        out.answer = error_page(501, "Unsupported method ('" + req.method + "')");
    } else {
        out.answer = check_access(req, settings, cluster, out.row->allowlist_check_members);
    }
    return out;
}

// Patroni's _read_json_content.
std::optional<Response> read_json_content(const Request& req, bool body_is_optional, OJson& value) {
    if (!req.has_content_length) {
        return body_is_optional ? std::nullopt : std::optional<Response>(error_page(411));
    }
    if (req.body.empty() && body_is_optional) {
        return std::nullopt;
    }
    auto parsed = parse_json(req.body);
    if (parsed && parsed->is_object() && (!parsed->empty() || body_is_optional)) {
        value = std::move(*parsed);
        return std::nullopt;
    }
    return error_page(400);
}

}  // namespace

net::awaitable<Opening> open_request(Request req,
                                     Env env,
                                     bool body_is_optional,
                                     bool read_cluster) {
    Opening out;
    out.error = read_json_content(req, body_is_optional, out.body);
    if (out.error || !read_cluster) {
        co_return out;
    }
    auto cluster = co_await env.actions->read_cluster();
    if (!cluster) {
        out.error = message(503, kDcsReadFailed, env.settings);
    } else {
        out.cluster = std::move(*cluster);
    }
    co_return out;
}

Response handle_unsafe_not_supported(const Request& req,
                                     const core::RestApiSettings& settings,
                                     const core::Cluster* cluster) {
    Routed routed = route_unsafe(req, settings, cluster);
    if (routed.answer) {
        return std::move(*routed.answer);
    }
    return message(503, kNotSupported, settings);
}

Response handle(const Request& req,
                const core::NodeStatus& status,
                const Context& ctx,
                const core::RestApiSettings& settings) {
    if (req.method != "GET" && req.method != "HEAD" && req.method != "OPTIONS") {
        return handle_unsafe_not_supported(req, settings, status.cluster.get());
    }
    const Target t = split_target(req.target);
    if (req.method != "GET") {
        // HEAD/OPTIONS always run the health logic (so HEAD /patroni is 503, as Patroni).
        return get_health(t, status, ctx, true);
    }
    const std::string& seg = t.first_segment;
    if (seg == "liveness") {
        return get_liveness(status, ctx);
    }
    if (seg == "readiness") {
        return status_only(readiness_failure(t, status, ctx) ? 503 : 200);
    }
    std::optional<Response> r;
    for (const auto& row : kSafeEndpoints) {
        if (row.segment == seg) {
            r = row.handler(t, status, ctx);
            break;
        }
    }
    if (!r) {
        r = get_health(t, status, ctx, false);
    }
    // send_error pages carry no extra headers (Patroni); everything else does.
    if (r->content_type != "text/html;charset=utf-8") {
        add_extra_headers(*r, settings);
    }
    return std::move(*r);
}

net::awaitable<Response> handle_unsafe(Request req,
                                       std::shared_ptr<const core::NodeStatus> status,
                                       ApiActions* actions,
                                       Context ctx,
                                       core::RestApiSettings settings,
                                       UnsafeOptions options) {
    const core::Cluster* cached = status ? status->cluster.get() : nullptr;
    Routed routed = route_unsafe(req, settings, cached);
    if (routed.answer) {
        co_return std::move(*routed.answer);
    }
    if (routed.row->handler == nullptr || actions == nullptr) {
        co_return message(503, kNotSupported, settings);
    }
    if (!status) {
        co_return message(503, "pgwarden is starting: no node status published yet", settings);
    }
    // Named locals, not temporaries, around co_await (g++ 12 destroys such temporaries twice).
    Env env{std::move(status), actions, ctx, std::move(settings), std::move(options)};
    net::awaitable<Response> task = routed.row->handler(std::move(req), std::move(env));
    co_return co_await std::move(task);
}

}  // namespace pgwarden::rest
