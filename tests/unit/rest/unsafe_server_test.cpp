// The Beast server with ApiActions set: unsafe requests go through handle_unsafe() inside the
// connection coroutine, a long switchover outlives idle_timeout_ms, the connection stays usable.
// 127.0.0.1, port 0, bounded waits.
#include "fake_api_actions.hpp"
#include "runtime/rest/server.hpp"
#include "status_fixtures.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <sys/time.h>
#include <thread>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

using namespace pgwarden;
using namespace pgwarden::rest;
using namespace pgwarden::rest::test;

namespace {

class UnsafeServerFixture {
public:
    UnsafeServerFixture(FakeApiActions* actions, UnsafeOptions timings, int idle_timeout_ms) {
        auto status = std::make_shared<const core::NodeStatus>(primary_status());
        Server::Options opts;
        opts.listen = "127.0.0.1:0";
        opts.idle_timeout_ms = idle_timeout_ms;
        opts.unsafe_options = timings;
        server_ = std::make_unique<Server>(
            ioc_.get_executor(),
            opts,
            [status]() { return status; },
            []() {
                return Context{kNow, kEpoch};
            });
        server_->set_actions(actions);
        start_error_ = server_->start();
        if (!start_error_) {
            thread_ = std::thread([this]() {
                ioc_.run();
                done_.set_value();
            });
        }
    }
    ~UnsafeServerFixture() { shutdown(); }

    // Stops the server; true when the io_context ran out of work within `limit`.
    bool shutdown(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
        if (!thread_.joinable()) {
            return true;
        }
        server_->stop();
        const bool drained = done_.get_future().wait_for(limit) == std::future_status::ready;
        if (!drained) {
            ioc_.stop();
        }
        thread_.join();
        return drained;
    }

    boost::system::error_code start_error() const { return start_error_; }
    unsigned short port() const { return server_->port(); }

private:
    net::io_context ioc_{1};
    std::unique_ptr<Server> server_;
    boost::system::error_code start_error_;
    std::thread thread_;
    std::promise<void> done_;
};

class Client {
public:
    explicit Client(unsigned short port) : socket_(ioc_) {
        socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
        timeval tv{5, 0};
        ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    void send(const std::string& raw) { net::write(socket_, net::buffer(raw)); }
    http::response<http::string_body> read() {
        http::response<http::string_body> res;
        http::read(socket_, buffer_, res);
        return res;
    }

private:
    net::io_context ioc_;
    tcp::socket socket_;
    beast::flat_buffer buffer_;
};

// Counts the reads atomically so the test thread can see that a poll is under way.
class CountingActions : public FakeApiActions {
public:
    std::atomic<int> reads_started{0};
    boost::asio::awaitable<ApiResult<core::Cluster>> read_cluster() override {
        ++reads_started;
        return FakeApiActions::read_cluster();
    }
};

std::string post(const std::string& path, const std::string& body) {
    return "POST " + path +
           " HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
           body;
}

}  // namespace

TEST_CASE("server: unsafe endpoints through ApiActions", "[rest][server][unsafe]") {
    FakeApiActions fake;
    const core::Cluster before = *cluster_with_leader("node1");
    core::Cluster pending = before;
    pending.failover = core::FailoverKey{std::string("node1"), std::string("node2"), {}, 3};
    core::Cluster after = before;
    after.leader = core::LeaderKey{"node2", 8, "s2"};
    fake.cluster = pending;
    fake.probes["node2"] = FakeApiActions::good("node2");

    UnsafeOptions timings;
    timings.poll_interval = std::chrono::milliseconds(20);
    timings.poll_timeout = std::chrono::milliseconds(400);

    SECTION("reload, then a switchover longer than the idle timeout, on one connection") {
        // 8 polls of 20 ms (160 ms) before the leader changes, idle timeout 50 ms
        fake.reads = {before, pending, pending, pending, pending, pending, pending, pending, after};
        UnsafeServerFixture fx(&fake, timings, 50);
        REQUIRE_FALSE(fx.start_error());
        Client c(fx.port());

        c.send(post("/reload", ""));
        auto r1 = c.read();
        CHECK(r1.result_int() == 202);
        CHECK(r1.body() == "reload scheduled");
        CHECK(r1[http::field::content_type] == "text/html");
        CHECK(r1.keep_alive());

        c.send(post("/switchover", R"({"leader":"node1","candidate":"node2"})"));
        auto r2 = c.read();
        CHECK(r2.result_int() == 200);
        CHECK(r2.body() == "Successfully switched over to \"node2\"");

        c.send("GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n");
        CHECK(c.read().result_int() == 200);
        fx.shutdown();
        CHECK(fake.reloads == 1);
        CHECK(fake.wakeups == 1);
        CHECK(fake.read_count == 9);
    }
    SECTION("status unknown after the poll timeout") {
        fake.reads = {before};
        timings.poll_timeout = std::chrono::milliseconds(100);
        UnsafeServerFixture fx(&fake, timings, 30);
        REQUIRE_FALSE(fx.start_error());
        Client c(fx.port());
        c.send(post("/switchover", R"({"leader":"node1"})"));
        auto r = c.read();
        CHECK(r.result_int() == 503);
        CHECK(r.body() ==
              "Switchover status unknown after 1 seconds; operation may still be in progress");
    }
    SECTION("stop() during a switchover poll drains quickly") {
        CountingActions counting;
        counting.cluster = pending;
        counting.probes["node2"] = FakeApiActions::good("node2");
        timings.poll_interval = std::chrono::milliseconds(5);
        timings.poll_timeout = std::chrono::seconds(60);
        UnsafeServerFixture fx(&counting, timings, 1000);
        REQUIRE_FALSE(fx.start_error());
        Client c(fx.port());
        c.send(post("/switchover", R"({"leader":"node1","candidate":"node2"})"));
        for (int i = 0; i < 500 && counting.reads_started < 3; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));  // bounded: <= 2.5 s
        }
        REQUIRE(counting.reads_started >= 3);  // the poll is running
        CHECK(fx.shutdown(std::chrono::seconds(2)));
    }
    SECTION("access is checked before anything else") {
        UnsafeServerFixture fx(&fake, timings, 1000);
        REQUIRE_FALSE(fx.start_error());
        Client c(fx.port());
        c.send("POST /nothing HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        CHECK(c.read().result_int() == 501);
        c.send("PATCH /config HTTP/1.1\r\nHost: x\r\n\r\n");
        CHECK(c.read().result_int() == 411);
        fx.shutdown();
        CHECK(fake.read_count == 0);
    }
}

namespace {

// fresh_status() answers with another WAL position than the published status.
class FreshActions : public FakeApiActions {
public:
    std::atomic<int> fresh_calls{0};
    boost::asio::awaitable<std::shared_ptr<const core::NodeStatus>> fresh_status() override {
        ++fresh_calls;
        auto st = std::make_shared<core::NodeStatus>(primary_status());
        st->pg->wal_location = 987654321;
        co_return st;
    }
};

}  // namespace

TEST_CASE("server: GET /patroni answers from fresh_status(), other GETs from the published one",
          "[rest][server][unsafe]") {
    FreshActions fresh;
    UnsafeServerFixture fx(&fresh, UnsafeOptions{}, 1000);
    REQUIRE_FALSE(fx.start_error());
    Client c(fx.port());

    c.send("GET /patroni HTTP/1.1\r\nHost: x\r\n\r\n");
    auto r1 = c.read();
    CHECK(r1.result_int() == 200);
    CHECK(r1.body().find("\"location\":987654321") != std::string::npos);
    CHECK(fresh.fresh_calls == 1);

    c.send("GET /patroni/?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(c.read().body().find("987654321") != std::string::npos);
    CHECK(fresh.fresh_calls == 2);

    c.send("GET /primary HTTP/1.1\r\nHost: x\r\n\r\n");
    auto r3 = c.read();
    CHECK(r3.result_int() == 200);
    CHECK(r3.body().find("987654321") == std::string::npos);
    c.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(c.read().result_int() == 200);
    CHECK(fresh.fresh_calls == 2);
    fx.shutdown();
}
