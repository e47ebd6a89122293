// Etcd3Dcs against a real etcd 3.4 on loopback (spec/etcd3-gateway.md §12).
#include "dcs/etcd3/etcd3_dcs.hpp"

#include "support/etcd.hpp"
#include "support/net.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unistd.h>

namespace net = boost::asio;
using namespace std::chrono_literals;
using pgwarden::dcs::DcsTiming;
using pgwarden::dcs::Errc;
using pgwarden::dcs::Etcd3Dcs;
using pgwarden::dcs::Result;
using pgwarden::testing::EtcdServer;
using Clock = std::chrono::steady_clock;

namespace {

EtcdServer& etcd() {
    static EtcdServer server;
    return server;
}

std::string unique_scope(const std::string& name) {
    static int counter = 0;
    return name + "-" + std::to_string(getpid()) + "-" + std::to_string(++counter);
}

pgwarden::core::Etcd3Settings settings_for(const EtcdServer& server) {
    pgwarden::core::Etcd3Settings s;
    s.hosts = {server.endpoint()};
    return s;
}

// Short timings: etcd's minimum lease TTL is 1 s with the test server's 500 ms election timeout.
constexpr DcsTiming kFast{2, 1, 3};

std::unique_ptr<Etcd3Dcs> make_dcs(net::io_context& io,
                                   const std::string& scope,
                                   const std::string& name,
                                   DcsTiming timing = kFast,
                                   std::optional<pgwarden::core::Etcd3Settings> settings = {}) {
    auto dcs = std::make_unique<Etcd3Dcs>(
        io.get_executor(), settings ? *settings : settings_for(etcd()), "/service/", scope, name);
    dcs->set_timing(timing);
    return dcs;
}

// Runs one coroutine to completion on the local io_context (bounded in time).
template <class T>
T run(net::io_context& io, net::awaitable<T> task, std::chrono::milliseconds limit = 30s) {
    std::optional<T> out;
    std::exception_ptr error;
    net::co_spawn(io, std::move(task), [&out, &error](std::exception_ptr e, T value) {
        error = e;
        out.emplace(std::move(value));
    });
    const auto deadline = Clock::now() + limit;
    while (!out && Clock::now() < deadline) {
        if (io.stopped()) {
            io.restart();
        }
        io.run_one_for(50ms);
    }
    if (error) {
        std::rethrow_exception(error);
    }
    REQUIRE(out.has_value());
    return std::move(*out);
}

// Runs two coroutines concurrently; returns both results.
template <class T>
std::pair<T, T> run_both(net::io_context& io, net::awaitable<T> a, net::awaitable<T> b) {
    std::optional<T> ra;
    std::optional<T> rb;
    net::co_spawn(io, std::move(a), [&ra](std::exception_ptr, T v) { ra.emplace(std::move(v)); });
    net::co_spawn(io, std::move(b), [&rb](std::exception_ptr, T v) { rb.emplace(std::move(v)); });
    const auto deadline = Clock::now() + 30s;
    while ((!ra || !rb) && Clock::now() < deadline) {
        if (io.stopped()) {
            io.restart();
        }
        io.run_one_for(50ms);
    }
    REQUIRE(ra.has_value());
    REQUIRE(rb.has_value());
    return {std::move(*ra), std::move(*rb)};
}

// Keeps the io_context running (background watch) until pred() or timeout.
bool pump_until(net::io_context& io,
                const std::function<bool()>& pred,
                std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!pred()) {
        if (Clock::now() >= deadline) {
            return false;
        }
        if (io.stopped()) {
            io.restart();
        }
        io.run_one_for(20ms);
    }
    return true;
}

void pump_for(net::io_context& io, std::chrono::milliseconds d) {
    pump_until(
        io, [] { return false; }, d);
}

pgwarden::core::Cluster cluster_of(net::io_context& io, Etcd3Dcs& dcs) {
    auto c = run(io, dcs.get_cluster());
    REQUIRE(c.has_value());
    return *c;
}

std::string leader_name(net::io_context& io, Etcd3Dcs& dcs) {
    auto c = cluster_of(io, dcs);
    return c.leader ? c.leader->name : std::string();
}

}  // namespace

TEST_CASE("get_cluster on an empty prefix returns an empty cluster", "[etcd3]") {
    net::io_context io;
    auto dcs = make_dcs(io, unique_scope("empty"), "node1");
    auto c = cluster_of(io, *dcs);
    CHECK_FALSE(c.leader);
    CHECK(c.members.empty());
    CHECK_FALSE(c.initialize);
    CHECK_FALSE(c.config_json);
    CHECK(dcs->prefix().rfind("/service/empty-", 0) == 0);
    CHECK(dcs->prefix().back() == '/');
}

TEST_CASE("initialize race: exactly one of two nodes wins", "[etcd3]") {
    net::io_context io;
    const auto scope = unique_scope("init");
    auto a = make_dcs(io, scope, "node1");
    auto b = make_dcs(io, scope, "node2");
    auto [ra, rb] = run_both(
        io, a->initialize("7000000000000000001", true), b->initialize("7000000000000000002", true));
    REQUIRE(ra.has_value());
    REQUIRE(rb.has_value());
    CHECK(*ra != *rb);
    auto c = cluster_of(io, *a);
    REQUIRE(c.initialize);
    CHECK(*c.initialize == (*ra ? "7000000000000000001" : "7000000000000000002"));

    SECTION("create_new=false overwrites, cancel_initialization deletes") {
        auto w = run(io, b->initialize("7000000000000000009", false));
        REQUIRE(w.has_value());
        CHECK(*w);
        CHECK(*cluster_of(io, *a).initialize == "7000000000000000009");
        REQUIRE(run(io, a->cancel_initialization()));
        CHECK_FALSE(cluster_of(io, *a).initialize);
    }
}

TEST_CASE("leader race: exactly one wins and the other sees its name", "[etcd3]") {
    net::io_context io;
    const auto scope = unique_scope("race");
    auto a = make_dcs(io, scope, "node1");
    auto b = make_dcs(io, scope, "node2");
    auto [ra, rb] = run_both(io, a->attempt_to_acquire_leader(), b->attempt_to_acquire_leader());
    REQUIRE(ra.has_value());
    REQUIRE(rb.has_value());
    CHECK(*ra != *rb);
    const std::string winner = *ra ? "node1" : "node2";
    auto& loser = *ra ? *b : *a;
    auto c = cluster_of(io, loser);
    REQUIRE(c.leader);
    CHECK(c.leader->name == winner);
    CHECK(c.leader->owner == (*ra ? a : b)->lease_id_for_test());
    CHECK_FALSE(c.leader->owner.empty());
    // A second attempt by the loser still fails.
    auto again = run(io, loser.attempt_to_acquire_leader());
    REQUIRE(again.has_value());
    CHECK_FALSE(*again);
}

TEST_CASE("update_leader keeps the leader key alive past the ttl", "[etcd3]") {
    net::io_context io;
    const auto scope = unique_scope("keep");
    auto a = make_dcs(io, scope, "node1");
    auto won = run(io, a->attempt_to_acquire_leader());
    REQUIRE(won.has_value());
    REQUIRE(*won);
    const auto until = Clock::now() + 5s;  // ttl is 2 s
    while (Clock::now() < until) {
        auto r = run(io, a->update_leader(std::int64_t{50331648}));
        REQUIRE(r.has_value());
        REQUIRE(*r);
        pump_for(io, 500ms);
    }
    auto c = cluster_of(io, *a);
    REQUIRE(c.leader);
    CHECK(c.leader->name == "node1");
    CHECK(c.last_lsn == 50331648);  // update_leader writes /status
}

TEST_CASE("update_leader returns false when another member holds the key", "[etcd3]") {
    net::io_context io;
    const auto scope = unique_scope("other");
    auto a = make_dcs(io, scope, "node1");
    auto b = make_dcs(io, scope, "node2");
    REQUIRE(*run(io, a->attempt_to_acquire_leader()));
    auto r = run(io, b->update_leader(std::nullopt));
    REQUIRE(r.has_value());
    CHECK_FALSE(*r);
    CHECK(leader_name(io, *a) == "node1");
    auto owner = cluster_of(io, *a).leader->owner;
    CHECK(owner == a->lease_id_for_test());
}

TEST_CASE("update_leader re-takes the key with a new lease after the lease vanished", "[etcd3]") {
    net::io_context io;
    const auto scope = unique_scope("relea");
    auto a = make_dcs(io, scope, "node1");
    REQUIRE(*run(io, a->attempt_to_acquire_leader()));
    const auto old_lease = a->lease_id_for_test();
    // Revoke the lease behind the node's back: keys go, keepalive answers without TTL.
    auto revoke = pgwarden::testing::http_request("127.0.0.1",
                                                  etcd().client_port(),
                                                  "POST",
                                                  "/v3/lease/revoke",
                                                  "{\"ID\":\"" + old_lease + "\"}");
    REQUIRE(revoke.status == 200);
    CHECK_FALSE(cluster_of(io, *a).leader);
    auto r = run(io, a->update_leader(std::nullopt));
    REQUIRE(r.has_value());
    CHECK(*r);
    CHECK(a->lease_id_for_test() != old_lease);
    auto c = cluster_of(io, *a);
    REQUIRE(c.leader);
    CHECK(c.leader->name == "node1");
    CHECK(c.leader->owner == a->lease_id_for_test());
}

TEST_CASE("delete_leader only deletes our own key", "[etcd3]") {
    net::io_context io;
    const auto scope = unique_scope("del");
    auto a = make_dcs(io, scope, "node1");
    auto b = make_dcs(io, scope, "node2");
    REQUIRE(*run(io, a->attempt_to_acquire_leader()));
    auto rb = run(io, b->delete_leader(std::nullopt));
    REQUIRE(rb.has_value());
    CHECK_FALSE(*rb);
    CHECK(leader_name(io, *a) == "node1");
    auto ra = run(io, a->delete_leader(std::int64_t{1234}));
    REQUIRE(ra.has_value());
    CHECK(*ra);
    auto c = cluster_of(io, *a);
    CHECK_FALSE(c.leader);
    CHECK(c.last_lsn == 1234);  // status written before the release
}

TEST_CASE("close_session deletes the leader and member keys at once", "[etcd3]") {
    net::io_context io;
    const auto scope = unique_scope("close");
    auto a = make_dcs(io, scope, "node1");
    auto b = make_dcs(io, scope, "node2");
    REQUIRE(*run(io, a->touch_member(R"({"role":"primary","state":"running"})")));
    REQUIRE(*run(io, b->touch_member(R"({"role":"replica","state":"running"})")));
    REQUIRE(*run(io, a->attempt_to_acquire_leader()));
    auto before = cluster_of(io, *b);
    REQUIRE(before.leader);
    REQUIRE(before.members.size() == 2);
    REQUIRE(run(io, a->close_session()));
    CHECK(a->lease_id_for_test().empty());
    auto after = cluster_of(io, *b);
    CHECK_FALSE(after.leader);
    REQUIRE(after.members.size() == 1);
    CHECK(after.members[0].name == "node2");
}

TEST_CASE("lease expiry removes the leader key within ttl and fires the watch", "[etcd3]") {
    net::io_context io;
    const auto scope = unique_scope("expiry");
    auto a = make_dcs(io, scope, "node1");
    auto b = make_dcs(io, scope, "node2");
    int events = 0;
    b->start([&events] { ++events; });
    pump_for(io, 300ms);  // let the watch get established
    REQUIRE(*run(io, a->attempt_to_acquire_leader()));
    CHECK(pump_until(
        io, [&events] { return events >= 1; }, 5s));  // PUT event
    const int after_put = events;
    const auto stopped_at = Clock::now();
    a.reset();  // the node dies: no keepalive, no revoke
    const bool gone = pump_until(
        io,
        [&] {
            auto c = cluster_of(io, *b);
            return !c.leader.has_value();
        },
        2s + 4s);
    const auto took = Clock::now() - stopped_at;
    CHECK(gone);
    CHECK(took < 6s);
    CHECK(pump_until(
        io, [&] { return events > after_put; }, 3s));  // DELETE event
    b->stop();
    pump_for(io, 100ms);
}

TEST_CASE("the watch fires when another node takes over the leader key", "[etcd3]") {
    net::io_context io;
    const auto scope = unique_scope("watch");
    auto a = make_dcs(io, scope, "node1");
    auto b = make_dcs(io, scope, "node2");
    REQUIRE(*run(io, a->attempt_to_acquire_leader()));
    int events = 0;
    b->start([&events] { ++events; });
    pump_for(io, 300ms);
    CHECK(events == 0);  // no replay of old events
    REQUIRE(*run(io, a->delete_leader(std::nullopt)));
    CHECK(pump_until(
        io, [&events] { return events >= 1; }, 5s));
    const int seen = events;
    REQUIRE(*run(io, b->attempt_to_acquire_leader()));
    CHECK(pump_until(
        io, [&] { return events > seen; }, 5s));
    b->stop();
    pump_for(io, 100ms);
}

TEST_CASE("touch_member JSON round-trips into core::Member", "[etcd3]") {
    net::io_context io;
    const auto scope = unique_scope("member");
    auto a = make_dcs(io, scope, "node1");
    const std::string data =
        R"({"conn_url":"postgres://127.0.0.1:5432/postgres","api_url":"http://127.0.0.1:8008/patroni",)"
        R"("state":"running","role":"replica","xlog_location":50331648,"replay_lsn":50331600,)"
        R"("receive_lsn":50331648,"replication_state":"streaming","timeline":3,)"
        R"("tags":{"nofailover":true,"clonefrom":true},"version":"4.1.4"})";
    auto r = run(io, a->touch_member(data));
    REQUIRE(r.has_value());
    CHECK(*r);
    auto c = cluster_of(io, *a);
    const auto* m = c.member("node1");
    REQUIRE(m != nullptr);
    CHECK(m->data_json == data);
    CHECK(m->conn_url == "postgres://127.0.0.1:5432/postgres");
    CHECK(m->api_url == "http://127.0.0.1:8008/patroni");
    CHECK(m->state == "running");
    CHECK(m->role == "replica");
    CHECK(m->xlog_location == 50331648);
    CHECK(m->replay_lsn == 50331600);
    CHECK(m->receive_lsn == 50331648);
    CHECK(m->replication_state == "streaming");
    CHECK(m->timeline == 3);
    CHECK(m->nofailover);
    CHECK(m->clonefrom);
    CHECK(m->owner == a->lease_id_for_test());
    CHECK(m->version > 0);

    // Unchanged data: no new write (the revision stays).
    REQUIRE(*run(io, a->touch_member(data)));
    CHECK(cluster_of(io, *a).member("node1")->version == m->version);
    // Changed data: written.
    REQUIRE(*run(io, a->touch_member(R"({"role":"primary"})")));
    CHECK(cluster_of(io, *a).member("node1")->role == "primary");
    // delete_member removes it.
    REQUIRE(run(io, a->delete_member()));
    CHECK(cluster_of(io, *a).members.empty());
}

TEST_CASE("config, failover and sync compare-and-swap on the version", "[etcd3]") {
    net::io_context io;
    const auto scope = unique_scope("cas");
    auto a = make_dcs(io, scope, "node1");
    REQUIRE(*run(io, a->set_config(R"({"ttl":30})", std::nullopt)));
    auto c1 = cluster_of(io, *a);
    REQUIRE(c1.config_json);
    CHECK(*c1.config_json == R"({"ttl":30})");
    const auto v1 = c1.config_version;

    auto ok = run(io, a->set_config(R"({"ttl":40})", v1));
    REQUIRE(ok.has_value());
    CHECK(*ok);
    auto stale = run(io, a->set_config(R"({"ttl":50})", v1));
    REQUIRE(stale.has_value());
    CHECK_FALSE(*stale);
    auto c2 = cluster_of(io, *a);
    CHECK(*c2.config_json == R"({"ttl":40})");
    CHECK(c2.config_version > v1);

    REQUIRE(*run(io, a->set_failover(R"({"leader":"node1","member":"node2"})", std::nullopt)));
    auto f = cluster_of(io, *a).failover;
    REQUIRE(f.has_value());
    CHECK(f->member == "node2");
    CHECK_FALSE(*run(io, a->set_failover("{}", f->version - 1)));
    CHECK(*run(io, a->set_failover("{}", f->version)));
    CHECK(cluster_of(io, *a).failover->empty());

    REQUIRE(*run(io, a->set_sync(R"({"leader":"node1","sync_standby":null})", std::nullopt)));
    auto sv = cluster_of(io, *a).sync_version;
    CHECK_FALSE(*run(io, a->set_sync(R"({"leader":"node1","sync_standby":"node2"})", sv + 100)));
    CHECK(*run(io, a->set_sync(R"({"leader":"node1","sync_standby":"node2"})", sv)));

    REQUIRE(*run(io, a->set_history(R"([[1,25165984,"no recovery target specified"]])")));
    auto h = cluster_of(io, *a).history;
    REQUIRE(h.size() == 1);
    CHECK(h[0].lsn == 25165984);
}

TEST_CASE("a stopped etcd makes get_cluster fail within the retry deadline", "[etcd3]") {
    net::io_context io;
    EtcdServer own;  // a server of our own to stop
    auto dcs = make_dcs(io, unique_scope("down"), "node1", DcsTiming{10, 1, 3}, settings_for(own));
    auto up = run(io, dcs->get_cluster());
    REQUIRE(up.has_value());
    own.stop();
    const auto started = Clock::now();
    auto r = run(io, dcs->get_cluster());
    const auto took = Clock::now() - started;
    REQUIRE_FALSE(r.has_value());
    CHECK((r.error() == Errc::Unavailable || r.error() == Errc::Timeout));
    CHECK(took <= 3s + 1500ms);
    auto w = run(io, dcs->attempt_to_acquire_leader());
    REQUIRE_FALSE(w.has_value());
}

TEST_CASE("a dead first host is skipped in favour of the next one", "[etcd3]") {
    net::io_context io;
    auto settings = settings_for(etcd());
    settings.hosts.insert(settings.hosts.begin(),
                          "127.0.0.1:" + std::to_string(pgwarden::testing::free_port()));
    auto dcs = make_dcs(io, unique_scope("multi"), "node1", DcsTiming{10, 1, 3}, settings);
    auto r = run(io, dcs->attempt_to_acquire_leader());
    REQUIRE(r.has_value());
    CHECK(*r);
}

TEST_CASE("authentication: a token is obtained and sent, a wrong password is Unauthorized",
          "[etcd3][auth]") {
    net::io_context io;
    EtcdServer own;
    const auto port = own.client_port();
    auto post = [port](const std::string& path, const std::string& body, std::string token = "") {
        std::vector<std::pair<std::string, std::string>> headers;
        if (!token.empty()) {
            headers.emplace_back("Authorization", token);
        }
        return pgwarden::testing::http_request("127.0.0.1", port, "POST", path, body, headers);
    };

    SECTION("username set but auth disabled: runs without a token") {
        auto settings = settings_for(own);
        settings.username = "patroni";
        settings.password = "secret";
        auto dcs = make_dcs(io, unique_scope("noauth"), "node1", DcsTiming{10, 1, 3}, settings);
        auto r = run(io, dcs->attempt_to_acquire_leader());
        REQUIRE(r.has_value());
        CHECK(*r);
    }

    SECTION("auth enabled") {
        REQUIRE(post("/v3/auth/user/add", R"({"name":"root","password":"rootpw"})").status == 200);
        post("/v3/auth/role/add", R"({"name":"root"})");
        REQUIRE(post("/v3/auth/user/grant", R"({"user":"root","role":"root"})").status == 200);
        REQUIRE(post("/v3/auth/enable", "{}").status == 200);

        auto settings = settings_for(own);
        settings.username = "root";
        settings.password = "rootpw";
        const auto scope = unique_scope("auth");
        auto dcs = make_dcs(io, scope, "node1", DcsTiming{10, 1, 3}, settings);
        auto won = run(io, dcs->attempt_to_acquire_leader());
        REQUIRE(won.has_value());
        CHECK(*won);
        auto c = run(io, dcs->get_cluster());
        REQUIRE(c.has_value());
        REQUIRE(c->leader);
        CHECK(c->leader->name == "node1");

        int events = 0;
        dcs->start([&events] { ++events; });
        pump_for(io, 300ms);
        REQUIRE(*run(io, dcs->delete_leader(std::nullopt)));
        CHECK(pump_until(
            io, [&events] { return events >= 1; }, 5s));
        dcs->stop();

        auto wrong = settings;
        wrong.password = "nope";
        auto bad = make_dcs(io, scope, "node2", DcsTiming{10, 1, 3}, wrong);
        auto r = run(io, bad->get_cluster());
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error() == Errc::Unauthorized);

        auto none = make_dcs(io, scope, "node3", DcsTiming{10, 1, 3}, settings_for(own));
        auto r2 = run(io, none->get_cluster());
        REQUIRE_FALSE(r2.has_value());
        CHECK(r2.error() == Errc::Unauthorized);
        pump_for(io, 100ms);
    }
}
