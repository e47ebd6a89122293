#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <poll.h>
#include <stdexcept>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PGW_CONSUL_SERVER_PATH
#error "PGW_CONSUL_SERVER_PATH must name the pgw-consul-test-server binary"
#endif

namespace pgwarden::consul_test::testing {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using net::ip::tcp;

namespace {

constexpr auto kTuple = net::as_tuple(net::use_awaitable);

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
        return static_cast<char>(std::tolower(c));
    });
    return out;
}

void abort_on_exception(std::exception_ptr e) {
    if (!e) {
        return;
    }
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        std::fprintf(stderr, "test support: fatal: %s\n", ex.what());
    }
    std::abort();
}

net::awaitable<void> do_request(std::uint16_t port,
                                std::string method,
                                std::string target,
                                std::string body,
                                Headers headers,
                                std::chrono::milliseconds timeout,
                                HttpResponse* out) {
    auto executor = co_await net::this_coro::executor;
    beast::tcp_stream stream(executor);
    stream.expires_after(timeout);
    tcp::endpoint ep(net::ip::make_address("127.0.0.1"), port);
    auto [cec] = co_await stream.async_connect(ep, kTuple);
    if (cec) {
        out->transport_error = "connect: " + cec.message();
        co_return;
    }
    http::request<http::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
    for (const auto& [k, v] : headers) {
        req.set(k, v);
    }
    req.body() = std::move(body);
    req.keep_alive(false);
    req.prepare_payload();
    auto [wec, wn] = co_await http::async_write(stream, req, kTuple);
    (void)wn;
    if (wec) {
        out->transport_error = "write: " + wec.message();
        co_return;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    auto [rec, rn] = co_await http::async_read(stream, buffer, parser, kTuple);
    (void)rn;
    if (rec) {
        out->transport_error = "read: " + rec.message();
        co_return;
    }
    const auto& res = parser.get();
    out->status = res.result_int();
    out->body = res.body();
    for (const auto& f : res) {
        out->headers[lower(f.name_string())] = std::string(f.value());
    }
}

}  // namespace

bool HttpResponse::has_header(std::string_view name) const {
    return headers.count(lower(name)) != 0;
}

std::string HttpResponse::header(std::string_view name) const {
    auto it = headers.find(lower(name));
    return it == headers.end() ? std::string() : it->second;
}

std::uint64_t HttpResponse::index() const {
    auto v = header("X-Consul-Index");
    return v.empty() ? 0 : std::stoull(v);
}

nlohmann::json HttpResponse::json() const {
    return nlohmann::json::parse(body);
}

HttpResponse http_request(std::uint16_t port,
                          std::string method,
                          std::string target,
                          std::string body,
                          Headers headers,
                          std::chrono::milliseconds timeout) {
    HttpResponse out;
    net::io_context ioc;
    net::co_spawn(ioc,
                  do_request(port,
                             std::move(method),
                             std::move(target),
                             std::move(body),
                             std::move(headers),
                             timeout,
                             &out),
                  abort_on_exception);
    ioc.run();
    return out;
}

bool wait_until(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (pred()) {
            return true;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(poll);
    }
}

// ------------------------------------------------------------------------------------------

ConsulServerProcess::ConsulServerProcess(std::vector<std::string> extra_args) {
    std::vector<std::string> args = {PGW_CONSUL_SERVER_PATH, "--listen", "127.0.0.1:0"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    int fds[2];
    if (pipe(fds) != 0) {
        throw std::runtime_error("pipe failed");
    }
    pid_ = fork();
    if (pid_ < 0) {
        throw std::runtime_error("fork failed");
    }
    if (pid_ == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(argv[0], argv.data());
        _exit(127);
    }
    close(fds[1]);
    // Read the first stdout line ("listening 127.0.0.1:NNNNN") with a deadline.
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (line.find('\n') == std::string::npos) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            break;
        }
        pollfd p{fds[0], POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
            continue;
        }
        char buf[256];
        auto n = read(fds[0], buf, sizeof buf);
        if (n <= 0) {
            break;
        }
        line.append(buf, static_cast<std::size_t>(n));
    }
    close(fds[0]);
    line = line.substr(0, line.find('\n'));  // later lines (e.g. listening-https) are not ours
    auto colon = line.rfind(':');
    if (line.rfind("listening ", 0) != 0 || colon == std::string::npos) {
        stop();
        throw std::runtime_error("consul test server did not start, stdout: " + line);
    }
    port_ = static_cast<std::uint16_t>(std::stoi(line.substr(colon + 1)));
}

ConsulServerProcess::~ConsulServerProcess() {
    stop();
}

bool ConsulServerProcess::stop() {
    if (pid_ <= 0) {
        return false;
    }
    kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
            break;
        }
        if (r < 0 && errno != EINTR) {
            pid_ = -1;
            return false;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            kill(pid_, SIGKILL);
            waitpid(pid_, &status, 0);
            pid_ = -1;
            return false;
        }
        std::this_thread::sleep_for(10ms);
    }
    pid_ = -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string ConsulServerProcess::url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

HttpResponse ConsulServerProcess::get(std::string target, Headers headers) const {
    return http_request(port_, "GET", std::move(target), {}, std::move(headers));
}

HttpResponse ConsulServerProcess::put(std::string target, std::string body, Headers headers) const {
    return http_request(port_, "PUT", std::move(target), std::move(body), std::move(headers));
}

HttpResponse ConsulServerProcess::del(std::string target, Headers headers) const {
    return http_request(port_, "DELETE", std::move(target), {}, std::move(headers));
}

std::string ConsulServerProcess::create_session(const nlohmann::json& body) const {
    auto r = put("/v1/session/create", body.dump());
    if (r.status != 200) {
        throw std::runtime_error("session create failed: " + std::to_string(r.status) + " " +
                                 r.body + r.transport_error);
    }
    return r.json().at("ID").get<std::string>();
}

void ConsulServerProcess::fault(std::string_view mode) const {
    auto r = put("/_test/fault?mode=" + std::string(mode));
    if (r.status != 200) {
        throw std::runtime_error("fault mode failed: " + r.body + r.transport_error);
    }
}

// ------------------------------------------------------------------------------------------

struct HttpTarget::Impl {
    net::io_context ioc{1};
    tcp::acceptor acceptor{ioc};

    static net::awaitable<void> serve(HttpTarget* self, tcp::socket socket) {
        beast::tcp_stream stream(std::move(socket));
        stream.expires_after(std::chrono::seconds(10));
        beast::flat_buffer buffer;
        http::request<http::string_body> req;
        auto [ec, n] = co_await http::async_read(stream, buffer, req, kTuple);
        (void)n;
        if (ec) {
            co_return;
        }
        {
            std::lock_guard<std::mutex> lock(self->mutex_);
            self->last_method_ = std::string(req.method_string());
            self->last_target_ = std::string(req.target());
        }
        ++self->hits_;
        http::response<http::string_body> res{static_cast<http::status>(self->status_.load()), 11};
        res.body() = "target says " + std::to_string(self->status_.load());
        res.keep_alive(false);
        res.prepare_payload();
        auto [wec, wn] = co_await http::async_write(stream, res, kTuple);
        (void)wec;
        (void)wn;
        beast::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    }

    static net::awaitable<void> accept_loop(HttpTarget* self) {
        for (;;) {
            auto [ec, socket] = co_await self->impl_->acceptor.async_accept(kTuple);
            if (ec) {
                co_return;
            }
            net::co_spawn(self->impl_->ioc, serve(self, std::move(socket)), abort_on_exception);
        }
    }
};

HttpTarget::HttpTarget() : impl_(std::make_unique<Impl>()) {
    tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
    impl_->acceptor.open(ep.protocol());
    impl_->acceptor.bind(ep);
    impl_->acceptor.listen();
    port_ = impl_->acceptor.local_endpoint().port();
    net::co_spawn(impl_->ioc, Impl::accept_loop(this), abort_on_exception);
    thread_ = std::thread([this] { impl_->ioc.run(); });
}

HttpTarget::~HttpTarget() {
    impl_->ioc.stop();
    thread_.join();
}

std::string HttpTarget::url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

std::string HttpTarget::last_method() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return last_method_;
}

std::string HttpTarget::last_target() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return last_target_;
}

std::uint16_t closed_port() {
    net::io_context ioc;
    tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    return acceptor.local_endpoint().port();
}

}  // namespace pgwarden::consul_test::testing
