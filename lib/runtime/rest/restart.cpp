// POST /restart (filters, scheduled or now), DELETE /restart, POST /reload and
// POST /reinitialize: request validation here, the actions themselves through ApiActions.
#include "runtime/rest/endpoints.hpp"
#include "runtime/rest/python_value.hpp"
#include "runtime/rest/response_util.hpp"

#include <algorithm>
#include <climits>
#include <exception>
#include <utility>

namespace pgwarden::rest {

boost::asio::awaitable<Response> post_restart(Request req, Env env) {
    Opening opening = co_await open_request(std::move(req), env, true, false);
    if (opening.error) {
        co_return std::move(*opening.error);
    }
    OJson request = std::move(opening.body);
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

boost::asio::awaitable<Response> delete_restart(Env env) {
    const ActionOutcome o = env.actions->delete_scheduled_restart();
    co_return message(o.status, o.message, env.settings);
}

boost::asio::awaitable<Response> post_reload(Env env) {
    env.actions->reload();
    co_return message(202, "reload scheduled", env.settings);
}

boost::asio::awaitable<Response> post_reinitialize(Request req, Env env) {
    Opening opening = co_await open_request(std::move(req), env, true);
    if (opening.error) {
        co_return std::move(*opening.error);
    }
    const bool force = flag_value(opening.body, "force");
    const bool from_leader = flag_value(opening.body, "from_leader");
    const auto& cluster = opening.cluster;
    if (!cluster->is_locked()) {
        co_return message(503, "Cluster has no leader, can not reinitialize", env.settings);
    }
    if (cluster->leader->name == env.status->name) {
        co_return message(503, "I am the leader, can not reinitialize", env.settings);
    }
    const ActionOutcome outcome = env.actions->reinitialize(force, from_leader);
    co_return message(outcome.status, outcome.message, env.settings);
}

}  // namespace pgwarden::rest
