#include "dcs/consul/consul_dcs.hpp"

#include "core/go_duration.hpp"
#include "dcs/async_util.hpp"
#include "dcs/cluster_codec.hpp"
#include "dcs/http_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <utility>

namespace net = boost::asio;
using nlohmann::json;
using std::chrono::milliseconds;

namespace pgwarden::dcs {
namespace {

using Clock = std::chrono::steady_clock;
constexpr milliseconds kMinAttemptTimeout{1000};
constexpr milliseconds kBackoff{200};
// A failing leader watch retries at least this often.
constexpr milliseconds kMaxWatchBackoff{2000};

std::string base64_decode(std::string_view in) {
    static constexpr std::string_view kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    int val = 0;
    int bits = -8;
    for (char c : in) {
        const auto pos = kAlphabet.find(c);
        if (pos == std::string_view::npos) {
            break;  // '=' padding or garbage ends the value
        }
        val = (val << 6) + static_cast<int>(pos);
        bits += 6;
        if (bits >= 0) {
            out.push_back(static_cast<char>((val >> bits) & 0xFF));
            bits -= 8;
        }
    }
    return out;
}

std::string url_escape(std::string_view in) {
    std::string out;
    for (unsigned char c : in) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
            out.push_back(static_cast<char>(c));
        } else {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%%%02X", c);
            out += buf;
        }
    }
    return out;
}

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

// Go time.ParseDuration subset: "10s", "1m30s", "0.001s", "250ms". nullopt if unparsable.
std::optional<milliseconds> parse_go_duration(std::string_view text) {
    const std::optional<double> total_ms = core::parse_go_duration_ms(text);
    if (!total_ms) {
        return std::nullopt;
    }
    return milliseconds(static_cast<std::int64_t>(*total_ms + 0.5));
}

std::string seconds_text(int ttl_half_tenths) {  // tenths of a second -> "15s" / "12.5s"
    if (ttl_half_tenths % 10 == 0) {
        return std::to_string(ttl_half_tenths / 10) + "s";
    }
    return std::to_string(ttl_half_tenths / 10) + "." + std::to_string(ttl_half_tenths % 10) + "s";
}

struct UrlParts {
    std::string scheme;
    std::string host;
    std::string port;
};

// "postgres://host:port/db" or "http://host:port/patroni" -> parts ("" when absent).
UrlParts parse_url(const std::string& url) {
    UrlParts p;
    std::string rest = url;
    if (auto pos = rest.find("://"); pos != std::string::npos) {
        p.scheme = rest.substr(0, pos);
        rest = rest.substr(pos + 3);
    }
    if (auto pos = rest.find('/'); pos != std::string::npos) {
        rest = rest.substr(0, pos);
    }
    if (auto pos = rest.rfind(':');
        pos != std::string::npos && rest.find(']', pos) == std::string::npos) {
        p.host = rest.substr(0, pos);
        p.port = rest.substr(pos + 1);
    } else {
        p.host = rest;
    }
    if (p.host.size() > 1 && p.host.front() == '[' && p.host.back() == ']') {
        p.host = p.host.substr(1, p.host.size() - 2);
    }
    return p;
}

}  // namespace

std::string consul_service_name(const std::string& scope) {
    std::string out;
    for (unsigned char c : scope) {
        const unsigned char l = static_cast<unsigned char>(std::tolower(c));
        if ((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') || l == '-') {
            out.push_back(static_cast<char>(l));
        } else if (l == '.' || l == ' ' || l == '_') {
            out.push_back('-');
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "u%04d", static_cast<int>(c));
            out += buf;
        }
    }
    if (out.size() > 230) {
        out.resize(230);
    }
    return out;
}

namespace {

// Patroni's consul TLS options: scheme https (or an https:// url), verify, cacert, cert, key.
TlsOptions tls_options(const core::ConsulSettings& s) {
    TlsOptions tls;
    std::string scheme = s.scheme;
    std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) {
        return static_cast<char>(std::tolower(c));
    });
    tls.enabled = scheme == "https";
    tls.verify = s.verify;
    tls.cacert = s.cacert;
    tls.cert = s.cert;
    tls.key = s.key;
    tls.server_name = s.host;
    return tls;
}

}  // namespace

struct ConsulDcs::State {
    State(net::any_io_executor ex,
          core::ConsulSettings s,
          std::string ns,
          std::string sc,
          std::string name)
        : executor(ex),
          settings(std::move(s)),
          scope(std::move(sc)),
          member_name(std::move(name)),
          client(
              ex, settings.host, static_cast<unsigned short>(settings.port), tls_options(settings)),
          watch_client(
              ex, settings.host, static_cast<unsigned short>(settings.port), tls_options(settings)),
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

    net::any_io_executor executor;
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
    net::steady_timer backoff_timer;

    std::string kv(std::string_view key) const {
        return "/v1/kv/" + url_escape(prefix + std::string(key));
    }
    std::string member_key() const { return "members/" + member_name; }
    milliseconds attempt_timeout() const {
        return std::max(kMinAttemptTimeout, milliseconds(timing.retry_timeout * 1000 / 3));
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
            params.push_back("dc=" + url_escape(settings.dc));
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

namespace {

using State = ConsulDcs::State;
using StatePtr = std::shared_ptr<State>;

// One request with retries until `deadline`. 2xx, 404 and the session/TTL 500s come back as
// responses for the caller to interpret; ACL refusals are errors that are not retried.
net::awaitable<Result<HttpResponse>> call(StatePtr s,
                                          std::string method,
                                          std::string target,
                                          std::string body,
                                          Clock::time_point deadline) {
    Errc last = Errc::Unavailable;
    auto backoff = kBackoff;
    while (true) {
        const auto timeout = std::min(s->attempt_timeout(), remaining(deadline));
        if (timeout <= milliseconds(0)) {
            co_return last;
        }
        auto r = co_await s->client.request(method, target, body, s->headers(), timeout);
        if (!r) {
            if (r.error() == make_error_code(Errc::Cancelled)) {
                co_return r.error();
            }
            last = r.error() == make_error_code(Errc::Timeout) ? Errc::Timeout : Errc::Unavailable;
        } else {
            const unsigned st = r->status;
            if ((st >= 200 && st < 300) || st == 404) {
                s->last_error_logged.clear();
                co_return r;
            }
            if (st == 403 || st == 401) {
                s->log_error_once("consul: " + method + " " + target + " answered " +
                                  std::to_string(st) + " " + r->body +
                                  ": the consul.token is missing or lacks permissions; refusing "
                                  "to act on what cannot be read or written");
                co_return st == 403 ? Errc::Forbidden : Errc::Unauthorized;
            }
            if (st == 500 &&
                (contains(r->body, "invalid session") || contains(r->body, "Invalid Session TTL") ||
                 contains(r->body, "missing session"))) {
                co_return r;
            }
            if (st == 400 || st == 405 || st == 413) {
                s->log_error_once("consul: " + method + " " + target + " answered " +
                                  std::to_string(st) + " " + r->body);
                co_return Errc::BadRequest;
            }
            // 429, "No cluster leader" and other 5xx: transient.
            spdlog::debug("consul: {} {} answered {} {}; retrying", method, target, st, r->body);
            last = Errc::Unavailable;
        }
        auto pause = std::min<Clock::duration>(backoff, deadline - Clock::now());
        if (pause <= Clock::duration::zero()) {
            co_return last;
        }
        co_await sleep_for(s->executor, pause);
        backoff = std::min(backoff * 2, milliseconds(1000));
    }
}

Result<bool> parse_bool_body(const HttpResponse& r) {
    if (r.status != 200) {
        return Errc::Protocol;
    }
    if (r.body == "true") {
        return true;
    }
    if (r.body == "false") {
        return false;
    }
    return Errc::Protocol;
}

net::awaitable<Result<void>> create_session(StatePtr s, Clock::time_point deadline) {
    json body = {{"Name", s->scope + "-" + s->member_name},
                 {"LockDelay", "0.001s"},
                 {"Behavior", "delete"},
                 {"TTL", seconds_text(s->timing.ttl * 5)}};  // ttl/2 in tenths of a second
    if (s->settings.checks.empty()) {
        body["Checks"] = json::array();
        body["NodeChecks"] = json::array();
    } else {
        body["NodeChecks"] = s->settings.checks;
    }
    auto r =
        co_await call(s, "PUT", s->with_params("/v1/session/create", false), body.dump(), deadline);
    if (!r) {
        co_return r.error();
    }
    if (r->status == 500 && contains(r->body, "Invalid Session TTL")) {
        s->log_error_once("consul: refused a session TTL of " + seconds_text(s->timing.ttl * 5) +
                          " (ttl " + std::to_string(s->timing.ttl) + " / 2): " + r->body +
                          "; raise ttl to at least 20");
        co_return Errc::BadRequest;
    }
    auto parsed = json::parse(r->body, nullptr, false);
    if (r->status != 200 || !parsed.is_object() || !parsed.contains("ID") ||
        !parsed["ID"].is_string()) {
        co_return Errc::Protocol;
    }
    s->session = parsed["ID"].get<std::string>();
    s->session_renewed = Clock::now();
    spdlog::info(
        "consul: created session {} (ttl {})", s->session, seconds_text(s->timing.ttl * 5));
    co_return Result<void>{};
}

// Makes sure we have a live session; renews it when forced or older than loop_wait.
net::awaitable<Result<void>> ensure_session(StatePtr s, bool force, Clock::time_point deadline) {
    if (s->session.empty()) {
        co_return co_await create_session(s, deadline);
    }
    if (!force && Clock::now() - s->session_renewed < std::chrono::seconds(s->timing.loop_wait)) {
        co_return Result<void>{};
    }
    const auto started = Clock::now();
    auto r = co_await call(
        s, "PUT", s->with_params("/v1/session/renew/" + s->session, false), "", deadline);
    if (!r) {
        co_return r.error();
    }
    if (r->status == 404) {
        spdlog::warn("consul: session {} is gone; creating a new one", s->session);
        s->session.clear();
        co_return co_await create_session(s, deadline);
    }
    if (r->status != 200) {
        co_return Errc::Protocol;
    }
    s->session_renewed = started;
    co_return Result<void>{};
}

// PUT <key>?acquire=<session>; a dead session is replaced and the acquire retried once.
net::awaitable<Result<bool>> acquire(StatePtr s,
                                     std::string key,
                                     std::string value,
                                     Clock::time_point deadline) {
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto ok = co_await ensure_session(s, false, deadline);
        if (!ok) {
            co_return Result<bool>(boost::system::in_place_error, ok.error());
        }
        auto r = co_await call(s,
                               "PUT",
                               s->with_params(s->kv(key) + "?acquire=" + s->session, false),
                               value,
                               deadline);
        if (!r) {
            co_return Result<bool>(boost::system::in_place_error, r.error());
        }
        if (r->status == 500) {
            spdlog::warn(
                "consul: acquire of {} with session {} failed: {}", key, s->session, r->body);
            s->session.clear();
            continue;
        }
        co_return parse_bool_body(*r);
    }
    co_return Errc::NotFound;
}

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
    RawKeys keys;
    if (r->status == 200) {
        auto arr = json::parse(r->body, nullptr, false);
        if (!arr.is_array()) {
            co_return Errc::Protocol;
        }
        for (const auto& e : arr) {
            if (!e.is_object() || !e.contains("Key") || !e["Key"].is_string()) {
                continue;
            }
            const std::string full = e["Key"].get<std::string>();
            if (full.rfind(s->prefix, 0) != 0 || full.size() == s->prefix.size()) {
                continue;
            }
            RawKey k;
            if (e.contains("Value") && e["Value"].is_string()) {
                k.value = base64_decode(e["Value"].get<std::string>());
            }
            if (e.contains("Session") && e["Session"].is_string()) {
                k.owner = e["Session"].get<std::string>();
            }
            if (e.contains("ModifyIndex") && e["ModifyIndex"].is_number_integer()) {
                k.version = e["ModifyIndex"].get<std::int64_t>();
            }
            keys.emplace(full.substr(s->prefix.size()), std::move(k));
        }
    } else if (r->status != 404) {
        co_return Errc::Protocol;
    }
    core::Cluster cluster = build_cluster(keys);
    if (auto it = keys.find("leader"); it != keys.end()) {
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
    auto arr = json::parse(r->body, nullptr, false);
    if (!arr.is_array() || arr.empty() || !arr[0].is_object()) {
        co_return Errc::Protocol;
    }
    const auto& e = arr[0];
    const std::string value = e.contains("Value") && e["Value"].is_string()
                                  ? base64_decode(e["Value"].get<std::string>())
                                  : std::string();
    if (value != s->member_name) {
        co_return false;
    }
    const auto index = e.value("ModifyIndex", std::int64_t{0});
    co_return co_await del(s, "leader", index);
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
    if (!s->settings.register_service) {
        co_return;
    }
    auto m = json::parse(member_json, nullptr, false);
    if (!m.is_object()) {
        co_return;
    }
    const std::string role = m.value("role", "");
    const std::string state = m.value("state", "");
    const std::string service_id = s->scope + "/" + s->member_name;
    const bool registrable =
        state == "running" && (role == "primary" || role == "replica" || role == "standby_leader");
    if (!registrable) {
        if (state == "stopped") {
            co_await deregister_service(s);
        }
        co_return;
    }
    std::string role_tag = role;
    std::replace(role_tag.begin(), role_tag.end(), '_', '-');
    const UrlParts conn = parse_url(m.value("conn_url", ""));
    const UrlParts api = parse_url(m.value("api_url", ""));
    std::vector<std::string> tags = s->settings.service_tags;
    std::sort(tags.begin(), tags.end());
    tags.push_back(role_tag);
    if (role == "primary") {
        tags.emplace_back("master");
    }
    json check = {
        {"HTTP",
         (api.scheme.empty() ? "http" : api.scheme) + "://" + api.host + ":" + api.port + "/" +
             role_tag},
        {"Interval", std::to_string(std::max(s->settings.service_check_interval, 1)) + "s"},
        {"DeregisterCriticalServiceAfter", std::to_string(s->timing.ttl * 5) + "s"}};
    if (!s->settings.service_check_tls_server_name.empty()) {
        check["TLSServerName"] = s->settings.service_check_tls_server_name;
    }
    json body = {{"Name", consul_service_name(s->scope)},
                 {"ID", service_id},
                 {"Address", conn.host},
                 {"Port", std::atoi(conn.port.c_str())},
                 {"Tags", tags},
                 {"EnableTagOverride", true},
                 {"Checks", json::array({check})}};
    std::string signature = body.dump();
    if (signature == s->service_signature) {
        co_return;
    }
    auto r = co_await call(
        s, "PUT", s->with_params("/v1/agent/service/register", false), signature, s->op_deadline());
    if (r && r->status == 200) {
        spdlog::info("consul: registered service {} as {} with tags {}",
                     service_id,
                     consul_service_name(s->scope),
                     json(tags).dump());
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

// The leader key as the watch last saw it: value, holder session and CreateIndex (a delete and
// re-create by the same holder is a change too). nullopt = absent.
struct LeaderSeen {
    std::string value;
    std::string session;
    std::int64_t create_index = 0;
    bool operator==(const LeaderSeen&) const = default;
};

// A 200/404 answer of GET <leader key>; nullopt (outer) when the body is unusable.
std::optional<std::optional<LeaderSeen>> parse_leader_answer(const HttpResponse& r) {
    if (r.status == 404) {
        return std::optional<LeaderSeen>();
    }
    auto arr = json::parse(r.body, nullptr, false);
    if (!arr.is_array() || arr.empty() || !arr[0].is_object()) {
        return std::nullopt;
    }
    const json& e = arr[0];
    LeaderSeen seen;
    if (auto v = e.find("Value"); v != e.end() && v->is_string()) {
        seen.value = base64_decode(v->get<std::string>());
    }
    if (auto v = e.find("Session"); v != e.end() && v->is_string()) {
        seen.session = v->get<std::string>();
    }
    if (auto v = e.find("CreateIndex"); v != e.end() && v->is_number_integer()) {
        seen.create_index = v->get<std::int64_t>();
    }
    return std::optional<LeaderSeen>(std::move(seen));
}

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

}  // namespace

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

namespace {
net::awaitable<Result<void>> do_check_ttl(StatePtr s, int ttl, std::string* message) {
    milliseconds min(10000);
    auto r = co_await call(s, "GET", s->with_params("/v1/agent/self", false), "", s->op_deadline());
    if (r && r->status == 200) {
        auto body = json::parse(r->body, nullptr, false);
        if (body.is_object() && body.contains("DebugConfig") && body["DebugConfig"].is_object()) {
            const auto& dbg = body["DebugConfig"];
            if (dbg.contains("SessionTTLMin") && dbg["SessionTTLMin"].is_string()) {
                if (auto d = parse_go_duration(dbg["SessionTTLMin"].get<std::string>())) {
                    min = *d;
                }
            }
        }
    } else if (!r) {
        co_return r.error();
    }
    if (milliseconds(ttl * 500) < min) {
        *message = "ttl " + std::to_string(ttl) +
                   " cannot be honoured by Consul: pgwarden asks for a session TTL of ttl/2 = " +
                   seconds_text(ttl * 5) +
                   " (Consul expires sessions up to 2 x TTL late), below "
                   "the agent's SessionTTLMin of " +
                   std::to_string(min.count()) +
                   " ms; set ttl to "
                   "at least " +
                   std::to_string((2 * min.count() + 999) / 1000);
        co_return Errc::BadRequest;
    }
    co_return Result<void>{};
}
}  // namespace

Task<Result<void>> ConsulDcs::check_ttl(int ttl, std::string* message) {
    return do_check_ttl(state_, ttl, message);
}

void ConsulDcs::start(std::function<void()> on_leader_change) {
    auto s = state_;
    s->on_leader_change = std::move(on_leader_change);
    s->running = true;
    const auto generation = ++s->watch_generation;
    net::co_spawn(s->executor,
                  restart_on_exception(
                      s->executor,
                      "consul: leader watch",
                      [s, generation] { return watch_loop(s, generation); },
                      [s, generation] { return watch_alive(s, generation); },
                      [s] { s->watch_log.mark_failing(); },
                      kBackoff,
                      kMaxWatchBackoff),
                  LogTaskException{"consul"});
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

namespace {
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
