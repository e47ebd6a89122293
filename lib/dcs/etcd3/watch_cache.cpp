// The etcd3 backend's watch-fed cache (Patroni's KVCache): when get_cluster may answer from it,
// the direct read otherwise, and the watch stream that fills and feeds it.
#include "dcs/etcd3/errors.hpp"
#include "dcs/etcd3/state.hpp"
#include "dcs/etcd3/wire.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace pgwarden::dcs::etcd3 {

namespace {

// The watch-fed cache (Patroni's KVCache). get_cluster waits this long for the watch to deliver
// our own last write before it reads directly instead (read-your-writes).
constexpr milliseconds kReadYourWritesWait{150};
// A cache that nothing has confirmed for this long is not trusted (silently dead stream); etcd
// sends progress notifications on idle watches only every 10 minutes.
constexpr std::chrono::minutes kCacheMaxSilence{5};
// A unary answer reported a store revision the cache has not reached for this long: the change
// may be outside our prefix, or the stream may be stuck. Checked with one direct read at most
// every kBehindCheckInterval.
constexpr std::chrono::seconds kBehindGrace{2};
constexpr std::chrono::seconds kBehindCheckInterval{30};

// Remembers what the store (as of `revision`) says about our member key, for touch_member.
void remember_member(State& s, const core::Cluster& cluster, std::int64_t revision) {
    if (revision < s.member_revision) {
        return;  // older than our own last write of it
    }
    s.member_revision = revision;
    if (const auto* me = cluster.member(s.member_name)) {
        s.member_value = me->data_json;
        s.member_owner = me->owner;
    } else {
        s.member_value.reset();
        s.member_owner.clear();
    }
}

// An event that cache progress (or loss) sets, registered for as long as it lives.
class CacheWaiter {
public:
    explicit CacheWaiter(State& s) : state_(s), event_(s.executor) {
        state_.cache_waiters.push_back(&event_);
    }
    ~CacheWaiter() { std::erase(state_.cache_waiters, &event_); }
    CacheWaiter(const CacheWaiter&) = delete;
    CacheWaiter& operator=(const CacheWaiter&) = delete;
    async::Event& event() { return event_; }

private:
    State& state_;
    async::Event event_;
};

enum class CacheUse {
    Use,          // valid, confirmed, has our last write
    Read,         // read directly (not valid yet, or our write did not arrive in time)
    CheckStream,  // read directly and compare: the cache may have missed events
};

net::awaitable<CacheUse> cache_use(StatePtr s) {
    if (!s->cache_valid) {
        co_return CacheUse::Read;
    }
    const auto now = Clock::now();
    if (now - s->cache_confirmed_at > kCacheMaxSilence) {
        spdlog::debug("etcd3: cache not confirmed for {} min; reading directly",
                      kCacheMaxSilence.count());
        co_return CacheUse::CheckStream;
    }
    if (s->behind_since && now - *s->behind_since >= kBehindGrace &&
        now - s->last_behind_check >= kBehindCheckInterval) {
        s->last_behind_check = now;
        spdlog::debug("etcd3: cache at revision {}, etcd reported {}; reading directly",
                      s->cache_revision,
                      s->observed_revision);
        co_return CacheUse::CheckStream;
    }
    if (s->cache_revision >= s->write_revision) {
        co_return CacheUse::Use;
    }
    // Read-your-writes: our last write has not come through the watch yet; wait a little.
    const auto deadline = now + kReadYourWritesWait;
    while (s->cache_valid && s->cache_revision < s->write_revision && Clock::now() < deadline) {
        CacheWaiter waiter(*s);  // one-shot: a new one for each progress that was not enough
        co_await waiter.event().wait_until(deadline);
    }
    co_return s->cache_valid && s->cache_revision >= s->write_revision ? CacheUse::Use
                                                                       : CacheUse::Read;
}

// One linearizable read of the prefix (the only way while the cache is not usable). A valid
// cache older than the answer is replaced by it; with `check_stream`, a cache that differed
// means the stream missed events: it is restarted.
net::awaitable<Result<core::Cluster>> read_cluster(StatePtr s, bool check_stream) {
    auto r = co_await call(s, "/kv/range", prefix_range_request(s->prefix), op_deadline(s));
    if (!r) {
        co_return r.error();
    }
    auto keys = parse_range(*r, s->prefix);
    if (!keys) {
        co_return keys.error();
    }
    const auto revision = header_revision(*r);
    auto cluster = build_cluster(*keys);
    remember_member(*s, cluster, revision);
    if (s->cache_valid && revision >= s->cache_revision) {
        // (Only once the cache has our last write: until then it differs anyway.)
        const bool differed =
            check_stream && s->cache_revision >= s->write_revision && !same_keys(s->cache, *keys);
        s->cache = std::move(*keys);
        s->cache_revision = revision;
        s->snapshot_revision = revision;
        s->cache_advanced();
        if (differed) {
            spdlog::warn(
                "etcd3: the watch missed changes (cache behind revision {}); restarting it",
                revision);
            s->drop_cache("the watch missed changes");
        }
    }
    co_return cluster;
}

}  // namespace

net::awaitable<Result<core::Cluster>> do_get_cluster(StatePtr s) {
    const auto use = co_await cache_use(s);
    if (use == CacheUse::Use) {
        auto cluster = build_cluster(s->cache);
        remember_member(*s, cluster, s->cache_revision);
        co_return cluster;
    }
    co_return co_await read_cluster(s, use == CacheUse::CheckStream);
}

namespace {

// ----- watch ---------------------------------------------------------------------

struct WatchProgress {
    bool auth_failed = false;
    bool created = false;
};

// Keys whose change wakes the HA loop at once: the leader key (Dcs::start's contract), and the
// failover and config keys (switchover / pause latency). Member and status changes do not
// (needless cycles).
bool wakes_ha_loop(std::string_view relative_key) {
    return relative_key == "leader" || relative_key == "failover" || relative_key == "config";
}

// Applies the events of one watch message to the cache. Events at or below the revision of the
// range the cache was last filled from are already in it (a direct read may get ahead of the
// stream); the stream brings every later event once and in order (the events of one revision,
// e.g. a txn or a lease expiry, in one message). Returns false on a malformed event.
// Applies the events of one watch message to the cache. Events at or below the revision of the
// range the cache was last filled from are already in it (a direct read may get ahead of the
// stream); the stream brings every later event once and in order (the events of one revision,
// e.g. a txn or a lease expiry, in one message). Returns false on a malformed event.
bool apply_events(State& s, const json& events, bool& wake) {
    const std::int64_t base = s.snapshot_revision;
    std::int64_t top = s.cache_revision;
    for (const auto& ev : events) {
        auto kv = ev.find("kv");
        if (!ev.is_object() || kv == ev.end() || !kv->is_object()) {
            continue;
        }
        auto decoded = decode_kv(*kv);  // a DELETE's kv has no value: decodes as ""
        if (!decoded) {
            return false;
        }
        auto& [key, raw] = *decoded;
        if (key.rfind(s.prefix, 0) != 0) {
            continue;
        }
        auto relative = key.substr(s.prefix.size());
        const auto revision = raw.version;
        if (revision <= base) {
            continue;  // already in the cache (and seen by whoever read it)
        }
        const auto type = ev.find("type");  // absent = PUT; an enum name, or its number
        const bool is_delete = type != ev.end() && ((type->is_string() && *type == "DELETE") ||
                                                    (type->is_number_integer() && *type == 1));
        const auto cached = s.cache.find(relative);
        const bool was_present = cached != s.cache.end();
        if (is_delete) {
            // A delete of a key the cache has is a change; of one it has not, there is nothing
            // to tell.
            wake = wake || (was_present && wakes_ha_loop(relative));
            s.cache.erase(relative);
        } else {
            // Only a new value or owner is a change: a rewrite of the same value with the same
            // lease (and keepalives, which are no events at all) must not wake the holder.
            const bool changed = !was_present || cached->second.value != raw.value ||
                                 cached->second.owner != raw.owner;
            wake = wake || (changed && wakes_ha_loop(relative));
            s.cache.insert_or_assign(std::move(relative), std::move(raw));
        }
        top = std::max(top, revision);
    }
    if (top > s.cache_revision) {
        s.cache_revision = top;
        s.cache_advanced();
    }
    return true;
}

// Handles one stream message; returns false to close the stream.
bool on_watch_line(const StatePtr& s,
                   WatchProgress& progress,
                   std::uint64_t seq,
                   std::string_view line) {
    if (!s->running || s->stream_seq != seq) {
        return false;  // an old stream: its events must not interleave with the new one's
    }
    auto msg = json::parse(line, nullptr, false);
    if (msg.is_discarded() || !msg.is_object()) {
        spdlog::warn("etcd3: unparsable watch message");
        return false;
    }
    if (auto err = msg.find("error"); err != msg.end()) {
        auto e = extract_error(msg);
        spdlog::debug("etcd3: watch stream error: {}", e ? e->message : "?");
        if (e && (e->code == kGrpcUnauthenticated || contains(e->message, "auth"))) {
            progress.auth_failed = true;
        }
        return false;
    }
    auto result_it = msg.find("result");
    if (result_it == msg.end() || !result_it->is_object()) {
        return true;
    }
    const json& result = *result_it;
    if (bool_field(result, "canceled")) {
        std::string reason = result.value("cancel_reason", "");
        spdlog::info("etcd3: watch canceled (compact_revision={} reason={})",
                     i64_field(result, "compact_revision"),
                     reason);
        if (contains(reason, "auth") || contains(reason, "user name") ||
            contains(reason, "permission")) {
            progress.auth_failed = true;
        }
        return false;  // the stream is not closed by the server (patroni#3396)
    }
    // Any message of the live stream (creation, events, progress notification) confirms it.
    s->cache_confirmed_at = Clock::now();
    if (bool_field(result, "created")) {
        progress.created = true;
        s->watch_log.working();
        if (s->cache_filled) {
            s->cache_valid = true;
            s->cache_advanced();
        }
    }
    bool wake = false;
    if (auto events = result.find("events"); events != result.end() && events->is_array()) {
        if (!apply_events(*s, *events, wake)) {
            spdlog::warn("etcd3: malformed watch event");
            s->cache_valid = false;
            s->cache_filled = false;
            s->wake_cache_waiters();
            return false;
        }
    }
    if (wake && s->on_leader_change) {
        net::post(s->executor, s->on_leader_change);
    }
    return true;
}

// Reads the whole prefix into the cache; the watch then starts at the next revision.
net::awaitable<Result<void>> fill_cache(StatePtr s) {
    auto r = co_await call(s, "/kv/range", prefix_range_request(s->prefix), op_deadline(s));
    if (!r) {
        co_return r.error();
    }
    auto keys = parse_range(*r, s->prefix);
    const auto revision = header_revision(*r);
    if (!keys || revision <= 0) {
        co_return Errc::Protocol;
    }
    s->cache = std::move(*keys);
    s->cache_revision = revision;
    s->snapshot_revision = revision;
    s->cache_filled = true;
    s->cache_advanced();
    co_return Result<void>{};
}

}  // namespace

bool watch_alive(const StatePtr& s, std::uint64_t generation) {
    return s->running && s->watch_generation == generation;
}

// Keeps the cache filled and fed: range of the prefix, then a watch on the prefix from the
// next revision (with progress notifications). Whenever the stream ends, for whatever reason,
// the cache is invalid until both have been done again.
net::awaitable<void> watch_loop(StatePtr s, std::uint64_t generation) {
    auto backoff = kFirstBackoff;
    bool notify_after_resync = false;
    while (watch_alive(s, generation)) {
        if (!s->cache_filled) {
            auto r = co_await fill_cache(s);
            if (!watch_alive(s, generation)) {
                break;
            }
            if (!r) {
                s->watch_log.failed("cannot read the prefix: " + r.error().message());
                s->backoff_timer.expires_after(backoff);
                co_await s->backoff_timer.async_wait(net::as_tuple(net::use_awaitable));
                backoff = std::min(backoff * 2, kMaxBackoff);
                continue;
            }
            // Changes may have been missed while there was no stream.
            if (notify_after_resync && s->on_leader_change) {
                net::post(s->executor, s->on_leader_change);
            }
            notify_after_resync = false;
        }
        if (!s->watch_client || s->watch_host != s->current) {
            s->watch_host = s->current;
            const auto& hp = s->hosts[s->current % s->hosts.size()];
            s->watch_client = std::make_unique<HttpClient>(s->executor, hp.host, hp.port);
        }
        json watch_range = prefix_range_request(s->prefix);
        watch_range["start_revision"] = std::to_string(s->cache_revision + 1);
        watch_range["progress_notify"] = true;
        json create{{"create_request", std::move(watch_range)}};
        auto progress = std::make_shared<WatchProgress>();
        const auto seq = ++s->stream_seq;
        s->watch_restart = false;
        HttpClient::LineHandler handler = [s, progress, seq](std::string_view line) {
            try {
                return on_watch_line(s, *progress, seq, line);
            } catch (const json::exception& e) {
                // A field of an unexpected type: end this stream (the cache with it) and refill.
                spdlog::warn("etcd3: malformed watch message: {}", e.what());
                s->cache_valid = false;
                s->cache_filled = false;
                s->wake_cache_waiters();
                return false;
            }
        };
        ++s->requests["/watch"];
        auto status = co_await s->watch_client->stream("POST",
                                                       s->api + "/watch",
                                                       create.dump(),
                                                       s->headers(),
                                                       std::move(handler),
                                                       s->attempt_timeout());
        if (!watch_alive(s, generation)) {
            break;
        }
        // The stream is over: nothing feeds the cache any more.
        if (s->stream_seq == seq) {
            s->cache_valid = false;
            s->cache_filled = false;
            s->wake_cache_waiters();
        }
        notify_after_resync = true;
        if (progress->created) {
            backoff = kFirstBackoff;
        }
        if (progress->auth_failed && !s->settings.username.empty()) {
            s->token.clear();
        }
        if (!status && !s->watch_restart) {
            s->watch_log.failed("stream failed: " + status.error().message());
            s->next_host();
        } else if (status && *status == 401 && !s->settings.username.empty()) {
            s->token.clear();
        }
        s->watch_restart = false;
        s->backoff_timer.expires_after(backoff);
        co_await s->backoff_timer.async_wait(net::as_tuple(net::use_awaitable));
        backoff = std::min(backoff * 2, kMaxBackoff);
    }
}

}  // namespace pgwarden::dcs::etcd3
