#include "runtime/rest/server.hpp"

#include "asio/spawn.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <exception>
#include <list>
#include <map>
#include <sys/resource.h>
#include <utility>

namespace pgwarden::rest {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

using HttpRequest = http::request<http::string_body>;
using HttpResponse = http::response<http::string_body>;
using Options = Server::Options;
using StatusSource = Server::StatusSource;
using Clock = Server::Clock;

struct detail::ServerImpl {
    ServerImpl(net::any_io_executor executor, Options options, StatusSource src, Clock clk)
        : ex(std::move(executor)),
          opts(std::move(options)),
          source(std::move(src)),
          clock(std::move(clk)),
          acceptor(ex) {}

    // `fresh`: a status to answer from instead of source() (GET /patroni), may be null.
    HttpResponse respond(const HttpRequest& req,
                         const std::string& peer,
                         std::shared_ptr<const core::NodeStatus> fresh = nullptr);

    net::any_io_executor ex;
    Options opts;
    StatusSource source;
    Clock clock;
    ApiActions* actions = nullptr;  // set_actions(); null: unsafe endpoints answer 503
    std::shared_ptr<bool> stop_flag = std::make_shared<bool>(false);  // seen by handle_unsafe
    tcp::acceptor acceptor;
    std::list<beast::tcp_stream*> sessions;     // open connections, closed by stop()
    std::map<std::string, std::size_t> per_ip;  // open connections by client IP
    std::size_t open = 0;  // accepted and not yet ended (sessions may not have started yet)
    std::size_t max_connections = 0;  // the total cap in force (set by start())
    unsigned short port = 0;
    bool stopped = false;
    std::uint64_t rejected = 0;  // connections refused at the cap (logged on powers of two)

    void close_all() {
        stopped = true;
        *stop_flag = true;
        boost::system::error_code ec;
        acceptor.close(ec);
        for (beast::tcp_stream* s : sessions) {
            s->socket().shutdown(tcp::socket::shutdown_both, ec);
            s->socket().close(ec);  // pending reads/writes complete with operation_aborted
        }
    }
};

namespace {

bool is_power_of_two(std::uint64_t n) {
    return n != 0 && (n & (n - 1)) == 0;
}

// Completion handler for every spawned coroutine: an escaping exception is a bug, logged loudly
// (never asio::detached, which would swallow it).
std::string peer_address(const tcp::socket& socket) {
    boost::system::error_code ec;
    const auto ep = socket.remote_endpoint(ec);
    if (ec) {
        return {};
    }
    auto addr = ep.address();
    if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
        addr = net::ip::make_address_v4(net::ip::v4_mapped, addr.to_v6());
    }
    return addr.to_string();
}

// A response the transport makes up itself (bad request, limits): plain text, then close.
HttpResponse transport_error(http::status status, unsigned version, std::string text) {
    HttpResponse res{status, version};
    res.set(http::field::content_type, "text/html");
    res.body() = std::move(text);
    res.keep_alive(false);
    res.prepare_payload();
    return res;
}

std::optional<http::status> read_error_status(const boost::system::error_code& ec) {
    if (ec == http::error::header_limit) {
        return http::status::request_header_fields_too_large;
    }
    if (ec == http::error::body_limit) {
        return http::status::payload_too_large;
    }
    if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message &&
        ec != http::error::need_more) {
        return http::status::bad_request;
    }
    return std::nullopt;  // I/O error, timeout or a clean close: just close
}

Request to_request(const HttpRequest& req, const std::string& peer) {
    Request r;
    r.method = std::string(req.method_string());
    r.target = std::string(req.target());
    for (const auto& field : req) {
        std::string name(field.name_string());
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) {
            return static_cast<char>(std::tolower(c));
        });
        r.headers.emplace(std::move(name), std::string(field.value()));  // first one wins
    }
    r.body = req.body();
    r.has_content_length = req.find(http::field::content_length) != req.end();
    r.peer_address = peer;
    return r;
}

bool is_safe_method(const std::string& method) {
    return method == "GET" || method == "HEAD" || method == "OPTIONS";
}

Response internal_error() {
    Response out;
    out.status = 500;
    out.content_type = "text/html";
    out.body = "internal error";
    return out;
}

// The transport's part of every answer: status line, Server/Date/Content-Type, extra headers.
HttpResponse to_http(Response out,
                     const Context& ctx,
                     const std::string& server_header,
                     unsigned version,
                     bool keep_alive,
                     bool head) {
    HttpResponse res;
    res.version(version);
    res.result(static_cast<unsigned>(out.status));
    if (!out.status_only) {
        res.set(http::field::server, server_header);
        res.set(http::field::date, http_date(ctx.epoch_now));
        if (!out.content_type.empty()) {
            res.set(http::field::content_type, out.content_type);
        }
        for (const auto& [name, value] : out.headers) {
            res.insert(name, value);
        }
        if (!head) {
            res.body() = std::move(out.body);
        }
    }
    res.keep_alive(keep_alive);
    // Content-Length always (Patroni sends none and relies on closing the connection).
    res.content_length(res.body().size());
    return res;
}

// An unsafe request with ApiActions set: may take long (a switchover polls the DCS for up to
// 2 * max(10, loop_wait) s); the connection waits for it, no socket operation is pending meanwhile.
net::awaitable<HttpResponse> respond_unsafe(std::shared_ptr<detail::ServerImpl> impl,
                                            Request r,
                                            unsigned version,
                                            bool keep_alive) {
    const std::string method = r.method;
    const std::string target = r.target;
    const std::string peer = r.peer_address;
    Response out;
    Context ctx;
    std::string server_header = "pgwarden";
    bool failed = false;
    try {
        ctx = impl->clock();
        auto status = impl->source();
        if (status) {
            server_header = "pgwarden Patroni/" + status->version;
        }
        UnsafeOptions options = impl->opts.unsafe_options;
        options.stopped = impl->stop_flag;
        out = co_await handle_unsafe(std::move(r),
                                     std::move(status),
                                     impl->actions,
                                     ctx,
                                     impl->opts.settings,
                                     std::move(options));
    } catch (const std::exception& e) {
        spdlog::error("rest: handler failed for \"{} {}\": {}", method, target, e.what());
        failed = true;
    }
    if (failed) {
        out = internal_error();
    }
    spdlog::debug("rest: {} \"{} {}\" {}", peer, method, target, out.status);
    co_return to_http(std::move(out), ctx, server_header, version, keep_alive, false);
}

// GET /patroni (what the members probe each other with) is answered from fresh WAL positions.
bool wants_fresh_status(std::string_view target) {
    const auto end = target.find_first_of("?#");
    std::string_view path = target.substr(0, end);
    while (!path.empty() && path.back() == '/') {
        path.remove_suffix(1);
    }
    return path == "/patroni";
}

// `peer` was counted in impl->per_ip by accept_loop; the session gives it back when it ends.
net::awaitable<void> run_session(std::shared_ptr<detail::ServerImpl> impl,
                                 tcp::socket socket,
                                 std::string peer) {
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    socket.set_option(net::socket_base::keep_alive(true), ignored);

    beast::tcp_stream stream(std::move(socket));
    const auto registration = impl->sessions.insert(impl->sessions.end(), &stream);
    struct Unregister {
        detail::ServerImpl& impl;
        std::list<beast::tcp_stream*>::iterator it;
        const std::string& peer;
        ~Unregister() {
            impl.sessions.erase(it);
            --impl.open;
            if (const auto n = impl.per_ip.find(peer); n != impl.per_ip.end() && --n->second == 0) {
                impl.per_ip.erase(n);
            }
        }
    } unregister{*impl, registration, peer};

    const auto timeout = std::chrono::milliseconds(impl->opts.idle_timeout_ms);
    const auto keepalive_idle = std::chrono::milliseconds(impl->opts.keepalive_idle_ms);
    beast::flat_buffer buffer;
    bool first = true;
    while (!impl->stopped) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(impl->opts.max_header_bytes));
        parser.body_limit(impl->opts.max_body_bytes);

        // An idle keep-alive connection holds a slot and an fd: it gets a short wait only.
        stream.expires_after(first ? timeout : std::min(timeout, keepalive_idle));
        first = false;
        auto [ec, n] = co_await http::async_read_header(
            stream, buffer, parser, net::as_tuple(net::use_awaitable));
        if (!ec && parser.get()[http::field::expect] == "100-continue" && !parser.is_done()) {
            http::response<http::empty_body> cont{http::status::continue_, parser.get().version()};
            stream.expires_after(timeout);
            auto [cec, cn] =
                co_await http::async_write(stream, cont, net::as_tuple(net::use_awaitable));
            ec = cec;
        }
        if (!ec && !parser.is_done()) {
            stream.expires_after(timeout);
            auto [bec, bn] = co_await http::async_read(
                stream, buffer, parser, net::as_tuple(net::use_awaitable));
            ec = bec;
        }

        HttpResponse res;
        if (ec) {
            const auto status = read_error_status(ec);
            if (!status) {
                break;
            }
            spdlog::debug("rest: {} bad request: {}", peer, ec.message());
            res = transport_error(*status, 11, std::string(http::obsolete_reason(*status)));
        } else if (impl->actions != nullptr &&
                   !is_safe_method(std::string(parser.get().method_string()))) {
            // No deadline while the handler runs (no socket operation is pending anyway); the
            // write below re-arms it.
            stream.expires_never();
            res = co_await respond_unsafe(impl,
                                          to_request(parser.get(), peer),
                                          parser.get().version(),
                                          parser.get().keep_alive());
        } else if (impl->actions != nullptr && parser.get().method() == http::verb::get &&
                   wants_fresh_status(parser.get().target())) {
            stream.expires_never();
            auto fresh = co_await impl->actions->fresh_status();
            res = impl->respond(parser.get(), peer, std::move(fresh));
        } else {
            res = impl->respond(parser.get(), peer);
        }

        const bool keep_alive = res.keep_alive();
        stream.expires_after(timeout);
        auto [wec, wn] = co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
        if (wec || !keep_alive) {
            break;
        }
    }
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

net::awaitable<void> accept_loop(std::shared_ptr<detail::ServerImpl> impl) {
    while (!impl->stopped) {
        auto [ec, socket] = co_await impl->acceptor.async_accept(net::as_tuple(net::use_awaitable));
        if (impl->stopped) {
            break;
        }
        if (ec) {
            // EMFILE/ENFILE/ECONNABORTED...: degraded, handled; back off briefly, no hot loop.
            spdlog::warn("rest: accept failed: {}", ec.message());
            net::steady_timer backoff(impl->ex, std::chrono::milliseconds(100));
            co_await backoff.async_wait(net::as_tuple(net::use_awaitable));
            continue;
        }
        std::string peer = peer_address(socket);
        const std::size_t from_peer = impl->per_ip.count(peer) != 0 ? impl->per_ip[peer] : 0;
        if (impl->open >= impl->max_connections || from_peer >= impl->opts.max_connections_per_ip) {
            // The newest connection is the one closed: established ones keep being served.
            if (is_power_of_two(++impl->rejected)) {
                spdlog::warn(
                    "rest: connection limit reached, closing new connection peer={} "
                    "from_peer={} max_per_ip={} open={} max={} rejected_total={}",
                    peer,
                    from_peer,
                    impl->opts.max_connections_per_ip,
                    impl->open,
                    impl->max_connections,
                    impl->rejected);
            }
            boost::system::error_code ignored;
            socket.close(ignored);
            continue;
        }
        ++impl->per_ip[peer];
        ++impl->open;
        async::spawn_logged(impl->ex,
                            run_session(impl, std::move(socket), std::move(peer)),
                            "rest: task rest-session");
    }
}

struct ListenAddress {
    std::string host;
    std::string port;
    bool any = false;
};

std::optional<ListenAddress> parse_listen(const std::string& listen) {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos) {
        return std::nullopt;
    }
    ListenAddress a;
    a.host = listen.substr(0, colon);
    a.port = listen.substr(colon + 1);
    if (a.port.empty() || !std::all_of(a.port.begin(), a.port.end(), [](unsigned char c) {
            return std::isdigit(c);
        })) {
        return std::nullopt;
    }
    if (a.host.size() >= 2 && a.host.front() == '[' && a.host.back() == ']') {
        a.host = a.host.substr(1, a.host.size() - 2);
    }
    a.any = a.host.empty() || a.host == "*";
    return a;
}

}  // namespace

HttpResponse detail::ServerImpl::respond(const HttpRequest& req,
                                         const std::string& peer,
                                         std::shared_ptr<const core::NodeStatus> fresh) {
    const Request r = to_request(req, peer);

    Response out;
    Context ctx;
    std::string server_header = "pgwarden";
    try {
        ctx = clock();
        const auto status = fresh ? std::move(fresh) : source();
        if (status) {
            server_header = "pgwarden Patroni/" + status->version;
            out = handle(r, *status, ctx, opts.settings);
        } else if (r.method == "GET" || r.method == "HEAD" || r.method == "OPTIONS") {
            out.status = 503;
            out.status_only = r.method != "GET";
            if (!out.status_only) {
                out.content_type = "text/html";
                out.body = "pgwarden is starting: no node status published yet";
            }
        } else {
            out = handle_unsafe_not_supported(r, opts.settings, nullptr);
        }
    } catch (const std::exception& e) {
        spdlog::error("rest: handler failed for \"{} {}\": {}", r.method, r.target, e.what());
        out = internal_error();
    }
    spdlog::debug("rest: {} \"{} {}\" {}", peer, r.method, r.target, out.status);
    return to_http(std::move(out),
                   ctx,
                   server_header,
                   req.version(),
                   req.keep_alive(),
                   req.method() == http::verb::head);
}

Server::Server(net::any_io_executor ex, Options options, StatusSource source, Clock clock)
    : impl_(std::make_shared<detail::ServerImpl>(
          std::move(ex), std::move(options), std::move(source), std::move(clock))) {}

Server::~Server() {
    if (!stop_requested_) {
        try {
            stop();
        } catch (const std::exception& e) {
            spdlog::error("rest: stopping the server failed: {}", e.what());
        }
    }
}

std::size_t raise_fd_limit() {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
        return 1024;
    }
    if (lim.rlim_cur < lim.rlim_max) {
        const rlim_t before = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &lim) == 0) {
            spdlog::info("rest: raised the open file limit soft={} from={}", lim.rlim_cur, before);
        } else {
            lim.rlim_cur = before;
        }
    }
    return lim.rlim_cur == RLIM_INFINITY ? std::size_t{1} << 20
                                         : static_cast<std::size_t>(lim.rlim_cur);
}

boost::system::error_code Server::start() {
    detail::ServerImpl& impl = *impl_;
    const std::size_t fd_limit = raise_fd_limit();
    impl.max_connections = impl.opts.max_connections != 0
                               ? impl.opts.max_connections
                               : std::max<std::size_t>(1, std::min<std::size_t>(512, fd_limit / 2));
    const auto addr = parse_listen(impl.opts.listen);
    if (!addr) {
        spdlog::error("rest: invalid restapi.listen value listen={}", impl.opts.listen);
        return make_error_code(boost::system::errc::invalid_argument);
    }
    boost::system::error_code ec;
    const auto port = static_cast<unsigned short>(std::stoul(addr->port));
    std::vector<tcp::endpoint> candidates;
    if (addr->any) {
        candidates.emplace_back(tcp::v6(), port);  // dual-stack when available, as Patroni
        candidates.emplace_back(tcp::v4(), port);
    } else if (auto ip = net::ip::make_address(addr->host, ec); !ec) {
        candidates.emplace_back(ip, port);
    } else {
        // A host name: resolved once at start-up (the only blocking call, before serving).
        tcp::resolver resolver(impl.ex);
        auto results = resolver.resolve(addr->host, addr->port, ec);
        if (ec) {
            spdlog::error("rest: cannot resolve listen address listen={} error={}",
                          impl.opts.listen,
                          ec.message());
            return ec;
        }
        for (const auto& entry : results) {
            candidates.push_back(entry.endpoint());
        }
    }

    for (const auto& ep : candidates) {
        ec.clear();
        impl.acceptor.close(ec);
        ec.clear();
        impl.acceptor.open(ep.protocol(), ec);
        if (ec) {
            continue;
        }
        if (addr->any && ep.protocol() == tcp::v6()) {
            boost::system::error_code v6ec;
            impl.acceptor.set_option(net::ip::v6_only(false), v6ec);
        }
        impl.acceptor.set_option(net::socket_base::reuse_address(true), ec);
        if (!ec) {
            impl.acceptor.bind(ep, ec);
        }
        if (!ec) {
            impl.acceptor.listen(net::socket_base::max_listen_connections, ec);
        }
        if (!ec) {
            break;
        }
    }
    if (ec) {
        boost::system::error_code ignored;
        impl.acceptor.close(ignored);
        spdlog::error("rest: cannot listen listen={} error={}", impl.opts.listen, ec.message());
        return ec;
    }
    impl.port = impl.acceptor.local_endpoint(ec).port();
    spdlog::info("rest: listening listen={} port={} max_connections={} max_per_ip={}",
                 impl.opts.listen,
                 impl.port,
                 impl.max_connections,
                 impl.opts.max_connections_per_ip);
    async::spawn_logged(impl.ex, accept_loop(impl_), "rest: task rest-accept");
    return {};
}

unsigned short Server::port() const {
    return impl_->port;
}

void Server::stop() {
    stop_requested_ = true;
    std::shared_ptr<detail::ServerImpl> impl = impl_;
    net::dispatch(impl->ex, [impl]() { impl->close_all(); });
}

void Server::set_actions(ApiActions* actions) {
    impl_->actions = actions;
}

std::size_t Server::connection_count() const {
    return impl_->sessions.size();
}

std::size_t Server::connection_limit() const {
    return impl_->max_connections;
}

}  // namespace pgwarden::rest
