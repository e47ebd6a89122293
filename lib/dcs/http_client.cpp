#include "dcs/http_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <map>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <optional>
#include <sys/socket.h>
#include <variant>

namespace pgwarden::dcs {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kMaxIdleConnections = 4;
constexpr std::size_t kMaxBodyBytes = 64 * 1024 * 1024;
constexpr std::size_t kStreamChunk = 8192;

constexpr auto kTuple = net::as_tuple(net::use_awaitable);

// Plain (`plain`) or TLS (`tls`, over its own tcp_stream); tcp() is the TCP layer of either.
struct Connection {
    Connection(const net::any_io_executor& executor, ssl::context* tls_context) {
        if (tls_context != nullptr) {
            tls.emplace(executor, *tls_context);
        } else {
            plain.emplace(executor);
        }
    }
    beast::tcp_stream& tcp() { return tls ? tls->next_layer() : *plain; }

    std::optional<beast::tcp_stream> plain;
    std::optional<ssl::stream<beast::tcp_stream>> tls;
    beast::flat_buffer buffer;
    bool cancelled = false;
};

// Runs `op` (a generic lambda starting one async operation) on the connection's top layer.
template <class Op>
auto on_stream(Connection& c, Op op) -> decltype(op(*c.plain)) {
    if (c.tls) {
        return op(*c.tls);
    }
    return op(*c.plain);
}

using ConnectionPtr = std::shared_ptr<Connection>;

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

Errc map_error(const beast::error_code& ec, bool cancelled) {
    if (cancelled || ec == net::error::operation_aborted) {
        return Errc::Cancelled;
    }
    if (ec == beast::error::timeout || ec == net::error::timed_out) {
        return Errc::Timeout;
    }
    if (ec.category() == http::make_error_code(http::error::end_of_stream).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
        return Errc::Protocol;
    }
    return Errc::Unavailable;
}

// A peer that closed an idle keep-alive connection shows up as one of these on the next use.
bool is_stale_connection_error(const beast::error_code& ec) {
    return ec == http::error::end_of_stream || ec == net::error::eof ||
           ec == net::error::connection_reset || ec == net::error::broken_pipe ||
           ec == http::error::partial_message || ec == ssl::error::stream_truncated;
}

// A peer that vanished without FIN/RST (partition, dead host, half-open TCP) is noticed on an
// idle connection, a watch stream's included, after kKeepIdle + kKeepCount x kKeepInterval = 5 s,
// and a connection with unacknowledged data after kUserTimeout: well below any ttl, so the
// watch-fed cache and wake-ups do not silently stop (F18).
constexpr int kKeepIdleS = 2;
constexpr int kKeepIntervalS = 1;
constexpr int kKeepCount = 3;
constexpr unsigned kUserTimeoutMs = 5000;

void set_keepalive(tcp::socket& socket) {
    beast::error_code ec;
    socket.set_option(net::socket_base::keep_alive(true), ec);
    const int fd = socket.native_handle();
    bool ok = !ec;
    ok = ok && ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &kKeepIdleS, sizeof kKeepIdleS) == 0;
    ok = ok &&
         ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &kKeepIntervalS, sizeof kKeepIntervalS) == 0;
    ok = ok && ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &kKeepCount, sizeof kKeepCount) == 0;
    ok = ok && ::setsockopt(
                   fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &kUserTimeoutMs, sizeof kUserTimeoutMs) == 0;
    if (!ok) {
        spdlog::warn("cannot set TCP keepalive on a DCS connection: {}",
                     ec ? ec.message() : std::string(std::strerror(errno)));
    }
}

bool is_ip_address(const std::string& host) {
    beast::error_code ec;
    net::ip::make_address(host, ec);
    return !ec;
}

}  // namespace

struct HttpClient::Impl {
    Impl(net::any_io_executor ex, std::string h, unsigned short p)
        : executor(std::move(ex)), host(std::move(h)), port(p) {}

    // The TLS context for TlsOptions; on a bad option `tls_broken` is set and logged.
    void setup_tls(TlsOptions options);
    ssl::context* tls_context() { return tls_context_.get(); }
    ConnectionPtr new_connection() { return std::make_shared<Connection>(executor, tls_context()); }

    net::any_io_executor executor;
    std::string host;
    unsigned short port;
    TlsOptions tls;
    bool tls_broken = false;
    std::string last_tls_error;  // the last handshake failure logged (rate limiting)
    std::unique_ptr<ssl::context> tls_context_;
    std::vector<ConnectionPtr> idle;
    std::uint64_t next_id = 0;
    std::map<std::uint64_t, std::weak_ptr<Connection>> active;   // requests in flight
    std::map<std::uint64_t, std::weak_ptr<Connection>> streams;  // streams in flight
};

void HttpClient::Impl::setup_tls(TlsOptions options) {
    tls = std::move(options);
    if (tls.server_name.empty()) {
        tls.server_name = host;
    }
    tls_context_ = std::make_unique<ssl::context>(ssl::context::tls_client);
    auto& ctx = *tls_context_;
    const auto fail = [&](const char* what, const std::string& file, const beast::error_code& err) {
        spdlog::error("https://{}:{}: cannot load {} {}: {}; requests will fail",
                      host,
                      port,
                      what,
                      file,
                      err.message());
        tls_broken = true;
    };
    beast::error_code ec;
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                    ec);
    if (tls.verify) {
        ctx.set_verify_mode(ssl::verify_peer, ec);
        if (!tls.cacert.empty()) {
            ctx.load_verify_file(tls.cacert, ec);
            if (ec) {
                fail("cacert", tls.cacert, ec);
            }
        } else {
            ctx.set_default_verify_paths(ec);
            if (ec) {
                fail("the default CA paths", "", ec);
            }
        }
    } else {
        ctx.set_verify_mode(ssl::verify_none, ec);
    }
    if (!tls.cert.empty()) {
        ctx.use_certificate_chain_file(tls.cert, ec);
        if (ec) {
            fail("cert", tls.cert, ec);
        }
    }
    if (!tls.key.empty()) {
        ctx.use_private_key_file(tls.key, ssl::context::pem, ec);
        if (ec) {
            fail("key", tls.key, ec);
        }
    }
}

namespace {

using Impl = HttpClient::Impl;
using ImplPtr = std::shared_ptr<Impl>;

void close_connection(Connection& c) {
    c.cancelled = true;
    beast::error_code ignored;
    c.tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    c.tcp().close();
}

// Registers a connection in `map` for the lifetime of the guard (so cancel() can reach it).
class Registration {
public:
    Registration(ImplPtr impl,
                 std::map<std::uint64_t, std::weak_ptr<Connection>> Impl::*map,
                 const ConnectionPtr& conn)
        : impl_(std::move(impl)), map_(map), id_(impl_->next_id++) {
        ((*impl_).*map_)[id_] = conn;
    }
    ~Registration() { ((*impl_).*map_).erase(id_); }
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;

private:
    ImplPtr impl_;
    std::map<std::uint64_t, std::weak_ptr<Connection>> Impl::*map_;
    std::uint64_t id_;
};

net::awaitable<Result<void>> connect(ImplPtr impl, ConnectionPtr conn, Clock::time_point deadline) {
    using namespace net::experimental::awaitable_operators;
    beast::error_code addr_ec;
    auto address = net::ip::make_address(impl->host, addr_ec);
    tcp::resolver::results_type endpoints;
    if (!addr_ec) {
        endpoints = tcp::resolver::results_type::create(
            tcp::endpoint(address, impl->port), impl->host, std::to_string(impl->port));
    } else {
        tcp::resolver resolver(impl->executor);
        net::steady_timer timer(impl->executor, deadline);
        auto result =
            co_await (resolver.async_resolve(impl->host, std::to_string(impl->port), kTuple) ||
                      timer.async_wait(kTuple));
        if (result.index() == 1) {
            co_return Errc::Timeout;
        }
        auto [ec, found] = std::get<0>(std::move(result));
        if (ec || found.empty()) {
            co_return Errc::Unavailable;
        }
        endpoints = std::move(found);
    }
    if (conn->cancelled) {
        co_return Errc::Cancelled;
    }
    conn->tcp().expires_at(deadline);
    auto [ec, endpoint] = co_await conn->tcp().async_connect(endpoints, kTuple);
    (void)endpoint;
    if (ec) {
        co_return map_error(ec, conn->cancelled);
    }
    beast::error_code ignored;
    conn->tcp().socket().set_option(tcp::no_delay(true), ignored);
    set_keepalive(conn->tcp().socket());
    if (!conn->tls) {
        co_return Result<void>{};
    }
    // TLS: SNI (host names only, RFC 6066) and, with verify, the certificate's name check.
    auto& tls = *conn->tls;
    const auto& name = impl->tls.server_name;
    if (!is_ip_address(name) && SSL_set_tlsext_host_name(tls.native_handle(), name.c_str()) != 1) {
        spdlog::warn("https://{}:{}: cannot set SNI {}", impl->host, impl->port, name);
    }
    if (impl->tls.verify) {
        tls.set_verify_callback(ssl::host_name_verification(name), ignored);
    }
    auto [hec] = co_await tls.async_handshake(ssl::stream_base::client, kTuple);
    if (hec) {
        const Errc mapped = map_error(hec, conn->cancelled);
        if (mapped == Errc::Cancelled || mapped == Errc::Timeout) {
            co_return mapped;
        }
        std::string reason = hec.message();
        const long verify = SSL_get_verify_result(tls.native_handle());
        if (verify != X509_V_OK) {
            reason += std::string(" (certificate verification: ") +
                      X509_verify_cert_error_string(verify) + ")";
        }
        // Logged once per reason (callers retry); repeats at debug level.
        if (reason != impl->last_tls_error) {
            spdlog::error(
                "https://{}:{}: TLS handshake failed: {}", impl->host, impl->port, reason);
            impl->last_tls_error = reason;
        } else {
            spdlog::debug(
                "https://{}:{}: TLS handshake failed: {}", impl->host, impl->port, reason);
        }
        co_return Errc::Unavailable;
    }
    impl->last_tls_error.clear();
    co_return Result<void>{};
}

http::request<http::string_body> make_request(const Impl& impl,
                                              const std::string& method,
                                              const std::string& target,
                                              std::string body,
                                              const HttpHeaders& headers) {
    http::request<http::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(http::field::host, impl.host + ":" + std::to_string(impl.port));
    req.set(http::field::user_agent, "pgwarden");
    for (const auto& [name, value] : headers) {
        req.set(name, value);
    }
    req.body() = std::move(body);
    req.keep_alive(true);
    req.prepare_payload();
    return req;
}

net::awaitable<Result<HttpResponse>> do_request(ImplPtr impl,
                                                std::string method,
                                                std::string target,
                                                std::string body,
                                                HttpHeaders headers,
                                                std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    if (impl->tls_broken) {
        co_return Errc::Unavailable;
    }
    auto req = make_request(*impl, method, target, std::move(body), headers);

    for (int attempt = 0; attempt < 2; ++attempt) {
        ConnectionPtr conn;
        bool reused = false;
        if (!impl->idle.empty()) {
            conn = std::move(impl->idle.back());
            impl->idle.pop_back();
            reused = true;
        } else {
            conn = impl->new_connection();
        }
        Registration registration(impl, &Impl::active, conn);
        if (!reused) {
            auto connected = co_await connect(impl, conn, deadline);
            if (!connected) {
                co_return connected.error();
            }
        }
        conn->tcp().expires_at(deadline);
        auto [wec, written] = co_await on_stream(
            *conn, [&](auto& stream) { return http::async_write(stream, req, kTuple); });
        (void)written;
        if (wec) {
            if (reused && !conn->cancelled && is_stale_connection_error(wec)) {
                continue;
            }
            co_return map_error(wec, conn->cancelled);
        }
        http::response_parser<http::string_body> parser;
        parser.body_limit(kMaxBodyBytes);
        auto [rec, read] = co_await on_stream(*conn, [&](auto& stream) {
            return http::async_read(stream, conn->buffer, parser, kTuple);
        });
        if (rec) {
            if (reused && read == 0 && !conn->cancelled && is_stale_connection_error(rec)) {
                continue;
            }
            co_return map_error(rec, conn->cancelled);
        }
        auto& msg = parser.get();
        HttpResponse out;
        out.status = msg.result_int();
        out.body = std::move(msg.body());
        for (const auto& field : msg) {
            out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
        }
        if (msg.keep_alive() && !conn->cancelled && impl->idle.size() < kMaxIdleConnections) {
            conn->tcp().expires_never();
            impl->idle.push_back(std::move(conn));
        }
        co_return out;
    }
    co_return Errc::Unavailable;
}

// Splits `pending` into complete lines; returns false when the handler asked to stop.
bool deliver_lines(std::string& pending, const HttpClient::LineHandler& on_line) {
    std::size_t start = 0;
    bool keep_going = true;
    while (keep_going) {
        auto nl = pending.find('\n', start);
        if (nl == std::string::npos) {
            break;
        }
        std::string_view line(pending.data() + start, nl - start);
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        if (!line.empty()) {
            keep_going = on_line(line);
        }
        start = nl + 1;
    }
    pending.erase(0, start);
    return keep_going;
}

net::awaitable<Result<unsigned>> do_stream(ImplPtr impl,
                                           std::string method,
                                           std::string target,
                                           std::string body,
                                           HttpHeaders headers,
                                           HttpClient::LineHandler on_line,
                                           std::chrono::milliseconds connect_timeout) {
    const auto deadline = Clock::now() + connect_timeout;
    if (impl->tls_broken) {
        co_return Errc::Unavailable;
    }
    auto conn = impl->new_connection();
    Registration registration(impl, &Impl::streams, conn);
    auto connected = co_await connect(impl, conn, deadline);
    if (!connected) {
        co_return connected.error();
    }
    auto req = make_request(*impl, method, target, std::move(body), headers);
    conn->tcp().expires_at(deadline);
    auto [wec, written] = co_await on_stream(
        *conn, [&](auto& stream) { return http::async_write(stream, req, kTuple); });
    (void)written;
    if (wec) {
        co_return map_error(wec, conn->cancelled);
    }
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    auto [hec, header_bytes] = co_await on_stream(*conn, [&](auto& stream) {
        return http::async_read_header(stream, conn->buffer, parser, kTuple);
    });
    (void)header_bytes;
    if (hec) {
        co_return map_error(hec, conn->cancelled);
    }
    conn->tcp().expires_never();
    const unsigned status = parser.get().result_int();

    std::string chunk(kStreamChunk, '\0');
    std::string pending;
    while (!parser.is_done()) {
        parser.get().body().data = chunk.data();
        parser.get().body().size = chunk.size();
        auto [ec, n] = co_await on_stream(*conn, [&](auto& stream) {
            return http::async_read_some(stream, conn->buffer, parser, kTuple);
        });
        (void)n;
        if (ec == http::error::need_buffer) {
            ec = {};
        }
        if (ec) {
            co_return map_error(ec, conn->cancelled);
        }
        const std::size_t got = chunk.size() - parser.get().body().size;
        pending.append(chunk.data(), got);
        if (!deliver_lines(pending, on_line)) {
            close_connection(*conn);
            co_return status;
        }
    }
    if (!pending.empty()) {
        pending.push_back('\n');
        deliver_lines(pending, on_line);
    }
    co_return status;
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
        if (iequals(n, name)) {
            return v;
        }
    }
    return {};
}

HttpClient::HttpClient(net::any_io_executor executor, std::string host, unsigned short port)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(host), port)) {}

HttpClient::HttpClient(net::any_io_executor executor,
                       std::string host,
                       unsigned short port,
                       TlsOptions tls)
    : HttpClient(std::move(executor), std::move(host), port) {
    if (tls.enabled) {
        impl_->setup_tls(std::move(tls));
    }
}

HttpClient::~HttpClient() {
    cancel();
}

const std::string& HttpClient::host() const {
    return impl_->host;
}
unsigned short HttpClient::port() const {
    return impl_->port;
}

net::awaitable<Result<HttpResponse>> HttpClient::request(std::string method,
                                                         std::string target,
                                                         std::string body,
                                                         HttpHeaders headers,
                                                         std::chrono::milliseconds timeout) {
    return do_request(
        impl_, std::move(method), std::move(target), std::move(body), std::move(headers), timeout);
}

net::awaitable<Result<unsigned>> HttpClient::stream(std::string method,
                                                    std::string target,
                                                    std::string body,
                                                    HttpHeaders headers,
                                                    LineHandler on_line,
                                                    std::chrono::milliseconds connect_timeout) {
    return do_stream(impl_,
                     std::move(method),
                     std::move(target),
                     std::move(body),
                     std::move(headers),
                     std::move(on_line),
                     connect_timeout);
}

void HttpClient::cancel_streams() {
    // Copy first: closing completes nothing synchronously, but keep iteration independent.
    std::vector<ConnectionPtr> conns;
    for (auto& [id, weak] : impl_->streams) {
        if (auto c = weak.lock()) {
            conns.push_back(std::move(c));
        }
    }
    for (auto& c : conns) {
        close_connection(*c);
    }
}

void HttpClient::cancel() {
    cancel_streams();
    std::vector<ConnectionPtr> conns;
    for (auto& [id, weak] : impl_->active) {
        if (auto c = weak.lock()) {
            conns.push_back(std::move(c));
        }
    }
    for (auto& c : conns) {
        close_connection(*c);
    }
    for (auto& c : impl_->idle) {
        close_connection(*c);
    }
    impl_->idle.clear();
}

}  // namespace pgwarden::dcs
