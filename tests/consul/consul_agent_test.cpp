// §13 items 40-47 of spec/consul-api.md (agent, health, ACL) plus CLI and method discipline.
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <future>
#include <string>
#include <unistd.h>

namespace {

using pgwarden::consul_test::testing::closed_port;
using pgwarden::consul_test::testing::ConsulServerProcess;
using pgwarden::consul_test::testing::Headers;
using pgwarden::consul_test::testing::HttpTarget;
using pgwarden::consul_test::testing::wait_until;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string check_status(const ConsulServerProcess& srv, const std::string& id) {
    auto checks = srv.get("/v1/agent/checks").json();
    if (!checks.contains(id)) {
        return "<none>";
    }
    return checks.at(id).at("Status").get<std::string>();
}

std::vector<std::string> health_ids(const ConsulServerProcess& srv, const std::string& query) {
    auto r = srv.get("/v1/health/service/" + query);
    REQUIRE(r.status == 200);
    std::vector<std::string> ids;
    for (const auto& item : r.json()) {
        ids.push_back(item.at("Service").at("ID").get<std::string>());
    }
    std::sort(ids.begin(), ids.end());
    return ids;
}

void register_service(const ConsulServerProcess& srv, const json& body) {
    auto r = srv.put("/v1/agent/service/register", body.dump());
    INFO(r.body);
    REQUIRE(r.status == 200);
    REQUIRE(r.body.empty());
}

}  // namespace

TEST_CASE("consul §13.40: service register stores fields and re-register replaces tags and checks",
          "[consul][integration]") {
    ConsulServerProcess srv;
    register_service(srv,
                     json{{"name", "demo"},
                          {"id", "demo/node2"},
                          {"address", "10.0.0.12"},
                          {"port", 5432},
                          {"tags", json::array({"replica"})},
                          {"meta", json{{"k", "v"}}},
                          {"enabletagoverride", true},
                          {"checks", json::array({json{{"ttl", "60s"}}})}});
    auto svc = srv.get("/v1/agent/services").json().at("demo/node2");
    REQUIRE(svc.at("ID") == "demo/node2");
    REQUIRE(svc.at("Service") == "demo");
    REQUIRE(svc.at("Tags") == json::array({"replica"}));
    REQUIRE(svc.at("Address") == "10.0.0.12");
    REQUIRE(svc.at("Port") == 5432);
    REQUIRE(svc.at("Meta") == json{{"k", "v"}});
    REQUIRE(svc.at("EnableTagOverride") == true);
    auto checks = srv.get("/v1/agent/checks").json();
    REQUIRE(checks.at("service:demo/node2").at("Type") == "ttl");

    register_service(
        srv,
        json{{"name", "demo"},
             {"id", "demo/node2"},
             {"address", "10.0.0.12"},
             {"port", 5432},
             {"tags", json::array({"primary", "master"})},
             {"checks",
              json::array({json{{"http", srv.url("/_test/status/200")}, {"interval", "5s"}}})}});
    svc = srv.get("/v1/agent/services").json().at("demo/node2");
    REQUIRE(svc.at("Tags") == json::array({"primary", "master"}));
    REQUIRE(svc.at("EnableTagOverride") == false);
    checks = srv.get("/v1/agent/checks").json();
    REQUIRE(checks.at("service:demo/node2").at("Type") == "http");
    REQUIRE(health_ids(srv, "demo") == std::vector<std::string>{"demo/node2"});

    REQUIRE(srv.put("/v1/agent/service/register", "{}").body == "Missing service name");
    REQUIRE(
        srv.put("/v1/agent/service/register", json{{"name", "x"}, {"address", "0.0.0.0"}}.dump())
            .status == 400);
    REQUIRE(srv.put("/v1/agent/service/register",
                    json{{"name", "x"}, {"check", json{{"ttl", "5s"}, {"status", "bogus"}}}}.dump())
                .status == 400);
    REQUIRE(srv.get("/v1/agent/service/register").status == 405);
}

TEST_CASE("consul §13.41: embedded checks get service IDs start critical and are really executed",
          "[consul][integration]") {
    ConsulServerProcess srv;
    HttpTarget target;
    target.set_status(200);
    register_service(srv,
                     json{{"name", "db"},
                          {"id", "db1"},
                          {"check",
                           json{{"http", target.url("/primary")},
                                {"method", "POST"},
                                {"header", json{{"X-Probe", json::array({"yes"})}}},
                                {"interval", "1s"}}}});
    // Initial status is critical until the first probe (random stagger within Interval).
    auto initial = srv.get("/v1/agent/checks").json().at("service:db1");
    if (target.hits() == 0) {
        REQUIRE(initial.at("Status") == "critical");
    }
    REQUIRE(wait_until([&] { return check_status(srv, "service:db1") == "passing"; }, 5s));
    REQUIRE(target.last_method() == "POST");
    REQUIRE(target.last_target() == "/primary");
    const int hits = target.hits();
    REQUIRE(wait_until([&] { return target.hits() >= hits + 2; }, 5s));  // every Interval

    target.set_status(429);
    REQUIRE(wait_until([&] { return check_status(srv, "service:db1") == "warning"; }, 5s));
    target.set_status(503);
    REQUIRE(wait_until([&] { return check_status(srv, "service:db1") == "critical"; }, 5s));
    auto out = srv.get("/v1/agent/checks").json().at("service:db1").at("Output");
    REQUIRE(out.get<std::string>().find("503") != std::string::npos);

    SECTION("several embedded checks are numbered and a dead endpoint is critical") {
        register_service(
            srv,
            json{{"name", "multi"},
                 {"checks",
                  json::array(
                      {json{{"http", target.url("/a")}, {"interval", "1s"}},
                       json{{"http", "http://127.0.0.1:" + std::to_string(closed_port()) + "/"},
                            {"interval", "1s"},
                            {"status", "passing"}}})}});
        auto checks = srv.get("/v1/agent/checks").json();
        REQUIRE(checks.contains("service:multi:1"));
        REQUIRE(checks.contains("service:multi:2"));
        REQUIRE(wait_until([&] { return check_status(srv, "service:multi:2") == "critical"; }, 5s));
    }
    SECTION("a TTL check goes critical without pass") {
        register_service(
            srv, json{{"name", "ttl"}, {"check", json{{"ttl", "1s"}, {"status", "passing"}}}});
        REQUIRE(check_status(srv, "service:ttl") == "passing");
        auto t0 = Clock::now();
        REQUIRE(wait_until([&] { return check_status(srv, "service:ttl") == "critical"; }, 4s));
        REQUIRE(seconds_since(t0) >= 0.5);
        auto c = srv.get("/v1/agent/checks").json().at("service:ttl");
        REQUIRE(c.at("Output") == "TTL expired");
    }
}

TEST_CASE("consul §13.42: check pass warn fail update TTL checks only", "[consul][integration]") {
    ConsulServerProcess srv;
    register_service(srv, json{{"name", "t"}, {"check", json{{"ttl", "60s"}}}});
    REQUIRE(check_status(srv, "service:t") == "critical");
    REQUIRE(srv.put("/v1/agent/check/pass/service:t?note=fine").status == 200);
    REQUIRE(check_status(srv, "service:t") == "passing");
    REQUIRE(srv.get("/v1/agent/checks").json().at("service:t").at("Output") == "fine");
    REQUIRE(srv.put("/v1/agent/check/warn/service:t").status == 200);
    REQUIRE(check_status(srv, "service:t") == "warning");
    REQUIRE(srv.put("/v1/agent/check/fail/service:t").status == 200);
    REQUIRE(check_status(srv, "service:t") == "critical");

    register_service(
        srv,
        json{{"name", "h"},
             {"check", json{{"http", srv.url("/_test/status/200")}, {"interval", "10s"}}}});
    auto non_ttl = srv.put("/v1/agent/check/pass/service:h");
    REQUIRE(non_ttl.status == 500);
    REQUIRE(non_ttl.body == "CheckID \"service:h\" does not have associated TTL");
    auto unknown = srv.put("/v1/agent/check/pass/nope");
    REQUIRE(unknown.status == 404);
    REQUIRE(unknown.body ==
            "Unknown check ID \"nope\". Ensure that the check ID is passed, not the check name.");
}

TEST_CASE("consul §13.43: DeregisterCriticalServiceAfter removes a continuously critical instance",
          "[consul][integration]") {
    // The 1 min minimum and 30 s reaper period are shrunk by flags for the test.
    ConsulServerProcess srv({"--deregister-critical-min=1s", "--reaper-interval=100ms"});
    const std::string dead = "http://127.0.0.1:" + std::to_string(closed_port()) + "/replica";
    register_service(srv,
                     json{{"name", "doomed"},
                          {"checks",
                           json::array({json{{"http", dead},
                                             {"interval", "1s"},
                                             {"DeregisterCriticalServiceAfter", "1.5s"}}})}});
    register_service(srv,
                     json{{"name", "kept"},
                          {"checks", json::array({json{{"http", dead}, {"interval", "1s"}}})}});
    auto t0 = Clock::now();
    REQUIRE(srv.get("/v1/agent/services").json().contains("doomed"));
    REQUIRE(wait_until(
        [&] { return !srv.get("/v1/agent/services").json().contains("doomed"); }, 6s, 50ms));
    REQUIRE(seconds_since(t0) >= 1.4);
    REQUIRE(check_status(srv, "service:doomed") == "<none>");
    REQUIRE(srv.get("/v1/agent/services").json().contains("kept"));  // no DCSA: stays
}

TEST_CASE("consul §13.44: service deregister accepts IDs with slashes and 404s unknown IDs",
          "[consul][integration]") {
    ConsulServerProcess srv;
    register_service(srv, json{{"name", "demo"}, {"id", "demo/node2"}});
    auto r = srv.put("/v1/agent/service/deregister/demo/node2");
    REQUIRE(r.status == 200);
    REQUIRE(r.body.empty());
    REQUIRE_FALSE(srv.get("/v1/agent/services").json().contains("demo/node2"));
    auto unknown = srv.put("/v1/agent/service/deregister/demo/node2");
    REQUIRE(unknown.status == 404);
    REQUIRE(unknown.body ==
            "Unknown service ID \"demo/node2\". Ensure that the service ID is "
            "passed, not the service name.");
    register_service(srv, json{{"name", "demo"}, {"id", "demo/node 3"}});
    REQUIRE(srv.put("/v1/agent/service/deregister/demo/node%203").status == 200);
}

TEST_CASE(
    "consul §13.45: health service with passing and tag returns exactly the passing tagged "
    "instances",
    "[consul][integration]") {
    ConsulServerProcess srv;
    const std::string ok = srv.url("/_test/status/200");
    const std::string bad = srv.url("/_test/status/503");
    HttpTarget n1_target;
    register_service(
        srv,
        json{{"name", "demo"},
             {"id", "demo/n1"},
             {"tags", json::array({"primary", "master"})},
             {"check", json{{"http", n1_target.url("/primary")}, {"interval", "1s"}}}});
    register_service(srv,
                     json{{"name", "demo"},
                          {"id", "demo/n2"},
                          {"tags", json::array({"replica"})},
                          {"check", json{{"http", ok}, {"interval", "1s"}}}});
    register_service(srv,
                     json{{"name", "demo"},
                          {"id", "demo/n3"},
                          {"tags", json::array({"primary"})},
                          {"check", json{{"http", bad}, {"interval", "1s"}}}});
    register_service(srv,
                     json{{"name", "demo"},
                          {"id", "demo/n4"},
                          {"tags", json::array({"primary"})},
                          {"check", json{{"ttl", "60s"}, {"status", "warning"}}}});
    register_service(srv, json{{"name", "other"}, {"tags", json::array({"primary"})}});
    using Ids = std::vector<std::string>;
    REQUIRE(wait_until(
        [&] { return health_ids(srv, "demo?passing&tag=primary") == Ids{"demo/n1"}; }, 5s));
    REQUIRE(wait_until(
        [&] {
            return health_ids(srv, "demo?passing") == Ids{"demo/n1", "demo/n2"};
        },
        5s));
    REQUIRE(health_ids(srv, "demo?tag=primary") == Ids{"demo/n1", "demo/n3", "demo/n4"});
    REQUIRE(health_ids(srv, "demo?tag=primary&tag=master") == Ids{"demo/n1"});
    REQUIRE(health_ids(srv, "demo?passing=false&tag=primary") ==
            Ids{"demo/n1", "demo/n3", "demo/n4"});
    REQUIRE(health_ids(srv, "nonexistent").empty());
    auto item = srv.get("/v1/health/service/demo?tag=replica").json().at(0);
    REQUIRE(item.at("Node").at("Node") == "pgw-consul-test");
    REQUIRE(item.at("Checks").size() == 2);  // serfHealth + the service check
    REQUIRE(item.at("Checks").at(0).at("CheckID") == "serfHealth");

    // Blocking: the primary's check turning critical wakes a watcher.
    auto current = srv.get("/v1/health/service/demo?passing&tag=primary");
    auto t0 = Clock::now();
    auto fut = std::async(std::launch::async, [&srv, idx = current.index()] {
        return srv.get("/v1/health/service/demo?passing&tag=primary&index=" + std::to_string(idx) +
                       "&wait=20s");
    });
    n1_target.set_status(503);
    auto r = fut.get();
    REQUIRE(r.status == 200);
    REQUIRE(r.index() > current.index());
    REQUIRE(seconds_since(t0) < 5.0);
    REQUIRE(wait_until([&] { return health_ids(srv, "demo?passing&tag=primary").empty(); }, 5s));
    // serfHealth going critical removes everything from ?passing.
    REQUIRE(srv.put("/_test/check-status/serfHealth?status=critical").status == 200);
    REQUIRE(health_ids(srv, "demo?passing").empty());
}

TEST_CASE("consul §13.46: agent self reports datacenter node name and SessionTTLMin",
          "[consul][integration]") {
    ConsulServerProcess srv({"--datacenter=dc7", "--node-name=pg1", "--session-ttl-min=250ms"});
    auto self = srv.get("/v1/agent/self");
    REQUIRE(self.status == 200);
    auto j = self.json();
    REQUIRE(j.at("Config").at("Datacenter") == "dc7");
    REQUIRE(j.at("Config").at("NodeName") == "pg1");
    REQUIRE_FALSE(j.at("Config").contains("SessionTTLMin"));
    REQUIRE(j.at("DebugConfig").at("SessionTTLMin") == "250ms");
    REQUIRE(srv.get("/v1/kv/k?dc=dc7").status == 404);
    auto other_dc = srv.get("/v1/kv/k?dc=elsewhere");
    REQUIRE(other_dc.status == 500);
    REQUIRE(other_dc.body == "No path to datacenter");
}

TEST_CASE("consul §13.47: ACL tokens from all sources with not-found denied and filtered reads",
          "[consul][integration]") {
    ConsulServerProcess srv({"--acl-default-policy", "deny", "--acl-master-token", "root"});
    auto made = srv.put("/_test/acl/token",
                        json{{"SecretID", "t1"},
                             {"Rules",
                              json{{"key_prefix", json{{"service/demo/", "write"}}},
                                   {"session_prefix", json{{"", "write"}}},
                                   {"service_prefix", json{{"demo", "write"}}}}}}
                            .dump());
    REQUIRE(made.status == 200);
    const Headers master = {{"X-Consul-Token", "root"}};
    REQUIRE(srv.put("/v1/kv/service/other/x", "1", master).body == "true");
    REQUIRE(srv.put("/v1/kv/service/demo/config", "1", master).body == "true");

    SECTION("anonymous is denied under default deny") {
        auto r = srv.get("/v1/kv/service/demo/config");
        REQUIRE(r.status == 403);
        REQUIRE(r.body.find("Permission denied") != std::string::npos);
        REQUIRE(srv.put("/v1/kv/service/demo/leader", "x").status == 403);
        REQUIRE(srv.put("/v1/session/create", "{}").status == 403);
    }
    SECTION("unknown token is ACL not found") {
        auto r = srv.get("/v1/kv/service/demo/config", {{"X-Consul-Token", "bogus"}});
        REQUIRE(r.status == 403);
        REQUIRE(r.body == "ACL not found");
        // ?token= wins over the header.
        auto q = srv.get("/v1/kv/service/demo/config?token=bogus", {{"X-Consul-Token", "t1"}});
        REQUIRE(q.body == "ACL not found");
    }
    SECTION("token accepted from header bearer and query") {
        REQUIRE(srv.put("/v1/kv/service/demo/a", "1", {{"X-Consul-Token", "t1"}}).body == "true");
        REQUIRE(srv.put("/v1/kv/service/demo/b", "1", {{"Authorization", "Bearer t1"}}).body ==
                "true");
        REQUIRE(srv.put("/v1/kv/service/demo/c?token=t1", "1").body == "true");
        auto sid = srv.put("/v1/session/create",
                           json{{"checks", json::array()}}.dump(),
                           {{"X-Consul-Token", "t1"}});
        REQUIRE(sid.status == 200);
        REQUIRE(srv.put("/v1/agent/service/register",
                        json{{"name", "demo"}}.dump(),
                        {{"X-Consul-Token", "t1"}})
                    .status == 200);
        REQUIRE(srv.put("/v1/agent/service/register", json{{"name", "demo"}}.dump()).status ==
                403);  // anonymous
    }
    SECTION("insufficient rights are Permission denied") {
        auto r = srv.put("/v1/kv/service/other/x", "2", {{"X-Consul-Token", "t1"}});
        REQUIRE(r.status == 403);
        REQUIRE(r.body.find("Permission denied") != std::string::npos);
        REQUIRE(r.body.rfind("rpc error making call: ", 0) == 0);
        auto svc = srv.put(
            "/v1/agent/service/register", json{{"name", "web"}}.dump(), {{"X-Consul-Token", "t1"}});
        REQUIRE(svc.status == 403);
        REQUIRE(svc.body.rfind("Permission denied", 0) == 0);
    }
    SECTION("recursive reads filter instead of failing") {
        auto r = srv.get("/v1/kv/service/?recurse", {{"X-Consul-Token", "t1"}});
        REQUIRE(r.status == 200);
        auto entries = r.json();
        REQUIRE(entries.size() == 1);
        REQUIRE(entries.at(0).at("Key") == "service/demo/config");
        REQUIRE(r.header("X-Consul-Results-Filtered-By-ACLs") == "true");
        auto all = srv.get("/v1/kv/service/?recurse", master);
        REQUIRE(all.json().size() == 2);
        REQUIRE_FALSE(all.has_header("X-Consul-Results-Filtered-By-ACLs"));
    }
    SECTION("a deleted token becomes ACL not found") {
        REQUIRE(srv.del("/_test/acl/token/t1").status == 200);
        REQUIRE(srv.get("/v1/kv/service/demo/config", {{"X-Consul-Token", "t1"}}).body ==
                "ACL not found");
    }
}

TEST_CASE("consul test server: --port-file receives the chosen port and SIGTERM exits 0",
          "[consul][integration]") {
    char tmpl[] = "/tmp/pgw-consul-port-XXXXXX";
    int fd = mkstemp(tmpl);
    REQUIRE(fd >= 0);
    close(fd);
    const std::string path = tmpl;
    ConsulServerProcess srv({"--port-file", path});
    std::ifstream in(path);
    unsigned port = 0;
    in >> port;
    REQUIRE(port == srv.port());
    REQUIRE(port != 0);
    REQUIRE(srv.get("/v1/status/leader").body == "\"127.0.0.1:8300\"");
    REQUIRE(srv.stop());
    std::remove(path.c_str());
}

TEST_CASE("consul test server: wrong methods are 405 with an Allow header",
          "[consul][integration]") {
    ConsulServerProcess srv;
    auto r = srv.get("/v1/session/create");
    REQUIRE(r.status == 405);
    REQUIRE(r.header("Allow") == "PUT");
    auto kv = pgwarden::consul_test::testing::http_request(srv.port(), "POST", "/v1/kv/k", "v");
    REQUIRE(kv.status == 405);
    REQUIRE(kv.header("Allow") == "GET, PUT, DELETE");
    REQUIRE(srv.put("/v1/session/list").status == 405);
}
