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
