// Socket-level test of the Beast server on 127.0.0.1, port 0: real HTTP requests from a blocking
// client with receive timeouts (bounded waits, no sleeps).
#include "runtime/rest/server.hpp"

#include "status_fixtures.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <poll.h>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <thread>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

using namespace pgwarden;
using namespace pgwarden::rest;
using namespace pgwarden::rest::test;

namespace {

// Runs the server's io_context on its own thread; stop() + bounded join.
class ServerFixture {
public:
    explicit ServerFixture(core::RestApiSettings settings = {},
                           const std::function<void(Server::Options&)>& tune = {}) {
        status_ = std::make_shared<const core::NodeStatus>(primary_status());
        Server::Options opts;
        opts.listen = "127.0.0.1:0";
        opts.settings = std::move(settings);
        opts.max_body_bytes = 1024;
        if (tune) {
            tune(opts);
        }
        auto status = status_;
        server_ = std::make_unique<Server>(
            ioc_.get_executor(),
            opts,
            [status]() { return status; },
            []() {
                return Context{kNow, kEpoch};
            });
        start_error_ = server_->start();
        if (!start_error_) {
            thread_ = std::thread([this]() {
                ioc_.run();
                done_.set_value();
            });
        }
    }
    ~ServerFixture() { shutdown(); }

    // Stops the server and waits (bounded) until the io_context ran out of work: proves that
    // stop() closed the acceptor and every session.
    bool shutdown() {
        if (!thread_.joinable()) {
            return true;
        }
        server_->stop();
        const bool drained =
            done_.get_future().wait_for(std::chrono::seconds(10)) == std::future_status::ready;
        if (!drained) {
            ioc_.stop();
        }
        thread_.join();
        return drained;
    }

    boost::system::error_code start_error() const { return start_error_; }
    unsigned short port() const { return server_->port(); }
    std::size_t connection_limit() const { return server_->connection_limit(); }

private:
    net::io_context ioc_{1};
    std::shared_ptr<const core::NodeStatus> status_;
    std::unique_ptr<Server> server_;
    boost::system::error_code start_error_;
    std::thread thread_;
    std::promise<void> done_;
};

// Blocking client; every read gives up after 5 s (SO_RCVTIMEO) so a bug cannot hang the test.
class Client {
public:
    // `source`: the client's own address (any 127.x.y.z is local on Linux: another client IP).
    explicit Client(unsigned short port, const char* source = nullptr) : socket_(ioc_) {
        if (source != nullptr) {
            socket_.open(tcp::v4());
            socket_.bind(tcp::endpoint(net::ip::make_address(source), 0));
        }
        socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
        timeval tv{5, 0};
        ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }

    void send(const std::string& raw) { net::write(socket_, net::buffer(raw)); }

    http::response<http::string_body> read(bool head = false) {
        http::response_parser<http::string_body> parser;
        parser.skip(head);
        http::read(socket_, buffer_, parser);
        return parser.release();
    }

    // True when the server closed the connection (EOF) rather than keeping it open.
    bool closed_by_server() {
        char c = 0;
        boost::system::error_code ec;
        socket_.read_some(net::buffer(&c, 1), ec);
        return ec == net::error::eof || ec == net::error::connection_reset;
    }

    // closed_by_server() with a bound of its own: asio's blocking read ignores SO_RCVTIMEO, so
    // wait for readability with poll() first. False when nothing arrived within `limit`.
    bool closed_within(std::chrono::milliseconds limit) {
        pollfd p{socket_.native_handle(), POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(limit.count())) != 1) {
            return false;
        }
        return closed_by_server();
    }

private:
    net::io_context ioc_;
    tcp::socket socket_;
    beast::flat_buffer buffer_;
};

}  // namespace

TEST_CASE("server: real HTTP on 127.0.0.1:0", "[rest][server]") {
    ServerFixture fx;
    REQUIRE_FALSE(fx.start_error());
    REQUIRE(fx.port() != 0);

    SECTION("HTTP/1.1 keep-alive: several requests on one connection") {
        Client c(fx.port());
        c.send("GET /patroni HTTP/1.1\r\nHost: x\r\n\r\n");
        auto r1 = c.read();
        CHECK(r1.result_int() == 200);
        CHECK(r1[http::field::content_type] == "application/json");
        CHECK(r1[http::field::content_length] == std::to_string(r1.body().size()));
        CHECK(r1.body().find("\"role\":\"primary\"") != std::string::npos);
        CHECK_FALSE(r1[http::field::date].empty());
        CHECK(r1.keep_alive());

        c.send("GET /replica HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        auto r2 = c.read();
        CHECK(r2.result_int() == 503);
        auto r3 = c.read();
        CHECK(r3.result_int() == 200);
        CHECK(r3[http::field::content_type] == "text/plain");

        c.send("GET /liveness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        auto r4 = c.read();
        CHECK(r4.result_int() == 200);
        CHECK(r4[http::field::content_length] == "0");
        CHECK(r4.body().empty());
        CHECK_FALSE(r4.keep_alive());
        CHECK(c.closed_by_server());
    }

    SECTION("HTTP/1.0 OPTIONS (HAProxy httpchk): status only, then close") {
        Client c(fx.port());
        c.send("OPTIONS / HTTP/1.0\r\n\r\n");
        auto r = c.read();
        CHECK(r.version() == 10);
        CHECK(r.result_int() == 200);
        CHECK(r[http::field::content_length] == "0");
        CHECK(c.closed_by_server());
    }

    SECTION("HEAD: Content-Length 0, no body") {
        Client c(fx.port());
        c.send(
            "HEAD /replica HTTP/1.1\r\nHost: x\r\n\r\nHEAD /primary HTTP/1.1\r\nHost: x\r\n\r\n");
        auto r1 = c.read(true);
        CHECK(r1.result_int() == 503);
        CHECK(r1[http::field::content_length] == "0");
        auto r2 = c.read(true);
        CHECK(r2.result_int() == 200);
    }

    SECTION("unsafe methods and limits") {
        Client c(fx.port());
        c.send("POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
        auto r1 = c.read();
        CHECK(r1.result_int() == 503);
        CHECK(r1.body() == "not supported by this pgwarden version yet");
        c.send("POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        auto r2 = c.read();
        CHECK(r2.result_int() == 501);
        c.send("PATCH /config HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n");
        auto r3 = c.read();
        CHECK(r3.result_int() == 413);  // body above max_body_bytes
        CHECK(c.closed_by_server());
    }

    SECTION("garbage request: 400 and close") {
        Client c(fx.port());
        c.send("THIS IS NOT HTTP\r\n\r\n");
        auto r = c.read();
        CHECK(r.result_int() == 400);
        CHECK(c.closed_by_server());
    }

    SECTION("a new connection per request, HAProxy style") {
        for (int i = 0; i < 200; ++i) {
            Client c(fx.port());
            c.send("GET /primary HTTP/1.0\r\n\r\n");
            auto r = c.read();
            REQUIRE(r.result_int() == 200);
            REQUIRE(r[http::field::content_length] == std::to_string(r.body().size()));
        }
    }

    SECTION("stop() closes idle keep-alive connections too") {
        Client c(fx.port());
        c.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        CHECK(c.read().result_int() == 200);
        CHECK(fx.shutdown());  // would time out if the idle session kept the io_context busy
        CHECK(c.closed_by_server());
    }
    CHECK(fx.shutdown());
}

TEST_CASE("server: basic auth over the wire", "[rest][server][auth]") {
    core::RestApiSettings settings;
    settings.authentication = core::Credentials{"admin", "secret"};
    ServerFixture fx(settings);
    REQUIRE_FALSE(fx.start_error());
    Client c(fx.port());
    c.send("POST /restart HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    auto r1 = c.read();
    CHECK(r1.result_int() == 401);
    CHECK(r1[http::field::www_authenticate] == "Basic realm=\"Patroni\"");
    c.send(
        "POST /restart HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46c2VjcmV0\r\n"
        "Content-Length: 0\r\n\r\n");
    CHECK(c.read().result_int() == 503);
}

TEST_CASE("server: start() reports an address already in use", "[rest][server]") {
    ServerFixture first;
    REQUIRE_FALSE(first.start_error());
    net::io_context ioc;
    Server::Options opts;
    opts.listen = "127.0.0.1:" + std::to_string(first.port());
    Server second(
        ioc.get_executor(),
        opts,
        []() { return std::shared_ptr<const core::NodeStatus>(); },
        []() { return Context{}; });
    CHECK(second.start() == boost::system::errc::address_in_use);

    Server::Options bad;
    bad.listen = "no-port-here";
    Server third(
        ioc.get_executor(),
        bad,
        []() { return std::shared_ptr<const core::NodeStatus>(); },
        []() { return Context{}; });
    CHECK(third.start());
}

// F16: keep-alive connections held by one client must not lock out HAProxy and member probes.
TEST_CASE("server: one client IP cannot take every connection", "[rest][server][F16]") {
    ServerFixture fx({}, [](Server::Options& o) {
        o.max_connections_per_ip = 4;
        o.max_connections = 16;
        o.idle_timeout_ms = 60000;  // only the caps may close a connection during the test
        o.keepalive_idle_ms = 60000;
    });
    REQUIRE_FALSE(fx.start_error());
    std::vector<std::unique_ptr<Client>> held;
    for (int i = 0; i < 4; ++i) {
        held.push_back(std::make_unique<Client>(fx.port(), "127.0.0.2"));
        held.back()->send("GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n");
        REQUIRE(held.back()->read().result_int() == 200);
    }
    Client fifth(fx.port(), "127.0.0.2");
    CHECK(fifth.closed_within(std::chrono::seconds(3)));  // the newest one is closed at accept

    Client haproxy(fx.port(), "127.0.0.1");
    haproxy.send("GET /primary HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(haproxy.read().result_int() == 200);

    held.front()->send("GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(held.front()->read().result_int() == 200);  // established ones are still served
    CHECK(fx.shutdown());
}

TEST_CASE("server: the total cap closes the newest connection at accept", "[rest][server][F16]") {
    ServerFixture fx({}, [](Server::Options& o) {
        o.max_connections = 3;
        o.idle_timeout_ms = 60000;
        o.keepalive_idle_ms = 60000;
    });
    REQUIRE_FALSE(fx.start_error());
    const char* sources[] = {"127.0.0.2", "127.0.0.3", "127.0.0.4"};
    std::vector<std::unique_ptr<Client>> held;
    for (const char* source : sources) {
        held.push_back(std::make_unique<Client>(fx.port(), source));
        held.back()->send("GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n");
        REQUIRE(held.back()->read().result_int() == 200);
    }
    Client fourth(fx.port(), "127.0.0.5");
    CHECK(fourth.closed_within(std::chrono::seconds(3)));
    CHECK(fx.shutdown());
}

TEST_CASE("server: an idle keep-alive connection is closed after keepalive_idle_ms",
          "[rest][server][F16]") {
    ServerFixture fx({}, [](Server::Options& o) {
        o.idle_timeout_ms = 60000;
        o.keepalive_idle_ms = 100;
    });
    REQUIRE_FALSE(fx.start_error());
    Client c(fx.port());
    c.send("GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto r = c.read();
    CHECK(r.result_int() == 200);
    CHECK(r.keep_alive());
    CHECK(c.closed_within(std::chrono::seconds(3)));
}

TEST_CASE("server: the default total cap leaves half of the fd limit to the HA loop",
          "[rest][server][F16]") {
    rlimit lim{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &lim) == 0);
    if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max > 64) {
        rlimit lowered = lim;
        lowered.rlim_cur = 64;
        REQUIRE(::setrlimit(RLIMIT_NOFILE, &lowered) == 0);
        CHECK(raise_fd_limit() == lim.rlim_max);  // the soft limit goes up to the hard one
        rlimit after{};
        REQUIRE(::getrlimit(RLIMIT_NOFILE, &after) == 0);
        CHECK(after.rlim_cur == lim.rlim_max);
    }
    ServerFixture fx;
    REQUIRE_FALSE(fx.start_error());
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &lim) == 0);
    const std::size_t soft = lim.rlim_cur == RLIM_INFINITY ? std::size_t{1} << 20
                                                           : static_cast<std::size_t>(lim.rlim_cur);
    CHECK(fx.connection_limit() == std::min<std::size_t>(512, soft / 2));
}
