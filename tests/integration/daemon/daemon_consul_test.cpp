// The pgwarden daemon against Consul: the project's Consul API test server always, and a real
// `consul agent -dev` too when the binary is on PATH.
#include "harness.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>

using namespace pgwarden::daemon_test;
using namespace std::chrono_literals;

namespace {

// Service IDs of the instances Consul would hand out for `tag` (passing checks only).
std::vector<std::string> passing_instances(const ConsulBackend& consul,
                                           const std::string& service,
                                           const std::string& tag) {
    auto r = consul.http("/v1/health/service/" + service + "?passing&tag=" + tag);
    std::vector<std::string> ids;
    if (r.status != 200) {
        return ids;
    }
    auto body = json::parse(r.body, nullptr, false);
    if (!body.is_array()) {
        return ids;
    }
    for (const auto& e : body) {
        ids.push_back(e["Service"]["ID"].get<std::string>());
    }
    return ids;
}

void stop_orphaned_postmaster(const Node& n) {
    const int pm = postmaster_pid(n);
    if (pm > 0 && ::kill(pm, SIGQUIT) == 0) {
        t::wait_until([&] { return ::kill(pm, 0) != 0; }, 30s);
    }
}

}  // namespace

TEST_CASE("daemon (consul test server): one node's life, as on etcd", "[daemon][consul]") {
    ConsulBackend consul;
    single_node_lifecycle(consul, "it-consul");
}

TEST_CASE("daemon (consul agent -dev): one node's life, as on etcd", "[daemon][consul][real]") {
    if (!t::ConsulServer::real_consul_available()) {
        WARN("SKIPPED: no `consul` binary on PATH; the real-agent tier did not run");
        return;
    }
    t::ConsulOptions o;
    o.kind = t::ConsulKind::RealAgent;
    ConsulBackend consul(o);
    single_node_lifecycle(consul, "it-consul-real");
}

TEST_CASE("daemon (consul): Consul DNS's primary tag follows the primary, also across a restart",
          "[daemon][consul]") {
    ConsulBackend consul;
    t::TempDir root;
    const std::string scope = "it-svc";
    Node n1 = make_node(root, "node1", scope, consul);
    auto d1 = start_pgwarden(n1);
    INFO("node1 log: " << n1.log.string());
    REQUIRE(t::wait_until([&] { return http_status(n1, "/primary") == 200; }, 90s));
    const std::vector<std::string> only_node1{scope + "/node1"};
    REQUIRE(t::wait_until([&] { return passing_instances(consul, scope, "primary") == only_node1; },
                          30s));
    CHECK(passing_instances(consul, scope, "master") == only_node1);
    CHECK(passing_instances(consul, scope, "replica").empty());

    // SIGTERM deregisters the service; a restart registers it again as primary.
    d1.signal(SIGTERM);
    REQUIRE(d1.wait_exit(90s) == 0);
    CHECK(consul.http("/v1/health/service/" + scope).body == "[]");
    auto again = start_pgwarden(n1);
    REQUIRE(t::wait_until([&] { return http_status(n1, "/primary") == 200; }, 90s));
    REQUIRE(t::wait_until([&] { return passing_instances(consul, scope, "primary") == only_node1; },
                          30s));
    CHECK(again.stop(60s) == 0);
}

TEST_CASE("daemon (consul): kill -9 of pgwarden lets its session expire within ttl",
          "[daemon][consul]") {
    ConsulBackend consul;
    t::TempDir root;
    const std::string scope = "it-expire";
    NodeOptions o;
    o.ttl = 20;  // session TTL 10 s; Consul invalidates it at most 2 x 10 s after the last renew
    Node n1 = make_node(root, "node1", scope, consul, o);
    auto d1 = start_pgwarden(n1);
    INFO("node1 log: " << n1.log.string());
    REQUIRE(t::wait_until([&] { return http_status(n1, "/primary") == 200; }, 90s));
    REQUIRE(consul.get(scope, "leader") == std::string("node1"));

    REQUIRE(d1.signal(SIGKILL));
    const auto killed = std::chrono::steady_clock::now();
    d1.wait_exit(10s);
    // The lease can have been renewed at most just before the kill: ttl (+ the server's
    // reaper granularity) bounds the wait.
    REQUIRE(t::wait_until([&] { return !consul.get(scope, "leader").has_value(); }, 25s));
    const auto gone_after = std::chrono::steady_clock::now() - killed;
    CHECK(gone_after <= std::chrono::seconds(o.ttl + 2));
    CHECK_FALSE(consul.get(scope, "members/node1").has_value());
    stop_orphaned_postmaster(n1);
}

TEST_CASE("daemon (consul): a wrong ACL token is refused, logged, and never read as no leader",
          "[daemon][consul][acl]") {
    t::ConsulOptions co;
    co.acl_master_token = "management-token";
    ConsulBackend consul(co, "wrong-token");
    t::TempDir root;
    const std::string scope = "it-acl";
    Node n1 = make_node(root, "node1", scope, consul);
    auto d1 = start_pgwarden(n1);
    INFO("node1 log: " << n1.log.string());
    REQUIRE(t::wait_until([&] { return read_file(n1.log).find("403") != std::string::npos; }, 60s));
    // It did not bootstrap, did not take any key, and says the DCS is not accessible.
    CHECK_FALSE(fs::exists(n1.data_dir() / "PG_VERSION"));
    CHECK_FALSE(consul.get(scope, "initialize").has_value());
    CHECK_FALSE(consul.get(scope, "leader").has_value());
    CHECK(read_file(n1.log).find("DCS is not accessible") != std::string::npos);
    CHECK(read_file(n1.log).find("trying to bootstrap") == std::string::npos);
    CHECK(http_status(n1, "/primary") == 503);
    CHECK(d1.stop(30s) == 0);
}

TEST_CASE(
    "daemon (consul): the operators' patroni-consul.yml runs a node with only its "
    "addresses and paths changed",
    "[daemon][consul][compat]") {
    ConsulBackend consul;
    t::TempDir root;
    Node n;
    n.name = "host-01";
    n.scope = "postgres";
    n.api_port = t::free_port();
    n.pg_port = t::free_port();
    n.dir = fs::path(root.path()) / "host-01";
    fs::create_directories(n.dir);
    n.config = n.dir / "patroni.yml";
    n.log = n.dir / "pgwarden.log";

    std::string yml = read_file(fs::path(PGW_SOURCE_DIR) / "config" / "patroni-consul.yml");
    REQUIRE_FALSE(yml.empty());
    auto replace_all = [&](const std::string& from, const std::string& to) {
        std::size_t count = 0;
        for (auto pos = yml.find(from); pos != std::string::npos;
             pos = yml.find(from, pos + to.size())) {
            yml.replace(pos, from.size(), to);
            ++count;
        }
        REQUIRE(count > 0);
    };
    const std::string api = "127.0.0.1:" + std::to_string(n.api_port);
    const std::string pg = "127.0.0.1:" + std::to_string(n.pg_port);
    replace_all("localhost:8500", consul.server().endpoint());
    replace_all("0.0.0.0:8008", api);
    replace_all("127.0.0.1:8008", api);
    replace_all("0.0.0.0:5432", pg);
    replace_all("127.0.0.1:5432", pg);
    replace_all("/var/lib/postgresql/15/main/", n.data_dir().string() + "/");
    replace_all("/var/lib/postgresql/15/.pgpass", (n.dir / "pgpass").string());
    std::ofstream(n.config) << yml;
    chown_to_unprivileged(n.dir);

    auto d = start_pgwarden(n);
    INFO("log: " << n.log.string());
    REQUIRE(t::wait_until([&] { return http_status(n, "/primary") == 200; }, 90s));
    json st = patroni(n);
    CHECK(st["state"] == "running");
    CHECK(st["role"] == "primary");
    CHECK(st["patroni"]["scope"] == "postgres");
    CHECK(consul.get("postgres", "leader") == std::string("host-01"));
    // register_service: true -> Consul DNS primary.postgres.service.consul is this node.
    REQUIRE(t::wait_until(
        [&] {
            auto r = consul.http("/v1/health/service/postgres?passing&tag=primary");
            auto body = json::parse(r.body, nullptr, false);
            return r.status == 200 && body.is_array() && body.size() == 1 &&
                   body[0]["Service"]["ID"] == "postgres/host-01";
        },
        30s));
    // restapi.auth 'patroni:patroni' protects the unsafe endpoints.
    CHECK(t::http_request("127.0.0.1", n.api_port, "POST", "/restart", "{}").status == 401);
    CHECK(d.stop(60s) == 0);
}
