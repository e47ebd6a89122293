// POST /switchover, POST /failover, DELETE /switchover: validation (Patroni's
// is_failover_possible with candidate probes), the failover key, polling for the outcome.
#include "asio/event.hpp"
#include "asio/spawn.hpp"
#include "runtime/rest/dcs_values.hpp"
#include "runtime/rest/endpoints.hpp"
#include "runtime/rest/python_value.hpp"
#include "runtime/rest/response_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cctype>
#include <exception>
#include <utility>
#include <vector>

namespace pgwarden::rest {

namespace net = boost::asio;

namespace {

std::string title(const std::string& action) {  // "switchover" -> "Switchover"
    std::string t = action;
    if (!t.empty()) {
        t[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(t[0])));
    }
    return t;
}

// Shared between the probe completions and the waiting handler (one thread: no locking).
struct ProbeState {
    ProbeState(const net::any_io_executor& ex, std::size_t n) : done(ex), pending(n) {}
    async::Event done;  // set once one is a good candidate, or all have answered
    std::size_t pending;
    bool any_good = false;
};

// Probes the members in parallel (each probe has its own 2 s deadline); true as soon as one is a
// good candidate: reachable, not nofailover, watchdog not failed (failover_limitation() is None).
net::awaitable<bool> any_good_candidate(std::vector<core::Member> members, Env env) {
    const auto ex = co_await net::this_coro::executor;
    auto state = std::make_shared<ProbeState>(ex, members.size());
    if (members.empty()) {
        co_return false;
    }
    for (auto& m : members) {
        net::co_spawn(ex,
                      env.actions->probe_member(std::move(m)),
                      [state](const std::exception_ptr& e, core::MemberProbe p) {
                          if (e) {
                              async::log_exception("rest: candidate probe", e);
                          } else if (p.reachable && !p.nofailover && !p.watchdog_failed) {
                              state->any_good = true;
                          }
                          if (--state->pending == 0 || state->any_good) {
                              state->done.set();
                          }
                      });
    }
    // Overall deadline: the missing ones count as unreachable.
    co_await state->done.wait_until(std::chrono::steady_clock::now() + env.options.probe_wait);
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
    const SyncKey sync_key = decode_sync(cluster);
    std::vector<core::Member> members;
    if (candidate) {
        if (action == "switchover" && sync && !sync_matches(sync_key, *candidate)) {
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
            if (sync_matches(sync_key, m.name)) {
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

}  // namespace

net::awaitable<Response> post_failover(Request req, Env env, std::string action) {
    Opening opening = co_await open_request(std::move(req), env, false);
    if (opening.error) {
        co_return std::move(*opening.error);
    }
    const OJson& request = opening.body;
    const std::optional<std::string> leader = name_value(request, "leader");
    std::optional<std::string> candidate = name_value(request, "candidate");
    if (!candidate) {
        candidate = name_value(request, "member");
    }
    const OJson* scheduled_value = json_field(request, "scheduled_at");
    const core::Cluster cluster = std::move(*opening.cluster);
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

}  // namespace pgwarden::rest
