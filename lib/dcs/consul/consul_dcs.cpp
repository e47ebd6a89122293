// ConsulDcs itself: the Patroni operations as KV reads and writes (?acquire, ?cas), the service
// registration that follows the member data, and the object's lifecycle.
#include "dcs/consul/consul_dcs.hpp"

#include "asio/spawn.hpp"
#include "dcs/cluster_codec.hpp"
#include "dcs/consul/state.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace pgwarden::dcs {

namespace consul {
namespace {

net::awaitable<Result<bool>> put(StatePtr s,
                                 std::string key,
                                 std::string value,
                                 std::optional<std::int64_t> cas) {
    std::string target = s->kv(key);
    if (cas) {
        target += "?cas=" + std::to_string(*cas);
    }
    auto r = co_await call(s, "PUT", s->with_params(target, false), value, s->op_deadline());
    if (!r) {
        co_return Result<bool>(boost::system::in_place_error, r.error());
    }
    co_return parse_bool_body(*r);
}

net::awaitable<Result<bool>> del(StatePtr s, std::string key, std::optional<std::int64_t> cas) {
    std::string target = s->kv(key);
    if (cas) {
        target += "?cas=" + std::to_string(*cas);
    }
    auto r = co_await call(s, "DELETE", s->with_params(target, false), "", s->op_deadline());
    if (!r) {
        co_return Result<bool>(boost::system::in_place_error, r.error());
    }
    co_return parse_bool_body(*r);
}

net::awaitable<void> write_status(StatePtr s, std::int64_t lsn) {
    if (s->last_status_lsn == lsn) {
        co_return;
    }
    auto r = co_await put(s, "status", make_status_json(lsn), std::nullopt);
    if (r && *r) {
        s->last_status_lsn = lsn;
    }
}

net::awaitable<Result<core::Cluster>> do_get_cluster(StatePtr s) {
    auto r = co_await call(
        s, "GET", s->with_params(s->kv("") + "?recurse=1", true), "", s->op_deadline());
    if (!r) {
        co_return r.error();
    }
    if (r->header("X-Consul-Results-Filtered-By-ACLs") == "true") {
        // The token may not read some of our keys: the read is incomplete, and a hidden leader
        // key must not look like "no leader" (DESIGN.md invariant 2).
        s->log_error_once("consul: reading " + s->prefix +
                          " returned results filtered by ACLs: the consul.token lacks key:read on "
                          "the cluster's keys; refusing to act on an incomplete view");
        co_return Errc::Forbidden;
    }
    auto keys = parse_kv_list(*r, s->prefix);
    if (!keys) {
        co_return keys.error();
    }
    core::Cluster cluster = build_cluster(*keys);
    if (auto it = keys->find("leader"); it != keys->end()) {
        s->leader_index = it->second.version;
        s->leader_session = it->second.owner;
        s->leader_value = it->second.value;
    } else {
        s->leader_index = 0;
        s->leader_session.clear();
        s->leader_value.clear();
    }
    co_return cluster;
}

net::awaitable<Result<bool>> do_update_leader(StatePtr s, std::optional<std::int64_t> last_lsn) {
    const auto deadline = s->op_deadline();
    const std::string session_before = s->session;
    auto ok = co_await ensure_session(s, true, deadline);
    if (!ok) {
        co_return Result<bool>(boost::system::in_place_error, ok.error());
    }
    s->session_recreated_for_update = !session_before.empty() && s->session != session_before;
    auto got = co_await acquire(s, "leader", s->member_name, deadline);
    if (!got) {
        co_return Result<bool>(boost::system::in_place_error, got.error());
    }
    if (!*got && s->leader_value == s->member_name && !s->leader_session.empty() &&
        s->leader_session != s->session) {
        // Our own key from an older session of ours: replace it (Patroni's _update_leader).
        co_await del(s, "leader", s->leader_index);
        got = co_await acquire(s, "leader", s->member_name, deadline);
        if (!got) {
            co_return Result<bool>(boost::system::in_place_error, got.error());
        }
    }
    if (!*got && s->session_recreated_for_update) {
        // Our previous session died with its keys: the key is free but held back by that
        // session's lock-delay (1 ms). Wait it out once, then take the key if still free.
        co_await sleep_for(s->executor, std::chrono::milliseconds(20));
        got = co_await acquire(s, "leader", s->member_name, deadline);
        if (!got) {
            co_return Result<bool>(boost::system::in_place_error, got.error());
        }
    }
    if (*got && last_lsn) {
        co_await write_status(s, *last_lsn);
    }
    co_return *got;
}

net::awaitable<Result<bool>> do_delete_leader(StatePtr s, std::optional<std::int64_t> last_lsn) {
    if (last_lsn) {
        co_await write_status(s, *last_lsn);
    }
    auto r =
        co_await call(s, "GET", s->with_params(s->kv("leader"), true, true), "", s->op_deadline());
    if (!r) {
        co_return Result<bool>(boost::system::in_place_error, r.error());
    }
    if (r->status == 404) {
        co_return true;
    }
    auto arr = nlohmann::json::parse(r->body, nullptr, false);
    auto entry = arr.is_array() && !arr.empty() ? decode_entry(arr[0]) : std::nullopt;
    if (!entry) {
        co_return Errc::Protocol;
    }
    if (entry->value != s->member_name) {
        co_return false;
    }
    co_return co_await del(s, "leader", entry->modify_index);
}

// Deregisters <scope>/<name> unless we know it is absent (also an instance a previous run of
// the daemon left behind: Patroni deregisters on "stopped" without remembering anything).
net::awaitable<void> deregister_service(StatePtr s) {
    if (s->service_signature.empty() && s->service_absent) {
        co_return;
    }
    const std::string service_id = s->scope + "/" + s->member_name;
    auto r = co_await call(
        s,
        "PUT",
        s->with_params("/v1/agent/service/deregister/" + url_escape(service_id), false),
        "",
        s->op_deadline());
    if (r && (r->status == 200 || r->status == 404)) {
        if (r->status == 200) {
            spdlog::info("consul: deregistered service {}", service_id);
        }
        s->service_signature.clear();
        s->service_absent = true;
    }
}

// Service registration from the member data (Patroni's _update_service).
net::awaitable<void> sync_service(StatePtr s, std::string member_json) {
    auto update = service_update(s->settings, s->scope, s->member_name, s->timing.ttl, member_json);
    if (update.kind == ServiceUpdate::Kind::Deregister) {
        co_await deregister_service(s);
    }
    if (update.kind != ServiceUpdate::Kind::Register) {
        co_return;
    }
    const std::string service_id = s->scope + "/" + s->member_name;
    std::string signature = update.body.dump();
    if (signature == s->service_signature) {
        co_return;
    }
    auto r = co_await call(
        s, "PUT", s->with_params("/v1/agent/service/register", false), signature, s->op_deadline());
    if (r && r->status == 200) {
        spdlog::info("consul: registered service {} as {} with tags {}",
                     service_id,
                     consul_service_name(s->scope),
                     update.body["Tags"].dump());
        s->service_signature = std::move(signature);
        s->service_absent = false;
    } else {
        spdlog::warn("consul: registering service {} failed; will retry", service_id);
        s->service_signature.clear();
    }
}

net::awaitable<Result<bool>> do_touch_member(StatePtr s, std::string value) {
    const auto deadline = s->op_deadline();
    // Renew the session at least once per loop_wait; rewrite the key only when it changed or
    // belongs to another session (Patroni's touch_member does the same).
    auto ok = co_await ensure_session(s, false, deadline);
    if (!ok) {
        co_return Result<bool>(boost::system::in_place_error, ok.error());
    }
    if (value == s->member_value && s->session == s->member_session) {
        co_await sync_service(s, value);
        co_return true;
    }
    auto got = co_await acquire(s, s->member_key(), value, deadline);
    if (got && !*got) {
        // The key belongs to an older session of ours: replace it.
        co_await del(s, s->member_key(), std::nullopt);
        got = co_await acquire(s, s->member_key(), value, deadline);
    }
    if (got && *got) {
        s->member_value = value;
        s->member_session = s->session;
    }
    co_await sync_service(s, value);
    co_return got;
}

net::awaitable<Result<void>> do_close_session(StatePtr s) {
    if (s->settings.register_service || !s->service_signature.empty()) {
        co_await deregister_service(s);
    }
    if (s->session.empty()) {
        co_return Result<void>{};
    }
    co_await del(s, s->member_key(), std::nullopt);
    auto r = co_await call(
        s, "PUT", s->with_params("/v1/session/destroy/" + s->session, false), "", s->op_deadline());
    if (!r) {
        co_return r.error();
    }
    spdlog::info("consul: destroyed session {}", s->session);
    s->session.clear();
    co_return Result<void>{};
}

net::awaitable<Result<void>> do_cancel_initialization(StatePtr s) {
    auto r = co_await del(s, "initialize", std::nullopt);
    if (!r) {
        co_return r.error();
    }
    co_return Result<void>{};
}
net::awaitable<Result<void>> do_delete_member(StatePtr s) {
    auto r = co_await del(s, s->member_key(), std::nullopt);
    if (!r) {
        co_return r.error();
    }
    co_return Result<void>{};
}
// The session renewal is forced (F3): the caller counts on the session lasting ttl from the
// moment it called, and the renewal touch_member last did may be up to 2 x loop_wait old. A
// session that is gone is replaced (ensure_session, then acquire() once more on a 500).
net::awaitable<Result<bool>> do_acquire_leader(StatePtr s) {
    auto deadline = s->op_deadline();
    auto ok = co_await ensure_session(s, true, deadline);
    if (!ok) {
        co_return Result<bool>(boost::system::in_place_error, ok.error());
    }
    co_return co_await acquire(s, "leader", s->member_name, deadline);
}

}  // namespace
}  // namespace consul

using namespace consul;
namespace net = boost::asio;

ConsulDcs::ConsulDcs(net::any_io_executor executor,
                     core::ConsulSettings settings,
                     std::string namespace_,
                     std::string scope,
                     std::string member_name)
    : state_(std::make_shared<State>(executor,
                                     std::move(settings),
                                     std::move(namespace_),
                                     std::move(scope),
                                     std::move(member_name))) {}

ConsulDcs::~ConsulDcs() {
    stop();
}

Task<Result<void>> ConsulDcs::check_ttl(int ttl, std::string* message) {
    return do_check_ttl(state_, ttl, message);
}

void ConsulDcs::start(std::function<void()> on_leader_change) {
    auto s = state_;
    s->on_leader_change = std::move(on_leader_change);
    s->running = true;
    const auto generation = ++s->watch_generation;
    async::spawn_logged(s->executor,
                        restart_on_exception(
                            s->executor,
                            "consul: leader watch",
                            [s, generation] { return watch_loop(s, generation); },
                            [s, generation] { return watch_alive(s, generation); },
                            [s] { s->watch_log.mark_failing(); },
                            kBackoff,
                            kMaxWatchBackoff),
                        "consul: leader watch");
}

void ConsulDcs::stop() {
    state_->running = false;
    ++state_->watch_generation;
    state_->watch_client.cancel();
}

void ConsulDcs::set_timing(DcsTiming timing) {
    const bool ttl_changed = timing.ttl != state_->timing.ttl;
    state_->timing = timing;
    if (ttl_changed && !state_->session.empty()) {
        // Patroni: a new ttl needs a new session; the old one expires by itself.
        spdlog::info("consul: ttl changed to {}; a new session will be created", timing.ttl);
        state_->session.clear();
    }
}

Task<Result<core::Cluster>> ConsulDcs::get_cluster() {
    return do_get_cluster(state_);
}

Task<Result<bool>> ConsulDcs::initialize(std::string sysid, bool create_new) {
    return put(state_,
               "initialize",
               std::move(sysid),
               create_new ? std::optional<std::int64_t>(0) : std::nullopt);
}

Task<Result<void>> ConsulDcs::cancel_initialization() {
    return do_cancel_initialization(state_);
}
Task<Result<bool>> ConsulDcs::attempt_to_acquire_leader() {
    return do_acquire_leader(state_);
}
Task<Result<bool>> ConsulDcs::update_leader(std::optional<std::int64_t> last_lsn) {
    return do_update_leader(state_, last_lsn);
}
Task<Result<bool>> ConsulDcs::delete_leader(std::optional<std::int64_t> last_lsn) {
    return do_delete_leader(state_, last_lsn);
}
Task<Result<bool>> ConsulDcs::touch_member(std::string json) {
    return do_touch_member(state_, std::move(json));
}
Task<Result<void>> ConsulDcs::delete_member() {
    return do_delete_member(state_);
}
Task<Result<bool>> ConsulDcs::set_config(std::string json, std::optional<std::int64_t> version) {
    return put(state_, "config", std::move(json), version);
}
Task<Result<bool>> ConsulDcs::set_failover(std::string json, std::optional<std::int64_t> version) {
    return put(state_, "failover", std::move(json), version);
}
Task<Result<bool>> ConsulDcs::set_history(std::string json) {
    return put(state_, "history", std::move(json), std::nullopt);
}
Task<Result<bool>> ConsulDcs::set_sync(std::string json, std::optional<std::int64_t> version) {
    return put(state_, "sync", std::move(json), version);
}
Task<Result<void>> ConsulDcs::close_session() {
    return do_close_session(state_);
}

const std::string& ConsulDcs::prefix() const {
    return state_->prefix;
}
std::string ConsulDcs::session_for_test() const {
    return state_->session;
}

}  // namespace pgwarden::dcs
