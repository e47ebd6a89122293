// Internal to the etcd3 backend: the state one Etcd3Dcs shares with its coroutines (connection,
// auth token, lease, watch-fed cache), and the functions its files call across each other.
#pragma once

#include "asio/event.hpp"
#include "dcs/async_util.hpp"
#include "dcs/cluster_codec.hpp"
#include "dcs/etcd3/etcd3_dcs.hpp"
#include "dcs/http_client.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgwarden::dcs {

namespace etcd3 {

namespace net = boost::asio;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

inline constexpr milliseconds kMinAttemptTimeout{1000};
inline constexpr milliseconds kFirstBackoff{100};
inline constexpr milliseconds kMaxBackoff{1000};

}  // namespace etcd3

struct Etcd3Dcs::State {
    using Clock = etcd3::Clock;
    using milliseconds = etcd3::milliseconds;

    State(boost::asio::any_io_executor ex,
          core::Etcd3Settings s,
          std::string prefix_,
          std::string name)
        : executor(std::move(ex)),
          settings(std::move(s)),
          prefix(std::move(prefix_)),
          member_name(std::move(name)),
          backoff_timer(executor) {}

    boost::asio::any_io_executor executor;
    core::Etcd3Settings settings;
    std::string prefix;
    std::string member_name;
    DcsTiming timing;

    std::vector<HostPort> hosts;
    std::vector<std::unique_ptr<HttpClient>> clients;  // one per host
    std::size_t current = 0;
    bool config_error = false;

    std::string api;  // "/v3", "/v3beta", "/v3alpha" once known
    std::string token;
    bool auth_disabled = false;

    std::string lease;  // "" = none
    int lease_ttl = 0;
    Clock::time_point last_lease_refresh{};

    // What we last saw/wrote, to skip redundant writes (Patroni: deep_compare / status cache).
    // member_revision: the store revision member_value/member_owner were learnt at; an older
    // read does not overwrite them.
    std::optional<std::string> member_value;
    std::string member_owner;
    std::int64_t member_revision = 0;
    std::optional<std::string> last_status;
    // header.revision of the last keepalive of the current lease (0 = none since it was granted).
    std::int64_t keepalive_revision = 0;

    // Watch.
    bool running = false;
    std::uint64_t watch_generation = 0;
    std::function<void()> on_leader_change;
    std::unique_ptr<HttpClient> watch_client;
    std::size_t watch_host = 0;
    std::uint64_t stream_seq = 0;  // messages of older streams are ignored
    bool watch_restart = false;    // the current stream was closed on purpose (not a failure)
    RetryLog watch_log{"etcd3: watch"};
    boost::asio::steady_timer backoff_timer;

    // The cache of every key under the prefix, fed by the watch (Patroni's KVCache).
    // cache_filled: `cache` is the store as of cache_revision (a range plus every watch event
    // after it). cache_valid: filled and the stream that feeds it is up; get_cluster may use it.
    RawKeys cache;
    std::int64_t cache_revision = 0;
    std::int64_t snapshot_revision = 0;  // of the last range the cache was (re)filled from
    bool cache_filled = false;
    bool cache_valid = false;
    Clock::time_point cache_confirmed_at{};  // last watch message, refill or confirming answer
    // Max header.revision of our writes (read-your-writes) and of any answer at all.
    std::int64_t write_revision = 0;
    std::int64_t observed_revision = 0;
    std::optional<Clock::time_point> behind_since;  // observed_revision > cache_revision since
    Clock::time_point last_behind_check{};
    // get_cluster calls waiting for the watch: set on cache progress or loss.
    std::vector<async::Event*> cache_waiters;

    // HTTP requests sent, by API path ("/kv/range", "/lease/keepalive", "/watch", ...).
    std::map<std::string, std::uint64_t, std::less<>> requests;

    std::string key(std::string_view name) const { return prefix + std::string(name); }
    std::string leader_key() const { return key("leader"); }
    std::string member_key() const { return key("members/" + member_name); }

    Clock::duration retry_timeout() const {
        return std::chrono::seconds(std::max(timing.retry_timeout, 1));
    }
    milliseconds attempt_timeout() const {
        return std::max(etcd3::kMinAttemptTimeout, milliseconds(timing.retry_timeout * 1000 / 3));
    }
    HttpClient& client() { return *clients[current % clients.size()]; }
    void next_host() {
        if (clients.size() > 1) {
            current = (current + 1) % clients.size();
            spdlog::info("etcd3: switching to {}:{}", client().host(), client().port());
            if (watch_host != current) {
                drop_cache("switched to another etcd host");  // the watch follows
            }
        }
    }

    void wake_cache_waiters() {
        for (auto* waiter : cache_waiters) {
            waiter->set();
        }
    }
    // The cache is not fed any more (or cannot be trusted): unusable until the watch loop has
    // read the prefix again and created a new watch. Closes the current stream, if any.
    void drop_cache(std::string_view why) {
        if (cache_valid) {
            spdlog::debug("etcd3: cache dropped: {}", why);
        }
        cache_valid = false;
        cache_filled = false;
        if (running && watch_client) {
            ++stream_seq;  // whatever the closing stream still delivers is ignored
            watch_restart = true;
            watch_client->cancel_streams();
        }
        wake_cache_waiters();
    }
    // The cache reached a new revision (refill, watch events).
    void cache_advanced() {
        cache_confirmed_at = Clock::now();
        if (cache_revision >= observed_revision) {
            behind_since.reset();
        }
        wake_cache_waiters();
    }
    // A successful answer carried header.revision `rev`; `write` = our write (or a failed
    // compare, which means our view was stale) that the next get_cluster must reflect.
    void note_revision(std::int64_t rev, bool write) {
        if (write) {
            write_revision = std::max(write_revision, rev);
        }
        observed_revision = std::max(observed_revision, rev);
        if (rev <= cache_revision) {
            cache_confirmed_at = Clock::now();  // nothing newer exists than what the cache has
        } else if (!behind_since) {
            behind_since = Clock::now();
        }
    }
    HttpHeaders headers() const {
        HttpHeaders h{{"Content-Type", "application/json"}};
        if (!token.empty()) {
            h.emplace_back("Authorization", token);
        }
        return h;
    }
};

namespace etcd3 {

using State = Etcd3Dcs::State;
using StatePtr = std::shared_ptr<State>;

// Result<bool> cannot be built implicitly from an error_code (error_code converts to bool).
inline Result<bool> fail_bool(boost::system::error_code ec) {
    return Result<bool>(boost::system::in_place_error, ec);
}

// ----- session.cpp: connection, authentication, lease ----------------------------------------

// Now + retry_timeout: the deadline of one Dcs operation.
Clock::time_point op_deadline(const StatePtr& s);
// One RPC with retries until `deadline`: transient errors switch host and back off.
net::awaitable<Result<json>> call(StatePtr s,
                                  std::string path,
                                  json body,
                                  Clock::time_point deadline);
// Keepalive at most once per loop_wait unless forced; a new lease when there is none or it is
// gone.
net::awaitable<Result<void>> refresh_lease(StatePtr s, bool force, Clock::time_point deadline);
// Our lease is gone: so are the keys attached to it.
void drop_lease(State& s);

// ----- watch_cache.cpp: the watch-fed cache and get_cluster ----------------------------------

net::awaitable<Result<core::Cluster>> do_get_cluster(StatePtr s);
// Keeps the cache filled and fed while watch_alive(s, generation).
net::awaitable<void> watch_loop(StatePtr s, std::uint64_t generation);
bool watch_alive(const StatePtr& s, std::uint64_t generation);

}  // namespace etcd3

}  // namespace pgwarden::dcs
