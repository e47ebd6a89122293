// Etcd3Dcs itself: the Patroni operations (leader race, leader update, member, config, failover,
// sync, history, initialize) as txns and puts over call(), and the object's lifecycle.
#include "dcs/etcd3/etcd3_dcs.hpp"

#include "asio/spawn.hpp"
#include "dcs/base64.hpp"
#include "dcs/etcd3/state.hpp"
#include "dcs/etcd3/wire.hpp"

#include <spdlog/spdlog.h>

namespace pgwarden::dcs {

namespace etcd3 {
namespace {

constexpr unsigned short kDefaultPort = 2379;

net::awaitable<Result<json>> put(
    StatePtr s, std::string key, std::string value, std::string lease, Clock::time_point deadline) {
    co_return co_await call(s, "/kv/put", put_request(key, value, lease), deadline);
}

// A txn; returns whether it succeeded (the outer `succeeded`).
net::awaitable<Result<json>> run_txn(StatePtr s, json request, Clock::time_point deadline) {
    co_return co_await call(s, "/kv/txn", std::move(request), deadline);
}

net::awaitable<Result<bool>> put_cas(StatePtr s,
                                     std::string key,
                                     std::string value,
                                     std::optional<std::int64_t> version) {
    const auto deadline = op_deadline(s);
    if (!version) {
        auto r = co_await put(s, key, value, "", deadline);
        if (!r) {
            co_return fail_bool(r.error());
        }
        co_return true;
    }
    auto request = txn(json::array({compare(key, "MOD", "mod_revision", std::to_string(*version))}),
                       json::array({put_op(key, value, "")}));
    auto r = co_await run_txn(s, std::move(request), deadline);
    if (!r) {
        co_return fail_bool(r.error());
    }
    co_return bool_field(*r, "succeeded");
}

net::awaitable<Result<void>> delete_key(StatePtr s, std::string key) {
    json request{{"key", base64_encode(key)}};
    auto r = co_await call(s, "/kv/deleterange", std::move(request), op_deadline(s));
    if (!r) {
        co_return r.error();
    }
    co_return Result<void>{};
}

net::awaitable<void> write_status(StatePtr s, std::int64_t lsn, Clock::time_point deadline) {
    auto value = make_status_json(lsn);
    if (s->last_status == value) {
        co_return;
    }
    auto r = co_await put(s, s->key("status"), value, "", deadline);
    if (r) {
        s->last_status = value;
    } else {
        spdlog::warn("etcd3: failed to write status: {}", r.error().message());
    }
}

net::awaitable<Result<bool>> do_initialize(StatePtr s, std::string sysid, bool create_new) {
    const auto key = s->key("initialize");
    if (!create_new) {
        auto r = co_await put(s, key, sysid, "", op_deadline(s));
        if (!r) {
            co_return fail_bool(r.error());
        }
        co_return true;
    }
    auto request = txn(json::array({compare(key, "CREATE", "create_revision", "0")}),
                       json::array({put_op(key, sysid, "")}));
    auto r = co_await run_txn(s, std::move(request), op_deadline(s));
    if (!r) {
        co_return fail_bool(r.error());
    }
    co_return bool_field(*r, "succeeded");
}

// The keepalive is forced (F3): the caller counts on the lease lasting ttl from the moment it
// called, and the lease the member key last renewed may be nearly used up (up to 2 x loop_wait
// old). A lease that expired meanwhile is replaced by a new one.
net::awaitable<Result<bool>> do_acquire_leader(StatePtr s) {
    const auto deadline = op_deadline(s);
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto lease = co_await refresh_lease(s, true, deadline);
        if (!lease) {
            co_return fail_bool(lease.error());
        }
        auto request =
            txn(json::array({compare(s->leader_key(), "CREATE", "create_revision", "0")}),
                json::array({put_op(s->leader_key(), s->member_name, s->lease)}));
        auto r = co_await run_txn(s, std::move(request), deadline);
        if (r) {
            bool won = bool_field(*r, "succeeded");
            if (won) {
                spdlog::info("etcd3: acquired the leader key as {}", s->member_name);
            }
            co_return won;
        }
        if (r.error() != make_error_code(Errc::NotFound) || attempt > 0) {
            co_return fail_bool(r.error());
        }
        spdlog::error("etcd3: our lease disappeared; getting a new one and retrying the race");
        drop_lease(*s);
    }
    co_return Errc::NotFound;
}

// Whether the cache proves that the leader key holds our name with our lease as of the keepalive
// that has just proved the lease alive, so the txn below would write nothing: the cache is fed
// by a live watch, has our last write, and has every change up to the keepalive's revision.
bool cached_leader_is_ours(const State& s) {
    if (!s.cache_valid || s.lease.empty() || s.keepalive_revision <= 0 ||
        s.cache_revision < s.keepalive_revision || s.cache_revision < s.write_revision) {
        return false;
    }
    auto it = s.cache.find("leader");
    return it != s.cache.end() && it->second.value == s.member_name && it->second.owner == s.lease;
}

// Keepalive (forced: TTL <= 0 = the lease and its keys are gone), then make sure the leader key
// holds our name with our lease. When the cache proves it, nothing more is sent (Patroni: the
// txn only when the cached leader key's lease differs from ours). Otherwise one txn:
// VALUE==name && LEASE==lease -> nothing to write; else VALUE==name -> put with our lease
// (lease was renewed), else CREATE==0 -> put (key expired meanwhile; Patroni PR #2693).
net::awaitable<Result<bool>> do_update_leader(StatePtr s, std::optional<std::int64_t> last_lsn) {
    const auto deadline = op_deadline(s);
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto lease = co_await refresh_lease(s, true, deadline);
        if (!lease) {
            co_return fail_bool(lease.error());
        }
        if (cached_leader_is_ours(*s)) {
            if (last_lsn) {
                co_await write_status(s, *last_lsn, deadline);
            }
            co_return true;
        }
        const auto key = s->leader_key();
        json create_txn = txn(json::array({compare(key, "CREATE", "create_revision", "0")}),
                              json::array({put_op(key, s->member_name, s->lease)}));
        json value_txn =
            txn(json::array({compare(key, "VALUE", "value", base64_encode(s->member_name))}),
                json::array({put_op(key, s->member_name, s->lease)}),
                json::array({json{{"request_txn", std::move(create_txn)}}}));
        json request =
            txn(json::array({compare(key, "VALUE", "value", base64_encode(s->member_name)),
                             compare(key, "LEASE", "lease", s->lease)}),
                json::array(),
                json::array({json{{"request_txn", std::move(value_txn)}}}));
        auto r = co_await run_txn(s, std::move(request), deadline);
        if (!r) {
            if (r.error() == make_error_code(Errc::NotFound) && attempt == 0) {
                spdlog::error("etcd3: our lease disappeared while updating the leader key");
                drop_lease(*s);
                continue;
            }
            co_return fail_bool(r.error());
        }
        bool ok = bool_field(*r, "succeeded");
        if (!ok) {
            // responses[0].response_txn (VALUE==name), then its responses[0].response_txn.
            const json* level = &*r;
            for (int depth = 0; depth < 2 && !ok; ++depth) {
                auto it = level->find("responses");
                if (it == level->end() || !it->is_array() || it->empty()) {
                    break;
                }
                const json& first = (*it)[0];
                auto nested = first.find("response_txn");
                if (nested == first.end()) {
                    break;
                }
                level = &*nested;
                ok = bool_field(*level, "succeeded");
            }
        }
        if (!ok) {
            spdlog::warn("etcd3: the leader key is not ours any more");
            co_return false;
        }
        if (last_lsn) {
            co_await write_status(s, *last_lsn, deadline);
        }
        co_return true;
    }
    co_return Errc::NotFound;
}

net::awaitable<Result<bool>> do_delete_leader(StatePtr s, std::optional<std::int64_t> last_lsn) {
    const auto deadline = op_deadline(s);
    if (last_lsn) {
        co_await write_status(s, *last_lsn, deadline);
    }
    const auto key = s->leader_key();
    auto request = txn(json::array({compare(key, "VALUE", "value", base64_encode(s->member_name))}),
                       json::array({delete_op(key)}));
    auto r = co_await run_txn(s, std::move(request), deadline);
    if (!r) {
        co_return fail_bool(r.error());
    }
    bool deleted = bool_field(*r, "succeeded");
    if (deleted) {
        spdlog::info("etcd3: released the leader key");
    }
    co_return deleted;
}

net::awaitable<Result<bool>> do_touch_member(StatePtr s, std::string value) {
    const auto deadline = op_deadline(s);
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto lease = co_await refresh_lease(s, false, deadline);
        if (!lease) {
            co_return fail_bool(lease.error());
        }
        if (s->member_value == value && s->member_owner == s->lease) {
            co_return true;
        }
        auto r = co_await put(s, s->member_key(), value, s->lease, deadline);
        if (r) {
            s->member_value = value;
            s->member_owner = s->lease;
            s->member_revision = std::max(s->member_revision, header_revision(*r));
            co_return true;
        }
        if (r.error() != make_error_code(Errc::NotFound) || attempt > 0) {
            co_return fail_bool(r.error());
        }
        spdlog::error("etcd3: our lease disappeared; getting a new one for the member key");
        drop_lease(*s);
    }
    co_return Errc::NotFound;
}

net::awaitable<Result<void>> do_delete_member(StatePtr s) {
    s->member_value.reset();
    s->member_owner.clear();
    json request{{"key", base64_encode(s->member_key())}};
    auto r = co_await call(s, "/kv/deleterange", std::move(request), op_deadline(s));
    if (!r) {
        co_return r.error();
    }
    // A read that started before the delete must not bring the old value back.
    s->member_revision = std::max(s->member_revision, header_revision(*r));
    co_return Result<void>{};
}

net::awaitable<Result<bool>> do_set_history(StatePtr s, std::string value) {
    auto r = co_await put(s, s->key("history"), value, "", op_deadline(s));
    if (!r) {
        co_return fail_bool(r.error());
    }
    co_return true;
}

net::awaitable<Result<void>> do_close_session(StatePtr s) {
    s->last_status.reset();
    if (s->lease.empty()) {
        s->member_value.reset();
        co_return Result<void>{};
    }
    auto lease = s->lease;
    drop_lease(*s);
    json request{{"ID", lease}};
    auto r = co_await call(s, "/lease/revoke", std::move(request), op_deadline(s));
    if (!r && r.error() != make_error_code(Errc::NotFound)) {
        co_return r.error();
    }
    spdlog::info("etcd3: revoked lease {}", lease);
    co_return Result<void>{};
}

}  // namespace
}  // namespace etcd3

using namespace etcd3;
namespace net = boost::asio;

Etcd3Dcs::Etcd3Dcs(net::any_io_executor executor,
                   core::Etcd3Settings settings,
                   std::string namespace_,
                   std::string scope,
                   std::string member_name)
    : state_(std::make_shared<State>(std::move(executor),
                                     std::move(settings),
                                     make_prefix(namespace_, scope),
                                     std::move(member_name))) {
    for (const auto& h : state_->settings.hosts) {
        auto hp = parse_host_port(h, kDefaultPort);
        if (!hp) {
            spdlog::error("etcd3: invalid host \"{}\"", h);
            continue;
        }
        state_->hosts.push_back(*hp);
    }
    if (state_->hosts.empty()) {
        spdlog::error("etcd3: no usable hosts configured");
        state_->config_error = true;
        state_->hosts.push_back(HostPort{"127.0.0.1", kDefaultPort});
    }
    for (const auto& hp : state_->hosts) {
        state_->clients.push_back(std::make_unique<HttpClient>(state_->executor, hp.host, hp.port));
    }
}

Etcd3Dcs::~Etcd3Dcs() {
    stop();
    for (auto& c : state_->clients) {
        c->cancel();
    }
}

void Etcd3Dcs::start(std::function<void()> on_leader_change) {
    stop();
    state_->on_leader_change = std::move(on_leader_change);
    state_->running = true;
    state_->cache_filled = false;
    const auto generation = ++state_->watch_generation;
    auto s = state_;
    async::spawn_logged(s->executor,
                        restart_on_exception(
                            s->executor,
                            "etcd3: watch loop",
                            [s, generation] { return watch_loop(s, generation); },
                            [s, generation] { return watch_alive(s, generation); },
                            [s] {
                                // Nothing feeds the cache any more until the loop has refilled
                                // it.
                                s->cache_valid = false;
                                s->cache_filled = false;
                                s->watch_log.mark_failing();
                                s->wake_cache_waiters();
                            },
                            kFirstBackoff,
                            kMaxBackoff),
                        "etcd3: watch loop");
}

void Etcd3Dcs::stop() {
    if (!state_->running) {
        return;
    }
    state_->running = false;
    ++state_->watch_generation;
    state_->cache_valid = false;
    state_->cache_filled = false;
    state_->wake_cache_waiters();
    state_->backoff_timer.cancel();
    if (state_->watch_client) {
        state_->watch_client->cancel_streams();
    }
}

void Etcd3Dcs::set_timing(DcsTiming timing) {
    state_->timing = timing;
}

Task<Result<core::Cluster>> Etcd3Dcs::get_cluster() {
    return do_get_cluster(state_);
}

Task<Result<bool>> Etcd3Dcs::initialize(std::string sysid, bool create_new) {
    return do_initialize(state_, std::move(sysid), create_new);
}

Task<Result<void>> Etcd3Dcs::cancel_initialization() {
    return delete_key(state_, state_->key("initialize"));
}

Task<Result<bool>> Etcd3Dcs::attempt_to_acquire_leader() {
    return do_acquire_leader(state_);
}

Task<Result<bool>> Etcd3Dcs::update_leader(std::optional<std::int64_t> last_lsn) {
    return do_update_leader(state_, last_lsn);
}

Task<Result<bool>> Etcd3Dcs::delete_leader(std::optional<std::int64_t> last_lsn) {
    return do_delete_leader(state_, last_lsn);
}

Task<Result<bool>> Etcd3Dcs::touch_member(std::string json) {
    return do_touch_member(state_, std::move(json));
}

Task<Result<void>> Etcd3Dcs::delete_member() {
    return do_delete_member(state_);
}

Task<Result<bool>> Etcd3Dcs::set_config(std::string json, std::optional<std::int64_t> version) {
    return put_cas(state_, state_->key("config"), std::move(json), version);
}

Task<Result<bool>> Etcd3Dcs::set_failover(std::string json, std::optional<std::int64_t> version) {
    return put_cas(state_, state_->key("failover"), std::move(json), version);
}

Task<Result<bool>> Etcd3Dcs::set_history(std::string json) {
    return do_set_history(state_, std::move(json));
}

Task<Result<bool>> Etcd3Dcs::set_sync(std::string json, std::optional<std::int64_t> version) {
    return put_cas(state_, state_->key("sync"), std::move(json), version);
}

Task<Result<void>> Etcd3Dcs::close_session() {
    return do_close_session(state_);
}

const std::string& Etcd3Dcs::prefix() const {
    return state_->prefix;
}

std::string Etcd3Dcs::lease_id_for_test() const {
    return state_->lease;
}

std::uint64_t Etcd3Dcs::requests_for_test(std::string_view path) const {
    if (!path.empty()) {
        auto it = state_->requests.find(path);
        return it == state_->requests.end() ? 0 : it->second;
    }
    std::uint64_t total = 0;
    for (const auto& [p, n] : state_->requests) {
        total += n;
    }
    return total;
}

bool Etcd3Dcs::cache_valid_for_test() const {
    return state_->cache_valid;
}

}  // namespace pgwarden::dcs
