// Etcd3Dcs against a real etcd 3.4 on loopback (spec/etcd3-gateway.md §12): the etcd-only
// behaviour (key prefix, several hosts, authentication). The scenarios every backend must pass
// are in dcs_contract_test.cpp.
#include "dcs_backends.hpp"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

using namespace pgwarden::dcs_test;
using pgwarden::dcs::DcsTiming;
using pgwarden::dcs::Errc;
using pgwarden::dcs::Etcd3Dcs;
using pgwarden::testing::EtcdServer;

namespace {

EtcdServer& etcd() {
    static EtcdServer server;
    return server;
}

pgwarden::core::Etcd3Settings settings_for(const EtcdServer& server) {
    pgwarden::core::Etcd3Settings s;
    s.hosts = {server.endpoint()};
    return s;
}

std::unique_ptr<Etcd3Dcs> make_dcs(net::io_context& io,
                                   const std::string& scope,
                                   const std::string& name,
                                   DcsTiming timing,
                                   std::optional<pgwarden::core::Etcd3Settings> settings = {}) {
    auto dcs = std::make_unique<Etcd3Dcs>(
        io.get_executor(), settings ? *settings : settings_for(etcd()), "/service/", scope, name);
    dcs->set_timing(timing);
    return dcs;
}

}  // namespace

TEST_CASE("keys live under /<namespace>/<scope>/", "[etcd3]") {
    net::io_context io;
    auto dcs = make_dcs(io, unique_scope("empty"), "node1", DcsTiming{2, 1, 3});
    CHECK(dcs->prefix().rfind("/service/empty-", 0) == 0);
    CHECK(dcs->prefix().back() == '/');
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

// ---- the watch-fed cache -----------------------------------------------------------------

namespace {

bool cache_ready(net::io_context& io, const Etcd3Dcs& d) {
    return pump_until(
        io, [&d] { return d.cache_valid_for_test(); }, 5s);
}

// A write by another client, straight over the gateway.
void raw_put(const EtcdServer& server, const std::string& key, const std::string& value) {
    const nlohmann::json req = {{"key", base64_encode(key)}, {"value", base64_encode(value)}};
    auto r = pgwarden::testing::http_request(
        "127.0.0.1", server.client_port(), "POST", "/v3/kv/put", req.dump());
    REQUIRE(r.status == 200);
}

bool raw_revoke(const EtcdServer& server, const std::string& lease) {
    auto r = pgwarden::testing::http_request("127.0.0.1",
                                             server.client_port(),
                                             "POST",
                                             "/v3/lease/revoke",
                                             "{\"ID\":\"" + lease + "\"}");
    return r.status == 200;
}

}  // namespace

TEST_CASE("cache: idle HA cycles send only the lease keepalive, no range and no txn",
          "[etcd3][cache]") {
    net::io_context io;
    const auto scope = unique_scope("idle");
    const DcsTiming timing{10, 1, 3};  // loop_wait 1 s
    auto leader = make_dcs(io, scope, "node1", timing);
    auto replica = make_dcs(io, scope, "node2", timing);
    const std::string leader_json = R"({"role":"primary","state":"running","xlog_location":1})";
    const std::string replica_json = R"({"role":"replica","state":"running"})";
    REQUIRE(*run(io, leader->touch_member(leader_json)));
    REQUIRE(*run(io, leader->attempt_to_acquire_leader()));
    REQUIRE(*run(io, replica->touch_member(replica_json)));
    leader->start([] {});
    replica->start([] {});
    REQUIRE(cache_ready(io, *leader));
    REQUIRE(cache_ready(io, *replica));

    // One HA cycle of each, as the HA loop does it: read, renew (leader), touch the member key.
    auto leader_cycle = [&] {
        auto c = cluster_of(io, *leader);
        REQUIRE(c.leader);
        CHECK(c.leader->name == "node1");
        CHECK(c.leader->owner == leader->lease_id_for_test());
        CHECK(c.members.size() == 2);
        auto r = run(io, leader->update_leader(std::int64_t{1}));
        REQUIRE(r.has_value());
        REQUIRE(*r);
        REQUIRE(*run(io, leader->touch_member(leader_json)));
    };
    auto replica_cycle = [&] {
        auto c = cluster_of(io, *replica);
        REQUIRE(c.leader);
        CHECK(c.leader->name == "node1");
        CHECK(c.last_lsn == 1);
        CHECK(c.members.size() == 2);
        REQUIRE(*run(io, replica->touch_member(replica_json)));
    };
    leader_cycle();  // the first renewal writes /status
    CHECK(pump_until(
        io, [&] { return cluster_of(io, *replica).last_lsn == 1; }, 5s));
    pump_for(io, 1100ms);  // loop_wait: the replica's next touch_member renews its lease
    replica_cycle();

    const auto leader_before = leader->requests_for_test();
    const auto keepalives_before = leader->requests_for_test("/lease/keepalive");
    const auto replica_before = replica->requests_for_test();
    constexpr int kCycles = 5;
    for (int i = 0; i < kCycles; ++i) {
        leader_cycle();
        replica_cycle();
    }
    // Leader: the forced keepalive of every renewal and nothing else.
    CHECK(leader->requests_for_test() - leader_before == kCycles);
    CHECK(leader->requests_for_test("/lease/keepalive") - keepalives_before == kCycles);
    // Replica: its keepalive at most once per loop_wait, so none within these cycles...
    CHECK(replica->requests_for_test() == replica_before);
    // ...and exactly one once loop_wait has passed.
    pump_for(io, 1100ms);
    replica_cycle();
    CHECK(replica->requests_for_test() - replica_before == 1);
    CHECK(replica->requests_for_test("/lease/keepalive") >= 1);
    for (auto* d : {leader.get(), replica.get()}) {
        INFO("watch requests " << d->requests_for_test("/watch"));
        CHECK(d->requests_for_test("/watch") == 1);  // one stream all along
    }
    leader->stop();
    replica->stop();
    pump_for(io, 100ms);
}

TEST_CASE("cache: our own writes are read back from the cache, not from etcd", "[etcd3][cache]") {
    net::io_context io;
    const auto scope = unique_scope("ryw");
    auto dcs = make_dcs(io, scope, "node1", DcsTiming{10, 1, 3});
    dcs->start([] {});
    REQUIRE(cache_ready(io, *dcs));
    const auto ranges = dcs->requests_for_test("/kv/range");
    constexpr int kWrites = 10;
    for (int i = 0; i < kWrites; ++i) {
        const std::string cfg = R"({"loop_wait":)" + std::to_string(i) + "}";
        REQUIRE(*run(io, dcs->set_config(cfg, std::nullopt)));
        auto c = cluster_of(io, *dcs);  // waits for the watch to bring the write
        REQUIRE(c.config_json);
        CHECK(*c.config_json == cfg);
        // A compare that fails is seen as well (nothing was written: the cache stays usable).
        auto stale = run(io, dcs->set_config("{}", c.config_version - 1));
        REQUIRE(stale.has_value());
        CHECK_FALSE(*stale);
        CHECK(*cluster_of(io, *dcs).config_json == cfg);
    }
    // The watch normally brings a write within milliseconds; the 150 ms wait may run out on a
    // loaded machine, and then get_cluster reads directly. Most reads must come from the cache.
    CHECK(dcs->requests_for_test("/kv/range") - ranges <= 2);
    dcs->stop();
    pump_for(io, 100ms);
}

TEST_CASE("cache: without start(), every get_cluster reads etcd", "[etcd3][cache]") {
    net::io_context io;
    auto dcs = make_dcs(io, unique_scope("nowatch"), "node1", DcsTiming{10, 1, 3});
    for (int i = 0; i < 3; ++i) {
        cluster_of(io, *dcs);
    }
    CHECK_FALSE(dcs->cache_valid_for_test());
    CHECK(dcs->requests_for_test("/kv/range") == 3);
}

TEST_CASE("cache: a raw write by another client reaches get_cluster, a stolen key ends the lease",
          "[etcd3][cache]") {
    net::io_context io;
    const auto scope = unique_scope("steal");
    auto dcs = make_dcs(io, scope, "node1", DcsTiming{10, 1, 3});
    REQUIRE(*run(io, dcs->attempt_to_acquire_leader()));
    dcs->start([] {});
    REQUIRE(cache_ready(io, *dcs));
    const auto txns = dcs->requests_for_test("/kv/txn");
    REQUIRE(*run(io, dcs->update_leader(std::nullopt)));
    CHECK(dcs->requests_for_test("/kv/txn") == txns);  // the cache proved the key ours

    raw_put(etcd(), dcs->prefix() + "failover", R"({"member":"node2"})");
    CHECK(pump_until(
        io,
        [&] {
            auto f = cluster_of(io, *dcs).failover;
            return f && f->member == "node2";
        },
        5s));

    // Someone else overwrites the leader key (no lease): the next renewal must see it.
    raw_put(etcd(), dcs->prefix() + "leader", "node2");
    CHECK(pump_until(
        io, [&] { return leader_name(io, *dcs) == "node2"; }, 5s));
    auto r = run(io, dcs->update_leader(std::nullopt));
    REQUIRE(r.has_value());
    CHECK_FALSE(*r);
    dcs->stop();
    pump_for(io, 100ms);
}

TEST_CASE("cache: after our lease was revoked, update_leader and touch_member re-take the keys",
          "[etcd3][cache]") {
    net::io_context io;
    const auto scope = unique_scope("revoked");
    auto dcs = make_dcs(io, scope, "node1", DcsTiming{10, 1, 3});
    const std::string member = R"({"role":"primary","state":"running"})";
    REQUIRE(*run(io, dcs->touch_member(member)));
    REQUIRE(*run(io, dcs->attempt_to_acquire_leader()));
    dcs->start([] {});
    REQUIRE(cache_ready(io, *dcs));
    const auto old_lease = dcs->lease_id_for_test();
    REQUIRE(raw_revoke(etcd(), old_lease));
    // The DELETE events of the revoked lease's keys reach the cache.
    CHECK(pump_until(
        io,
        [&] {
            auto c = cluster_of(io, *dcs);
            return !c.leader && c.members.empty();
        },
        5s));
    auto r = run(io, dcs->update_leader(std::nullopt));  // keepalive: TTL absent -> new lease
    REQUIRE(r.has_value());
    CHECK(*r);
    const auto new_lease = dcs->lease_id_for_test();
    CHECK(new_lease != old_lease);
    REQUIRE(*run(io, dcs->touch_member(member)));
    auto c = cluster_of(io, *dcs);  // read-your-writes
    REQUIRE(c.leader);
    CHECK(c.leader->owner == new_lease);
    REQUIRE(c.member("node1") != nullptr);
    CHECK(c.member("node1")->owner == new_lease);
    dcs->stop();
    pump_for(io, 100ms);
}

TEST_CASE("cache: leader, failover and config changes wake the HA loop, member changes do not",
          "[etcd3][cache]") {
    net::io_context io;
    const auto scope = unique_scope("wake");
    auto watcher = make_dcs(io, scope, "node1", DcsTiming{10, 1, 3});
    auto other = make_dcs(io, scope, "node2", DcsTiming{10, 1, 3});
    int events = 0;
    watcher->start([&events] { ++events; });
    REQUIRE(cache_ready(io, *watcher));

    REQUIRE(*run(io, other->touch_member(R"({"role":"replica"})")));
    REQUIRE(*run(io, other->touch_member(R"({"role":"replica","state":"running"})")));
    REQUIRE(*run(io, other->set_history("[]")));
    CHECK(pump_until(
        io, [&] { return cluster_of(io, *watcher).member("node2") != nullptr; }, 5s));
    pump_for(io, 200ms);  // a wake-up would have been posted by now
    CHECK(events == 0);

    REQUIRE(*run(io, other->set_failover(R"({"member":"node2"})", std::nullopt)));
    CHECK(pump_until(
        io, [&] { return events >= 1; }, 5s));
    const int after_failover = events;
    REQUIRE(*run(io, other->set_config(R"({"ttl":30})", std::nullopt)));
    CHECK(pump_until(
        io, [&] { return events > after_failover; }, 5s));
    const int after_config = events;
    REQUIRE(*run(io, other->attempt_to_acquire_leader()));
    CHECK(pump_until(
        io, [&] { return events > after_config; }, 5s));
    watcher->stop();
    pump_for(io, 100ms);
}

TEST_CASE("cache: with etcd stopped, get_cluster is an error after the stream broke",
          "[etcd3][cache]") {
    net::io_context io;
    auto own = std::make_unique<EtcdServer>();
    auto dcs =
        make_dcs(io, unique_scope("outage"), "node1", DcsTiming{10, 1, 2}, settings_for(*own));
    REQUIRE(*run(io, dcs->attempt_to_acquire_leader()));
    dcs->start([] {});
    REQUIRE(cache_ready(io, *dcs));
    const auto ranges = dcs->requests_for_test("/kv/range");
    REQUIRE(cluster_of(io, *dcs).leader);
    CHECK(dcs->requests_for_test("/kv/range") == ranges);  // from the cache
    own->stop();
    CHECK(pump_until(
        io, [&] { return !dcs->cache_valid_for_test(); }, 5s));
    auto r = run(io, dcs->get_cluster());
    REQUIRE_FALSE(r.has_value());
    CHECK((r.error() == Errc::Unavailable || r.error() == Errc::Timeout));
    CHECK_FALSE(dcs->cache_valid_for_test());
    dcs->stop();
    pump_for(io, 100ms);
}
