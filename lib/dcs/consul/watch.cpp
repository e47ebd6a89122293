// The consul backend's leader watch: a blocking query on the leader key that wakes the HA loop
// when the key goes or its value or holder changes.
#include "dcs/consul/state.hpp"

#include <cstdlib>

namespace pgwarden::dcs::consul {

bool watch_alive(const StatePtr& s, std::uint64_t generation) {
    return s->running && s->watch_generation == generation;
}

// Blocking query on the leader key: wakes the HA loop as soon as the key goes, or its value or
// holder changes. An unchanged key (the holder's own renewals and rewrites, or an index that
// moved for other keys while the leader key is absent) wakes nobody. The first answer, and the
// first after a failure, is a plain read, compared with what was seen before.
net::awaitable<void> watch_loop(StatePtr s, std::uint64_t generation) {
    std::optional<std::optional<LeaderSeen>> seen;  // outer nullopt: nothing seen yet
    std::int64_t index = 0;                         // 0: the next read is a plain one
    auto backoff = kBackoff;
    while (watch_alive(s, generation)) {
        const int wait_s = std::max(s->timing.loop_wait, 1);
        std::string target = s->kv("leader");
        milliseconds timeout = s->attempt_timeout();
        if (index > 0) {
            target += "?index=" + std::to_string(index) + "&wait=" + std::to_string(wait_s) + "s";
            timeout = milliseconds(wait_s * 1000 + std::max(wait_s * 1000 / 15, 1000) + 500);
        }
        const auto started = Clock::now();
        auto r = co_await s->watch_client.request(
            "GET", s->with_params(std::move(target), true), "", s->headers(), timeout);
        if (!watch_alive(s, generation)) {
            break;
        }
        std::optional<std::optional<LeaderSeen>> now;
        if (r && (r->status == 200 || r->status == 404)) {
            now = parse_leader_answer(*r);
        }
        if (!now) {
            s->watch_log.failed(!r ? r.error().message()
                                   : "answered " + std::to_string(r->status) + " " + r->body);
            index = 0;
            co_await sleep_for(s->executor, backoff);
            backoff = std::min(backoff * 2, kMaxWatchBackoff);
            continue;
        }
        s->watch_log.working();
        backoff = kBackoff;
        if (seen && *seen != *now && s->on_leader_change) {
            s->on_leader_change();
        }
        seen = std::move(now);
        // A smaller index means Consul reset it (§2.3): take it and block from there.
        const std::int64_t new_index =
            std::max<std::int64_t>(std::atoll(r->header("X-Consul-Index").c_str()), 1);
        if (index > 0 && new_index == index && Clock::now() - started < milliseconds(100)) {
            co_await sleep_for(s->executor, std::chrono::seconds(1));  // returned at once
        }
        index = new_index;
    }
}

}  // namespace pgwarden::dcs::consul
