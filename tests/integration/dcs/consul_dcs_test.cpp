// ConsulDcs against the in-repo Consul API test server (tests/consul): the Consul-only
// behaviour of spec/consul-api.md §11 and §14 — the session's shape and renewal, session loss,
// ACL refusals, a leaderless Consul, the ttl check against SessionTTLMin and the service
// registration done from touch_member. The scenarios every backend must pass are in
// dcs_contract_test.cpp.
#include "dcs_backends.hpp"
#include "support/test_certs.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <set>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace pgwarden::dcs_test;
using nlohmann::json;
using pgwarden::dcs::ConsulDcs;
using pgwarden::dcs::DcsTiming;
using pgwarden::dcs::Errc;

namespace {

ConsulBackend& consul() {
    static ConsulBackend server(consul_test_server_options("1s"));
    return server;
}

constexpr DcsTiming kFast{2, 1, 3};

std::unique_ptr<ConsulDcs> make_consul(net::io_context& io,
                                       const std::string& scope,
                                       const std::string& name,
                                       DcsTiming timing = kFast) {
    return consul().make_consul(io, scope, name, timing, consul().settings());
}

json session_info(ConsulBackend& server, const std::string& id) {
    auto r = server.http("GET", "/v1/session/info/" + id);
    INFO("session info " << id << ": " << r.status << " " << r.body);
    REQUIRE(r.status == 200);
    auto body = json::parse(r.body);
    REQUIRE(body.is_array());
    return body;
}

// A tiny HTTP/1.1 responder on 127.0.0.1 answering 200 to everything: the target of the
// service's health check (what the REST API's /primary would answer). Records the paths asked.
class OkResponder {
public:
    OkResponder() {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(fd_ >= 0);
        int one = 1;
        ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(fd_, 16) == 0);
        socklen_t len = sizeof addr;
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~OkResponder() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }
    OkResponder(const OkResponder&) = delete;
    OkResponder& operator=(const OkResponder&) = delete;

    unsigned short port() const { return port_; }
    std::set<std::string> paths() const {
        std::lock_guard lock(mutex_);
        return paths_;
    }

private:
    void serve() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) {
                continue;
            }
            const int c = ::accept(fd_, nullptr, nullptr);
            if (c < 0) {
                continue;
            }
            std::string request;
            char buf[2048];
            while (request.find("\r\n\r\n") == std::string::npos) {
                pollfd cp{c, POLLIN, 0};
                if (::poll(&cp, 1, 1000) <= 0) {
                    break;
                }
                const auto n = ::read(c, buf, sizeof buf);
                if (n <= 0) {
                    break;
                }
                request.append(buf, static_cast<std::size_t>(n));
            }
            const auto sp1 = request.find(' ');
            const auto sp2 = request.find(' ', sp1 + 1);
            if (sp1 != std::string::npos && sp2 != std::string::npos) {
                std::lock_guard lock(mutex_);
                paths_.insert(request.substr(sp1 + 1, sp2 - sp1 - 1));
            }
            static constexpr std::string_view kReply =
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
            [[maybe_unused]] auto w = ::write(c, kReply.data(), kReply.size());
            ::close(c);
        }
    }

    int fd_ = -1;
    unsigned short port_ = 0;
    std::atomic<bool> stop_{false};
    mutable std::mutex mutex_;
    std::set<std::string> paths_;
    std::thread thread_;
};

// IDs of the passing instances of `service` carrying `tag`.
std::vector<std::string> passing_instances(ConsulBackend& server,
                                           const std::string& service,
                                           const std::string& tag) {
    auto r = server.http("GET", "/v1/health/service/" + service + "?passing&tag=" + tag);
    INFO("health " << service << " tag " << tag << ": " << r.status << " " << r.body);
    REQUIRE(r.status == 200);
    std::vector<std::string> ids;
    for (const auto& e : json::parse(r.body)) {
        ids.push_back(e["Service"]["ID"].get<std::string>());
    }
    return ids;
}

json agent_services(ConsulBackend& server) {
    auto r = server.http("GET", "/v1/agent/services");
    REQUIRE(r.status == 200);
    return json::parse(r.body);
}

}  // namespace

TEST_CASE("keys live under service/<scope>/ without a leading slash", "[consul]") {
    net::io_context io;
    auto dcs = make_consul(io, unique_scope("prefix"), "node1");
    CHECK(dcs->prefix().rfind("service/prefix-", 0) == 0);
    CHECK(dcs->prefix().back() == '/');
}

TEST_CASE("the session has TTL ttl/2, LockDelay 1ms, Behavior delete and no checks", "[consul]") {
    net::io_context io;
    const auto scope = unique_scope("sess");
    auto a = make_consul(io, scope, "node1", DcsTiming{4, 1, 3});
    REQUIRE(*run(io, a->attempt_to_acquire_leader()));
    const auto id = a->session_for_test();
    REQUIRE_FALSE(id.empty());
    auto info = session_info(consul(), id);
    REQUIRE(info.size() == 1);
    const auto& s = info[0];
    INFO(s.dump());
    CHECK(s["Name"] == scope + "-node1");
    CHECK(s["TTL"] == "2s");           // ttl 4 / 2: Consul expires it after 2 x TTL = ttl
    CHECK(s["LockDelay"] == 1000000);  // 1 ms in nanoseconds
    CHECK(s["Behavior"] == "delete");
    CHECK((!s.contains("Checks") || s["Checks"].is_null() || s["Checks"].empty()));
    CHECK((!s.contains("NodeChecks") || s["NodeChecks"].is_null() || s["NodeChecks"].empty()));
    CHECK((!s.contains("ServiceChecks") || s["ServiceChecks"].is_null() ||
           s["ServiceChecks"].empty()));

    SECTION("an odd ttl gives a fractional TTL") {
        auto b = make_consul(io, scope, "node2", DcsTiming{3, 1, 3});
        REQUIRE(*run(io, b->touch_member(R"({"role":"replica"})")));
        auto info2 = session_info(consul(), b->session_for_test());
        REQUIRE(info2.size() == 1);
        CHECK(info2[0]["TTL"] == "1.5s");
    }
}

TEST_CASE("renewal keeps the session alive past twice its TTL", "[consul]") {
    net::io_context io;
    const auto scope = unique_scope("renew");
    // ttl 2 -> session TTL 1 s -> without renewal it is gone 2 s after the last renew.
    auto leader = make_consul(io, scope, "node1");
    auto replica = make_consul(io, scope, "node2");
    REQUIRE(*run(io, leader->attempt_to_acquire_leader()));
    REQUIRE(*run(io, replica->touch_member(R"({"role":"replica","state":"running"})")));
    const auto leader_session = leader->session_for_test();
    const auto replica_session = replica->session_for_test();
    const auto until = Clock::now() + 4s;
    while (Clock::now() < until) {
        // The leader renews through update_leader, a replica through touch_member.
        auto r = run(io, leader->update_leader(std::nullopt));
        REQUIRE(r.has_value());
        REQUIRE(*r);
        REQUIRE(*run(io, replica->touch_member(R"({"role":"replica","state":"running"})")));
        pump_for(io, 500ms);  // the HA loop's pace (loop_wait is 1 s)
    }
    CHECK(leader->session_for_test() == leader_session);
    CHECK(replica->session_for_test() == replica_session);
    CHECK(session_info(consul(), leader_session).size() == 1);
    CHECK(session_info(consul(), replica_session).size() == 1);
    auto l = consul().read_key(scope, "leader");
    REQUIRE(l);
    CHECK(l->owner == leader_session);
    auto m = consul().read_key(scope, "members/node2");
    REQUIRE(m);
    CHECK(m->owner == replica_session);
}

TEST_CASE("a session destroyed behind the backend's back is replaced by update_leader",
          "[consul]") {
    net::io_context io;
    const auto scope = unique_scope("destroy");
    auto a = make_consul(io, scope, "node1");
    REQUIRE(*run(io, a->touch_member(R"({"role":"primary","state":"running"})")));
    REQUIRE(*run(io, a->attempt_to_acquire_leader()));
    const auto old_session = a->session_for_test();
    REQUIRE(consul().http("PUT", "/v1/session/destroy/" + old_session).status == 200);
    CHECK(session_info(consul(), old_session).empty());
    CHECK_FALSE(consul().read_key(scope, "leader"));         // Behavior delete
    CHECK_FALSE(consul().read_key(scope, "members/node1"));  // Behavior delete

    auto r = run(io, a->update_leader(std::int64_t{777}));
    REQUIRE(r.has_value());
    CHECK(*r);
    const auto new_session = a->session_for_test();
    CHECK(new_session != old_session);
    auto info = session_info(consul(), new_session);
    REQUIRE(info.size() == 1);
    CHECK(info[0]["Behavior"] == "delete");
    auto l = consul().read_key(scope, "leader");
    REQUIRE(l);
    CHECK(l->value == "node1");
    CHECK(l->owner == new_session);
    CHECK(cluster_of(io, *a).last_lsn == 777);
}

TEST_CASE("a ttl change re-creates the session and moves our leader and member keys to it",
          "[consul]") {
    net::io_context io;
    const auto scope = unique_scope("newttl");
    auto a = make_consul(io, scope, "node1", DcsTiming{10, 1, 3});  // session TTL 5 s
    REQUIRE(*run(io, a->touch_member(R"({"role":"primary","state":"running"})")));
    REQUIRE(*run(io, a->attempt_to_acquire_leader()));
    const auto old_session = a->session_for_test();
    REQUIRE(session_info(consul(), old_session).at(0)["TTL"] == "5s");

    a->set_timing(DcsTiming{4, 1, 3});  // dynamic config: ttl 4 -> session TTL 2 s
    // One HA cycle: read, keep the leader key, touch the member key.
    auto before = cluster_of(io, *a);
    REQUIRE(before.leader);
    CHECK(before.leader->owner == old_session);  // the old session is still alive
    auto r = run(io, a->update_leader(std::nullopt));
    REQUIRE(r.has_value());
    CHECK(*r);
    REQUIRE(*run(io, a->touch_member(R"({"role":"primary","state":"running"})")));

    const auto new_session = a->session_for_test();
    CHECK(new_session != old_session);
    auto info = session_info(consul(), new_session);
    REQUIRE(info.size() == 1);
    CHECK(info[0]["TTL"] == "2s");
    auto l = consul().read_key(scope, "leader");
    REQUIRE(l);
    CHECK(l->value == "node1");
    CHECK(l->owner == new_session);
    auto m = consul().read_key(scope, "members/node1");
    REQUIRE(m);
    CHECK(m->owner == new_session);
}

TEST_CASE("a wrong ACL token is Forbidden, never an empty cluster", "[consul][acl]") {
    auto opts = consul_test_server_options("1s");
    opts.acl_master_token = "master-secret";
    ConsulBackend acl(opts);
    acl.set_master_token("master-secret");
    net::io_context io;
    const auto scope = unique_scope("acl");

    // Control: the management token works, so there is a leader to hide.
    auto good = acl.make_consul(io, scope, "node1", kFast, acl.settings());
    REQUIRE(*run(io, good->attempt_to_acquire_leader()));
    REQUIRE(cluster_of(io, *good).leader);

    SECTION("an unknown token") {
        auto s = acl.settings();
        s.token = "wrong-token";
        auto bad = acl.make_consul(io, scope, "node2", kFast, s);
        const auto started = Clock::now();
        auto c = run(io, bad->get_cluster());
        REQUIRE_FALSE(c.has_value());
        CHECK(c.error() == Errc::Forbidden);
        CHECK(Clock::now() - started < 2s);  // not retried until the deadline
        auto w = run(io, bad->attempt_to_acquire_leader());
        REQUIRE_FALSE(w.has_value());
        CHECK(w.error() == Errc::Forbidden);
        auto t = run(io, bad->touch_member(R"({"role":"replica"})"));
        REQUIRE_FALSE(t.has_value());
        CHECK(t.error() == Errc::Forbidden);
    }

    SECTION("a valid token that may not read the cluster's keys") {
        const json token = {{"SecretID", "no-kv-read"},
                            {"AccessorID", "no-kv-read-accessor"},
                            {"Management", false},
                            {"Rules",
                             {{"key_prefix", {{"service/" + scope + "/members/", "write"}}},
                              {"session_prefix", {{"", "write"}}},
                              {"node_prefix", {{"", "read"}}}}}};
        REQUIRE(acl.http("PUT", "/_test/acl/token", token.dump()).status == 200);
        auto s = acl.settings();
        s.token = "no-kv-read";
        auto blind = acl.make_consul(io, scope, "node3", kFast, s);
        // The leader key is there but filtered out of the read: that must not look like
        // "no leader".
        auto c = run(io, blind->get_cluster());
        REQUIRE_FALSE(c.has_value());
        CHECK(c.error() == Errc::Forbidden);
    }
}

TEST_CASE("a leaderless Consul makes get_cluster fail within the retry deadline", "[consul]") {
    ConsulBackend own(consul_test_server_options("1s"));
    net::io_context io;
    const auto scope = unique_scope("noleader");
    auto a = own.make_consul(io, scope, "node1", kFast, own.settings());
    REQUIRE(*run(io, a->attempt_to_acquire_leader()));
    REQUIRE(own.http("PUT", "/_test/fault?mode=no-leader").status == 200);

    const auto started = Clock::now();
    auto c = run(io, a->get_cluster());
    const auto took = Clock::now() - started;
    REQUIRE_FALSE(c.has_value());  // never an empty cluster
    CHECK((c.error() == Errc::Unavailable || c.error() == Errc::Timeout));
    CHECK(took <= 3s + 1500ms);

    auto u = run(io, a->update_leader(std::nullopt));
    REQUIRE_FALSE(u.has_value());  // an error, not "we lost the key"
    CHECK((u.error() == Errc::Unavailable || u.error() == Errc::Timeout));

    // Consul elects a leader again (within the session's lifetime): all is back.
    REQUIRE(own.http("PUT", "/_test/fault?mode=none").status == 200);
    auto r = run(io, a->update_leader(std::nullopt));
    REQUIRE(r.has_value());
    CHECK(*r);
    auto back = cluster_of(io, *a);
    REQUIRE(back.leader);
    CHECK(back.leader->name == "node1");
}

TEST_CASE("check_ttl refuses a ttl below twice the agent's SessionTTLMin", "[consul]") {
    ConsulBackend ten(consul_test_server_options("10s"));
    net::io_context io;
    auto a =
        ten.make_consul(io, unique_scope("ttl"), "node1", DcsTiming{30, 10, 10}, ten.settings());
    std::string message;
    auto refused = run(io, a->check_ttl(19, &message));
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error() == Errc::BadRequest);
    INFO("message: " << message);
    CHECK(message.find("ttl 19") != std::string::npos);
    CHECK((message.find("10s") != std::string::npos ||
           message.find("10000 ms") != std::string::npos));
    CHECK(message.find("SessionTTLMin") != std::string::npos);

    std::string none;
    auto ok = run(io, a->check_ttl(20, &none));
    CHECK(ok.has_value());
    CHECK(none.empty());

    // The shared server's minimum is 1 s: ttl 2 is fine there, ttl 1 is not.
    auto b = make_consul(io, unique_scope("ttl"), "node1");
    CHECK(run(io, b->check_ttl(2, &none)).has_value());
    CHECK_FALSE(run(io, b->check_ttl(1, &message)).has_value());
}

TEST_CASE("touch_member registers the service with role tags and an HTTP check",
          "[consul][service]") {
    OkResponder api;
    net::io_context io;
    const auto scope = unique_scope("svc");
    const auto service = pgwarden::dcs::consul_service_name(scope);
    auto settings = consul().settings();
    settings.register_service = true;
    settings.service_tags = {"zeta", "alpha"};
    settings.service_check_interval = 1;
    settings.service_check_interval_text = "1s";
    auto primary = consul().make_consul(io, scope, "node1", kFast, settings);
    auto replica = consul().make_consul(io, scope, "node2", kFast, settings);
    const std::string api_url = "http://127.0.0.1:" + std::to_string(api.port()) + "/patroni";
    const std::string primary_json = json{
        {"role", "primary"},
        {"state", "running"},
        {"conn_url", "postgres://127.0.0.1:5432/postgres"},
        {"api_url", api_url}}.dump();
    const std::string replica_json = json{
        {"role", "replica"},
        {"state", "running"},
        {"conn_url", "postgres://127.0.0.1:5433/postgres"},
        {"api_url", api_url}}.dump();
    REQUIRE(*run(io, primary->touch_member(primary_json)));
    REQUIRE(*run(io, replica->touch_member(replica_json)));

    auto services = agent_services(consul());
    INFO("services: " << services.dump());
    const std::string id1 = scope + "/node1";
    const std::string id2 = scope + "/node2";
    REQUIRE(services.contains(id1));
    REQUIRE(services.contains(id2));
    CHECK(services[id1]["Service"] == service);
    CHECK(services[id1]["Tags"] == json::array({"alpha", "zeta", "primary", "master"}));
    CHECK(services[id1]["Address"] == "127.0.0.1");
    CHECK(services[id1]["Port"] == 5432);
    CHECK(services[id2]["Tags"] == json::array({"alpha", "zeta", "replica"}));

    // The checks probe <api host:port>/<role>; once they pass, the primary tag resolves to
    // exactly the primary.
    CHECK(pump_until(
        io,
        [&] {
            return passing_instances(consul(), service, "primary") == std::vector<std::string>{id1};
        },
        10s));
    CHECK(pump_until(
        io,
        [&] {
            return passing_instances(consul(), service, "replica") == std::vector<std::string>{id2};
        },
        10s));
    CHECK(passing_instances(consul(), service, "master") == std::vector<std::string>{id1});
    const auto asked = api.paths();
    CHECK(asked.count("/primary") == 1);
    CHECK(asked.count("/replica") == 1);

    SECTION("state stopped deregisters the instance") {
        auto stopped = json::parse(primary_json);
        stopped["state"] = "stopped";
        REQUIRE(run(io, primary->touch_member(stopped.dump())).has_value());
        CHECK_FALSE(agent_services(consul()).contains(id1));
        CHECK(passing_instances(consul(), service, "primary").empty());
        CHECK(agent_services(consul()).contains(id2));
    }

    SECTION("close_session deregisters the instance and deletes the member key at once") {
        REQUIRE(consul().read_key(scope, "members/node2"));
        REQUIRE(run(io, replica->close_session()));
        CHECK_FALSE(agent_services(consul()).contains(id2));
        CHECK_FALSE(consul().read_key(scope, "members/node2"));
        CHECK(passing_instances(consul(), service, "replica").empty());
        CHECK(agent_services(consul()).contains(id1));
    }

    // Leave the agent clean for the other scenarios of this process.
    run(io, primary->close_session());
    run(io, replica->close_session());
}

TEST_CASE("after a restart, state stopped deregisters the instance the previous run registered",
          "[consul][service]") {
    OkResponder api;
    net::io_context io;
    const auto scope = unique_scope("svcrestart");
    auto settings = consul().settings();
    settings.register_service = true;
    const std::string running = json{
        {"role", "replica"},
        {"state", "running"},
        {"conn_url", "postgres://127.0.0.1:5433/postgres"},
        {"api_url",
         "http://127.0.0.1:" + std::to_string(api.port()) +
             "/patroni"}}.dump();
    auto stopped = json::parse(running);
    stopped["state"] = "stopped";
    const std::string id = scope + "/node1";
    {
        // The previous daemon registered the service and died (no close_session).
        auto before = consul().make_consul(io, scope, "node1", kFast, settings);
        REQUIRE(*run(io, before->touch_member(running)));
        REQUIRE(agent_services(consul()).contains(id));
    }
    // The new daemon finds PostgreSQL stopped: the stale instance must not stay registered.
    auto after = consul().make_consul(io, scope, "node1", kFast, settings);
    REQUIRE(run(io, after->touch_member(stopped.dump())).has_value());
    CHECK_FALSE(agent_services(consul()).contains(id));
    run(io, after->close_session());
}

// Patroni's consul TLS options against the test server's HTTPS listener (§13.50), with
// certificates made at test time by the openssl CLI.
TEST_CASE("scheme https with cacert talks TLS and a wrong CA is an error not an empty cluster",
          "[consul][tls]") {
    pgwarden::testing::TempDir dir("pgw-consul-tls");
    const auto certs = pgwarden::testing::make_test_certs(dir.path());
    auto opts = consul_test_server_options("1s");
    opts.tls_cert = certs.server_cert;
    opts.tls_key = certs.server_key;
    ConsulBackend server(opts);
    REQUIRE(server.server().https_port() > 0);
    net::io_context io;
    const auto scope = unique_scope("tls");
    auto tls = server.settings();
    tls.scheme = "https";
    tls.port = server.server().https_port();
    tls.cacert = certs.ca;

    SECTION("the right CA") {
        auto d = server.make_consul(io, scope, "node1", kFast, tls);
        auto c = run(io, d->get_cluster());
        REQUIRE(c.has_value());
        CHECK_FALSE(c->leader);
        REQUIRE(*run(io, d->attempt_to_acquire_leader()));
        auto after = cluster_of(io, *d);
        REQUIRE(after.leader);
        CHECK(after.leader->name == "node1");
        CHECK(server.read_key(scope, "leader"));  // the same store, seen over plain HTTP
    }

    SECTION("verify with a CA that did not sign the server's certificate") {
        tls.cacert = certs.wrong_ca;
        auto d = server.make_consul(io, scope, "node1", kFast, tls);
        auto c = run(io, d->get_cluster());
        REQUIRE_FALSE(c.has_value());
        CHECK((c.error() == Errc::Unavailable || c.error() == Errc::Timeout));
        auto w = run(io, d->attempt_to_acquire_leader());
        REQUIRE_FALSE(w.has_value());
    }

    SECTION("verify false accepts any certificate") {
        tls.cacert = certs.wrong_ca;
        tls.verify = false;
        auto d = server.make_consul(io, scope, "node1", kFast, tls);
        auto c = run(io, d->get_cluster());
        REQUIRE(c.has_value());
    }

    SECTION("plain HTTP to the HTTPS port is an error") {
        tls.scheme = "http";
        auto d = server.make_consul(io, scope, "node1", kFast, tls);
        auto c = run(io, d->get_cluster());
        REQUIRE_FALSE(c.has_value());
    }
}

TEST_CASE("cert and key present a client certificate to a server verifying incoming TLS",
          "[consul][tls]") {
    pgwarden::testing::TempDir dir("pgw-consul-tls");
    const auto certs = pgwarden::testing::make_test_certs(dir.path());
    auto opts = consul_test_server_options("1s");
    opts.tls_cert = certs.server_cert;
    opts.tls_key = certs.server_key;
    opts.tls_ca = certs.ca;
    opts.tls_verify_incoming = true;
    ConsulBackend server(opts);
    net::io_context io;
    const auto scope = unique_scope("mtls");
    auto tls = server.settings();
    tls.scheme = "https";
    tls.port = server.server().https_port();
    tls.cacert = certs.ca;

    SECTION("without a client certificate") {
        auto d = server.make_consul(io, scope, "node1", kFast, tls);
        auto c = run(io, d->get_cluster());
        REQUIRE_FALSE(c.has_value());
        CHECK((c.error() == Errc::Unavailable || c.error() == Errc::Timeout));
    }

    SECTION("with the client certificate") {
        tls.cert = certs.client_cert;
        tls.key = certs.client_key;
        auto d = server.make_consul(io, scope, "node1", kFast, tls);
        REQUIRE(*run(io, d->attempt_to_acquire_leader()));
        auto c = cluster_of(io, *d);
        REQUIRE(c.leader);
        CHECK(c.leader->name == "node1");
    }
}
