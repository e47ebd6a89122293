#include "runtime/rest/unsafe.hpp"

#include "config/dynamic.hpp"
#include "runtime/rest/json_util.hpp"
#include "runtime/rest/parse_util.hpp"
#include "runtime/rest/response_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <utility>
#include <vector>

namespace pgwarden::rest {

namespace net = boost::asio;

namespace {

// ---------------------------------------------------------------------------------------------
// Responses

// write_response(): plain text + restapi.http_extra_headers.
Response message(int status, std::string_view text, const core::RestApiSettings& settings) {
    Response r = rest::message(status, text);
    add_extra_headers(r, settings);
    return r;
}

Response json_response(int status, std::string body, const core::RestApiSettings& settings) {
    Response r = rest::json_response(status, std::move(body));
    add_extra_headers(r, settings);
    return r;
}

// ---------------------------------------------------------------------------------------------
// JSON values seen through Python's eyes

bool truthy(const OJson& v) {
    if (v.is_null()) {
        return false;
    }
    if (v.is_boolean()) {
        return v.get<bool>();
    }
    if (v.is_number_integer()) {
        return v.get<std::int64_t>() != 0;
    }
    if (v.is_number_unsigned()) {
        return v.get<std::uint64_t>() != 0;
    }
    if (v.is_number_float()) {
        return v.get<double>() != 0.0;
    }
    if (v.is_string()) {
        return !v.get_ref<const std::string&>().empty();
    }
    return !v.empty();  // array / object
}

// str(value) as Python prints a json.loads() result (close enough for comparisons and parsing).
std::string py_str(const OJson& v) {
    if (v.is_string()) {
        return v.get<std::string>();
    }
    if (v.is_null()) {
        return "None";
    }
    if (v.is_boolean()) {
        return v.get<bool>() ? "True" : "False";
    }
    return dump_json(v);
}

const OJson* get(const OJson& obj, const char* key) {
    if (!obj.is_object()) {
        return nullptr;
    }
    const auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
}

// request.get(key) used as a name: nullopt when missing or falsy.
std::optional<std::string> name_value(const OJson& obj, const char* key) {
    const OJson* v = get(obj, key);
    if (v == nullptr || !truthy(*v)) {
        return std::nullopt;
    }
    return v->is_string() ? v->get<std::string>() : dump_json(*v);
}

// Patroni's utils.deep_compare: same keys; dicts recursively, everything else by str().
bool deep_compare(const OJson& a, const OJson& b) {
    if (!a.is_object() || !b.is_object() || a.size() != b.size()) {
        return false;
    }
    for (auto it = a.begin(); it != a.end(); ++it) {
        const auto other = b.find(it.key());
        if (other == b.end()) {
            return false;
        }
        if (it->is_object()) {
            if (!other->is_object() || !deep_compare(*it, *other)) {
                return false;
            }
        } else if (py_str(*it) != py_str(*other)) {
            return false;
        }
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// Request body (Patroni's _read_json_content)

struct JsonBody {
    OJson value = OJson::object();
    std::optional<Response> error;  // 411 / 400 page
};

JsonBody read_json_content(const Request& req, bool body_is_optional) {
    JsonBody out;
    if (!req.has_content_length) {
        if (!body_is_optional) {
            out.error = error_page(411);
        }
        return out;
    }
    if (req.body.empty() && body_is_optional) {
        return out;
    }
    auto parsed = parse_json(req.body);
    if (parsed && parsed->is_object() && (!parsed->empty() || body_is_optional)) {
        out.value = std::move(*parsed);
        return out;
    }
    out.error = error_page(400);
    return out;
}

// ---------------------------------------------------------------------------------------------
// The global configuration as Patroni's global_config.from_cluster(cluster) sees it.

struct GlobalFlags {
    bool paused = false;
    bool synchronous_mode = false;  // on or quorum, and not a standby cluster
    bool quorum = false;
};

GlobalFlags global_flags(const core::Cluster& cluster, const core::NodeStatus& status) {
    GlobalFlags f;
    std::optional<OJson> cfg;
    if (cluster.config_json && cluster.config_version != 0) {
        cfg = parse_json(*cluster.config_json);
    }
    if (!cfg || !cfg->is_object()) {
        // No usable config key: Patroni falls back to its own (local) global configuration.
        f.paused = status.dynamic.pause;
        f.quorum = status.dynamic.synchronous_mode == "quorum";
        f.synchronous_mode = status.dynamic.synchronous_mode != "off" && !status.standby_cluster;
        return f;
    }
    auto mode = [&](const char* key) {
        const OJson* v = get(*cfg, key);
        return v != nullptr && parse_bool(py_str(*v)).value_or(false);
    };
    f.paused = mode("pause");
    std::string sync_mode;
    if (const OJson* v = get(*cfg, "synchronous_mode")) {
        sync_mode = py_str(*v);
        std::transform(sync_mode.begin(), sync_mode.end(), sync_mode.begin(), [](unsigned char c) {
            return static_cast<char>(std::tolower(c));
        });
    }
    f.quorum = sync_mode == "quorum";
    bool standby = false;
    if (const OJson* sc = get(*cfg, "standby_cluster"); sc != nullptr && sc->is_object()) {
        for (const char* k : {"host", "port", "restore_command"}) {
            const OJson* v = get(*sc, k);
            standby = standby || (v != nullptr && truthy(*v));
        }
    }
    f.synchronous_mode = (mode("synchronous_mode") || f.quorum) && !standby;
    return f;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) {
        return static_cast<char>(std::tolower(c));
    });
    return s;
}

// SyncState.matches(name): the /sync key has a leader and lists `name` in sync_standby
// (comma-separated, case-insensitive). A missing or invalid key matches nothing.
bool sync_matches(const core::Cluster& cluster, const std::string& name) {
    if (!cluster.sync_json) {
        return false;
    }
    const auto sync = parse_json(*cluster.sync_json);
    if (!sync || !sync->is_object()) {
        return false;
    }
    const OJson* leader = get(*sync, "leader");
    const OJson* standby = get(*sync, "sync_standby");
    if (leader == nullptr || !truthy(*leader) || standby == nullptr || !standby->is_string()) {
        return false;
    }
    const std::string wanted = lower(name);
    std::string_view list = standby->get_ref<const std::string&>();
    while (true) {
        const auto comma = list.find(',');
        std::string_view item = list.substr(0, comma);
        while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front()))) {
            item.remove_prefix(1);
        }
        while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) {
            item.remove_suffix(1);
        }
        if (!item.empty() && lower(std::string(item)) == wanted) {
            return true;
        }
        if (comma == std::string_view::npos) {
            return false;
        }
        list.remove_prefix(comma + 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Routing

enum class Endpoint {
    PostFailover,
    PostSwitchover,
    DeleteSwitchover,
    PatchConfig,
    PutConfig,
    PostRestart,
    DeleteRestart,
    PostReload,
    PostReinitialize,
    Other,  // 501 or an endpoint this version does not implement
};

// path.lstrip('/').split('/')[0] of urlparse(target).path
std::string first_segment(std::string_view target) {
    target = strip_absolute_form(target);
    return std::string(first_path_segment(target.substr(0, target.find_first_of("?#"))));
}

Endpoint route(const Request& req) {
    struct Row {
        std::string_view method;
        std::string_view segment;
        Endpoint endpoint;
    };
    static constexpr Row kRows[] = {
        {"POST", "failover", Endpoint::PostFailover},
        {"POST", "switchover", Endpoint::PostSwitchover},
        {"DELETE", "switchover", Endpoint::DeleteSwitchover},
        {"PATCH", "config", Endpoint::PatchConfig},
        {"PUT", "config", Endpoint::PutConfig},
        {"POST", "restart", Endpoint::PostRestart},
        {"DELETE", "restart", Endpoint::DeleteRestart},
        {"POST", "reload", Endpoint::PostReload},
        {"POST", "reinitialize", Endpoint::PostReinitialize},
    };
    const std::string seg = first_segment(req.target);
    for (const auto& row : kRows) {
        if (row.method == req.method && row.segment == seg) {
            return row.endpoint;
        }
    }
    return Endpoint::Other;
}

// Everything a handler needs besides the request; by value into every coroutine.
struct Env {
    std::shared_ptr<const core::NodeStatus> status;
    ApiActions* actions = nullptr;
    Context ctx;
    core::RestApiSettings settings;
    UnsafeOptions options;
};

std::string title(const std::string& action) {  // "switchover" -> "Switchover"
    std::string t = action;
    if (!t.empty()) {
        t[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(t[0])));
    }
    return t;
}

// ---------------------------------------------------------------------------------------------
// Scheduled timestamps (Patroni's parse_schedule)

struct Schedule {
    std::optional<Response> error;
    std::string iso;  // isoformat() of the parsed value
};

Schedule parse_schedule(const OJson& value, const std::string& action, const Env& env) {
    Schedule s;
    std::optional<IsoTimestamp> ts;
    if (value.is_string()) {
        ts = parse_iso8601(value.get_ref<const std::string&>());
    }
    if (!ts) {
        s.error = message(422,
                          "Unable to parse scheduled timestamp. It should be in an unambiguous "
                          "format, e.g. ISO 8601",
                          env.settings);
    } else if (!ts->offset_minutes) {
        s.error = message(
            400, "Timezone information is mandatory for the scheduled " + action, env.settings);
    } else if (ts->epoch_seconds() < env.ctx.epoch_now) {
        // Injected time has whole seconds: a timestamp within the current second is not past.
        s.error = message(422, "Cannot schedule " + action + " in the past", env.settings);
    } else {
        s.iso = format_iso8601(*ts);
    }
    return s;
}

// ---------------------------------------------------------------------------------------------
// POST /switchover, POST /failover

// Shared between the probe completions and the waiting handler (one thread: no locking).
struct ProbeState {
    explicit ProbeState(const net::any_io_executor& ex) : done(ex) {}
    std::size_t pending = 0;
    bool any_good = false;
    net::steady_timer done;
};

// Probes the members in parallel (each probe has its own 2 s deadline); true as soon as one is a
// good candidate: reachable, not nofailover, watchdog not failed (failover_limitation() is None).
net::awaitable<bool> any_good_candidate(std::vector<core::Member> members, Env env) {
    const auto ex = co_await net::this_coro::executor;
    auto state = std::make_shared<ProbeState>(ex);
    state->pending = members.size();
    for (auto& m : members) {
        net::co_spawn(ex,
                      env.actions->probe_member(std::move(m)),
                      [state](const std::exception_ptr& e, core::MemberProbe p) {
                          if (!e && p.reachable && !p.nofailover && !p.watchdog_failed) {
                              state->any_good = true;
                          }
                          --state->pending;
                          state->done.cancel();
                      });
    }
    state->done.expires_after(env.options.probe_wait);
    while (state->pending > 0 && !state->any_good) {
        auto [ec] = co_await state->done.async_wait(net::as_tuple(net::use_awaitable));
        if (!ec) {
            break;  // overall deadline: the missing ones count as unreachable
        }
    }
    co_return state->any_good;
}

// Patroni's is_failover_possible: nullopt when possible, else the 412 message.
net::awaitable<std::optional<std::string>> failover_impossible(core::Cluster cluster,
                                                               GlobalFlags flags,
                                                               std::optional<std::string> leader,
                                                               std::optional<std::string> candidate,
                                                               std::string action,
                                                               Env env) {
    if (leader && (!cluster.leader || cluster.leader->name != *leader)) {
        co_return std::string("leader name does not match");
    }
    const bool sync = flags.synchronous_mode && !flags.quorum;
    std::vector<core::Member> members;
    if (candidate) {
        if (action == "switchover" && sync && !sync_matches(cluster, *candidate)) {
            co_return std::string("candidate name does not match with sync_standby");
        }
        for (const auto& m : cluster.members) {
            if (m.name == *candidate) {
                members.push_back(m);
            }
        }
        if (members.empty()) {
            co_return std::string("candidate does not exists");
        }
    } else if (sync) {
        for (const auto& m : cluster.members) {
            if (sync_matches(cluster, m.name)) {
                members.push_back(m);
            }
        }
        if (members.empty()) {
            co_return action + " is not possible: can not find sync_standby";
        }
    } else {
        for (const auto& m : cluster.members) {
            if (!cluster.leader || (m.name != cluster.leader->name && !m.api_url.empty())) {
                members.push_back(m);
            }
        }
        if (members.empty()) {
            co_return action + " is not possible: cluster does not have members except leader";
        }
    }
    if (co_await any_good_candidate(std::move(members), env)) {
        co_return std::nullopt;
    }
    co_return action + " is not possible: no good candidates have been found";
}

// Patroni's poll_failover_result. pgwarden polls every 250 ms (Patroni: 1 s) for the same total
// time, so the answer comes sooner after a quick switchover; read errors are skipped, as Patroni.
net::awaitable<Response> poll_failover_result(std::optional<std::string> old_leader,
                                              std::optional<std::string> candidate,
                                              std::string action,
                                              Env env) {
    using std::chrono::milliseconds;
    const milliseconds timeout = env.options.poll_timeout.value_or(
        std::chrono::seconds(2 * std::max(10, env.status->dynamic.loop_wait)));
    const milliseconds interval = std::max(env.options.poll_interval, milliseconds(1));
    const std::int64_t rounds =
        std::max<std::int64_t>(1, (timeout.count() + interval.count() - 1) / interval.count());
    const std::string verb = action.substr(0, action.size() - 4);  // "switch" / "fail"

    net::steady_timer timer(co_await net::this_coro::executor);
    for (std::int64_t i = 0; i < rounds; ++i) {
        timer.expires_after(interval);
        co_await timer.async_wait(net::as_tuple(net::use_awaitable));
        if (env.options.stopped && *env.options.stopped) {
            break;  // the server is shutting down; nobody will read the answer
        }
        auto cluster = co_await env.actions->read_cluster();
        if (!cluster) {
            continue;
        }
        if (cluster->is_locked() && cluster->leader->name != old_leader) {
            const std::string& now_leader = cluster->leader->name;
            if (!candidate || *candidate == now_leader) {
                co_return message(200,
                                  "Successfully " + verb + "ed over to \"" + now_leader + "\"",
                                  env.settings);
            }
            co_return message(
                200,
                title(verb) + "ed over to \"" + now_leader + "\" instead of \"" + *candidate + "\"",
                env.settings);
        }
        // Failover.__len__ counts leader and member only.
        if (!cluster->failover || (!cluster->failover->leader && !cluster->failover->member)) {
            co_return message(503, title(action) + " failed", env.settings);
        }
    }
    const auto seconds = (timeout.count() + 999) / 1000;
    co_return message(503,
                      title(action) + " status unknown after " + std::to_string(seconds) +
                          " seconds; operation may still be in progress",
                      env.settings);
}

net::awaitable<Response> post_failover(Request req, Env env, std::string action) {
    const JsonBody body = read_json_content(req, false);
    if (body.error) {
        co_return *body.error;
    }
    const OJson& request = body.value;
    const std::optional<std::string> leader = name_value(request, "leader");
    std::optional<std::string> candidate = name_value(request, "candidate");
    if (!candidate) {
        candidate = name_value(request, "member");
    }
    const OJson* scheduled_value = get(request, "scheduled_at");

    auto read = co_await env.actions->read_cluster();
    if (!read) {
        co_return message(503, kDcsReadFailed, env.settings);
    }
    const core::Cluster cluster = std::move(*read);
    const GlobalFlags flags = global_flags(cluster, *env.status);

    int status_code = 400;
    std::string data;
    if (action == "failover" && !candidate) {
        data = "Failover could be performed only to a specific candidate";
    } else if (action == "switchover" && !leader) {
        data = "Switchover could be performed only from a specific leader";
    }

    std::optional<std::string> scheduled_at;
    if (data.empty() && scheduled_value != nullptr && truthy(*scheduled_value)) {
        if (action == "failover") {
            data = "Failover can't be scheduled";
        } else if (flags.paused) {
            data = "Can't schedule switchover in the paused state";
        } else {
            Schedule s = parse_schedule(*scheduled_value, action, env);
            if (s.error) {
                co_return *s.error;
            }
            scheduled_at = std::move(s.iso);
        }
    }

    if (data.empty() && flags.paused && !candidate) {
        data = "Switchover is possible only to a specific candidate in a paused state";
    }
    if (action == "failover" && leader) {
        // Patroni logs "received failover request with leader specified - performing switchover
        // instead"; the runtime logs requests, the handler stays free of logging.
        action = "switchover";
    }
    if (data.empty() && leader == candidate) {
        data = "Switchover target and source are the same";
    }
    if (data.empty() && !scheduled_at) {
        auto impossible =
            co_await failover_impossible(cluster, flags, leader, candidate, action, env);
        if (impossible) {
            status_code = 412;
            data = std::move(*impossible);
        }
    }
    if (!data.empty()) {
        co_return message(status_code, data, env.settings);
    }

    // The DCS failover key: only the keys given; the candidate is "member" in the DCS.
    OJson value = OJson::object();
    if (leader) {
        value["leader"] = *leader;
    }
    if (candidate) {
        value["member"] = *candidate;
    }
    if (scheduled_at) {
        value["scheduled_at"] = *scheduled_at;
    }
    auto written = co_await env.actions->write_failover(dump_json(value), std::nullopt);
    if (!written || !*written) {
        co_return message(503, "failed to write failover key into DCS", env.settings);
    }
    env.actions->wakeup();
    if (scheduled_at) {
        co_return message(202, title(action) + " scheduled", env.settings);
    }
    std::optional<std::string> old_leader;
    if (cluster.leader) {
        old_leader = cluster.leader->name;
    }
    co_return co_await poll_failover_result(old_leader, candidate, action, env);
}

// DELETE /switchover
net::awaitable<Response> delete_switchover(Env env) {
    auto cluster = co_await env.actions->read_cluster();
    if (!cluster) {
        co_return message(503, kDcsReadFailed, env.settings);
    }
    const auto& failover = cluster->failover;
    if (!failover || !failover->scheduled_at || failover->scheduled_at->empty()) {
        co_return message(404, "no switchover is scheduled", env.settings);
    }
    auto written = co_await env.actions->write_failover("{}", failover->version);
    if (!written || !*written) {
        co_return error_page(409);
    }
    co_return message(200, "scheduled switchover deleted", env.settings);
}

// ---------------------------------------------------------------------------------------------
// PATCH /config, PUT /config

net::awaitable<Response> patch_config(Request req, Env env) {
    const JsonBody body = read_json_content(req, false);
    if (body.error) {
        co_return *body.error;
    }
    auto cluster = co_await env.actions->read_cluster();
    if (!cluster) {
        co_return message(503, kDcsReadFailed, env.settings);
    }
    if (!cluster->config_json || cluster->config_version == 0) {
        co_return error_page(503);
    }
    // ClusterConfig.from_node: a value that is not a JSON object counts as {}.
    std::string old_json = "{}";
    if (auto old = parse_json(*cluster->config_json); old && old->is_object()) {
        old_json = dump_json(*old);
    }
    bool changed = false;
    std::string new_json = config::patch_config_json(old_json, dump_json(body.value), &changed);
    if (changed) {
        auto written = co_await env.actions->write_config(new_json, cluster->config_version);
        if (!written || !*written) {
            co_return error_page(409);
        }
    }
    env.actions->wakeup();
    auto merged = parse_json(new_json);
    co_return json_response(200, merged ? dump_json(*merged) : new_json, env.settings);
}

net::awaitable<Response> put_config(Request req, Env env) {
    const JsonBody body = read_json_content(req, false);
    if (body.error) {
        co_return *body.error;
    }
    auto cluster = co_await env.actions->read_cluster();
    if (!cluster) {
        co_return message(503, kDcsReadFailed, env.settings);
    }
    std::optional<OJson> current;
    if (cluster->config_json) {
        current = parse_json(*cluster->config_json);
        if (current && !current->is_object()) {
            current = OJson::object();
        }
    }
    const std::string value = dump_json(body.value);
    if (!current || !deep_compare(body.value, *current)) {
        auto written = co_await env.actions->write_config(value, std::nullopt);
        if (!written || !*written) {
            co_return error_page(502);
        }
    }
    co_return json_response(200, value, env.settings);
}

// ---------------------------------------------------------------------------------------------
// POST /restart, DELETE /restart

net::awaitable<Response> post_restart(Request req, Env env) {
    const JsonBody body = read_json_content(req, true);
    if (body.error) {
        co_return *body.error;
    }
    OJson request = body.value;
    // pgwarden reads the pause flag from the HA loop's published state (Patroni: a fresh DCS
    // read), so a restart does not depend on the DCS answering.
    if (env.status->dynamic.pause && request.contains("schedule")) {
        co_return message(500, "Can't schedule restart in the paused state", env.settings);
    }

    RestartRequest r;
    for (auto it = request.begin(); it != request.end(); ++it) {
        const std::string& k = it.key();
        if (k == "schedule") {
            Schedule s = parse_schedule(*it, "restart", env);
            if (s.error) {
                co_return *s.error;
            }
            r.schedule = s.iso;
            *it = s.iso;
        } else if (k == "role") {
            if (!it->is_string() ||
                (*it != "primary" && *it != "standby_leader" && *it != "replica")) {
                co_return message(
                    400,
                    "PostgreSQL role should be either primary, standby_leader, or replica",
                    env.settings);
            }
            r.role = it->get<std::string>();
        } else if (k == "postgres_version") {
            std::string error;
            const std::string text = py_str(*it);
            if (!it->is_string()) {
                co_return message(400, "Invalid PostgreSQL version: " + text, env.settings);
            }
            if (!postgres_version_to_int(text, &error)) {
                co_return message(400, error, env.settings);
            }
            r.postgres_version = text;
        } else if (k == "timeout") {
            const auto seconds = parse_seconds(py_str(*it));
            if (!seconds || *seconds <= 0) {
                co_return message(
                    400, "Timeout should be a positive number of seconds", env.settings);
            }
            r.timeout = static_cast<int>(std::min<std::int64_t>(*seconds, INT_MAX));
            *it = *r.timeout;
        } else if (k == "restart_pending") {
            r.restart_pending = true;  // presence of the key, whatever its value (as Patroni)
        } else {
            co_return message(400, "Unknown filter for the scheduled restart: " + k, env.settings);
        }
    }
    r.raw_json = dump_json(request);

    ActionOutcome outcome;
    if (r.schedule) {
        outcome = env.actions->schedule_restart(std::move(r));
    } else {
        // Ha.restart_matches: the filters against what this node is now.
        const core::NodeStatus& st = *env.status;
        bool matches = true;
        if (r.role && *r.role != core::to_string(st.role)) {
            matches = false;  // host role mismatch
        }
        const int server_version = st.pg ? st.pg->server_version : 0;
        if (r.postgres_version &&
            postgres_version_to_int(*r.postgres_version).value_or(0) <= server_version) {
            matches = false;  // postgres version mismatch
        }
        if (r.restart_pending && !st.pending_restart) {
            matches = false;  // pending restart flag is not set
        }
        if (!matches) {
            co_return message(503, "restart conditions are not satisfied", env.settings);
        }
        bool failed = false;
        try {
            outcome = co_await env.actions->restart(std::move(r));
        } catch (const std::exception&) {
            failed = true;  // Patroni: "Exception during restart" -> 400 "restart failed"
        }
        if (failed) {
            co_return message(400, "restart failed", env.settings);
        }
    }
    co_return message(outcome.status, outcome.message, env.settings);
}

// ---------------------------------------------------------------------------------------------
// POST /reinitialize

net::awaitable<Response> post_reinitialize(Request req, Env env) {
    const JsonBody body = read_json_content(req, true);
    if (body.error) {
        co_return *body.error;
    }
    auto flag = [&](const char* key) {
        const OJson* v = get(body.value, key);
        return v != nullptr && parse_bool(py_str(*v)).value_or(false);
    };
    const bool force = flag("force");
    const bool from_leader = flag("from_leader");

    auto cluster = co_await env.actions->read_cluster();
    if (!cluster) {
        co_return message(503, kDcsReadFailed, env.settings);
    }
    if (!cluster->is_locked()) {
        co_return message(503, "Cluster has no leader, can not reinitialize", env.settings);
    }
    if (cluster->leader->name == env.status->name) {
        co_return message(503, "I am the leader, can not reinitialize", env.settings);
    }
    const ActionOutcome outcome = env.actions->reinitialize(force, from_leader);
    co_return message(outcome.status, outcome.message, env.settings);
}

// ---------------------------------------------------------------------------------------------
// Calendar

bool is_leap(int y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int days_in_month(int y, int m) {
    static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

// days_from_civil (Howard Hinnant)
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// Reads exactly n digits at s[pos]; advances pos.
std::optional<int> digits(std::string_view s, std::size_t& pos, std::size_t n) {
    if (pos + n > s.size()) {
        return std::nullopt;
    }
    int v = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (!is_digit(s[pos + i])) {
            return std::nullopt;
        }
        v = v * 10 + (s[pos + i] - '0');
    }
    pos += n;
    return v;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public functions

std::int64_t IsoTimestamp::epoch_seconds() const {
    const std::int64_t days =
        days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
    return days * 86400 + hour * 3600 + minute * 60 + second -
           static_cast<std::int64_t>(offset_minutes.value_or(0)) * 60;
}

std::optional<IsoTimestamp> parse_iso8601(std::string_view text) {
    const std::string_view s = strip(text);
    IsoTimestamp ts;
    std::size_t pos = 0;
    auto expect = [&](char c) {
        if (pos < s.size() && s[pos] == c) {
            ++pos;
            return true;
        }
        return false;
    };
    const auto year = digits(s, pos, 4);
    if (!year || !expect('-')) {
        return std::nullopt;
    }
    const auto month = digits(s, pos, 2);
    if (!month || !expect('-')) {
        return std::nullopt;
    }
    const auto day = digits(s, pos, 2);
    if (!day || *year < 1 || *month < 1 || *month > 12 || *day < 1 ||
        *day > days_in_month(*year, *month)) {
        return std::nullopt;
    }
    ts.year = *year;
    ts.month = *month;
    ts.day = *day;
    if (pos < s.size() && (s[pos] == 'T' || s[pos] == 't' || s[pos] == ' ')) {
        ++pos;
        const auto hour = digits(s, pos, 2);
        if (!hour || !expect(':')) {
            return std::nullopt;
        }
        const auto minute = digits(s, pos, 2);
        if (!minute || *hour > 23 || *minute > 59) {
            return std::nullopt;
        }
        ts.hour = *hour;
        ts.minute = *minute;
        if (expect(':')) {
            const auto second = digits(s, pos, 2);
            if (!second || *second > 59) {
                return std::nullopt;
            }
            ts.second = *second;
            if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
                ++pos;
                std::size_t n = 0;
                int micro = 0;
                while (pos < s.size() && is_digit(s[pos])) {
                    if (n < 6) {
                        micro = micro * 10 + (s[pos] - '0');
                    }
                    ++n;
                    ++pos;
                }
                if (n == 0 || n > 9) {
                    return std::nullopt;
                }
                for (std::size_t k = n; k < 6; ++k) {
                    micro *= 10;
                }
                ts.microsecond = micro;
            }
        }
        if (pos < s.size()) {
            if (s[pos] == 'Z' || s[pos] == 'z') {
                ++pos;
                ts.offset_minutes = 0;
            } else if (s[pos] == '+' || s[pos] == '-') {
                const int sign = s[pos] == '-' ? -1 : 1;
                ++pos;
                const auto oh = digits(s, pos, 2);
                if (!oh) {
                    return std::nullopt;
                }
                int om = 0;
                if (pos < s.size()) {
                    expect(':');
                    const auto m = digits(s, pos, 2);
                    if (!m || *m > 59) {
                        return std::nullopt;
                    }
                    om = *m;
                }
                if (*oh > 23) {
                    return std::nullopt;
                }
                ts.offset_minutes = sign * (*oh * 60 + om);
            }
        }
    }
    if (pos != s.size()) {
        return std::nullopt;
    }
    return ts;
}

std::string format_iso8601(const IsoTimestamp& ts) {
    char buf[64];
    std::snprintf(buf,
                  sizeof buf,
                  "%04d-%02d-%02dT%02d:%02d:%02d",
                  ts.year,
                  ts.month,
                  ts.day,
                  ts.hour,
                  ts.minute,
                  ts.second);
    std::string out = buf;
    if (ts.microsecond != 0) {
        std::snprintf(buf, sizeof buf, ".%06d", ts.microsecond);
        out += buf;
    }
    if (ts.offset_minutes) {
        const int off = *ts.offset_minutes;
        const int a = off < 0 ? -off : off;
        std::snprintf(buf, sizeof buf, "%c%02d:%02d", off < 0 ? '-' : '+', a / 60, a % 60);
        out += buf;
    }
    return out;
}

std::optional<int> postgres_version_to_int(std::string_view version, std::string* error) {
    auto fail = [&](std::string msg) -> std::optional<int> {
        if (error != nullptr) {
            *error = std::move(msg);
        }
        return std::nullopt;
    };
    // list(map(int, pg_version.split('.'))): each part an optionally signed, space-padded int
    std::vector<long long> parts;
    std::string_view rest = version;
    while (true) {
        const auto dot = rest.find('.');
        std::string_view part = strip(rest.substr(0, dot));
        bool negative = false;
        if (!part.empty() && (part.front() == '+' || part.front() == '-')) {
            negative = part.front() == '-';
            part.remove_prefix(1);
        }
        if (part.empty() || part.size() > 9 ||
            !std::all_of(part.begin(), part.end(), [](char c) { return is_digit(c); })) {
            return fail("Invalid PostgreSQL version: " + std::string(version));
        }
        const long long v = std::stoll(std::string(part));
        parts.push_back(negative ? -v : v);
        if (dot == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(dot + 1);
    }
    if (parts.size() < 2 || (parts.size() == 2 && parts[0] < 10) || parts.size() > 3) {
        return fail("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: " +
                    std::string(version));
    }
    if (parts.size() == 2) {
        parts.insert(parts.begin() + 1, 0);
    }
    // int(''.join('{0:02d}'.format(c) for c in components))
    std::string joined;
    for (long long c : parts) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%02lld", c);
        joined += buf;
    }
    char* end = nullptr;
    const long long v = std::strtoll(joined.c_str(), &end, 10);
    if (end == nullptr || *end != '\0' || v < INT_MIN || v > INT_MAX) {
        return fail("Invalid PostgreSQL version: " + std::string(version));
    }
    return static_cast<int>(v);
}

std::optional<std::int64_t> parse_seconds(std::string_view value) {
    // convert_to_base_unit(value, unit, 's'): factor, then round to the next smaller unit.
    static constexpr UnitFactor kUnits[] = {
        {"d", 86400.0, 3600.0},
        {"h", 3600.0, 60.0},
        {"min", 60.0, 1.0},
        {"s", 1.0, 1e-3},
        {"ms", 1e-3, 1e-6},
        {"us", 1e-6, 0.0},
    };
    return parse_int_with_unit(value, kUnits);
}

std::optional<bool> parse_bool(std::string_view value) {
    std::string v(value);
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) {
        return static_cast<char>(std::tolower(c));
    });
    if (v == "on" || v == "true" || v == "yes" || v == "1") {
        return true;
    }
    if (v == "off" || v == "false" || v == "no" || v == "0") {
        return false;
    }
    return std::nullopt;
}

net::awaitable<Response> handle_unsafe(Request req,
                                       std::shared_ptr<const core::NodeStatus> status,
                                       ApiActions* actions,
                                       Context ctx,
                                       core::RestApiSettings settings,
                                       UnsafeOptions options) {
    const core::Cluster* cached = status ? status->cluster.get() : nullptr;
    const Endpoint endpoint = route(req);
    if (endpoint == Endpoint::Other || actions == nullptr) {
        co_return handle_unsafe_not_supported(req, settings, cached);
    }
    if (auto denied = check_access(req, settings, cached, true)) {
        co_return *denied;
    }
    if (!status) {
        co_return message(503, "pgwarden is starting: no node status published yet", settings);
    }
    Env env{status, actions, ctx, std::move(settings), std::move(options)};
    switch (endpoint) {
        case Endpoint::PostFailover:
            co_return co_await post_failover(std::move(req), std::move(env), "failover");
        case Endpoint::PostSwitchover:
            co_return co_await post_failover(std::move(req), std::move(env), "switchover");
        case Endpoint::DeleteSwitchover:
            co_return co_await delete_switchover(std::move(env));
        case Endpoint::PatchConfig:
            co_return co_await patch_config(std::move(req), std::move(env));
        case Endpoint::PutConfig:
            co_return co_await put_config(std::move(req), std::move(env));
        case Endpoint::PostRestart:
            co_return co_await post_restart(std::move(req), std::move(env));
        case Endpoint::DeleteRestart: {
            const ActionOutcome o = actions->delete_scheduled_restart();
            co_return message(o.status, o.message, env.settings);
        }
        case Endpoint::PostReload:
            actions->reload();
            co_return message(202, "reload scheduled", env.settings);
        case Endpoint::PostReinitialize:
            co_return co_await post_reinitialize(std::move(req), std::move(env));
        case Endpoint::Other:
            break;
    }
    co_return handle_unsafe_not_supported(req, env.settings, cached);
}

}  // namespace pgwarden::rest
