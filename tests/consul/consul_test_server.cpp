#include "consul_test_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <set>

namespace pgwarden::consul_test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using net::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr auto kTuple = net::as_tuple(net::use_awaitable);
constexpr std::size_t kMaxValueSize = 512 * 1024;
constexpr auto kTickPeriod = 10ms;
constexpr auto kMaxLockDelay = 60s;
constexpr auto kSessionTtlMax = 24h;
constexpr const char* kAnonymousAccessor = "00000000-0000-0000-0000-000000000002";

// Completion handler for co_spawn: a coroutine of the server must never throw; if one does,
// that is a bug in the double, so log and abort (STYLE: no asio::detached for throwing work).
void abort_on_exception(std::exception_ptr e) {
    if (!e) {
        return;
    }
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        std::fprintf(stderr, "pgw-consul-test-server: fatal: %s\n", ex.what());
    } catch (...) {
        std::fprintf(stderr, "pgw-consul-test-server: fatal: unknown exception\n");
    }
    std::fflush(stderr);
    std::abort();
}

struct DecodeError {
    std::string message;
};

std::string norm_key(std::string_view key, bool snake) {
    std::string out;
    for (char c : key) {
        if (snake && c == '_') {
            continue;
        }
        out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

// Go encoding/json field lookup: case-insensitive; agent bodies also accept snake_case.
const Json* field(const Json& obj, std::string_view name, bool snake) {
    if (!obj.is_object()) {
        return nullptr;
    }
    const std::string want = norm_key(name, snake);
    const Json* found = nullptr;
    for (auto it = obj.begin(); it != obj.end(); ++it) {
        if (it.key() == name) {
            return &it.value();
        }
        if (norm_key(it.key(), snake) == want) {
            found = &it.value();
        }
    }
    return found;
}

std::string json_type_name(const Json& v) {
    if (v.is_string()) {
        return "string";
    }
    if (v.is_number()) {
        return "number";
    }
    if (v.is_boolean()) {
        return "bool";
    }
    if (v.is_array()) {
        return "array";
    }
    if (v.is_object()) {
        return "object";
    }
    return "null";
}

[[noreturn]] void type_error(const Json& v, std::string_view name, std::string_view go_type) {
    throw DecodeError{"json: cannot unmarshal " + json_type_name(v) + " into Go struct field " +
                      std::string(name) + " of type " + std::string(go_type)};
}

std::optional<std::string> get_string(const Json& obj, std::string_view name, bool snake) {
    const Json* v = field(obj, name, snake);
    if (v == nullptr || v->is_null()) {
        return std::nullopt;
    }
    if (!v->is_string()) {
        type_error(*v, name, "string");
    }
    return v->get<std::string>();
}

std::optional<std::vector<std::string>> get_string_list(const Json& obj,
                                                        std::string_view name,
                                                        bool snake) {
    const Json* v = field(obj, name, snake);
    if (v == nullptr) {
        return std::nullopt;
    }
    std::vector<std::string> out;
    if (v->is_null()) {
        return out;
    }
    if (!v->is_array()) {
        type_error(*v, name, "[]string");
    }
    for (const auto& item : *v) {
        if (!item.is_string()) {
            type_error(item, name, "string");
        }
        out.push_back(item.get<std::string>());
    }
    return out;
}

// A duration field given as Go duration string or as a number of nanoseconds.
std::optional<Nanos> get_duration(const Json& obj, std::string_view name, bool snake) {
    const Json* v = field(obj, name, snake);
    if (v == nullptr || v->is_null()) {
        return std::nullopt;
    }
    if (v->is_number()) {
        return Nanos{static_cast<std::int64_t>(v->get<double>())};
    }
    if (!v->is_string()) {
        type_error(*v, name, "time.Duration");
    }
    auto s = v->get<std::string>();
    if (s.empty()) {
        return Nanos{0};
    }
    auto d = parse_go_duration(s);
    if (!d.value) {
        throw DecodeError{d.error};
    }
    return d.value;
}

Reply bool_reply(bool v) {
    Reply r;
    r.body = v ? "true" : "false";
    return r;
}

// Empty body, no Content-Type (404 on a missing key, 200 on agent mutations).
Reply empty_reply(unsigned status) {
    Reply r;
    r.status = status;
    r.content_type.clear();
    return r;
}

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

std::string dump(const OJson& j, bool pretty = false) {
    return j.dump(pretty ? 4 : -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Go strconv.ParseBool, used for the few flags that parse their value (?passing=false).
bool flag_value_true(const std::optional<std::string>& v) {
    if (!v || v->empty()) {
        return true;
    }
    return !(*v == "0" || *v == "f" || *v == "F" || *v == "false" || *v == "FALSE" ||
             *v == "False");
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Options

std::optional<std::string> parse_options(int argc, char** argv, ServerOptions& out) {
    std::vector<std::string> args(argv + 1, argv + argc);
    auto parse_dur = [](const std::string& v, Nanos& target) -> std::optional<std::string> {
        auto d = parse_go_duration(v);
        if (!d.value) {
            return d.error;
        }
        target = *d.value;
        return std::nullopt;
    };
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string name = args[i];
        std::string value;
        bool has_value = false;
        if (auto eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            has_value = true;
        }
        if (name == "--help" || name == "-h") {
            return std::string("help");
        }
        if (name == "--tls-verify-incoming" && !has_value) {
            out.tls_verify_incoming = true;  // a flag; `=true` / `=false` also accepted
            continue;
        }
        if (!has_value) {
            if (i + 1 >= args.size()) {
                return "missing value for " + name;
            }
            value = args[++i];
        }
        std::optional<std::string> err;
        if (name == "--listen") {
            auto colon = value.rfind(':');
            if (colon == std::string::npos) {
                return "--listen expects HOST:PORT";
            }
            out.listen_host = value.substr(0, colon);
            auto port = parse_uint64(value.substr(colon + 1));
            if (!port || *port > 65535) {
                return "bad port in --listen";
            }
            out.listen_port = static_cast<std::uint16_t>(*port);
        } else if (name == "--port-file") {
            out.port_file = value;
        } else if (name == "--https-listen") {
            auto colon = value.rfind(':');
            if (colon == std::string::npos) {
                return "--https-listen expects HOST:PORT";
            }
            out.https_listen_host = value.substr(0, colon);
            auto port = parse_uint64(value.substr(colon + 1));
            if (!port || *port > 65535) {
                return "bad port in --https-listen";
            }
            out.https_listen_port = static_cast<std::uint16_t>(*port);
        } else if (name == "--https-port-file") {
            out.https_port_file = value;
        } else if (name == "--tls-cert") {
            out.tls_cert = value;
        } else if (name == "--tls-key") {
            out.tls_key = value;
        } else if (name == "--tls-ca") {
            out.tls_ca = value;
        } else if (name == "--tls-verify-incoming") {
            if (value != "true" && value != "false") {
                return "--tls-verify-incoming must be true or false";
            }
            out.tls_verify_incoming = value == "true";
        } else if (name == "--datacenter") {
            out.datacenter = value;
        } else if (name == "--node-name") {
            out.node_name = value;
        } else if (name == "--session-ttl-min") {
            err = parse_dur(value, out.session_ttl_min);
        } else if (name == "--deregister-critical-min") {
            err = parse_dur(value, out.deregister_critical_min);
        } else if (name == "--reaper-interval") {
            err = parse_dur(value, out.reaper_interval);
        } else if (name == "--wait-scale") {
            try {
                out.wait_scale = std::stod(value);
            } catch (const std::exception&) {
                return "bad --wait-scale";
            }
        } else if (name == "--rpc-error-prefix-hops") {
            auto n = parse_uint64(value);
            if (!n || *n > 5) {
                return "bad --rpc-error-prefix-hops";
            }
            out.rpc_error_prefix_hops = static_cast<int>(*n);
        } else if (name == "--acl-default-policy") {
            if (value != "allow" && value != "deny") {
                return "--acl-default-policy must be allow or deny";
            }
            out.acl_enabled = true;
            out.acl_default_allow = value == "allow";
        } else if (name == "--acl-master-token") {
            out.acl_enabled = true;
            out.acl_master_token = value;
        } else if (name == "--initial-index") {
            auto n = parse_uint64(value);
            if (!n || *n < 2) {
                return "--initial-index must be >= 2";
            }
            out.initial_index = *n;
        } else {
            return "unknown option " + name;
        }
        if (err) {
            return name + ": " + *err;
        }
    }
    if (!out.https_listen_host.empty() && (out.tls_cert.empty() || out.tls_key.empty())) {
        return "--https-listen needs --tls-cert and --tls-key";
    }
    if (out.tls_verify_incoming && out.tls_ca.empty()) {
        return "--tls-verify-incoming needs --tls-ca";
    }
    return std::nullopt;
}

// ------------------------------------------------------------------------------------------
// Construction, listener, housekeeping

ConsulTestServer::ConsulTestServer(net::io_context& ioc, ServerOptions options)
    : ioc_(ioc),
      opts_(std::move(options)),
      acceptor_(ioc),
      https_acceptor_(ioc),
      rng_(std::random_device{}()),
      raft_index_(opts_.initial_index),
      kv_index_(opts_.initial_index),
      sessions_index_(opts_.initial_index),
      catalog_index_(opts_.initial_index) {
    node_id_ = new_uuid();
    Check serf;
    serf.id = "serfHealth";
    serf.name = "Serf Health Status";
    serf.status = "passing";
    serf.output = "Agent alive and reachable";
    serf.create_index = serf.modify_index = opts_.initial_index;
    checks_.emplace(serf.id, serf);
    last_reap_ = Clock::now();
    if (!opts_.acl_master_token.empty()) {
        AclToken master;
        master.accessor = new_uuid();
        master.secret = opts_.acl_master_token;
        master.management = true;
        tokens_.emplace(master.secret, master);
    }
}

tcp::endpoint ConsulTestServer::bind() {
    tcp::endpoint ep(net::ip::make_address(opts_.listen_host), opts_.listen_port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    return acceptor_.local_endpoint();
}

std::optional<tcp::endpoint> ConsulTestServer::bind_https() {
    if (opts_.https_listen_host.empty()) {
        return std::nullopt;
    }
    namespace ssl = net::ssl;
    tls_context_ = std::make_unique<ssl::context>(ssl::context::tls_server);
    tls_context_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                              ssl::context::no_sslv3);
    tls_context_->use_certificate_chain_file(opts_.tls_cert);
    tls_context_->use_private_key_file(opts_.tls_key, ssl::context::pem);
    if (!opts_.tls_ca.empty()) {
        tls_context_->load_verify_file(opts_.tls_ca);
    }
    tls_context_->set_verify_mode(opts_.tls_verify_incoming
                                      ? ssl::verify_peer | ssl::verify_fail_if_no_peer_cert
                                      : ssl::verify_none);
    tcp::endpoint ep(net::ip::make_address(opts_.https_listen_host), opts_.https_listen_port);
    https_acceptor_.open(ep.protocol());
    https_acceptor_.set_option(net::socket_base::reuse_address(true));
    https_acceptor_.bind(ep);
    https_acceptor_.listen();
    return https_acceptor_.local_endpoint();
}

void ConsulTestServer::start() {
    net::co_spawn(ioc_, accept_loop(this), abort_on_exception);
    if (https_acceptor_.is_open()) {
        net::co_spawn(ioc_, https_accept_loop(this), abort_on_exception);
    }
    net::co_spawn(ioc_, tick_loop(this), abort_on_exception);
}

net::awaitable<void> ConsulTestServer::accept_loop(ConsulTestServer* self) {
    for (;;) {
        auto [ec, socket] = co_await self->acceptor_.async_accept(kTuple);
        if (ec) {
            if (ec == net::error::operation_aborted) {
                co_return;
            }
            continue;
        }
        net::co_spawn(self->ioc_, serve_connection(self, std::move(socket)), abort_on_exception);
    }
}

net::awaitable<void> ConsulTestServer::https_accept_loop(ConsulTestServer* self) {
    for (;;) {
        auto [ec, socket] = co_await self->https_acceptor_.async_accept(kTuple);
        if (ec) {
            if (ec == net::error::operation_aborted) {
                co_return;
            }
            continue;
        }
        net::co_spawn(
            self->ioc_, serve_tls_connection(self, std::move(socket)), abort_on_exception);
    }
}

net::awaitable<void> ConsulTestServer::serve_connection(ConsulTestServer* self,
                                                        tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    co_await serve_http(self, stream);
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

net::awaitable<void> ConsulTestServer::serve_tls_connection(ConsulTestServer* self,
                                                            tcp::socket socket) {
    net::ssl::stream<beast::tcp_stream> stream(std::move(socket), *self->tls_context_);
    stream.next_layer().expires_after(10s);
    auto [hec] = co_await stream.async_handshake(net::ssl::stream_base::server, kTuple);
    stream.next_layer().expires_never();
    if (!hec) {
        co_await serve_http(self, stream);
        stream.next_layer().expires_after(2s);
        auto [sec] = co_await stream.async_shutdown(kTuple);
        (void)sec;
    }
    beast::error_code ignored;
    stream.next_layer().socket().shutdown(tcp::socket::shutdown_both, ignored);
}

template <class Stream>
net::awaitable<void> ConsulTestServer::serve_http(ConsulTestServer* self, Stream& stream) {
    beast::flat_buffer buffer;
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(16 * 1024 * 1024);
        auto [ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
        (void)n;
        if (ec) {
            break;
        }
        auto req = parser.release();
        const bool keep_alive = req.keep_alive();
        const unsigned version = req.version();
        Reply reply;
        try {
            reply = co_await self->handle(std::move(req));
        } catch (const std::exception& ex) {
            reply = self->error(500, std::string("internal error in test server: ") + ex.what());
        }
        http::response<http::string_body> res{static_cast<http::status>(reply.status), version};
        res.set(http::field::server, "pgw-consul-test-server");
        if (!reply.content_type.empty()) {
            res.set(http::field::content_type, reply.content_type);
        }
        res.set("Vary", "Accept-Encoding");
        for (const auto& [k, v] : reply.headers) {
            res.set(k, v);
        }
        res.body() = std::move(reply.body);
        res.keep_alive(keep_alive);
        res.prepare_payload();
        auto [wec, wn] = co_await http::async_write(stream, res, kTuple);
        (void)wn;
        if (wec || !keep_alive) {
            break;
        }
    }
}

net::awaitable<void> ConsulTestServer::tick_loop(ConsulTestServer* self) {
    net::steady_timer timer(self->ioc_);
    for (;;) {
        timer.expires_after(kTickPeriod);
        auto [ec] = co_await timer.async_wait(kTuple);
        (void)ec;
        self->housekeeping();
    }
}

std::uint64_t ConsulTestServer::next_index() {
    return ++raft_index_;
}

void ConsulTestServer::notify() {
    for (auto* timer : waiters_) {
        timer->cancel();
    }
}

void ConsulTestServer::housekeeping() {
    const auto now = Clock::now();
    std::vector<std::string> expired;
    for (const auto& [id, s] : sessions_) {
        if (s.ttl > Nanos{0} && now >= s.expires_at) {
            expired.push_back(id);
        }
    }
    for (const auto& id : expired) {
        invalidate_session(id);
    }
    std::vector<std::string> ttl_expired;
    for (const auto& [id, c] : checks_) {
        if (c.type == CheckType::Ttl && c.status != "critical" && now >= c.ttl_deadline) {
            ttl_expired.push_back(id);
        }
    }
    for (const auto& id : ttl_expired) {
        set_check_status(id, "critical", "TTL expired");
    }
    std::erase_if(lock_delays_, [&](const auto& kv) { return kv.second <= now; });
    if (now - last_reap_ >= opts_.reaper_interval) {
        last_reap_ = now;
        std::set<std::string> doomed;
        for (const auto& [id, c] : checks_) {
            if (c.service_id.empty() || c.deregister_after <= Nanos{0} || !c.critical_since) {
                continue;
            }
            auto limit = std::max(c.deregister_after, opts_.deregister_critical_min);
            if (now - *c.critical_since >= limit) {
                doomed.insert(c.service_id);
            }
        }
        for (const auto& sid : doomed) {
            if (services_.count(sid) != 0) {
                remove_service(sid, next_index());
            }
        }
    }
}

bool ConsulTestServer::session_uses_check(const Session& s, const std::string& check_id) const {
    auto in = [&](const std::vector<std::string>& v) {
        return std::find(v.begin(), v.end(), check_id) != v.end();
    };
    if (in(s.checks) || in(s.node_checks)) {
        return true;
    }
    if (s.service_checks.is_array()) {
        for (const auto& sc : s.service_checks) {
            const Json* id = field(sc, "ID", false);
            if (id != nullptr && id->is_string() && id->get<std::string>() == check_id) {
                return true;
            }
        }
    }
    return false;
}

void ConsulTestServer::invalidate_session(const std::string& id) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) {
        return;
    }
    const Session s = it->second;
    const auto idx = next_index();
    const auto now = Clock::now();
    const Nanos delay = std::min<Nanos>(Nanos{s.lock_delay_ns}, kMaxLockDelay);
    bool kv_changed = false;
    for (auto kv = kv_.begin(); kv != kv_.end();) {
        if (kv->second.session != id) {
            ++kv;
            continue;
        }
        kv_changed = true;
        if (delay > Nanos{0}) {
            lock_delays_[kv->first] = now + delay;
        }
        if (s.behavior == "delete") {
            tombstones_[kv->first] = idx;
            kv = kv_.erase(kv);
        } else {
            kv->second.session.clear();
            kv->second.modify_index = idx;
            ++kv;
        }
    }
    if (kv_changed) {
        kv_index_ = idx;
    }
    sessions_.erase(it);
    sessions_index_ = idx;
    notify();
}

void ConsulTestServer::invalidate_sessions_using_check(const std::string& check_id) {
    std::vector<std::string> doomed;
    for (const auto& [id, s] : sessions_) {
        if (session_uses_check(s, check_id)) {
            doomed.push_back(id);
        }
    }
    for (const auto& id : doomed) {
        invalidate_session(id);
    }
}

void ConsulTestServer::reset_index(std::uint64_t to) {
    raft_index_ = to;
    kv_index_ = sessions_index_ = catalog_index_ = to;
    tombstones_.clear();
    for (auto& [k, e] : kv_) {
        e.create_index = std::min(e.create_index, to);
        e.modify_index = std::min(e.modify_index, to);
    }
    for (auto& [k, s] : sessions_) {
        s.create_index = std::min(s.create_index, to);
        s.modify_index = std::min(s.modify_index, to);
    }
    for (auto& [k, c] : checks_) {
        c.create_index = std::min(c.create_index, to);
        c.modify_index = std::min(c.modify_index, to);
    }
    for (auto& [k, sv] : services_) {
        sv.create_index = std::min(sv.create_index, to);
        sv.modify_index = std::min(sv.modify_index, to);
    }
    ++reset_generation_;
    notify();
}

std::string ConsulTestServer::new_uuid() {
    std::uniform_int_distribution<int> hex(0, 15);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 32; ++i) {
        if (i == 8 || i == 12 || i == 16 || i == 20) {
            out += '-';
        }
        out += kHex[hex(rng_)];
    }
    return out;
}

// ------------------------------------------------------------------------------------------
// Replies and JSON shapes

Reply ConsulTestServer::error(unsigned status, std::string text) const {
    Reply r;
    r.status = status;
    r.body = std::move(text);
    r.content_type = "text/plain; charset=utf-8";
    return r;
}

Reply ConsulTestServer::rpc_error(unsigned status, std::string text) const {
    std::string prefix;
    for (int i = 0; i < opts_.rpc_error_prefix_hops; ++i) {
        prefix += "rpc error making call: ";
    }
    return error(status, prefix + text);
}

Reply ConsulTestServer::json_reply(const OJson& body, const Ctx& ctx) const {
    Reply r;
    r.body = dump(body, ctx.query.has("pretty"));
    return r;
}

OJson ConsulTestServer::kv_json(const KvEntry& e) const {
    OJson j;
    j["LockIndex"] = e.lock_index;
    j["Key"] = e.key;
    j["Flags"] = e.flags;
    j["Value"] = e.value.empty() ? OJson(nullptr) : OJson(base64_encode(e.value));
    if (!e.session.empty()) {
        j["Session"] = e.session;
    }
    j["CreateIndex"] = e.create_index;
    j["ModifyIndex"] = e.modify_index;
    return j;
}

OJson ConsulTestServer::session_json(const Session& s) const {
    OJson j;
    j["ID"] = s.id;
    j["Name"] = s.name;
    j["Node"] = s.node;
    if (!s.checks.empty()) {
        j["Checks"] = s.checks;
    }
    j["LockDelay"] = s.lock_delay_ns;
    j["Behavior"] = s.behavior;
    j["TTL"] = s.ttl_text;
    j["NodeChecks"] = s.node_checks;
    j["ServiceChecks"] = OJson::parse(s.service_checks.dump());
    j["CreateIndex"] = s.create_index;
    j["ModifyIndex"] = s.modify_index;
    return j;
}

OJson ConsulTestServer::check_json(const Check& c) const {
    OJson j;
    j["Node"] = opts_.node_name;
    j["CheckID"] = c.id;
    j["Name"] = c.name;
    j["Status"] = c.status;
    j["Notes"] = c.notes;
    j["Output"] = c.output;
    j["ServiceID"] = c.service_id;
    std::string service_name;
    OJson tags = OJson::array();
    if (auto it = services_.find(c.service_id); it != services_.end()) {
        service_name = it->second.name;
        tags = it->second.tags;
    }
    j["ServiceName"] = service_name;
    j["ServiceTags"] = tags;
    switch (c.type) {
        case CheckType::Http:
            j["Type"] = "http";
            break;
        case CheckType::Tcp:
            j["Type"] = "tcp";
            break;
        case CheckType::Ttl:
            j["Type"] = "ttl";
            break;
        case CheckType::None:
            j["Type"] = "";
            break;
    }
    j["Interval"] = c.interval > Nanos{0} ? format_go_duration(c.interval) : "";
    j["Timeout"] =
        c.type == CheckType::Http || c.type == CheckType::Tcp ? format_go_duration(c.timeout) : "";
    j["ExposedPort"] = 0;
    OJson def = OJson::object();
    if (c.type == CheckType::Http) {
        def["HTTP"] = c.http_url;
        def["Method"] = c.method;
    }
    if (c.deregister_after > Nanos{0}) {
        def["DeregisterCriticalServiceAfter"] = format_go_duration(c.deregister_after);
    }
    j["Definition"] = def;
    j["CreateIndex"] = c.create_index;
    j["ModifyIndex"] = c.modify_index;
    return j;
}

OJson ConsulTestServer::service_json(const Service& s) const {
    OJson j;
    j["ID"] = s.id;
    j["Service"] = s.name;
    j["Tags"] = s.tags;
    j["Address"] = s.address;
    j["Meta"] = OJson::parse(s.meta.dump());
    j["Port"] = s.port;
    j["Weights"] = OJson{{"Passing", 1}, {"Warning", 1}};
    j["EnableTagOverride"] = s.enable_tag_override;
    j["Datacenter"] = opts_.datacenter;
    j["CreateIndex"] = s.create_index;
    j["ModifyIndex"] = s.modify_index;
    return j;
}

OJson ConsulTestServer::node_json() const {
    OJson j;
    j["ID"] = node_id_;
    j["Node"] = opts_.node_name;
    j["Address"] = "127.0.0.1";
    j["Datacenter"] = opts_.datacenter;
    j["TaggedAddresses"] = OJson{{"lan", "127.0.0.1"}, {"wan", "127.0.0.1"}};
    j["Meta"] = OJson{{"consul-network-segment", ""}};
    j["CreateIndex"] = opts_.initial_index;
    j["ModifyIndex"] = opts_.initial_index;
    return j;
}

// ------------------------------------------------------------------------------------------
// ACL

bool ConsulTestServer::acl_allows(const Ctx& ctx,
                                  const std::string& kind,
                                  const std::string& name,
                                  bool write) const {
    if (!opts_.acl_enabled) {
        return true;
    }
    if (ctx.token != nullptr && ctx.token->management) {
        return true;
    }
    if (ctx.token != nullptr) {
        auto rules = ctx.token->rules.find(kind);
        if (rules != ctx.token->rules.end()) {
            const std::string* best = nullptr;
            std::size_t best_len = 0;
            for (const auto& [prefix, policy] : rules->second) {
                if (starts_with(name, prefix) && (best == nullptr || prefix.size() >= best_len)) {
                    best = &policy;
                    best_len = prefix.size();
                }
            }
            if (best != nullptr) {
                if (*best == "write") {
                    return true;
                }
                if (*best == "read") {
                    return !write;
                }
                return false;
            }
        }
    }
    return opts_.acl_default_allow;
}

Reply ConsulTestServer::permission_denied(
    const Ctx& ctx, const std::string& kind, const std::string& name, bool write, bool rpc) const {
    std::string accessor = ctx.token != nullptr ? ctx.token->accessor : kAnonymousAccessor;
    std::string text = "Permission denied: token with AccessorID '" + accessor +
                       "' lacks permission '" + kind + ":" + (write ? "write" : "read") +
                       "' on \"" + name + "\"";
    return rpc ? rpc_error(403, text) : error(403, text);
}

// ------------------------------------------------------------------------------------------
// Request dispatch

net::awaitable<Reply> ConsulTestServer::handle(http::request<http::string_body> req) {
    housekeeping();
    std::string_view target = req.target();
    std::string_view raw_path = target.substr(0, target.find('?'));
    std::string_view raw_query =
        target.find('?') == std::string_view::npos ? "" : target.substr(target.find('?') + 1);
    auto path = url_decode(raw_path, false);
    auto query = Query::parse(raw_query);
    if (!path || !query) {
        co_return error(400, "Invalid URL");
    }
    Ctx ctx;
    ctx.method = std::string(req.method_string());
    ctx.path = std::move(*path);
    ctx.query = std::move(*query);
    ctx.body = std::move(req.body());

    if (starts_with(ctx.path, "/_test/")) {
        co_return handle_test_control(ctx);
    }
    if (auto dc = ctx.query.get("dc"); dc && !dc->empty() && *dc != opts_.datacenter) {
        co_return error(500, "No path to datacenter");
    }
    // Token: ?token=, X-Consul-Token, Authorization: Bearer (first non-empty wins).
    std::string token = ctx.query.get("token").value_or("");
    if (token.empty()) {
        token = std::string(req["X-Consul-Token"]);
    }
    if (token.empty()) {
        std::string_view auth = req[http::field::authorization];
        if (starts_with(auth, "Bearer ")) {
            token = std::string(auth.substr(7));
        }
    }
    if (opts_.acl_enabled && !token.empty()) {
        auto it = tokens_.find(token);
        if (it == tokens_.end()) {
            co_return error(403, "ACL not found");
        }
        ctx.token = &it->second;
        ctx.token_supplied = true;
    }

    if (ctx.path == "/v1/kv" || starts_with(ctx.path, "/v1/kv/")) {
        co_return co_await handle_kv(ctx);
    }
    if (starts_with(ctx.path, "/v1/session/")) {
        co_return co_await handle_session(ctx);
    }
    if (starts_with(ctx.path, "/v1/health/")) {
        co_return co_await handle_health(ctx);
    }
    if (starts_with(ctx.path, "/v1/agent/")) {
        co_return handle_agent(ctx);
    }
    if (ctx.path == "/v1/status/leader" || ctx.path == "/v1/status/peers") {
        if (ctx.method != "GET") {
            Reply r = error(405, "method " + ctx.method + " not allowed");
            r.headers.emplace_back("Allow", "GET");
            co_return r;
        }
        if (ctx.path == "/v1/status/leader") {
            co_return json_reply(OJson(no_leader() ? "" : "127.0.0.1:8300"), ctx);
        }
        co_return json_reply(no_leader() ? OJson::array() : OJson::array({"127.0.0.1:8300"}), ctx);
    }
    co_return error(404, "404 page not found");
}

std::optional<Reply> ConsulTestServer::parse_read_mode(const Ctx& ctx, ReadMode& mode) const {
    const bool stale = ctx.query.has("stale");
    const bool consistent = ctx.query.has("consistent");
    if (stale && consistent) {
        return error(400, "Cannot specify ?stale with ?consistent, conflicting semantics.");
    }
    mode.consistency = stale ? "stale" : consistent ? "consistent" : "leader";
    if (auto wait = ctx.query.get("wait"); wait && !wait->empty()) {
        auto d = parse_go_duration(*wait);
        if (!d.value) {
            return error(400, "Invalid wait time");
        }
        mode.wait = *d.value;
    }
    if (auto index = ctx.query.get("index"); index && !index->empty()) {
        auto v = parse_uint64(*index);
        if (!v) {
            return error(400, "Invalid index");
        }
        mode.index = *v;
    }
    if (no_leader() && !stale) {
        return error(500, "No cluster leader");
    }
    return std::nullopt;
}

net::awaitable<Reply> ConsulTestServer::blocking_read(ConsulTestServer* self,
                                                      ReadMode mode,
                                                      ReadFn fn) {
    auto finish = [self, &mode](Reply r, std::uint64_t index) {
        if (r.status != 200 && r.status != 404) {
            return r;
        }
        r.headers.emplace_back("X-Consul-Index", std::to_string(std::max<std::uint64_t>(index, 1)));
        const bool leaderless = self->no_leader();
        r.headers.emplace_back("X-Consul-KnownLeader", leaderless ? "false" : "true");
        auto contact = leaderless ? std::chrono::duration_cast<std::chrono::milliseconds>(
                                        Clock::now() - self->fault_since_)
                                  : std::chrono::milliseconds{0};
        r.headers.emplace_back("X-Consul-LastContact", std::to_string(contact.count()));
        r.headers.emplace_back("X-Consul-Effective-Consistency", mode.consistency);
        return r;
    };
    if (mode.index == 0) {
        std::uint64_t index = 0;
        Reply r = fn(index);
        co_return finish(std::move(r), index);
    }
    Nanos timeout = mode.wait <= Nanos{0} ? Nanos{5min} : std::min<Nanos>(mode.wait, 10min);
    timeout = Nanos{
        static_cast<std::int64_t>(static_cast<double>(timeout.count()) * self->opts_.wait_scale)};
    std::uniform_int_distribution<std::int64_t> jitter_dist(0, timeout.count() / 16);
    const auto deadline = Clock::now() + timeout + Nanos{jitter_dist(self->rng_)};
    const auto generation = self->reset_generation_;
    net::steady_timer timer(self->ioc_);
    for (;;) {
        self->housekeeping();
        std::uint64_t index = 0;
        Reply r = fn(index);
        index = std::max<std::uint64_t>(index, 1);
        if ((r.status != 200 && r.status != 404) || index > mode.index ||
            generation != self->reset_generation_ || Clock::now() >= deadline) {
            co_return finish(std::move(r), index);
        }
        timer.expires_at(deadline);
        self->waiters_.push_back(&timer);
        auto pos = std::prev(self->waiters_.end());
        auto [ec] = co_await timer.async_wait(kTuple);
        (void)ec;
        self->waiters_.erase(pos);
    }
}

// ------------------------------------------------------------------------------------------
// KV

namespace {

std::optional<std::string> validate_key(const std::string& key) {
    if (!key.empty() && (key.front() == ' ' || key.back() == ' ')) {
        return "Invalid key name: leading or trailing spaces are not allowed";
    }
    std::size_t start = 0;
    while (start <= key.size()) {
        auto slash = key.find('/', start);
        auto seg =
            key.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
        if (seg == "..") {
            return "Invalid key name: path traversal ('..' segment) is not allowed";
        }
        if (slash == std::string::npos) {
            break;
        }
        start = slash + 1;
    }
    return std::nullopt;
}

}  // namespace

net::awaitable<Reply> ConsulTestServer::handle_kv(Ctx ctx) {
    std::string key = ctx.path.size() > 7 ? ctx.path.substr(7) : "";
    if (auto bad = validate_key(key)) {
        co_return error(400, *bad);
    }
    if (ctx.method == "GET") {
        ReadMode mode;
        if (auto err = parse_read_mode(ctx, mode)) {
            co_return *err;
        }
        if (key.empty() && !ctx.query.has("recurse") && !ctx.query.has("keys")) {
            co_return error(400, "Missing key name");
        }
        ReadFn fn = [this, ctx, key](std::uint64_t& index) {
            return kv_read(ctx, key, index);
        };
        co_return co_await blocking_read(this, mode, std::move(fn));
    }
    if (ctx.method == "PUT") {
        co_return kv_put(ctx, key);
    }
    if (ctx.method == "DELETE") {
        co_return kv_delete(ctx, key);
    }
    Reply r = error(405, "method " + ctx.method + " not allowed");
    r.headers.emplace_back("Allow", "GET, PUT, DELETE");
    co_return r;
}

Reply ConsulTestServer::kv_read(const Ctx& ctx, const std::string& key, std::uint64_t& index) {
    const bool keys = ctx.query.has("keys");
    const bool recurse = ctx.query.has("recurse");
    if (keys || recurse) {
        bool filtered = false;
        std::uint64_t list_index = 0;
        std::vector<const KvEntry*> entries;
        for (auto it = kv_.lower_bound(key); it != kv_.end() && starts_with(it->first, key); ++it) {
            if (!acl_allows(ctx, "key", it->first, false)) {
                filtered = true;
                continue;
            }
            entries.push_back(&it->second);
            list_index = std::max(list_index, it->second.modify_index);
        }
        if (!key.empty()) {
            for (auto it = tombstones_.lower_bound(key);
                 it != tombstones_.end() && starts_with(it->first, key);
                 ++it) {
                list_index = std::max(list_index, it->second);
            }
        } else {
            list_index = kv_index_;
        }
        index = list_index != 0 ? list_index : kv_index_;
        Reply r;
        if (keys) {
            const std::string sep = ctx.query.get("separator").value_or("");
            OJson out = OJson::array();
            std::string last;
            for (const auto* e : entries) {
                std::string k = e->key;
                if (!sep.empty()) {
                    auto pos = k.find(sep, key.size());
                    if (pos != std::string::npos) {
                        k = k.substr(0, pos + sep.size());
                    }
                }
                if (!out.empty() && k == last) {
                    continue;
                }
                last = k;
                out.push_back(k);
            }
            if (out.empty() && !key.empty()) {
                r = empty_reply(404);
            } else {
                r = json_reply(out, ctx);
            }
        } else {
            if (entries.empty()) {
                r = empty_reply(404);
            } else {
                OJson out = OJson::array();
                for (const auto* e : entries) {
                    out.push_back(kv_json(*e));
                }
                r = json_reply(out, ctx);
            }
        }
        if (filtered && ctx.token_supplied) {
            r.headers.emplace_back("X-Consul-Results-Filtered-By-ACLs", "true");
        }
        return r;
    }
    if (!acl_allows(ctx, "key", key, false)) {
        return permission_denied(ctx, "key", key, false, true);
    }
    auto it = kv_.find(key);
    if (it == kv_.end()) {
        index = kv_index_;
        return empty_reply(404);
    }
    index = it->second.modify_index;
    if (ctx.query.has("raw")) {
        Reply r{200, it->second.value, "text/plain; charset=utf-8", {}};
        r.headers.emplace_back("X-Content-Type-Options", "nosniff");
        return r;
    }
    return json_reply(OJson::array({kv_json(it->second)}), ctx);
}

Reply ConsulTestServer::kv_put(Ctx& ctx, const std::string& key) {
    if (key.empty()) {
        return error(400, "Missing key name");
    }
    const int modes = static_cast<int>(ctx.query.has("cas")) +
                      static_cast<int>(ctx.query.has("acquire")) +
                      static_cast<int>(ctx.query.has("release"));
    if (modes > 1) {
        return error(400, "Conflicting flags: " + ctx.query.encode());
    }
    std::uint64_t flags = 0;
    if (auto f = ctx.query.get("flags"); f && !f->empty()) {
        auto v = parse_uint64(*f);
        if (!v) {
            return error(400, "Invalid flags: " + *f);
        }
        flags = *v;
    }
    std::optional<std::uint64_t> cas;
    if (auto c = ctx.query.get("cas")) {
        cas = parse_uint64(*c);
        if (!cas) {
            return error(400, "Invalid cas index: " + *c);
        }
    }
    if (ctx.body.size() > kMaxValueSize) {
        return error(413,
                     "Request body(" + std::to_string(ctx.body.size()) +
                         " bytes) too large, max size: " + std::to_string(kMaxValueSize) +
                         " bytes. See https://developer.hashicorp.com/docs/agent/config/"
                         "config-files#kv_max_value_size.");
    }
    if (no_leader()) {
        return error(500, "No cluster leader");
    }
    if (!acl_allows(ctx, "key", key, true)) {
        return permission_denied(ctx, "key", key, true, true);
    }
    auto existing = kv_.find(key);
    KvEntry entry;
    if (existing != kv_.end()) {
        entry = existing->second;
    } else {
        entry.key = key;
    }
    std::uint64_t idx = 0;
    if (auto acquire = ctx.query.get("acquire")) {
        // Lock-delay is enforced on the leader before the write enters Raft: no index consumed.
        if (auto d = lock_delays_.find(key); d != lock_delays_.end() && Clock::now() < d->second) {
            return bool_reply(false);
        }
        idx = next_index();
        if (acquire->empty()) {
            return rpc_error(500, "missing session");
        }
        if (sessions_.count(*acquire) == 0) {
            return rpc_error(500, "invalid session \"" + *acquire + "\"");
        }
        if (!entry.session.empty() && entry.session != *acquire) {
            return bool_reply(false);
        }
        if (entry.session != *acquire) {
            entry.session = *acquire;
            entry.lock_index += 1;
        }
    } else if (auto release = ctx.query.get("release")) {
        idx = next_index();
        if (release->empty()) {
            return rpc_error(500, "missing session");
        }
        if (existing == kv_.end() || entry.session != *release) {
            return bool_reply(false);
        }
        entry.session.clear();
    } else {
        idx = next_index();
        if (cas) {
            const bool ok = *cas == 0
                                ? existing == kv_.end()
                                : existing != kv_.end() && existing->second.modify_index == *cas;
            if (!ok) {
                return bool_reply(false);
            }
        }
    }
    entry.value = ctx.body;
    entry.flags = flags;
    if (existing != kv_.end()) {
        const KvEntry& old = existing->second;
        if (old.value == entry.value && old.flags == entry.flags && old.session == entry.session &&
            old.lock_index == entry.lock_index) {
            return bool_reply(true);  // identical write: no index change, nobody woken
        }
    } else {
        entry.create_index = idx;
    }
    entry.modify_index = idx;
    kv_[key] = entry;
    kv_index_ = idx;
    notify();
    return bool_reply(true);
}

Reply ConsulTestServer::kv_delete(Ctx& ctx, const std::string& key) {
    const bool recurse = ctx.query.has("recurse");
    if (recurse && ctx.query.has("cas")) {
        return error(400, "Conflicting flags: " + ctx.query.encode());
    }
    if (!recurse && key.empty()) {
        return error(400, "Missing key name");
    }
    std::optional<std::uint64_t> cas;
    if (auto c = ctx.query.get("cas")) {
        cas = parse_uint64(*c);
        if (!cas) {
            return error(400, "Invalid cas index: " + *c);
        }
    }
    if (no_leader()) {
        return error(500, "No cluster leader");
    }
    if (!acl_allows(ctx, "key", key, true)) {
        return permission_denied(ctx, "key", key, true, true);
    }
    const auto idx = next_index();
    if (recurse) {
        bool any = false;
        for (auto it = kv_.lower_bound(key); it != kv_.end() && starts_with(it->first, key);) {
            tombstones_[it->first] = idx;
            it = kv_.erase(it);
            any = true;
        }
        if (any) {
            kv_index_ = idx;
            notify();
        }
        return bool_reply(true);
    }
    auto it = kv_.find(key);
    if (it == kv_.end()) {
        return bool_reply(true);
    }
    if (cas && it->second.modify_index != *cas) {
        return bool_reply(false);
    }
    kv_.erase(it);
    tombstones_[key] = idx;
    kv_index_ = idx;
    notify();
    return bool_reply(true);
}

// ------------------------------------------------------------------------------------------
// Sessions

net::awaitable<Reply> ConsulTestServer::handle_session(Ctx ctx) {
    const std::string rest = ctx.path.substr(std::string("/v1/session/").size());
    auto op_end = rest.find('/');
    const std::string op = rest.substr(0, op_end);
    const std::string arg = op_end == std::string::npos ? "" : rest.substr(op_end + 1);
    const bool is_write = op == "create" || op == "destroy" || op == "renew";
    const bool is_read = op == "info" || op == "list" || op == "node";
    if (!is_write && !is_read) {
        co_return error(404, "404 page not found");
    }
    if ((is_write && ctx.method != "PUT") || (is_read && ctx.method != "GET")) {
        Reply r = error(405, "method " + ctx.method + " not allowed");
        r.headers.emplace_back("Allow", is_write ? "PUT" : "GET");
        co_return r;
    }
    if (op == "create") {
        co_return session_create(ctx);
    }
    if (op == "destroy" || op == "renew") {
        if (arg.empty()) {
            co_return error(400, "Missing session");
        }
        if (no_leader()) {
            co_return error(500, "No cluster leader");
        }
        auto it = sessions_.find(arg);
        const std::string node = it != sessions_.end() ? it->second.node : opts_.node_name;
        if (!acl_allows(ctx, "session", node, true)) {
            co_return permission_denied(ctx, "session", node, true, true);
        }
        if (op == "destroy") {
            if (it != sessions_.end()) {
                invalidate_session(arg);
            } else {
                next_index();
            }
            co_return bool_reply(true);
        }
        if (it == sessions_.end()) {
            co_return error(404, "Session id '" + arg + "' not found");
        }
        it->second.expires_at = Clock::now() + 2 * it->second.ttl;
        co_return json_reply(OJson::array({session_json(it->second)}), ctx);
    }
    ReadMode mode;
    if (auto err = parse_read_mode(ctx, mode)) {
        co_return *err;
    }
    ReadFn fn = [this, ctx, op, arg](std::uint64_t& index) {
        index = sessions_index_;
        OJson out = OJson::array();
        bool filtered = false;
        for (const auto& [id, s] : sessions_) {
            if (op == "info" && id != arg) {
                continue;
            }
            if (op == "node" && s.node != arg) {
                continue;
            }
            if (!acl_allows(ctx, "session", s.node, false)) {
                filtered = true;
                continue;
            }
            out.push_back(session_json(s));
        }
        Reply r = json_reply(out, ctx);
        if (filtered && ctx.token_supplied) {
            r.headers.emplace_back("X-Consul-Results-Filtered-By-ACLs", "true");
        }
        return r;
    };
    co_return co_await blocking_read(this, mode, std::move(fn));
}

Reply ConsulTestServer::session_create(Ctx& ctx) {
    Session s;
    s.node = opts_.node_name;
    std::vector<std::string> checks = {"serfHealth"};
    std::vector<std::string> node_checks = {"serfHealth"};
    Json body = Json::object();
    if (!ctx.body.empty()) {
        body = Json::parse(ctx.body, nullptr, false);
        if (body.is_discarded()) {
            return error(400, "Request decode failed: invalid character in JSON body");
        }
        if (!body.is_object() && !body.is_null()) {
            return error(400,
                         "Request decode failed: json: cannot unmarshal " + json_type_name(body) +
                             " into Go value of type structs.Session");
        }
        if (body.is_null()) {
            body = Json::object();
        }
    }
    try {
        s.name = get_string(body, "Name", false).value_or("");
        if (auto node = get_string(body, "Node", false); node && !node->empty()) {
            s.node = *node;
        }
        s.behavior = get_string(body, "Behavior", false).value_or("");
        s.ttl_text = get_string(body, "TTL", false).value_or("");
        if (const Json* ld = field(body, "LockDelay", false); ld != nullptr && !ld->is_null()) {
            Nanos d{0};
            if (ld->is_number()) {
                d = Nanos{static_cast<std::int64_t>(ld->get<double>())};
            } else if (ld->is_string()) {
                auto parsed = parse_go_duration(ld->get<std::string>());
                if (!parsed.value) {
                    throw DecodeError{parsed.error};
                }
                d = *parsed.value;
            } else {
                type_error(*ld, "LockDelay", "time.Duration");
            }
            if (d.count() < 1000) {
                d *= 1'000'000'000;  // values below 1000 are taken as seconds
            }
            s.lock_delay_ns = d.count();
        }
        if (auto c = get_string_list(body, "Checks", false)) {
            checks = *c;
        }
        if (auto c = get_string_list(body, "NodeChecks", false)) {
            node_checks = *c;
        }
        if (const Json* sc = field(body, "ServiceChecks", false); sc != nullptr) {
            if (!sc->is_null() && !sc->is_array()) {
                type_error(*sc, "ServiceChecks", "[]structs.ServiceCheck");
            }
            s.service_checks = *sc;
            if (sc->is_array()) {
                Json norm = Json::array();
                for (const auto& item : *sc) {
                    auto id = get_string(item, "ID", false);
                    if (!id) {
                        throw DecodeError{"ServiceChecks entries need an ID"};
                    }
                    norm.push_back(
                        Json{{"ID", *id},
                             {"Namespace", get_string(item, "Namespace", false).value_or("")}});
                }
                s.service_checks = norm;
            }
        }
    } catch (const DecodeError& e) {
        return error(400, "Request decode failed: " + e.message);
    }
    // fixupEmptySessionChecks (agent/session_endpoint.go), reproduced exactly.
    if (checks.empty()) {
        node_checks.clear();
    } else if (checks.size() == 1 && checks[0] == "serfHealth") {
        checks.clear();
    } else if (node_checks.empty()) {
        checks.clear();
    }
    s.checks = checks;
    s.node_checks = node_checks;

    if (no_leader()) {
        return error(500, "No cluster leader");
    }
    if (!acl_allows(ctx, "session", s.node, true)) {
        return permission_denied(ctx, "session", s.node, true, true);
    }
    if (s.behavior.empty()) {
        s.behavior = "release";
    }
    if (s.behavior != "release" && s.behavior != "delete") {
        return rpc_error(500, "Invalid Behavior setting '" + s.behavior + "'");
    }
    if (!s.ttl_text.empty()) {
        auto ttl = parse_go_duration(s.ttl_text);
        if (!ttl.value) {
            return rpc_error(500, "Session TTL '" + s.ttl_text + "' invalid: " + ttl.error);
        }
        s.ttl = *ttl.value;
        if (s.ttl != Nanos{0} && (s.ttl < opts_.session_ttl_min || s.ttl > kSessionTtlMax)) {
            return rpc_error(500,
                             "Invalid Session TTL '" + std::to_string(s.ttl.count()) +
                                 "', must be between [" +
                                 format_go_duration(opts_.session_ttl_min) + "=" +
                                 format_go_duration(kSessionTtlMax) + "]");
        }
    }
    if (s.node != opts_.node_name) {
        return rpc_error(500, "Missing node registration");
    }
    std::vector<std::string> all_checks = s.checks;
    all_checks.insert(all_checks.end(), s.node_checks.begin(), s.node_checks.end());
    if (s.service_checks.is_array()) {
        for (const auto& sc : s.service_checks) {
            all_checks.push_back(sc["ID"].get<std::string>());
        }
    }
    for (const auto& cid : all_checks) {
        auto c = checks_.find(cid);
        if (c == checks_.end()) {
            return rpc_error(500, "Missing check '" + cid + "' registration");
        }
        if (c->second.status == "critical") {
            return rpc_error(500, "Check '" + cid + "' is in critical state");
        }
    }
    const auto idx = next_index();
    s.id = new_uuid();
    while (sessions_.count(s.id) != 0) {
        s.id = new_uuid();
    }
    s.create_index = s.modify_index = idx;
    if (s.ttl > Nanos{0}) {
        s.expires_at = Clock::now() + 2 * s.ttl;
    }
    sessions_[s.id] = s;
    sessions_index_ = idx;
    notify();
    OJson out;
    out["ID"] = s.id;
    return json_reply(out, ctx);
}

// ------------------------------------------------------------------------------------------
// Health

net::awaitable<Reply> ConsulTestServer::handle_health(Ctx ctx) {
    const std::string prefix = "/v1/health/service/";
    if (!starts_with(ctx.path, prefix)) {
        co_return error(404, "404 page not found");
    }
    if (ctx.method != "GET") {
        Reply r = error(405, "method " + ctx.method + " not allowed");
        r.headers.emplace_back("Allow", "GET");
        co_return r;
    }
    const std::string name = ctx.path.substr(prefix.size());
    if (name.empty()) {
        co_return error(400, "Missing service name");
    }
    ReadMode mode;
    if (auto err = parse_read_mode(ctx, mode)) {
        co_return *err;
    }
    const bool passing = ctx.query.has("passing") && flag_value_true(ctx.query.get("passing"));
    const std::vector<std::string> tags = ctx.query.all("tag");
    ReadFn fn = [this, ctx, name, passing, tags](std::uint64_t& index) {
        index = catalog_index_;
        OJson out = OJson::array();
        bool filtered = false;
        for (const auto& [id, svc] : services_) {
            if (svc.name != name) {
                continue;
            }
            if (!acl_allows(ctx, "service", svc.name, false) ||
                !acl_allows(ctx, "node", opts_.node_name, false)) {
                filtered = true;
                continue;
            }
            bool tags_ok = std::all_of(tags.begin(), tags.end(), [&](const std::string& t) {
                return std::find(svc.tags.begin(), svc.tags.end(), t) != svc.tags.end();
            });
            if (!tags_ok) {
                continue;
            }
            OJson checks = OJson::array();
            bool all_passing = true;
            for (const auto& [cid, c] : checks_) {
                if (!c.service_id.empty() && c.service_id != svc.id) {
                    continue;
                }
                all_passing = all_passing && c.status == "passing";
                checks.push_back(check_json(c));
            }
            if (passing && !all_passing) {
                continue;
            }
            OJson item;
            item["Node"] = node_json();
            item["Service"] = service_json(svc);
            item["Checks"] = checks;
            out.push_back(item);
        }
        Reply r = json_reply(out, ctx);
        if (filtered && ctx.token_supplied) {
            r.headers.emplace_back("X-Consul-Results-Filtered-By-ACLs", "true");
        }
        return r;
    };
    co_return co_await blocking_read(this, mode, std::move(fn));
}

// ------------------------------------------------------------------------------------------
// Agent

Reply ConsulTestServer::handle_agent(Ctx& ctx) {
    const std::string rest = ctx.path.substr(std::string("/v1/agent/").size());
    auto method_is = [&](const char* m) -> std::optional<Reply> {
        if (ctx.method == m) {
            return std::nullopt;
        }
        Reply r = error(405, "method " + ctx.method + " not allowed");
        r.headers.emplace_back("Allow", m);
        return r;
    };
    if (rest == "self") {
        if (auto r = method_is("GET")) {
            return *r;
        }
        if (!acl_allows(ctx, "agent", opts_.node_name, false)) {
            return permission_denied(ctx, "agent", opts_.node_name, false, false);
        }
        OJson out;
        out["Config"] = OJson{{"Datacenter", opts_.datacenter},
                              {"PrimaryDatacenter", opts_.datacenter},
                              {"NodeName", opts_.node_name},
                              {"NodeID", node_id_},
                              {"Revision", "pgwarden-test"},
                              {"Server", true},
                              {"Version", "1.17.0"},
                              {"BuildDate", "2023-11-01T00:00:00Z"}};
        out["DebugConfig"] = OJson{{"SessionTTLMin", format_go_duration(opts_.session_ttl_min)},
                                   {"Datacenter", opts_.datacenter},
                                   {"NodeName", opts_.node_name}};
        out["Coord"] = nullptr;
        out["Member"] = OJson{{"Name", opts_.node_name}, {"Addr", "127.0.0.1"}, {"Port", 8301}};
        out["Stats"] = OJson::object();
        out["Meta"] = OJson{{"consul-network-segment", ""}};
        return json_reply(out, ctx);
    }
    if (rest == "services" || rest == "checks") {
        if (auto r = method_is("GET")) {
            return *r;
        }
        OJson out = OJson::object();
        if (rest == "services") {
            for (const auto& [id, svc] : services_) {
                if (acl_allows(ctx, "service", svc.name, false)) {
                    out[id] = service_json(svc);
                }
            }
        } else {
            for (const auto& [id, c] : checks_) {
                out[id] = check_json(c);
            }
        }
        return json_reply(out, ctx);
    }
    if (rest == "service/register") {
        if (auto r = method_is("PUT")) {
            return *r;
        }
        return agent_service_register(ctx);
    }
    if (starts_with(rest, "service/deregister/")) {
        if (auto r = method_is("PUT")) {
            return *r;
        }
        const std::string id = rest.substr(std::string("service/deregister/").size());
        auto it = services_.find(id);
        if (it == services_.end()) {
            return error(404,
                         "Unknown service ID \"" + id +
                             "\". Ensure that the service ID is passed, not the service "
                             "name.");
        }
        if (!acl_allows(ctx, "service", it->second.name, true)) {
            return permission_denied(ctx, "service", it->second.name, true, false);
        }
        remove_service(id, next_index());
        return empty_reply(200);
    }
    if (rest == "check/register") {
        if (auto r = method_is("PUT")) {
            return *r;
        }
        return agent_check_register(ctx);
    }
    if (starts_with(rest, "check/deregister/")) {
        if (auto r = method_is("PUT")) {
            return *r;
        }
        const std::string id = rest.substr(std::string("check/deregister/").size());
        auto it = checks_.find(id);
        if (it == checks_.end()) {
            return error(404,
                         "Unknown check ID \"" + id +
                             "\". Ensure that the check ID is passed, not the check name.");
        }
        remove_check(id, next_index());
        return empty_reply(200);
    }
    for (const char* op : {"pass", "warn", "fail"}) {
        const std::string prefix = std::string("check/") + op + "/";
        if (!starts_with(rest, prefix)) {
            continue;
        }
        if (auto r = method_is("PUT")) {
            return *r;
        }
        const std::string id = rest.substr(prefix.size());
        auto it = checks_.find(id);
        if (it == checks_.end()) {
            return error(404,
                         "Unknown check ID \"" + id +
                             "\". Ensure that the check ID is passed, not the check name.");
        }
        const Check& c = it->second;
        if (auto svc = services_.find(c.service_id); svc != services_.end()) {
            if (!acl_allows(ctx, "service", svc->second.name, true)) {
                return permission_denied(ctx, "service", svc->second.name, true, false);
            }
        } else if (!acl_allows(ctx, "node", opts_.node_name, true)) {
            return permission_denied(ctx, "node", opts_.node_name, true, false);
        }
        if (c.type != CheckType::Ttl) {
            return error(500, "CheckID \"" + id + "\" does not have associated TTL");
        }
        it->second.ttl_deadline = Clock::now() + c.ttl;
        const std::string status = std::string(op) == "pass"   ? "passing"
                                   : std::string(op) == "warn" ? "warning"
                                                               : "critical";
        set_check_status(id, status, ctx.query.get("note").value_or(""));
        return empty_reply(200);
    }
    return error(404, "404 page not found");
}

std::optional<std::string> ConsulTestServer::parse_check(const Json& def, Check& out) {
    if (!def.is_object()) {
        return std::string("check definition must be an object");
    }
    out.id = get_string(def, "CheckID", true).value_or(get_string(def, "ID", true).value_or(""));
    out.name = get_string(def, "Name", true).value_or("");
    out.notes = get_string(def, "Notes", true).value_or("");
    out.service_id = get_string(def, "ServiceID", true).value_or(out.service_id);
    auto http_url = get_string(def, "HTTP", true);
    auto tcp = get_string(def, "TCP", true);
    auto ttl = get_duration(def, "TTL", true);
    auto interval = get_duration(def, "Interval", true);
    if (auto timeout = get_duration(def, "Timeout", true); timeout && *timeout > Nanos{0}) {
        out.timeout = *timeout;
    }
    out.deregister_after =
        get_duration(def, "DeregisterCriticalServiceAfter", true).value_or(Nanos{0});
    if (http_url && !http_url->empty()) {
        out.type = CheckType::Http;
        out.http_url = *http_url;
        out.method = get_string(def, "Method", true).value_or("GET");
        if (out.method.empty()) {
            out.method = "GET";
        }
        out.body = get_string(def, "Body", true).value_or("");
        if (const Json* h = field(def, "Header", true); h != nullptr && h->is_object()) {
            out.header = *h;
        }
    } else if (tcp && !tcp->empty()) {
        out.type = CheckType::Tcp;
        out.tcp_addr = *tcp;
    } else if (ttl && *ttl > Nanos{0}) {
        out.type = CheckType::Ttl;
        out.ttl = *ttl;
    } else {
        return std::string("TTL must be > 0 for TTL checks, or HTTP/TCP with Interval must be set");
    }
    if (out.type == CheckType::Http || out.type == CheckType::Tcp) {
        if (!interval || *interval <= Nanos{0}) {
            return std::string("Interval must be > 0 for Script, HTTP, or TCP checks");
        }
        out.interval = std::max<Nanos>(*interval, 1s);
    }
    auto status = get_string(def, "Status", true).value_or("");
    if (status.empty()) {
        status = "critical";
    }
    if (status != "passing" && status != "warning" && status != "critical") {
        return "Status for checks must 'passing', 'warning', 'critical' (got '" + status + "')";
    }
    out.status = status;
    return std::nullopt;
}

Reply ConsulTestServer::agent_service_register(Ctx& ctx) {
    Json body = Json::parse(ctx.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
        return error(400, "Request decode failed: body must be a JSON object");
    }
    Service svc;
    std::vector<Check> new_checks;
    try {
        svc.name = get_string(body, "Name", true).value_or("");
        if (svc.name.empty()) {
            return error(400, "Missing service name");
        }
        svc.id = get_string(body, "ID", true).value_or("");
        if (svc.id.empty()) {
            svc.id = svc.name;
        }
        svc.tags = get_string_list(body, "Tags", true).value_or(std::vector<std::string>{});
        svc.address = get_string(body, "Address", true).value_or("");
        if (svc.address == "0.0.0.0" || svc.address == "::" || svc.address == "[::]") {
            return error(400, "Invalid service address");
        }
        if (const Json* port = field(body, "Port", true); port != nullptr && !port->is_null()) {
            if (!port->is_number_integer()) {
                type_error(*port, "Port", "int");
            }
            svc.port = port->get<int>();
        }
        if (const Json* meta = field(body, "Meta", true); meta != nullptr && !meta->is_null()) {
            if (!meta->is_object()) {
                type_error(*meta, "Meta", "map[string]string");
            }
            svc.meta = *meta;
        }
        if (const Json* eto = field(body, "EnableTagOverride", true);
            eto != nullptr && !eto->is_null()) {
            if (!eto->is_boolean()) {
                type_error(*eto, "EnableTagOverride", "bool");
            }
            svc.enable_tag_override = eto->get<bool>();
        }
        std::vector<Json> defs;
        if (const Json* c = field(body, "Check", true); c != nullptr && !c->is_null()) {
            defs.push_back(*c);
        }
        if (const Json* cs = field(body, "Checks", true); cs != nullptr && !cs->is_null()) {
            if (!cs->is_array()) {
                type_error(*cs, "Checks", "[]structs.CheckType");
            }
            for (const auto& c : *cs) {
                defs.push_back(c);
            }
        }
        for (std::size_t i = 0; i < defs.size(); ++i) {
            Check c;
            c.service_id = svc.id;
            if (auto err = parse_check(defs[i], c)) {
                return error(400, "Invalid check: " + *err);
            }
            c.service_id = svc.id;
            if (c.id.empty()) {
                c.id = defs.size() == 1 ? "service:" + svc.id
                                        : "service:" + svc.id + ":" + std::to_string(i + 1);
            }
            if (c.name.empty()) {
                c.name = "Service '" + svc.name + "' check";
            }
            new_checks.push_back(std::move(c));
        }
    } catch (const DecodeError& e) {
        return error(400, "Request decode failed: " + e.message);
    }
    if (!acl_allows(ctx, "service", svc.name, true)) {
        return permission_denied(ctx, "service", svc.name, true, false);
    }
    const auto idx = next_index();
    if (auto old = services_.find(svc.id); old != services_.end()) {
        svc.create_index = old->second.create_index;
    } else {
        svc.create_index = idx;
    }
    svc.modify_index = idx;
    if (ctx.query.has("replace-existing-checks")) {
        std::vector<std::string> stale;
        for (const auto& [cid, c] : checks_) {
            bool kept = std::any_of(
                new_checks.begin(), new_checks.end(), [&](const Check& n) { return n.id == cid; });
            if (c.service_id == svc.id && !kept) {
                stale.push_back(cid);
            }
        }
        for (const auto& cid : stale) {
            remove_check(cid, idx);
        }
    }
    services_[svc.id] = svc;
    catalog_index_ = idx;
    for (auto& c : new_checks) {
        install_check(std::move(c));
    }
    notify();
    return empty_reply(200);
}

Reply ConsulTestServer::agent_check_register(Ctx& ctx) {
    Json body = Json::parse(ctx.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
        return error(400, "Request decode failed: body must be a JSON object");
    }
    Check c;
    try {
        if (auto err = parse_check(body, c)) {
            return error(400, "Invalid check: " + *err);
        }
    } catch (const DecodeError& e) {
        return error(400, "Request decode failed: " + e.message);
    }
    if (c.name.empty()) {
        return error(400, "Missing check name");
    }
    if (c.id.empty()) {
        c.id = c.name;
    }
    if (!c.service_id.empty()) {
        auto svc = services_.find(c.service_id);
        if (svc == services_.end()) {
            return error(400, "ServiceID \"" + c.service_id + "\" does not exist");
        }
        if (!acl_allows(ctx, "service", svc->second.name, true)) {
            return permission_denied(ctx, "service", svc->second.name, true, false);
        }
    } else if (!acl_allows(ctx, "node", opts_.node_name, true)) {
        return permission_denied(ctx, "node", opts_.node_name, true, false);
    }
    next_index();
    install_check(std::move(c));
    notify();
    return empty_reply(200);
}

void ConsulTestServer::install_check(Check check) {
    const auto idx = raft_index_;
    if (auto old = checks_.find(check.id); old != checks_.end()) {
        if (old->second.task) {
            old->second.task->stopped = true;
            old->second.task->timer.cancel();
        }
        check.create_index = old->second.create_index;
    } else {
        check.create_index = idx;
    }
    check.modify_index = idx;
    catalog_index_ = idx;
    const auto now = Clock::now();
    if (check.status == "critical") {
        check.critical_since = now;
    }
    if (check.type == CheckType::Ttl) {
        check.ttl_deadline = now + check.ttl;
    }
    if (check.type == CheckType::Http || check.type == CheckType::Tcp) {
        check.task = std::make_shared<CheckTask>(ioc_);
    }
    const std::string id = check.id;
    auto task = check.task;
    const bool critical = check.status == "critical";
    checks_[id] = std::move(check);
    if (task) {
        net::co_spawn(ioc_, run_check(this, id, task), abort_on_exception);
    }
    if (critical) {
        invalidate_sessions_using_check(id);
    }
}

void ConsulTestServer::remove_check(const std::string& id, std::uint64_t index) {
    auto it = checks_.find(id);
    if (it == checks_.end()) {
        return;
    }
    if (it->second.task) {
        it->second.task->stopped = true;
        it->second.task->timer.cancel();
    }
    checks_.erase(it);
    catalog_index_ = index;
    invalidate_sessions_using_check(id);
    notify();
}

void ConsulTestServer::remove_service(const std::string& id, std::uint64_t index) {
    std::vector<std::string> owned;
    for (const auto& [cid, c] : checks_) {
        if (c.service_id == id) {
            owned.push_back(cid);
        }
    }
    for (const auto& cid : owned) {
        remove_check(cid, index);
    }
    services_.erase(id);
    catalog_index_ = std::max(catalog_index_, index);
    notify();
}

void ConsulTestServer::set_check_status(const std::string& id,
                                        const std::string& status,
                                        std::string output) {
    auto it = checks_.find(id);
    if (it == checks_.end()) {
        return;
    }
    Check& c = it->second;
    c.output = std::move(output);
    if (c.status == status) {
        return;
    }
    c.status = status;
    const auto idx = next_index();
    c.modify_index = idx;
    catalog_index_ = idx;
    if (status == "critical") {
        c.critical_since = Clock::now();
    } else {
        c.critical_since.reset();
    }
    notify();
    if (status == "critical") {
        invalidate_sessions_using_check(id);
    }
}

// ------------------------------------------------------------------------------------------
// Check execution

net::awaitable<void> ConsulTestServer::run_check(ConsulTestServer* self,
                                                 std::string check_id,
                                                 std::shared_ptr<CheckTask> task) {
    Nanos interval{1s};
    if (auto it = self->checks_.find(check_id); it != self->checks_.end()) {
        interval = it->second.interval;
    }
    std::uniform_int_distribution<std::int64_t> stagger(0, interval.count() - 1);
    task->timer.expires_after(Nanos{stagger(self->rng_)});
    auto [ec0] = co_await task->timer.async_wait(kTuple);
    (void)ec0;
    for (;;) {
        if (task->stopped) {
            co_return;
        }
        auto it = self->checks_.find(check_id);
        if (it == self->checks_.end() || it->second.task != task) {
            co_return;
        }
        const Check c = it->second;
        std::pair<std::string, std::string> result;
        if (c.type == CheckType::Http) {
            result = co_await probe_http(self, c.http_url, c.method, c.header, c.body, c.timeout);
        } else {
            result = co_await probe_tcp(self, c.tcp_addr, c.timeout);
        }
        if (task->stopped) {
            co_return;
        }
        self->set_check_status(check_id, result.first, result.second);
        task->timer.expires_after(c.interval);
        auto [ec] = co_await task->timer.async_wait(kTuple);
        (void)ec;
    }
}

namespace {

// Splits "host:port" / "[v6]:port"; returns false on garbage.
bool split_host_port(const std::string& hp,
                     const std::string& default_port,
                     std::string& host,
                     std::string& port) {
    if (hp.empty()) {
        return false;
    }
    if (hp.front() == '[') {
        auto close = hp.find(']');
        if (close == std::string::npos) {
            return false;
        }
        host = hp.substr(1, close - 1);
        port = close + 1 < hp.size() && hp[close + 1] == ':' ? hp.substr(close + 2) : default_port;
        return !port.empty();
    }
    auto colon = hp.rfind(':');
    if (colon == std::string::npos) {
        host = hp;
        port = default_port;
    } else {
        host = hp.substr(0, colon);
        port = hp.substr(colon + 1);
    }
    return !host.empty() && !port.empty();
}

}  // namespace

net::awaitable<std::pair<std::string, std::string>> ConsulTestServer::probe_http(
    ConsulTestServer* self,
    std::string url,
    std::string method,
    Json header,
    std::string body,
    Nanos timeout) {
    if (starts_with(url, "https://")) {
        co_return std::pair<std::string, std::string>{
            "critical", "Get \"" + url + "\": https checks are not supported by the test server"};
    }
    if (!starts_with(url, "http://")) {
        co_return std::pair<std::string, std::string>{"critical",
                                                      "unsupported check URL \"" + url + "\""};
    }
    const std::string rest = url.substr(7);
    const auto slash = rest.find('/');
    const std::string host_port = rest.substr(0, slash);
    const std::string target = slash == std::string::npos ? "/" : rest.substr(slash);
    std::string host;
    std::string port;
    if (!split_host_port(host_port, "80", host, port)) {
        co_return std::pair<std::string, std::string>{"critical",
                                                      "invalid check URL \"" + url + "\""};
    }
    const std::string what = method + " " + url;
    tcp::resolver resolver(self->ioc_);
    auto [rec, results] = co_await resolver.async_resolve(host, port, kTuple);
    if (rec) {
        co_return std::pair<std::string, std::string>{"critical", what + ": " + rec.message()};
    }
    beast::tcp_stream stream(self->ioc_);
    stream.expires_after(timeout);
    auto [cec, ep] = co_await stream.async_connect(results, kTuple);
    (void)ep;
    if (cec) {
        co_return std::pair<std::string, std::string>{"critical", what + ": " + cec.message()};
    }
    http::request<http::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(http::field::host, host_port);
    req.set(http::field::user_agent, "Consul Health Check");
    req.set(http::field::accept, "text/plain, text/*, */*");
    if (header.is_object()) {
        for (auto it = header.begin(); it != header.end(); ++it) {
            if (it.value().is_array()) {
                for (const auto& v : it.value()) {
                    if (v.is_string()) {
                        req.insert(it.key(), v.get<std::string>());
                    }
                }
            } else if (it.value().is_string()) {
                req.set(it.key(), it.value().get<std::string>());
            }
        }
    }
    req.body() = body;
    req.keep_alive(false);
    req.prepare_payload();
    auto [wec, wn] = co_await http::async_write(stream, req, kTuple);
    (void)wn;
    if (wec) {
        co_return std::pair<std::string, std::string>{"critical", what + ": " + wec.message()};
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024);
    auto [rdec, rn] = co_await http::async_read(stream, buffer, parser, kTuple);
    (void)rn;
    if (rdec) {
        std::string msg =
            rdec == beast::error::timeout ? "context deadline exceeded (timeout)" : rdec.message();
        co_return std::pair<std::string, std::string>{"critical", what + ": " + msg};
    }
    const auto& res = parser.get();
    const unsigned code = res.result_int();
    std::string out_body = res.body().substr(0, 4096);
    std::string output = "HTTP " + what + ": " + std::to_string(code) + " " +
                         std::string(res.reason()) + " Output: " + out_body;
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    if (code >= 200 && code < 300) {
        co_return std::pair<std::string, std::string>{"passing", output};
    }
    if (code == 429) {
        co_return std::pair<std::string, std::string>{"warning", output};
    }
    co_return std::pair<std::string, std::string>{"critical", output};
}

net::awaitable<std::pair<std::string, std::string>> ConsulTestServer::probe_tcp(
    ConsulTestServer* self, std::string addr, Nanos timeout) {
    std::string host;
    std::string port;
    if (!split_host_port(addr, "", host, port)) {
        co_return std::pair<std::string, std::string>{"critical", "invalid TCP address " + addr};
    }
    tcp::resolver resolver(self->ioc_);
    auto [rec, results] = co_await resolver.async_resolve(host, port, kTuple);
    if (rec) {
        co_return std::pair<std::string, std::string>{"critical",
                                                      "dial tcp " + addr + ": " + rec.message()};
    }
    beast::tcp_stream stream(self->ioc_);
    stream.expires_after(timeout);
    auto [cec, ep] = co_await stream.async_connect(results, kTuple);
    (void)ep;
    if (cec) {
        co_return std::pair<std::string, std::string>{"critical",
                                                      "dial tcp " + addr + ": " + cec.message()};
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    co_return std::pair<std::string, std::string>{"passing", "TCP connect " + addr + ": Success"};
}

// ------------------------------------------------------------------------------------------
// Test control endpoints (NOT part of Consul): /_test/...

Reply ConsulTestServer::handle_test_control(Ctx& ctx) {
    const std::string rest = ctx.path.substr(std::string("/_test/").size());
    if (starts_with(rest, "status/")) {
        auto code = parse_uint64(rest.substr(7));
        if (!code || *code < 100 || *code > 599) {
            return error(400, "bad status code");
        }
        return Reply{static_cast<unsigned>(*code),
                     "status " + std::to_string(*code),
                     "text/plain; charset=utf-8",
                     {}};
    }
    if (ctx.method != "PUT" && ctx.method != "DELETE") {
        Reply r = error(405, "method " + ctx.method + " not allowed");
        r.headers.emplace_back("Allow", "PUT, DELETE");
        return r;
    }
    if (rest == "fault") {
        const std::string mode = ctx.query.get("mode").value_or("");
        if (mode == "no-leader") {
            if (fault_ != Fault::NoLeader) {
                fault_since_ = Clock::now();
            }
            fault_ = Fault::NoLeader;
        } else if (mode == "none") {
            fault_ = Fault::None;
        } else if (mode == "index-reset") {
            std::uint64_t to = 3;
            if (auto t = ctx.query.get("to")) {
                auto v = parse_uint64(*t);
                if (!v || *v < 2) {
                    return error(400, "index-reset: 'to' must be an integer >= 2");
                }
                to = *v;
            }
            if (to >= raft_index_) {
                return error(400,
                             "index-reset: 'to' must be below the current index " +
                                 std::to_string(raft_index_));
            }
            reset_index(to);
        } else {
            return error(400, "unknown fault mode '" + mode + "' (no-leader|index-reset|none)");
        }
        return bool_reply(true);
    }
    if (starts_with(rest, "check-status/")) {
        const std::string id = rest.substr(std::string("check-status/").size());
        const std::string status = ctx.query.get("status").value_or("");
        if (status != "passing" && status != "warning" && status != "critical") {
            return error(400, "status must be passing|warning|critical");
        }
        if (checks_.count(id) == 0) {
            return error(404, "unknown check " + id);
        }
        set_check_status(id, status, ctx.query.get("output").value_or("set by /_test"));
        return bool_reply(true);
    }
    if (rest == "acl/token" && ctx.method == "PUT") {
        Json body = Json::parse(ctx.body, nullptr, false);
        if (body.is_discarded() || !body.is_object()) {
            return error(400, "body must be a JSON object");
        }
        AclToken t;
        t.secret = body.value("SecretID", std::string());
        if (t.secret.empty()) {
            t.secret = new_uuid();
        }
        t.accessor = body.value("AccessorID", std::string());
        if (t.accessor.empty()) {
            t.accessor = new_uuid();
        }
        t.management = body.value("Management", false);
        if (auto rules = body.find("Rules"); rules != body.end() && rules->is_object()) {
            for (auto kind = rules->begin(); kind != rules->end(); ++kind) {
                std::string k = kind.key();
                if (auto pos = k.find("_prefix"); pos != std::string::npos) {
                    k = k.substr(0, pos);
                }
                if (!kind.value().is_object()) {
                    return error(400, "rules must map prefix to read|write|deny");
                }
                for (auto p = kind.value().begin(); p != kind.value().end(); ++p) {
                    if (!p.value().is_string()) {
                        return error(400, "policy must be a string");
                    }
                    t.rules[k][p.key()] = p.value().get<std::string>();
                }
            }
        }
        tokens_[t.secret] = t;
        OJson out;
        out["AccessorID"] = t.accessor;
        out["SecretID"] = t.secret;
        return json_reply(out, ctx);
    }
    if (starts_with(rest, "acl/token/") && ctx.method == "DELETE") {
        tokens_.erase(rest.substr(std::string("acl/token/").size()));
        return bool_reply(true);
    }
    return error(404, "unknown test control endpoint");
}

}  // namespace pgwarden::consul_test
