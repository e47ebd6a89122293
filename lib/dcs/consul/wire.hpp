// The Consul HTTP API's wire format (spec/consul-api.md): KV answers, what a status means,
// session and service-registration bodies, URL and duration text. Pure functions.
#pragma once

#include "core/settings.hpp"
#include "dcs/cluster_codec.hpp"
#include "dcs/errc.hpp"
#include "dcs/http_client.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgwarden::dcs::consul {

using json = nlohmann::json;

// Percent-encodes everything but [A-Za-z0-9-_.~/] (key paths keep their slashes).
std::string url_escape(std::string_view in);
// Tenths of a second -> "15s" / "12.5s".
std::string seconds_text(int tenths);
// Go time.ParseDuration subset: "10s", "1m30s", "0.001s", "250ms". nullopt if unparsable.
std::optional<std::chrono::milliseconds> parse_go_duration(std::string_view text);

struct UrlParts {
    std::string scheme;
    std::string host;
    std::string port;
};
// "postgres://host:port/db" or "http://host:port/patroni" -> parts ("" when absent).
UrlParts parse_url(const std::string& url);

// Patroni's consul TLS options: scheme https, verify, cacert, cert, key.
TlsOptions tls_options(const core::ConsulSettings& s);

// What call() does with an HTTP status (and body).
enum class Answer {
    Deliver,       // 2xx, 404 and the session/TTL 500s: the caller interprets the response
    Forbidden,     // 403: ACL refusal, not retried
    Unauthorized,  // 401
    BadRequest,    // 400, 405, 413: our request is wrong, not retried
    Retry,         // 429, "No cluster leader" and other 5xx: transient
};
Answer classify(unsigned status, std::string_view body);

// The "true"/"false" body of a KV PUT/DELETE; Protocol otherwise.
Result<bool> parse_bool_body(const HttpResponse& r);

// One entry of a KV read (GET /v1/kv/<key>[?recurse]).
struct KvEntry {
    std::string key;
    std::string value;    // decoded; "" when null/absent
    std::string session;  // "" when not held
    std::int64_t create_index = 0;
    std::int64_t modify_index = 0;
};
// nullopt if `e` is not an object or its Value is not valid base64.
std::optional<KvEntry> decode_entry(const json& e);
// The keys under `prefix` of a recursive read (200) relative to it; 404 = no keys.
Result<RawKeys> parse_kv_list(const HttpResponse& r, const std::string& prefix);

// The leader key as the watch last saw it: value, holder session and CreateIndex (a delete and
// re-create by the same holder is a change too). nullopt = absent.
struct LeaderSeen {
    std::string value;
    std::string session;
    std::int64_t create_index = 0;
    bool operator==(const LeaderSeen&) const = default;
};
// A 200/404 answer of GET <leader key>; nullopt (outer) when the body is unusable.
std::optional<std::optional<LeaderSeen>> parse_leader_answer(const HttpResponse& r);

// PUT /v1/session/create body: TTL = ttl/2, LockDelay 1 ms, Behavior delete, and no
// serfHealth check unless `checks` names some.
json session_request(const std::string& name, int ttl, const std::vector<std::string>& checks);

// What touch_member's member data asks of the service registration (Patroni's
// _update_service): register (body), deregister ("stopped"), or leave it as it is.
struct ServiceUpdate {
    enum class Kind { Keep, Register, Deregister } kind = Kind::Keep;
    json body;  // the /v1/agent/service/register body for Register
};
ServiceUpdate service_update(const core::ConsulSettings& settings,
                             const std::string& scope,
                             const std::string& member_name,
                             int ttl,
                             std::string_view member_json);

// SessionTTLMin from a GET /v1/agent/self answer; 10 s (Consul's default) when absent.
std::chrono::milliseconds session_ttl_min(std::string_view agent_self_body);
// Why `ttl` cannot be honoured with that minimum (ttl/2 below it); nullopt if it can.
std::optional<std::string> ttl_refusal(int ttl, std::chrono::milliseconds min);

}  // namespace pgwarden::dcs::consul
