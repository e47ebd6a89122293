#include "dcs/etcd3/etcd3_dcs.hpp"

#include "dcs/async_util.hpp"
#include "dcs/cluster_codec.hpp"
#include "dcs/http_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <exception>
#include <map>
#include <string_view>
#include <vector>

namespace pgwarden::dcs {

namespace net = boost::asio;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr unsigned short kDefaultPort = 2379;
constexpr milliseconds kMinAttemptTimeout{1000};
constexpr milliseconds kFirstBackoff{100};
constexpr milliseconds kMaxBackoff{1000};

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

// gRPC status codes the gateway reports in "code" (spec §8).
constexpr int kGrpcUnknown = 2;
constexpr int kGrpcInvalidArgument = 3;
constexpr int kGrpcDeadlineExceeded = 4;
constexpr int kGrpcNotFound = 5;
constexpr int kGrpcPermissionDenied = 7;
constexpr int kGrpcFailedPrecondition = 9;
constexpr int kGrpcUnavailable = 14;
constexpr int kGrpcUnauthenticated = 16;

constexpr std::string_view kB64 =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string b64_encode(std::string_view in) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        auto n = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
        out.push_back(kB64[(n >> 18) & 63]);
        out.push_back(kB64[(n >> 12) & 63]);
        out.push_back(kB64[(n >> 6) & 63]);
        out.push_back(kB64[n & 63]);
    }
    if (i < in.size()) {
        unsigned n = static_cast<unsigned char>(in[i]) << 16;
        if (i + 1 < in.size()) {
            n |= static_cast<unsigned char>(in[i + 1]) << 8;
        }
        out.push_back(kB64[(n >> 18) & 63]);
        out.push_back(kB64[(n >> 12) & 63]);
        out.push_back(i + 1 < in.size() ? kB64[(n >> 6) & 63] : '=');
        out.push_back('=');
    }
    return out;
}

std::optional<std::string> b64_decode(std::string_view in) {
    std::string out;
    unsigned buffer = 0;
    int bits = 0;
    for (char c : in) {
        if (c == '=') {
            break;
        }
        auto pos = kB64.find(c);
        if (pos == std::string_view::npos) {
            return std::nullopt;
        }
        buffer = (buffer << 6) | static_cast<unsigned>(pos);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((buffer >> bits) & 0xff));
        }
    }
    return out;
}

// int64 fields come as strings ("5"), sometimes as numbers; missing = 0.
std::int64_t i64_field(const json& obj, const char* name) {
    if (!obj.is_object()) {
        return 0;
    }
    auto it = obj.find(name);
    if (it == obj.end()) {
        return 0;
    }
    if (it->is_number_integer()) {
        return it->get<std::int64_t>();
    }
    if (it->is_string()) {
        const auto& s = it->get_ref<const std::string&>();
        std::int64_t v = 0;
        auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec == std::errc{} && ptr == s.data() + s.size()) {
            return v;
        }
    }
    return 0;
}

// Lease IDs: keep them as decimal strings (> 2^53).
std::string id_field(const json& obj, const char* name) {
    if (!obj.is_object()) {
        return {};
    }
    auto it = obj.find(name);
    if (it == obj.end()) {
        return {};
    }
    if (it->is_string()) {
        return it->get<std::string>();
    }
    if (it->is_number_integer()) {
        return it->is_number_unsigned() ? std::to_string(it->get<std::uint64_t>())
                                        : std::to_string(it->get<std::int64_t>());
    }
    return {};
}

bool bool_field(const json& obj, const char* name) {
    if (!obj.is_object()) {
        return false;
    }
    auto it = obj.find(name);
    return it != obj.end() && it->is_boolean() && it->get<bool>();
}

// Patroni's prefix_range_end / clientv3 GetPrefixRangeEnd.
std::string prefix_range_end(std::string prefix) {
    while (!prefix.empty()) {
        auto& last = prefix.back();
        if (static_cast<unsigned char>(last) < 0xff) {
            last = static_cast<char>(static_cast<unsigned char>(last) + 1);
            return prefix;
        }
        prefix.pop_back();
    }
    return std::string(1, '\0');
}

std::string make_prefix(const std::string& namespace_, const std::string& scope) {
    std::string joined = "/" + namespace_ + "/" + scope + "/";
    std::string out;
    for (char c : joined) {
        if (c == '/' && !out.empty() && out.back() == '/') {
            continue;
        }
        out.push_back(c);
    }
    return out;
}

// Result<bool> cannot be built implicitly from an error_code (error_code converts to bool).
Result<bool> fail_bool(boost::system::error_code ec) {
    return Result<bool>(boost::system::in_place_error, ec);
}

bool is_retriable(Errc e) {
    return e == Errc::Unavailable || e == Errc::Timeout;
}

// What to do with one HTTP answer.
struct Verdict {
    Result<json> result = make_error_code(Errc::Protocol);
    bool retry = false;   // transient: try again (next host) until the deadline
    bool reauth = false;  // token problem: authenticate again and retry
};

// Error details from the 3.4 unary format {"error","message","code"}, the 3.6 format
// {"code","message"} and the streaming format {"error":{"grpc_code","message",...}}.
struct EtcdError {
    int code = -1;
    std::string message;
};

std::optional<EtcdError> extract_error(const json& body) {
    if (!body.is_object()) {
        return std::nullopt;
    }
    EtcdError e;
    if (auto it = body.find("error"); it != body.end()) {
        if (it->is_object()) {
            e.code = static_cast<int>(i64_field(*it, "grpc_code"));
            if (auto m = it->find("message"); m != it->end() && m->is_string()) {
                e.message = m->get<std::string>();
            }
            return e;
        }
        if (it->is_string()) {
            e.message = it->get<std::string>();
        }
    }
    if (auto it = body.find("code"); it != body.end() && it->is_number_integer()) {
        e.code = it->get<int>();
    } else if (e.message.empty()) {
        return std::nullopt;
    }
    if (auto m = body.find("message"); m != body.end() && m->is_string() && e.message.empty()) {
        e.message = m->get<std::string>();
    }
    return e;
}

bool contains(const std::string& haystack, std::string_view needle) {
    return haystack.find(needle) != std::string::npos;
}

Verdict classify(const EtcdError& e, unsigned http_status) {
    Verdict v;
    // gRPC code first, message second (spec §8).
    if (e.code == kGrpcUnauthenticated || contains(e.message, "invalid auth token") ||
        contains(e.message, "revision of auth store is old") ||
        contains(e.message, "user name is empty")) {
        v.result = make_error_code(Errc::Unauthorized);
        v.reauth = true;
        return v;
    }
    switch (e.code) {
        case kGrpcPermissionDenied:
            v.result = make_error_code(Errc::Forbidden);
            return v;
        case kGrpcNotFound:
            v.result = make_error_code(Errc::NotFound);
            return v;
        case kGrpcUnavailable:
        case kGrpcDeadlineExceeded:
            v.result = make_error_code(Errc::Unavailable);
            v.retry = true;
            return v;
        case kGrpcInvalidArgument:
        case kGrpcFailedPrecondition:
            v.result = make_error_code(Errc::BadRequest);
            return v;
        case kGrpcUnknown:
            if (contains(e.message, "not a primary lessor") ||
                contains(e.message, "leader changed")) {
                v.result = make_error_code(Errc::Unavailable);
                v.retry = true;
                return v;
            }
            break;
        default:
            break;
    }
    if (http_status >= 500) {
        v.result = make_error_code(Errc::Unavailable);
        v.retry = true;
    } else if (http_status == 401) {
        v.result = make_error_code(Errc::Unauthorized);
        v.reauth = true;
    } else if (http_status == 403) {
        v.result = make_error_code(Errc::Forbidden);
    } else if (http_status == 404 && e.code < 0) {
        v.result = make_error_code(Errc::Protocol);  // wrong API prefix / gateway disabled
    } else {
        v.result = make_error_code(Errc::BadRequest);
    }
    return v;
}

Verdict classify(const HttpResponse& r) {
    auto body = json::parse(r.body, nullptr, false);
    if (r.status == 200) {
        if (body.is_discarded() || !body.is_object()) {
            return Verdict{make_error_code(Errc::Protocol), false, false};
        }
        // Streaming endpoints (lease/keepalive) report errors inside a 200 answer.
        if (auto it = body.find("error"); it != body.end() && it->is_object()) {
            return classify(*extract_error(body), r.status);
        }
        return Verdict{std::move(body), false, false};
    }
    EtcdError e;
    if (!body.is_discarded()) {
        if (auto extracted = extract_error(body)) {
            e = std::move(*extracted);
        }
    } else {
        e.message = r.body;
    }
    auto v = classify(e, r.status);
    if (!v.retry) {
        spdlog::debug(
            "etcd3: request failed status={} code={} message={}", r.status, e.code, e.message);
    }
    return v;
}

// {"key":..,"target":..,"result":"EQUAL", <field>: <operand>}
json compare(const std::string& key, const char* target, const char* field, json operand) {
    json c = json::object();
    c["key"] = b64_encode(key);
    c["target"] = target;
    c["result"] = "EQUAL";
    c[field] = std::move(operand);
    return c;
}

json put_request(const std::string& key, const std::string& value, const std::string& lease) {
    json p = json::object();
    p["key"] = b64_encode(key);
    p["value"] = b64_encode(value);
    if (!lease.empty()) {
        p["lease"] = lease;
    }
    return p;
}

json put_op(const std::string& key, const std::string& value, const std::string& lease) {
    return json{{"request_put", put_request(key, value, lease)}};
}

json delete_op(const std::string& key) {
    return json{{"request_delete_range", json{{"key", b64_encode(key)}}}};
}

json txn(json compares, json success, json failure = json::array()) {
    json t = json::object();
    t["compare"] = std::move(compares);
    t["success"] = std::move(success);
    if (!failure.empty()) {
        t["failure"] = std::move(failure);
    }
    return t;
}

// header.revision of an answer: "header" (unary calls) or "result.header" (keepalive); 0 if
// absent.
std::int64_t header_revision(const json& body) {
    if (!body.is_object()) {
        return 0;
    }
    if (auto it = body.find("header"); it != body.end()) {
        return i64_field(*it, "revision");
    }
    if (auto it = body.find("result"); it != body.end() && it->is_object()) {
        if (auto h = it->find("header"); h != it->end()) {
            return i64_field(*h, "revision");
        }
    }
    return 0;
}

// Whether the executed branch of a txn answer (nested txns included) wrote anything.
bool txn_wrote(const json& body) {
    auto it = body.find("responses");
    if (it == body.end() || !it->is_array()) {
        return false;
    }
    for (const auto& r : *it) {
        if (!r.is_object()) {
            continue;
        }
        if (r.contains("response_put") || r.contains("response_delete_range")) {
            return true;
        }
        if (auto nested = r.find("response_txn"); nested != r.end() && txn_wrote(*nested)) {
            return true;
        }
    }
    return false;
}

// Whether an answer on `path` must be visible to the next get_cluster: every write, and a
// txn whose compare failed (our view was stale: Patroni PR #2783). A txn that succeeded
// without writing (update_leader's "already ours") changes nothing.
bool must_read_after(std::string_view path, const json& body) {
    if (path == "/kv/put" || path == "/kv/deleterange" || path == "/lease/revoke") {
        return true;
    }
    if (path == "/kv/txn") {
        return !bool_field(body, "succeeded") || txn_wrote(body);
    }
    return false;
}

bool same_keys(const RawKeys& a, const RawKeys& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
        return x.first == y.first && x.second.value == y.second.value &&
               x.second.version == y.second.version && x.second.owner == y.second.owner;
    });
}

// The keys of a /kv/range answer on the prefix, relative to it.
Result<RawKeys> parse_range(const json& body, const std::string& prefix) try {
    RawKeys keys;
    auto it = body.find("kvs");
    if (it == body.end()) {
        return keys;
    }
    if (!it->is_array()) {
        return make_error_code(Errc::Protocol);
    }
    for (const auto& kv : *it) {
        auto key = b64_decode(kv.value("key", ""));
        auto value = b64_decode(kv.value("value", ""));
        if (!key || !value || key->rfind(prefix, 0) != 0) {
            return make_error_code(Errc::Protocol);
        }
        RawKey raw;
        raw.value = std::move(*value);
        raw.version = i64_field(kv, "mod_revision");
        raw.owner = id_field(kv, "lease");
        if (raw.owner == "0") {
            raw.owner.clear();
        }
        keys.emplace(key->substr(prefix.size()), std::move(raw));
    }
    return keys;
} catch (const json::exception&) {
    return make_error_code(Errc::Protocol);
}

json prefix_range_request(const std::string& prefix) {
    return json{{"key", b64_encode(prefix)}, {"range_end", b64_encode(prefix_range_end(prefix))}};
}

}  // namespace

struct Etcd3Dcs::State {
    State(net::any_io_executor ex, core::Etcd3Settings s, std::string prefix_, std::string name)
        : executor(std::move(ex)),
          settings(std::move(s)),
          prefix(std::move(prefix_)),
          member_name(std::move(name)),
          backoff_timer(executor) {}

    net::any_io_executor executor;
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
    net::steady_timer backoff_timer;

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
    std::vector<net::steady_timer*> cache_waiters;  // get_cluster calls waiting for the watch

    // HTTP requests sent, by API path ("/kv/range", "/lease/keepalive", "/watch", ...).
    std::map<std::string, std::uint64_t, std::less<>> requests;

    std::string key(std::string_view name) const { return prefix + std::string(name); }
    std::string leader_key() const { return key("leader"); }
    std::string member_key() const { return key("members/" + member_name); }

    Clock::duration retry_timeout() const {
        return std::chrono::seconds(std::max(timing.retry_timeout, 1));
    }
    milliseconds attempt_timeout() const {
        return std::max(kMinAttemptTimeout, milliseconds(timing.retry_timeout * 1000 / 3));
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
        for (auto* timer : cache_waiters) {
            timer->cancel();
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

namespace {

using State = Etcd3Dcs::State;
using StatePtr = std::shared_ptr<State>;

// GET /version -> API prefix (Patroni: >= 3.4 -> /v3, 3.3 -> /v3beta, older -> /v3alpha).
net::awaitable<Result<void>> discover_api(StatePtr s, Clock::time_point deadline) {
    auto timeout = std::min(s->attempt_timeout(), std::max(remaining(deadline), milliseconds(1)));
    ++s->requests["/version"];
    auto r = co_await s->client().request("GET", "/version", "", s->headers(), timeout);
    if (!r) {
        co_return r.error();
    }
    if (r->status != 200) {
        co_return r->status >= 500 ? Errc::Unavailable : Errc::Protocol;
    }
    auto body = json::parse(r->body, nullptr, false);
    std::string version;
    if (body.is_object()) {
        for (const char* field : {"etcdcluster", "etcdserver"}) {
            if (auto it = body.find(field);
                it != body.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
                version = it->get<std::string>();
                break;
            }
        }
    }
    int major = 0;
    int minor = 0;
    if (std::sscanf(version.c_str(), "%d.%d", &major, &minor) != 2) {
        spdlog::warn("etcd3: cannot parse version from \"{}\"; assuming /v3", r->body);
        s->api = "/v3";
        co_return Result<void>{};
    }
    if (major > 3 || (major == 3 && minor >= 4)) {
        s->api = "/v3";
    } else if (major == 3 && minor == 3) {
        s->api = "/v3beta";
    } else {
        s->api = "/v3alpha";
    }
    spdlog::info("etcd3: cluster version {} at {}:{}, using {}",
                 version,
                 s->client().host(),
                 s->client().port(),
                 s->api);
    co_return Result<void>{};
}

net::awaitable<Result<void>> authenticate(StatePtr s, Clock::time_point deadline) {
    json body{{"name", s->settings.username}, {"password", s->settings.password}};
    auto timeout = std::min(s->attempt_timeout(), std::max(remaining(deadline), milliseconds(1)));
    HttpHeaders headers{{"Content-Type", "application/json"}};
    ++s->requests["/auth/authenticate"];
    auto r = co_await s->client().request(
        "POST", s->api + "/auth/authenticate", body.dump(), std::move(headers), timeout);
    if (!r) {
        co_return r.error();
    }
    auto parsed = json::parse(r->body, nullptr, false);
    if (r->status == 200 && parsed.is_object()) {
        s->token = id_field(parsed, "token");
        if (s->token.empty()) {
            co_return Errc::Protocol;
        }
        spdlog::info("etcd3: authenticated as {}", s->settings.username);
        co_return Result<void>{};
    }
    EtcdError e;
    if (auto extracted = extract_error(parsed)) {
        e = std::move(*extracted);
    }
    if (contains(e.message, "authentication is not enabled")) {
        spdlog::info("etcd3: authentication is not enabled on the server; continuing without");
        s->auth_disabled = true;
        co_return Result<void>{};
    }
    if (r->status >= 500 || e.code == kGrpcUnavailable) {
        co_return Errc::Unavailable;
    }
    spdlog::error("etcd3: authentication as {} failed: {}", s->settings.username, e.message);
    co_return Errc::Unauthorized;
}

net::awaitable<Result<void>> ensure_ready(StatePtr s, Clock::time_point deadline) {
    if (s->config_error) {
        co_return Errc::BadRequest;
    }
    if (s->api.empty()) {
        auto r = co_await discover_api(s, deadline);
        if (!r) {
            co_return r;
        }
    }
    if (!s->settings.username.empty() && s->token.empty() && !s->auth_disabled) {
        auto r = co_await authenticate(s, deadline);
        if (!r) {
            co_return r;
        }
    }
    co_return Result<void>{};
}

// One RPC with retries until `deadline`: transient errors switch host and back off.
net::awaitable<Result<json>> call(StatePtr s,
                                  std::string path,
                                  json body,
                                  Clock::time_point deadline) {
    const std::string text = body.dump();
    Errc last = Errc::Unavailable;
    auto backoff = kFirstBackoff;
    bool reauthenticated = false;
    while (true) {
        if (Clock::now() >= deadline) {
            co_return make_error_code(last);
        }
        auto ready = co_await ensure_ready(s, deadline);
        Verdict v;
        if (!ready) {
            v.result = ready.error();
            v.retry = is_retriable(static_cast<Errc>(ready.error().value())) &&
                      ready.error().category() == dcs_category();
        } else {
            auto timeout = std::min(s->attempt_timeout(), remaining(deadline));
            if (timeout <= milliseconds(0)) {
                co_return make_error_code(last);
            }
            ++s->requests[path];
            auto r =
                co_await s->client().request("POST", s->api + path, text, s->headers(), timeout);
            if (!r) {
                v.result = r.error();
                v.retry = r.error() != make_error_code(Errc::Cancelled);
            } else {
                v = classify(*r);
            }
        }
        if (v.result) {
            if (auto rev = header_revision(*v.result); rev > 0) {
                s->note_revision(rev, must_read_after(path, *v.result));
            }
            co_return std::move(v.result);
        }
        if (v.reauth && !s->settings.username.empty() && !reauthenticated) {
            spdlog::info("etcd3: token rejected; authenticating again");
            s->token.clear();
            s->auth_disabled = false;
            reauthenticated = true;
            continue;
        }
        if (!v.retry) {
            co_return v.result.error();
        }
        // etcd did not answer (or has no quorum): the watch may be as dead, so the cache is not
        // trusted until it has been read again; get_cluster reads directly meanwhile and reports
        // the outage as an error (a DCS error is never "no leader").
        s->drop_cache("a request failed");
        if (v.result.error().category() == dcs_category()) {
            last = static_cast<Errc>(v.result.error().value());
        }
        spdlog::debug("etcd3: {} failed ({}); retrying", path, v.result.error().message());
        s->next_host();
        auto pause = std::min<Clock::duration>(backoff, deadline - Clock::now());
        if (pause > Clock::duration::zero()) {
            co_await sleep_for(s->executor, pause);
        }
        backoff = std::min(backoff * 2, kMaxBackoff);
    }
}

Clock::time_point op_deadline(const StatePtr& s) {
    return Clock::now() + s->retry_timeout();
}

net::awaitable<Result<void>> grant_lease(StatePtr s, Clock::time_point deadline) {
    json request{{"TTL", s->timing.ttl}};
    auto r = co_await call(s, "/lease/grant", std::move(request), deadline);
    if (!r) {
        co_return r.error();
    }
    auto id = id_field(*r, "ID");
    if (id.empty() || id == "0") {
        co_return Errc::Protocol;
    }
    s->lease = id;
    s->lease_ttl = s->timing.ttl;
    s->last_lease_refresh = Clock::now();
    s->keepalive_revision = 0;
    spdlog::info("etcd3: granted lease {} ttl={}s", id, i64_field(*r, "TTL"));
    co_return Result<void>{};
}

// Our lease is gone (expired, revoked, or replaced after a ttl change): so are the keys attached
// to it. Forget that the member key is ours, so that touch_member writes it again.
void drop_lease(State& s) {
    s.lease.clear();
    s.keepalive_revision = 0;
    s.member_value.reset();
    s.member_owner.clear();
}

// Patroni's _do_refresh_lease: keepalive at most once per loop_wait unless forced; a keepalive
// answer without TTL means the lease is gone, then (or without a lease) grant a new one.
net::awaitable<Result<void>> refresh_lease(StatePtr s, bool force, Clock::time_point deadline) {
    if (!s->lease.empty() && s->lease_ttl != s->timing.ttl) {
        spdlog::info("etcd3: ttl changed to {}s; dropping lease {}", s->timing.ttl, s->lease);
        drop_lease(*s);
    }
    if (!s->lease.empty() && !force &&
        Clock::now() - s->last_lease_refresh < std::chrono::seconds(s->timing.loop_wait)) {
        co_return Result<void>{};
    }
    if (!s->lease.empty()) {
        json request{{"ID", s->lease}};
        auto r = co_await call(s, "/lease/keepalive", std::move(request), deadline);
        if (!r) {
            if (r.error() != make_error_code(Errc::NotFound)) {
                co_return r.error();
            }
            drop_lease(*s);
        } else {
            const json& result = r->contains("result") ? (*r)["result"] : *r;
            if (i64_field(result, "TTL") <= 0) {
                spdlog::warn("etcd3: lease {} expired", s->lease);
                drop_lease(*s);
            } else {
                s->last_lease_refresh = Clock::now();
                s->keepalive_revision = header_revision(*r);
            }
        }
    }
    if (s->lease.empty()) {
        co_return co_await grant_lease(s, deadline);
    }
    co_return Result<void>{};
}

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
    json request{{"key", b64_encode(key)}};
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

// Registers a timer that cache progress (or loss) cancels, for as long as it lives.
class CacheWaiter {
public:
    CacheWaiter(State& s, net::steady_timer& timer) : state_(s), timer_(&timer) {
        state_.cache_waiters.push_back(timer_);
    }
    ~CacheWaiter() { std::erase(state_.cache_waiters, timer_); }
    CacheWaiter(const CacheWaiter&) = delete;
    CacheWaiter& operator=(const CacheWaiter&) = delete;

private:
    State& state_;
    net::steady_timer* timer_;
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
    net::steady_timer timer(s->executor);
    CacheWaiter waiter(*s, timer);
    while (s->cache_valid && s->cache_revision < s->write_revision && Clock::now() < deadline) {
        timer.expires_at(deadline);
        co_await timer.async_wait(net::as_tuple(net::use_awaitable));
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

net::awaitable<Result<core::Cluster>> do_get_cluster(StatePtr s) {
    const auto use = co_await cache_use(s);
    if (use == CacheUse::Use) {
        auto cluster = build_cluster(s->cache);
        remember_member(*s, cluster, s->cache_revision);
        co_return cluster;
    }
    co_return co_await read_cluster(s, use == CacheUse::CheckStream);
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
            txn(json::array({compare(key, "VALUE", "value", b64_encode(s->member_name))}),
                json::array({put_op(key, s->member_name, s->lease)}),
                json::array({json{{"request_txn", std::move(create_txn)}}}));
        json request = txn(json::array({compare(key, "VALUE", "value", b64_encode(s->member_name)),
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
    auto request = txn(json::array({compare(key, "VALUE", "value", b64_encode(s->member_name))}),
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
    json request{{"key", b64_encode(s->member_key())}};
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

// ----- watch and cache ---------------------------------------------------------------------

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
bool apply_events(State& s, const json& events, bool& wake) {
    const std::int64_t base = s.snapshot_revision;
    std::int64_t top = s.cache_revision;
    for (const auto& ev : events) {
        auto kv = ev.find("kv");
        if (!ev.is_object() || kv == ev.end() || !kv->is_object()) {
            continue;
        }
        auto key = b64_decode(kv->value("key", ""));
        if (!key) {
            return false;
        }
        if (key->rfind(s.prefix, 0) != 0) {
            continue;
        }
        auto relative = key->substr(s.prefix.size());
        const auto revision = i64_field(*kv, "mod_revision");
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
            auto value = b64_decode(kv->value("value", ""));
            if (!value) {
                return false;
            }
            RawKey raw;
            raw.value = std::move(*value);
            raw.version = revision;
            raw.owner = id_field(*kv, "lease");
            if (raw.owner == "0") {
                raw.owner.clear();
            }
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
        json create{{"create_request",
                     json{{"key", b64_encode(s->prefix)},
                          {"range_end", b64_encode(prefix_range_end(s->prefix))},
                          {"start_revision", std::to_string(s->cache_revision + 1)},
                          {"progress_notify", true}}}};
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

}  // namespace

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
    net::co_spawn(s->executor,
                  restart_on_exception(
                      s->executor,
                      "etcd3: watch loop",
                      [s, generation] { return watch_loop(s, generation); },
                      [s, generation] { return watch_alive(s, generation); },
                      [s] {
                          // Nothing feeds the cache any more until the loop has refilled it.
                          s->cache_valid = false;
                          s->cache_filled = false;
                          s->watch_log.mark_failing();
                          s->wake_cache_waiters();
                      },
                      kFirstBackoff,
                      kMaxBackoff),
                  LogTaskException{"etcd3"});
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
