// Internal to the consul backend: the state one ConsulDcs shares with its coroutines (HTTP
// clients, session, what it last wrote), and the functions its files call across each other.
#pragma once

#include "dcs/async_util.hpp"
#include "dcs/consul/consul_dcs.hpp"
#include "dcs/consul/wire.hpp"
#include "dcs/http_client.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgwarden::dcs {

namespace consul {

namespace net = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

inline constexpr milliseconds kMinAttemptTimeout{1000};
inline constexpr milliseconds kBackoff{200};
// A failing leader watch retries at least this often.
inline constexpr milliseconds kMaxWatchBackoff{2000};

}  // namespace consul

struct ConsulDcs::State {
    using Clock = consul::Clock;
    using milliseconds = consul::milliseconds;

    State(boost::asio::any_io_executor ex,
          core::ConsulSettings s,
          std::string ns,
          std::string sc,
          std::string name)
        : executor(ex),
          settings(std::move(s)),
          scope(std::move(sc)),
          member_name(std::move(name)),
          client(ex,
                 settings.host,
                 static_cast<unsigned short>(settings.port),
                 consul::tls_options(settings)),
          watch_client(ex,
                       settings.host,
                       static_cast<unsigned short>(settings.port),
                       consul::tls_options(settings)),
          backoff_timer(ex) {
        std::string base = ns.empty() ? "/service/" : ns;
        while (!base.empty() && base.front() == '/') {
            base.erase(base.begin());
        }
        if (!base.empty() && base.back() != '/') {
            base.push_back('/');
        }
        prefix = base + scope + "/";
    }

    boost::asio::any_io_executor executor;
    core::ConsulSettings settings;
    std::string scope;
    std::string member_name;
    std::string prefix;
    HttpClient client;
    HttpClient watch_client;
    DcsTiming timing;

    std::string session;
    Clock::time_point session_renewed{};
    std::int64_t leader_index = 0;  // ModifyIndex of the leader key as last read (0: absent)
    std::string leader_session;
    std::string leader_value;
    std::optional<std::int64_t> last_status_lsn;
    bool session_recreated_for_update = false;
    std::string member_value;       // what we last wrote to our member key
    std::string member_session;     // ... and with which session
    std::string service_signature;  // what we last registered ("" = nothing / deregistered)
    // True once this process has deregistered the service (or never registered it and knows
    // it is absent). False at start: an instance left by a previous run may still be there.
    bool service_absent = false;
    std::string last_error_logged;
    RetryLog watch_log{"consul: leader watch"};

    bool running = false;
    std::uint64_t watch_generation = 0;
    std::function<void()> on_leader_change;
    boost::asio::steady_timer backoff_timer;

    std::string kv(std::string_view key) const {
        return "/v1/kv/" + consul::url_escape(prefix + std::string(key));
    }
    std::string member_key() const { return "members/" + member_name; }
    milliseconds attempt_timeout() const {
        return std::max(consul::kMinAttemptTimeout, milliseconds(timing.retry_timeout * 1000 / 3));
    }
    Clock::time_point op_deadline() const {
        return Clock::now() + std::chrono::seconds(std::max(timing.retry_timeout, 1));
    }
    HttpHeaders headers() const {
        HttpHeaders h;
        if (!settings.token.empty()) {
            h.emplace_back("X-Consul-Token", settings.token);
        }
        return h;
    }
    // Adds ?dc= and, for reads, the configured consistency mode.
    std::string with_params(std::string target, bool read, bool force_consistent = false) const {
        std::vector<std::string> params;
        if (!settings.dc.empty()) {
            params.push_back("dc=" + consul::url_escape(settings.dc));
        }
        if (read) {
            if (force_consistent || settings.consistency == "consistent") {
                params.emplace_back("consistent=1");
            } else if (settings.consistency == "stale") {
                params.emplace_back("stale=1");
            }
        }
        for (const auto& p : params) {
            target += (target.find('?') == std::string::npos ? "?" : "&") + p;
        }
        return target;
    }

    void log_error_once(const std::string& message) {
        if (message != last_error_logged) {
            spdlog::error("{}", message);
            last_error_logged = message;
        }
    }
};

namespace consul {

using State = ConsulDcs::State;
using StatePtr = std::shared_ptr<State>;

// ----- session.cpp: requests and the session ------------------------------------------------

// One request with retries until `deadline`. 2xx, 404 and the session/TTL 500s come back as
// responses for the caller to interpret; ACL refusals are errors that are not retried.
net::awaitable<Result<HttpResponse>> call(StatePtr s,
                                          std::string method,
                                          std::string target,
                                          std::string body,
                                          Clock::time_point deadline);
// Makes sure we have a live session; renews it when forced or older than loop_wait.
net::awaitable<Result<void>> ensure_session(StatePtr s, bool force, Clock::time_point deadline);
// PUT <key>?acquire=<session>; a dead session is replaced and the acquire retried once.
net::awaitable<Result<bool>> acquire(StatePtr s,
                                     std::string key,
                                     std::string value,
                                     Clock::time_point deadline);
// Refuses a ttl the agent's SessionTTLMin cannot honour (ConsulDcs::check_ttl).
net::awaitable<Result<void>> do_check_ttl(StatePtr s, int ttl, std::string* message);

// ----- watch.cpp: the blocking query on the leader key ---------------------------------------

net::awaitable<void> watch_loop(StatePtr s, std::uint64_t generation);
bool watch_alive(const StatePtr& s, std::uint64_t generation);

}  // namespace consul

}  // namespace pgwarden::dcs
