// The unsafe endpoints (spec sections 1.1, 6-10) against FakeApiActions: every validation branch
// and message, run as coroutines on a local io_context with a bounded run_for and millisecond
// poll timings (no real waits).
#include "runtime/rest/unsafe.hpp"

#include "fake_api_actions.hpp"
#include "status_fixtures.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>

namespace net = boost::asio;

using namespace pgwarden;
using namespace pgwarden::rest;
using namespace pgwarden::rest::test;
using Json = nlohmann::json;

namespace {

constexpr const char* kFuture = "2030-01-01T00:00:00+00:00";

UnsafeOptions fast_options() {
    UnsafeOptions t;
    t.poll_interval = std::chrono::milliseconds(1);
    t.poll_timeout = std::chrono::milliseconds(30);
    t.probe_wait = std::chrono::milliseconds(500);
    return t;
}

Request req(std::string method, std::string target, std::optional<std::string> body = {}) {
    Request r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.peer_address = "127.0.0.1";
    if (body) {
        r.body = *body;
        r.has_content_length = true;
        r.headers["content-length"] = std::to_string(body->size());
    }
    return r;
}

Response run(FakeApiActions& fake,
             Request r,
             std::shared_ptr<const core::NodeStatus> status,
             core::RestApiSettings settings = {},
             UnsafeOptions timings = fast_options()) {
    net::io_context ioc{1};
    std::optional<Response> out;
    std::exception_ptr error;
    net::co_spawn(
        ioc,
        handle_unsafe(
            std::move(r), std::move(status), &fake, Context{kNow, kEpoch}, settings, timings),
        [&](std::exception_ptr e, Response res) {
            error = e;
            out = std::move(res);
        });
    ioc.run_for(std::chrono::seconds(5));
    if (error) {
        std::rethrow_exception(error);
    }
    REQUIRE(out.has_value());
    return *out;
}

std::shared_ptr<const core::NodeStatus> primary() {
    return std::make_shared<const core::NodeStatus>(primary_status());
}

std::shared_ptr<const core::NodeStatus> replica() {
    return std::make_shared<const core::NodeStatus>(replica_status());
}

// The DCS as node1 (leader) sees it, with node2 and node3 as replicas.
FakeApiActions fake_with_cluster() {
    FakeApiActions f;
    f.cluster = *cluster_with_leader("node1");
    f.probes["node2"] = FakeApiActions::good("node2");
    return f;
}

core::Cluster with_config(core::Cluster c, const std::string& config_json) {
    c.config_json = config_json;
    c.config_version = 5;
    return c;
}

core::Cluster with_leader(core::Cluster c, const std::string& leader) {
    c.leader = core::LeaderKey{leader, 9, "session-2"};
    return c;
}

core::Cluster with_failover(core::Cluster c,
                            std::optional<std::string> leader,
                            std::optional<std::string> member) {
    core::FailoverKey f;
    f.leader = std::move(leader);
    f.member = std::move(member);
    f.version = 11;
    c.failover = f;
    return c;
}

void check_plain(const Response& r, int status, const std::string& body) {
    CHECK(r.status == status);
    CHECK(r.body == body);
    CHECK(r.content_type == "text/html");
}

void check_error_page(const Response& r, int status) {
    CHECK(r.status == status);
    CHECK(r.content_type == "text/html;charset=utf-8");
    CHECK(r.body.find("<p>Error code: " + std::to_string(status) + "</p>") != std::string::npos);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Routing and access

TEST_CASE("unsafe: every endpoint checks access first (401 without auth header)",
          "[rest][unsafe][auth]") {
    core::RestApiSettings secured;
    secured.authentication = core::Credentials{"admin", "secret"};
    const char* endpoints[][2] = {
        {"POST", "/switchover"},
        {"POST", "/failover"},
        {"DELETE", "/switchover"},
        {"PATCH", "/config"},
        {"PUT", "/config"},
        {"POST", "/restart"},
        {"DELETE", "/restart"},
        {"POST", "/reload"},
        {"POST", "/reinitialize"},
        {"POST", "/failsafe"},
    };
    for (const auto& [method, path] : endpoints) {
        CAPTURE(method, path);
        FakeApiActions fake = fake_with_cluster();
        const Response r =
            run(fake, req(method, path, R"({"leader":"node1"})"), primary(), secured);
        check_plain(r, 401, "no auth header received");
        CHECK(fake.read_count == 0);
        CHECK(fake.reloads == 0);

        Request wrong = req(method, path, "{}");
        wrong.headers["authorization"] = "Basic d3Jvbmc6d3Jvbmc=";
        check_plain(run(fake, wrong, primary(), secured), 401, "not authenticated");
    }
    FakeApiActions fake;
    Request ok = req("POST", "/reload");
    ok.headers["authorization"] = "Basic YWRtaW46c2VjcmV0";  // admin:secret
    check_plain(run(fake, ok, primary(), secured), 202, "reload scheduled");
    CHECK(fake.reloads == 1);
}

TEST_CASE("unsafe: routing of what is not implemented here", "[rest][unsafe]") {
    FakeApiActions fake;
    SECTION("no handler in Patroni: 501") {
        const Response r = run(fake, req("POST", "/nothing"), primary());
        CHECK(r.status == 501);
        CHECK(run(fake, req("DELETE", "/config"), primary()).status == 501);
        CHECK(run(fake, req("PATCH", "/switchover", "{}"), primary()).status == 501);
    }
    SECTION("Patroni endpoints not implemented: 503 not supported") {
        check_plain(run(fake, req("POST", "/failsafe", "{}"), primary()),
                    503,
                    "not supported by this pgwarden version yet");
        check_plain(run(fake, req("POST", "/mpp", "{}"), primary()),
                    503,
                    "not supported by this pgwarden version yet");
    }
    SECTION("path with query and extra segments routes by the first segment") {
        check_plain(run(fake, req("POST", "/reload/now?x=1"), primary()), 202, "reload scheduled");
    }
    SECTION("no status published yet: 503 after the access check") {
        check_plain(run(fake, req("POST", "/reload"), nullptr),
                    503,
                    "pgwarden is starting: no node status published yet");
        CHECK(fake.reloads == 0);
    }
    SECTION("plain answers carry restapi.http_extra_headers") {
        core::RestApiSettings s;
        s.http_extra_headers = {{"X-Frame-Options", "deny"}};
        const Response r = run(fake, req("POST", "/reload"), primary(), s);
        REQUIRE(r.headers.size() == 1);
        CHECK(r.headers[0].first == "X-Frame-Options");
    }
}

// ---------------------------------------------------------------------------------------------
// POST /switchover, POST /failover: validation

TEST_CASE("switchover: body rules (411/400)", "[rest][unsafe][switchover]") {
    for (const char* path : {"/switchover", "/failover"}) {
        CAPTURE(path);
        FakeApiActions fake = fake_with_cluster();
        check_error_page(run(fake, req("POST", path), primary()), 411);
        for (const char* body : {"", "{}", "[]", "null", "not json", "\"node2\""}) {
            CAPTURE(body);
            check_error_page(run(fake, req("POST", path, std::string(body)), primary()), 400);
        }
        CHECK(fake.read_count == 0);
        CHECK(fake.failover_writes == 0);
    }
}

TEST_CASE("switchover: validation messages in Patroni's order", "[rest][unsafe][switchover]") {
    struct Case {
        const char* name;
        const char* path;
        std::string body;
        bool paused;
        int status;
        std::string message;
    };
    const std::string past = "2020-01-01T00:00:00Z";
    const Case cases[] = {
        {"failover needs a candidate",
         "/failover",
         R"({"leader":"node1"})",
         false,
         400,
         "Failover could be performed only to a specific candidate"},
        {"failover: empty candidate is none",
         "/failover",
         R"({"candidate":""})",
         false,
         400,
         "Failover could be performed only to a specific candidate"},
        {"switchover needs a leader",
         "/switchover",
         R"({"candidate":"node2"})",
         false,
         400,
         "Switchover could be performed only from a specific leader"},
        {"failover can't be scheduled",
         "/failover",
         std::string(R"({"candidate":"node2","scheduled_at":")") + kFuture + "\"}",
         false,
         400,
         "Failover can't be scheduled"},
        {"no scheduling in pause",
         "/switchover",
         std::string(R"({"leader":"node1","candidate":"node2","scheduled_at":")") + kFuture + "\"}",
         true,
         400,
         "Can't schedule switchover in the paused state"},
        {"timezone mandatory",
         "/switchover",
         R"({"leader":"node1","scheduled_at":"2030-01-01T00:00:00"})",
         false,
         400,
         "Timezone information is mandatory for the scheduled switchover"},
        {"past",
         "/switchover",
         R"({"leader":"node1","scheduled_at":")" + past + "\"}",
         false,
         422,
         "Cannot schedule switchover in the past"},
        {"unparsable",
         "/switchover",
         R"({"leader":"node1","scheduled_at":"tomorrow-ish"})",
         false,
         422,
         "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO "
         "8601"},
        {"non-string schedule",
         "/switchover",
         R"({"leader":"node1","scheduled_at":12})",
         false,
         422,
         "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO "
         "8601"},
        {"pause needs a candidate",
         "/switchover",
         R"({"leader":"node1"})",
         true,
         400,
         "Switchover is possible only to a specific candidate in a paused state"},
        {"same target and source",
         "/switchover",
         R"({"leader":"node1","candidate":"node1"})",
         false,
         400,
         "Switchover target and source are the same"},
        {"member is an alias of candidate",
         "/switchover",
         R"({"leader":"node1","member":"node1"})",
         false,
         400,
         "Switchover target and source are the same"},
        {"failover with leader == candidate",
         "/failover",
         R"({"leader":"node1","candidate":"node1"})",
         false,
         400,
         "Switchover target and source are the same"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        FakeApiActions fake = fake_with_cluster();
        if (c.paused) {
            fake.cluster = with_config(fake.cluster, R"({"ttl":30,"pause":true})");
        }
        check_plain(run(fake, req("POST", c.path, c.body), primary()), c.status, c.message);
        CHECK(fake.failover_writes == 0);
        CHECK(fake.probed.empty());
        CHECK(fake.wakeups == 0);
    }
}

TEST_CASE("switchover: is_failover_possible answers 412", "[rest][unsafe][switchover]") {
    SECTION("leader name does not match") {
        FakeApiActions fake = fake_with_cluster();
        check_plain(run(fake, req("POST", "/switchover", R"({"leader":"node7"})"), primary()),
                    412,
                    "leader name does not match");
        fake.cluster.leader.reset();
        check_plain(run(fake, req("POST", "/switchover", R"({"leader":"node1"})"), primary()),
                    412,
                    "leader name does not match");
    }
    SECTION("candidate does not exists") {
        FakeApiActions fake = fake_with_cluster();
        check_plain(run(fake,
                        req("POST", "/switchover", R"({"leader":"node1","candidate":"node9"})"),
                        primary()),
                    412,
                    "candidate does not exists");
        check_plain(run(fake, req("POST", "/failover", R"({"candidate":"node9"})"), primary()),
                    412,
                    "candidate does not exists");
    }
    SECTION("cluster does not have members except leader") {
        FakeApiActions fake = fake_with_cluster();
        fake.cluster.members.erase(fake.cluster.members.begin());  // node3
        fake.cluster.members.back().api_url.clear();               // node2 without api_url
        check_plain(run(fake, req("POST", "/switchover", R"({"leader":"node1"})"), primary()),
                    412,
                    "switchover is not possible: cluster does not have members except leader");
    }
    SECTION("no good candidates: unreachable, nofailover, watchdog failed") {
        FakeApiActions fake = fake_with_cluster();
        core::MemberProbe nofailover = FakeApiActions::good("node2");
        nofailover.nofailover = true;
        core::MemberProbe watchdog = FakeApiActions::good("node3");
        watchdog.watchdog_failed = true;
        fake.probes = {{"node2", nofailover}, {"node3", watchdog}};
        check_plain(run(fake, req("POST", "/switchover", R"({"leader":"node1"})"), primary()),
                    412,
                    "switchover is not possible: no good candidates have been found");
        std::sort(fake.probed.begin(), fake.probed.end());
        CHECK(fake.probed == std::vector<std::string>{"node2", "node3"});  // not the leader

        fake.probes.clear();  // nobody answers
        check_plain(run(fake,
                        req("POST", "/switchover", R"({"leader":"node1","candidate":"node2"})"),
                        primary()),
                    412,
                    "switchover is not possible: no good candidates have been found");
        check_plain(run(fake, req("POST", "/failover", R"({"candidate":"node2"})"), primary()),
                    412,
                    "failover is not possible: no good candidates have been found");
        // failover with a leader is performed as a switchover: the message says so
        check_plain(run(fake,
                        req("POST", "/failover", R"({"leader":"node1","candidate":"node2"})"),
                        primary()),
                    412,
                    "switchover is not possible: no good candidates have been found");
        CHECK(fake.failover_writes == 0);
    }
    SECTION("synchronous mode checks the /sync key") {
        FakeApiActions fake = fake_with_cluster();
        fake.cluster = with_config(fake.cluster, R"({"synchronous_mode":true})");
        check_plain(run(fake,
                        req("POST", "/switchover", R"({"leader":"node1","candidate":"node2"})"),
                        primary()),
                    412,
                    "candidate name does not match with sync_standby");
        check_plain(run(fake, req("POST", "/switchover", R"({"leader":"node1"})"), primary()),
                    412,
                    "switchover is not possible: can not find sync_standby");
        fake.cluster.sync_json = R"({"leader":"node1","sync_standby":"node3"})";
        check_plain(run(fake,
                        req("POST", "/switchover", R"({"leader":"node1","candidate":"node2"})"),
                        primary()),
                    412,
                    "candidate name does not match with sync_standby");
        // only sync members are probed when no candidate is given
        fake.probed.clear();
        check_plain(run(fake, req("POST", "/switchover", R"({"leader":"node1"})"), primary()),
                    412,
                    "switchover is not possible: no good candidates have been found");
        CHECK(fake.probed == std::vector<std::string>{"node3"});
        // a manual failover may target an async node
        fake.reads = {fake.cluster, with_leader(fake.cluster, "node2")};
        check_plain(run(fake, req("POST", "/failover", R"({"candidate":"node2"})"), primary()),
                    200,
                    "Successfully failed over to \"node2\"");
        // sync_standby is a comma-separated, case-insensitive list; a /sync without leader is empty
        fake.cluster.sync_json = R"({"leader":"node1","sync_standby":"node3, NODE2"})";
        fake.reads = {fake.cluster, with_leader(fake.cluster, "node2")};
        check_plain(run(fake,
                        req("POST", "/switchover", R"({"leader":"node1","candidate":"node2"})"),
                        primary()),
                    200,
                    "Successfully switched over to \"node2\"");
        fake.cluster.sync_json = R"({"sync_standby":"node2"})";
        check_plain(run(fake,
                        req("POST", "/switchover", R"({"leader":"node1","candidate":"node2"})"),
                        primary()),
                    412,
                    "candidate name does not match with sync_standby");
    }
    SECTION("quorum mode and standby clusters skip the sync checks") {
        for (const char* cfg : {R"({"synchronous_mode":"quorum"})",
                                R"({"synchronous_mode":"on","standby_cluster":{"host":"x"}})",
                                R"({"synchronous_mode":false})"}) {
            CAPTURE(cfg);
            FakeApiActions fake = fake_with_cluster();
            fake.cluster = with_config(fake.cluster, cfg);
            fake.reads = {fake.cluster, with_leader(fake.cluster, "node2")};
            check_plain(run(fake,
                            req("POST", "/switchover", R"({"leader":"node1","candidate":"node2"})"),
                            primary()),
                        200,
                        "Successfully switched over to \"node2\"");
        }
    }
}

TEST_CASE("switchover: DCS errors", "[rest][unsafe][switchover]") {
    FakeApiActions fake = fake_with_cluster();
    SECTION("reading the cluster fails: 503 (Patroni closes the connection)") {
        fake.read_fails = true;
        check_plain(run(fake, req("POST", "/switchover", R"({"leader":"node1"})"), primary()),
                    503,
                    std::string(kDcsReadFailed));
    }
    SECTION("writing the failover key fails or is refused") {
        fake.failover_write_result = false;
        const std::string body =
            std::string(R"({"leader":"node1","candidate":"node2","scheduled_at":")") + kFuture +
            "\"}";
        check_plain(run(fake, req("POST", "/switchover", body), primary()),
                    503,
                    "failed to write failover key into DCS");
        fake.failover_write_result = true;
        fake.failover_write_fails = true;
        check_plain(run(fake, req("POST", "/switchover", body), primary()),
                    503,
                    "failed to write failover key into DCS");
        CHECK(fake.wakeups == 0);
    }
}

TEST_CASE("switchover: scheduled", "[rest][unsafe][switchover]") {
    FakeApiActions fake = fake_with_cluster();
    fake.probes.clear();  // a scheduled switchover probes nobody
    SECTION("UTC") {
        check_plain(
            run(fake,
                req("POST",
                    "/switchover",
                    R"({"leader":"node1","candidate":"node2","scheduled_at":"2030-01-01T00:00:00Z"})"),
                primary()),
            202,
            "Switchover scheduled");
        REQUIRE(fake.last_failover_json);
        CHECK(*fake.last_failover_json ==
              R"({"leader":"node1","member":"node2","scheduled_at":"2030-01-01T00:00:00+00:00"})");
        CHECK_FALSE(fake.last_failover_version);
        CHECK(fake.wakeups == 1);
        CHECK(fake.probed.empty());
        CHECK(fake.read_count == 1);
    }
    SECTION("offset kept, candidate optional") {
        check_plain(run(fake,
                        req("POST",
                            "/switchover",
                            R"({"leader":"node1","scheduled_at":"2030-06-01 12:30:15.5+02:00"})"),
                        primary()),
                    202,
                    "Switchover scheduled");
        CHECK(*fake.last_failover_json ==
              R"({"leader":"node1","scheduled_at":"2030-06-01T12:30:15.500000+02:00"})");
    }
}

// ---------------------------------------------------------------------------------------------
// POST /switchover, POST /failover: waiting for the result

TEST_CASE("switchover: polling the result", "[rest][unsafe][switchover]") {
    FakeApiActions fake = fake_with_cluster();
    const core::Cluster before = fake.cluster;
    const core::Cluster pending = with_failover(before, "node1", "node2");

    SECTION("leader changes after two reads: 200") {
        fake.reads = {before, pending, pending, with_leader(before, "node2")};
        check_plain(run(fake,
                        req("POST", "/switchover", R"({"leader":"node1","candidate":"node2"})"),
                        primary()),
                    200,
                    "Successfully switched over to \"node2\"");
        CHECK(*fake.last_failover_json == R"({"leader":"node1","member":"node2"})");
        CHECK_FALSE(fake.last_failover_version);
        CHECK(fake.wakeups == 1);
        CHECK(fake.read_count == 4);
        CHECK(fake.probed == std::vector<std::string>{"node2"});
    }
    SECTION("another member became the leader") {
        fake.reads = {before, pending, with_leader(before, "node3")};
        check_plain(run(fake,
                        req("POST", "/switchover", R"({"leader":"node1","candidate":"node2"})"),
                        primary()),
                    200,
                    "Switched over to \"node3\" instead of \"node2\"");
    }
    SECTION("switchover without candidate") {
        fake.reads = {before, pending, with_leader(before, "node3")};
        check_plain(run(fake, req("POST", "/switchover", R"({"leader":"node1"})"), primary()),
                    200,
                    "Successfully switched over to \"node3\"");
        CHECK(*fake.last_failover_json == R"({"leader":"node1"})");
    }
    SECTION("failover") {
        fake.reads = {
            before, with_failover(before, std::nullopt, "node2"), with_leader(before, "node3")};
        check_plain(run(fake, req("POST", "/failover", R"({"candidate":"node2"})"), primary()),
                    200,
                    "Failed over to \"node3\" instead of \"node2\"");
        CHECK(*fake.last_failover_json == R"({"member":"node2"})");
    }
    SECTION("failover with leader is performed as a switchover") {
        fake.reads = {before, pending, with_leader(before, "node2")};
        check_plain(run(fake,
                        req("POST", "/failover", R"({"leader":"node1","candidate":"node2"})"),
                        primary()),
                    200,
                    "Successfully switched over to \"node2\"");
    }
    SECTION("failover key emptied without a leader change: 503 failed") {
        core::Cluster emptied = before;
        emptied.failover = core::FailoverKey{};  // "{}"
        fake.reads = {before, pending, emptied};
        check_plain(run(fake,
                        req("POST", "/switchover", R"({"leader":"node1","candidate":"node2"})"),
                        primary()),
                    503,
                    "Switchover failed");
        fake.reads = {before, pending, before};  // key deleted
        check_plain(run(fake, req("POST", "/failover", R"({"candidate":"node2"})"), primary()),
                    503,
                    "Failover failed");
    }
    SECTION("read errors while polling are skipped") {
        fake.reads = {
            before,
            ApiResult<core::Cluster>(boost::system::in_place_error, FakeApiActions::error()),
            pending,
            with_leader(before, "node2")};
        check_plain(run(fake,
                        req("POST", "/switchover", R"({"leader":"node1","candidate":"node2"})"),
                        primary()),
                    200,
                    "Successfully switched over to \"node2\"");
    }
    SECTION("timeout: status unknown, bounded number of reads") {
        fake.cluster = pending;
        fake.reads = {before};
        UnsafeOptions t = fast_options();
        t.poll_interval = std::chrono::milliseconds(2);
        t.poll_timeout = std::chrono::milliseconds(20);
        check_plain(run(fake,
                        req("POST", "/switchover", R"({"leader":"node1","candidate":"node2"})"),
                        primary(),
                        {},
                        t),
                    503,
                    "Switchover status unknown after 1 seconds; operation may still be in "
                    "progress");
        CHECK(fake.read_count == 1 + 10);
    }
    SECTION("the server stopping ends the poll at the next tick") {
        fake.cluster = pending;
        fake.reads = {before};
        UnsafeOptions o = fast_options();
        o.poll_timeout = std::chrono::seconds(60);
        o.stopped = std::make_shared<const bool>(true);
        const Response r =
            run(fake,
                req("POST", "/switchover", R"({"leader":"node1","candidate":"node2"})"),
                primary(),
                {},
                o);
        CHECK(r.status == 503);
        CHECK(fake.read_count == 1);
    }
    SECTION("timeout with every poll failing") {
        fake.reads = {before};
        fake.read_fails = true;
        check_plain(run(fake, req("POST", "/failover", R"({"candidate":"node2"})"), primary()),
                    503,
                    "Failover status unknown after 1 seconds; operation may still be in progress");
    }
}

// ---------------------------------------------------------------------------------------------
// DELETE /switchover

TEST_CASE("delete switchover", "[rest][unsafe][switchover]") {
    FakeApiActions fake = fake_with_cluster();
    core::FailoverKey scheduled;
    scheduled.leader = "node1";
    scheduled.scheduled_at = kFuture;
    scheduled.version = 42;
    SECTION("scheduled: CAS write of {}") {
        fake.cluster.failover = scheduled;
        check_plain(run(fake, req("DELETE", "/switchover"), primary()),
                    200,
                    "scheduled switchover deleted");
        CHECK(*fake.last_failover_json == "{}");
        CHECK(fake.last_failover_version == std::optional<std::int64_t>(42));
    }
    SECTION("CAS failure: 409") {
        fake.cluster.failover = scheduled;
        fake.failover_write_result = false;
        check_error_page(run(fake, req("DELETE", "/switchover"), primary()), 409);
        fake.failover_write_fails = true;
        check_error_page(run(fake, req("DELETE", "/switchover"), primary()), 409);
    }
    SECTION("nothing scheduled: 404") {
        check_plain(
            run(fake, req("DELETE", "/switchover"), primary()), 404, "no switchover is scheduled");
        fake.cluster = with_failover(fake.cluster, "node1", "node2");  // immediate, not scheduled
        check_plain(
            run(fake, req("DELETE", "/switchover"), primary()), 404, "no switchover is scheduled");
        CHECK(fake.failover_writes == 0);
    }
    SECTION("DCS read error") {
        fake.read_fails = true;
        check_plain(
            run(fake, req("DELETE", "/switchover"), primary()), 503, std::string(kDcsReadFailed));
    }
}

// ---------------------------------------------------------------------------------------------
// PATCH /config, PUT /config

TEST_CASE("patch config", "[rest][unsafe][config]") {
    FakeApiActions fake = fake_with_cluster();
    SECTION("body rules") {
        check_error_page(run(fake, req("PATCH", "/config"), primary()), 411);
        check_error_page(run(fake, req("PATCH", "/config", "{}"), primary()), 400);
        check_error_page(run(fake, req("PATCH", "/config", "[1]"), primary()), 400);
        CHECK(fake.read_count == 0);
    }
    SECTION("no config in the DCS: 503 page") {
        fake.cluster.config_json.reset();
        check_error_page(run(fake, req("PATCH", "/config", R"({"ttl":40})"), primary()), 503);
    }
    SECTION("change: CAS write with the config version, wakeup, merged config") {
        const Response r =
            run(fake,
                req("PATCH",
                    "/config",
                    R"({"ttl":40,"postgresql":{"parameters":{"max_connections":null}}})"),
                primary());
        CHECK(r.status == 200);
        CHECK(r.content_type == "application/json");
        CHECK(Json::parse(r.body) ==
              Json::parse(R"({"ttl":40,"loop_wait":10,"postgresql":{"parameters":{}}})"));
        REQUIRE(fake.last_config_json);
        CHECK(Json::parse(*fake.last_config_json) == Json::parse(r.body));
        CHECK(fake.last_config_version == std::optional<std::int64_t>(5));
        CHECK(fake.wakeups == 1);
    }
    SECTION("no change (\"30\" == 30 in Python's str terms): no write, still wakeup and 200") {
        const Response r = run(fake, req("PATCH", "/config", R"({"ttl":"30"})"), primary());
        CHECK(r.status == 200);
        CHECK(fake.config_writes == 0);
        CHECK(fake.wakeups == 1);
    }
    SECTION("CAS failure: 409") {
        fake.config_write_result = false;
        check_error_page(run(fake, req("PATCH", "/config", R"({"pause":true})"), primary()), 409);
        fake.config_write_fails = true;
        check_error_page(run(fake, req("PATCH", "/config", R"({"pause":true})"), primary()), 409);
        CHECK(fake.wakeups == 0);
    }
    SECTION("DCS read error") {
        fake.read_fails = true;
        check_plain(run(fake, req("PATCH", "/config", R"({"pause":true})"), primary()),
                    503,
                    std::string(kDcsReadFailed));
    }
}

TEST_CASE("put config", "[rest][unsafe][config]") {
    FakeApiActions fake = fake_with_cluster();
    SECTION("body rules") {
        check_error_page(run(fake, req("PUT", "/config"), primary()), 411);
        check_error_page(run(fake, req("PUT", "/config", "{}"), primary()), 400);
    }
    SECTION("different: unconditional write, body echoed") {
        const Response r = run(fake, req("PUT", "/config", R"({"ttl":40})"), primary());
        CHECK(r.status == 200);
        CHECK(r.body == R"({"ttl":40})");
        CHECK(*fake.last_config_json == R"({"ttl":40})");
        CHECK_FALSE(fake.last_config_version);
    }
    SECTION("equal by deep_compare: no write") {
        const Response r = run(
            fake,
            req("PUT",
                "/config",
                R"({"loop_wait":"10","ttl":30,"postgresql":{"parameters":{"max_connections":"100"}}})"),
            primary());
        CHECK(r.status == 200);
        CHECK(fake.config_writes == 0);
    }
    SECTION("no config key yet: written") {
        fake.cluster.config_json.reset();
        CHECK(run(fake, req("PUT", "/config", R"({"ttl":30})"), primary()).status == 200);
        CHECK(fake.config_writes == 1);
    }
    SECTION("write failure: 502") {
        fake.config_write_result = false;
        check_error_page(run(fake, req("PUT", "/config", R"({"ttl":40})"), primary()), 502);
    }
}

TEST_CASE("config: PATCH/PUT refuse a config every node would reject, and write nothing",
          "[rest][unsafe][config][F7]") {
    FakeApiActions fake = fake_with_cluster();
    SECTION("PATCH {\"ttl\":\"soon\"}: 400 naming ttl, nothing written, no wakeup") {
        const Response r = run(fake, req("PATCH", "/config", R"({"ttl":"soon"})"), primary());
        CHECK(r.status == 400);
        CHECK(r.content_type == "text/html");
        CHECK(r.body.rfind("Invalid dynamic configuration: ttl: ", 0) == 0);
        CHECK(fake.config_writes == 0);
        CHECK(fake.wakeups == 0);
    }
    SECTION("PUT with a bad value: 400 naming the key, nothing written") {
        const Response r =
            run(fake, req("PUT", "/config", R"({"ttl":30,"loop_wait":"often"})"), primary());
        CHECK(r.status == 400);
        CHECK(r.body.find("loop_wait: ") != std::string::npos);
        CHECK(fake.config_writes == 0);
    }
    SECTION("a good PATCH is still written and answered 200") {
        const Response r = run(fake, req("PATCH", "/config", R"({"ttl":40})"), primary());
        CHECK(r.status == 200);
        CHECK(fake.config_writes == 1);
    }
}

// F7 scenario A: a 30-digit value made every node throw in its next cycle.
TEST_CASE("config: PATCH with a 30-digit max_connections is refused",
          "[rest][unsafe][config][F7]") {
    FakeApiActions fake = fake_with_cluster();
    const Response r = run(
        fake,
        req("PATCH",
            "/config",
            R"({"postgresql":{"parameters":{"max_connections":"999999999999999999999999999999"}}})"),
        primary());
    CHECK(r.status == 400);
    CHECK(r.body.find("max_connections") != std::string::npos);
    CHECK(fake.config_writes == 0);
}

// ---------------------------------------------------------------------------------------------
// POST /restart, DELETE /restart

TEST_CASE("restart: validation", "[rest][unsafe][restart]") {
    struct Case {
        std::string body;
        int status;
        std::string message;
    };
    const Case cases[] = {
        {R"({"foo":1})", 400, "Unknown filter for the scheduled restart: foo"},
        {R"({"role":"master"})",
         400,
         "PostgreSQL role should be either primary, standby_leader, or replica"},
        {R"({"role":1})",
         400,
         "PostgreSQL role should be either primary, standby_leader, or replica"},
        {R"({"postgres_version":"9.6"})",
         400,
         "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6"},
        {R"({"postgres_version":"16"})",
         400,
         "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 16"},
        {R"({"postgres_version":"a.b"})", 400, "Invalid PostgreSQL version: a.b"},
        {R"({"postgres_version":16.1})", 400, "Invalid PostgreSQL version: 16.1"},
        {R"({"timeout":0})", 400, "Timeout should be a positive number of seconds"},
        {R"({"timeout":"-5"})", 400, "Timeout should be a positive number of seconds"},
        {R"({"timeout":"soon"})", 400, "Timeout should be a positive number of seconds"},
        {R"({"timeout":"10mins"})", 400, "Timeout should be a positive number of seconds"},
        {R"({"schedule":"2030-01-01T00:00:00"})",
         400,
         "Timezone information is mandatory for the scheduled restart"},
        {R"({"schedule":"2020-01-01T00:00:00+00:00"})", 422, "Cannot schedule restart in the past"},
        {R"({"schedule":"next tuesday"})",
         422,
         "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO "
         "8601"},
        // keys are checked in the order received
        {R"({"role":"bad","foo":1})",
         400,
         "PostgreSQL role should be either primary, standby_leader, or replica"},
        {R"({"foo":1,"role":"bad"})", 400, "Unknown filter for the scheduled restart: foo"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.body);
        FakeApiActions fake;
        check_plain(run(fake, req("POST", "/restart", c.body), primary()), c.status, c.message);
        CHECK(fake.restarts == 0);
        CHECK(fake.schedules == 0);
    }
    SECTION("invalid JSON: 400 page") {
        FakeApiActions fake;
        check_error_page(run(fake, req("POST", "/restart", "[]"), primary()), 400);
        check_error_page(run(fake, req("POST", "/restart", "{"), primary()), 400);
    }
    SECTION("paused: a schedule is refused with 500 before anything else") {
        FakeApiActions fake;
        core::NodeStatus s = primary_status();
        s.dynamic.pause = true;
        check_plain(run(fake,
                        req("POST", "/restart", R"({"foo":1,"schedule":"garbage"})"),
                        std::make_shared<const core::NodeStatus>(s)),
                    500,
                    "Can't schedule restart in the paused state");
        // an immediate restart is allowed in pause
        check_plain(
            run(fake, req("POST", "/restart", "{}"), std::make_shared<const core::NodeStatus>(s)),
            200,
            "restarted successfully");
    }
}

TEST_CASE("restart: scheduled", "[rest][unsafe][restart]") {
    FakeApiActions fake;
    const Response r = run(
        fake,
        req("POST",
            "/restart",
            R"({"schedule":"2030-01-01T03:00:00+01:00","role":"primary","timeout":"2min","restart_pending":false,"postgres_version":"17.1"})"),
        primary());
    check_plain(r, 202, "Restart scheduled");
    REQUIRE(fake.last_schedule);
    const RestartRequest& rr = *fake.last_schedule;
    CHECK(rr.schedule == std::optional<std::string>("2030-01-01T03:00:00+01:00"));
    CHECK(rr.role == std::optional<std::string>("primary"));
    CHECK(rr.timeout == std::optional<int>(120));
    CHECK(rr.postgres_version == std::optional<std::string>("17.1"));
    CHECK(rr.restart_pending);
    CHECK(
        rr.raw_json ==
        R"({"schedule":"2030-01-01T03:00:00+01:00","role":"primary","timeout":120,"restart_pending":false,"postgres_version":"17.1"})");
    CHECK(fake.restarts == 0);

    fake.schedule_outcome = {409, "Another restart is already scheduled"};
    check_plain(
        run(fake, req("POST", "/restart", R"({"schedule":"2030-01-01T00:00:00Z"})"), primary()),
        409,
        "Another restart is already scheduled");
}

TEST_CASE("restart: immediate, conditions against the node status", "[rest][unsafe][restart]") {
    FakeApiActions fake;
    SECTION("no body at all: unconditional") {
        check_plain(run(fake, req("POST", "/restart"), primary()), 200, "restarted successfully");
        REQUIRE(fake.last_restart);
        CHECK_FALSE(fake.last_restart->schedule);
        CHECK(fake.last_restart->raw_json == "{}");
        check_plain(
            run(fake, req("POST", "/restart", ""), primary()), 200, "restarted successfully");
        CHECK(fake.restarts == 2);
    }
    SECTION("role") {
        check_plain(run(fake, req("POST", "/restart", R"({"role":"replica"})"), primary()),
                    503,
                    "restart conditions are not satisfied");
        check_plain(run(fake, req("POST", "/restart", R"({"role":"primary"})"), primary()),
                    200,
                    "restarted successfully");
        check_plain(run(fake, req("POST", "/restart", R"({"role":"replica"})"), replica()),
                    200,
                    "restarted successfully");
        CHECK(fake.restarts == 2);
    }
    SECTION("postgres_version must be newer than the running server (160004)") {
        check_plain(run(fake, req("POST", "/restart", R"({"postgres_version":"16.4"})"), primary()),
                    503,
                    "restart conditions are not satisfied");
        check_plain(run(fake, req("POST", "/restart", R"({"postgres_version":"15.9"})"), primary()),
                    503,
                    "restart conditions are not satisfied");
        check_plain(run(fake, req("POST", "/restart", R"({"postgres_version":"16.5"})"), primary()),
                    200,
                    "restarted successfully");
    }
    SECTION("restart_pending: presence of the key needs a pending restart") {
        check_plain(run(fake, req("POST", "/restart", R"({"restart_pending":false})"), primary()),
                    503,
                    "restart conditions are not satisfied");
        core::NodeStatus s = primary_status();
        s.pending_restart = true;
        check_plain(run(fake,
                        req("POST", "/restart", R"({"restart_pending":true,"timeout":30})"),
                        std::make_shared<const core::NodeStatus>(s)),
                    200,
                    "restarted successfully");
        CHECK(fake.last_restart->timeout == std::optional<int>(30));
    }
    SECTION("the action's answer is passed through") {
        fake.restart_outcome = {503, "restart already in progress"};
        check_plain(run(fake, req("POST", "/restart", "{}"), primary()),
                    503,
                    "restart already in progress");
    }
    SECTION("an exception in the restart: 400 restart failed") {
        fake.restart_throws = true;
        check_plain(run(fake, req("POST", "/restart", "{}"), primary()), 400, "restart failed");
    }
}

TEST_CASE("delete restart and reload", "[rest][unsafe][restart]") {
    FakeApiActions fake;
    check_plain(run(fake, req("DELETE", "/restart"), primary()), 200, "scheduled restart deleted");
    fake.delete_restart_outcome = {404, "no restarts are scheduled"};
    check_plain(run(fake, req("DELETE", "/restart"), primary()), 404, "no restarts are scheduled");
    CHECK(fake.delete_restarts == 2);

    check_plain(
        run(fake, req("POST", "/reload", "{\"ignored\":1}"), primary()), 202, "reload scheduled");
    CHECK(fake.reloads == 1);
}

// ---------------------------------------------------------------------------------------------
// POST /reinitialize

TEST_CASE("reinitialize", "[rest][unsafe][reinitialize]") {
    FakeApiActions fake = fake_with_cluster();
    SECTION("the leader refuses") {
        check_plain(run(fake, req("POST", "/reinitialize"), primary()),
                    503,
                    "I am the leader, can not reinitialize");
        CHECK(fake.reinitializes == 0);
    }
    SECTION("no leader") {
        fake.cluster.leader.reset();
        check_plain(run(fake, req("POST", "/reinitialize", "{}"), replica()),
                    503,
                    "Cluster has no leader, can not reinitialize");
    }
    SECTION("replica: started, flags parsed with parse_bool") {
        check_plain(
            run(fake, req("POST", "/reinitialize"), replica()), 200, "reinitialize started");
        CHECK(fake.last_reinitialize == std::make_pair(false, false));
        run(fake, req("POST", "/reinitialize", R"({"force":"Yes","from_leader":1})"), replica());
        CHECK(fake.last_reinitialize == std::make_pair(true, true));
        run(fake,
            req("POST", "/reinitialize", R"({"force":true,"from_leader":"nope"})"),
            replica());
        CHECK(fake.last_reinitialize == std::make_pair(true, false));
        run(fake, req("POST", "/reinitialize", R"({"from-leader":true})"), replica());
        CHECK(fake.last_reinitialize == std::make_pair(false, false));
        fake.reinitialize_outcome = {503, "reinitialize already in progress"};
        check_plain(run(fake, req("POST", "/reinitialize", "{}"), replica()),
                    503,
                    "reinitialize already in progress");
    }
    SECTION("bad body: 400 page only") {
        check_error_page(run(fake, req("POST", "/reinitialize", "true"), replica()), 400);
        CHECK(fake.reinitializes == 0);
    }
    SECTION("DCS read error") {
        fake.read_fails = true;
        check_plain(
            run(fake, req("POST", "/reinitialize"), replica()), 503, std::string(kDcsReadFailed));
    }
}

// ---------------------------------------------------------------------------------------------
// Pure helpers

TEST_CASE("iso8601: accepted forms", "[rest][unsafe][iso8601]") {
    struct Case {
        const char* text;
        const char* iso;
        bool has_tz;
    };
    const Case cases[] = {
        {"2030-01-01T00:00:00+00:00", "2030-01-01T00:00:00+00:00", true},
        {"2030-01-01T00:00:00Z", "2030-01-01T00:00:00+00:00", true},
        {"2030-01-01t00:00:00z", "2030-01-01T00:00:00+00:00", true},
        {"2030-01-01 12:30+02:00", "2030-01-01T12:30:00+02:00", true},
        {"2030-01-01T12:30:15-0530", "2030-01-01T12:30:15-05:30", true},
        {"2030-01-01T12:30:15+02", "2030-01-01T12:30:15+02:00", true},
        {"2030-01-01T12:30:15.123+00:00", "2030-01-01T12:30:15.123000+00:00", true},
        {"2030-01-01T12:30:15,123456789Z", "2030-01-01T12:30:15.123456+00:00", true},
        {"  2024-02-29T23:59:59Z \n", "2024-02-29T23:59:59+00:00", true},
        {"2030-01-01T12:30:15", "2030-01-01T12:30:15", false},
        {"2030-01-01", "2030-01-01T00:00:00", false},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        const auto ts = parse_iso8601(c.text);
        REQUIRE(ts);
        CHECK(format_iso8601(*ts) == c.iso);
        CHECK(ts->offset_minutes.has_value() == c.has_tz);
    }
}

TEST_CASE("iso8601: rejected forms", "[rest][unsafe][iso8601]") {
    for (const char* text : {"",
                             "tomorrow",
                             "2030-1-01T00:00:00Z",
                             "2030/01/01T00:00:00Z",
                             "2030-13-01T00:00:00Z",
                             "2030-00-01T00:00:00Z",
                             "2023-02-29T00:00:00Z",
                             "2030-04-31T00:00:00Z",
                             "2030-01-01T24:00:00Z",
                             "2030-01-01T12:60:00Z",
                             "2030-01-01T12:00:60Z",
                             "2030-01-01T12Z",
                             "2030-01-01T12:00:00.Z",
                             "2030-01-01T12:00:00.1234567890Z",
                             "2030-01-01T12:00:00+24:00",
                             "2030-01-01T12:00:00+02:60",
                             "2030-01-01T12:00:00+2",
                             "2030-01-01T12:00:00 +02:00",
                             "2030-01-01T12:00:00Zjunk",
                             "0000-01-01T00:00:00Z"}) {
        CAPTURE(text);
        CHECK_FALSE(parse_iso8601(text));
    }
}

TEST_CASE("iso8601: epoch seconds honour the offset", "[rest][unsafe][iso8601]") {
    CHECK(parse_iso8601("1970-01-01T00:00:00Z")->epoch_seconds() == 0);
    CHECK(parse_iso8601("2024-08-28T19:39:26Z")->epoch_seconds() == kEpoch);
    CHECK(parse_iso8601("2024-08-28T21:39:26+02:00")->epoch_seconds() == kEpoch);
    CHECK(parse_iso8601("2024-08-28T15:09:26-04:30")->epoch_seconds() == kEpoch);
    CHECK(parse_iso8601("2024-08-28T19:39:25.999999Z")->epoch_seconds() == kEpoch - 1);
    CHECK(parse_iso8601("2000-03-01T00:00:00Z")->epoch_seconds() == 951868800);
}

TEST_CASE("postgres_version_to_int", "[rest][unsafe]") {
    CHECK(postgres_version_to_int("9.5.3") == std::optional<int>(90503));
    CHECK(postgres_version_to_int("9.3.13") == std::optional<int>(90313));
    CHECK(postgres_version_to_int("10.1") == std::optional<int>(100001));
    CHECK(postgres_version_to_int("16.4") == std::optional<int>(160004));
    std::string error;
    CHECK_FALSE(postgres_version_to_int("10", &error));
    CHECK(error == "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 10");
    CHECK_FALSE(postgres_version_to_int("9.6", &error));
    CHECK(error == "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6");
    CHECK_FALSE(postgres_version_to_int("1.2.3.4", &error));
    CHECK(error == "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 1.2.3.4");
    CHECK_FALSE(postgres_version_to_int("a.b.c", &error));
    CHECK(error == "Invalid PostgreSQL version: a.b.c");
    CHECK_FALSE(postgres_version_to_int("16.", &error));
    CHECK(error == "Invalid PostgreSQL version: 16.");
}

TEST_CASE("parse_seconds as Patroni's parse_int(value, 's')", "[rest][unsafe]") {
    CHECK(parse_seconds("30") == std::optional<std::int64_t>(30));
    CHECK(parse_seconds(" 30 ") == std::optional<std::int64_t>(30));
    CHECK(parse_seconds("30s") == std::optional<std::int64_t>(30));
    CHECK(parse_seconds("30 s") == std::optional<std::int64_t>(30));
    CHECK(parse_seconds("2min") == std::optional<std::int64_t>(120));
    CHECK(parse_seconds("1.5min") == std::optional<std::int64_t>(90));
    CHECK(parse_seconds("1h") == std::optional<std::int64_t>(3600));
    CHECK(parse_seconds("1d") == std::optional<std::int64_t>(86400));
    CHECK(parse_seconds("1500ms") == std::optional<std::int64_t>(2));  // 1.5 rounds half to even
    CHECK(parse_seconds("2500ms") == std::optional<std::int64_t>(2));
    CHECK(parse_seconds("2.5") == std::optional<std::int64_t>(2));
    CHECK(parse_seconds("0x10") == std::optional<std::int64_t>(16));
    CHECK(parse_seconds("010") == std::optional<std::int64_t>(8));
    CHECK(parse_seconds("-5") == std::optional<std::int64_t>(-5));
    CHECK(parse_seconds("1e2") == std::optional<std::int64_t>(100));
    CHECK_FALSE(parse_seconds(""));
    CHECK_FALSE(parse_seconds("soon"));
    CHECK_FALSE(parse_seconds("10mins"));
    CHECK_FALSE(parse_seconds("10S"));
    CHECK_FALSE(parse_seconds("True"));
}

TEST_CASE("parse_bool as Patroni's", "[rest][unsafe]") {
    for (const char* t : {"on", "true", "True", "YES", "1"}) {
        CHECK(parse_bool(t) == std::optional<bool>(true));
    }
    for (const char* f : {"off", "False", "no", "0"}) {
        CHECK(parse_bool(f) == std::optional<bool>(false));
    }
    for (const char* n : {"", "None", "2", "1.0", "y"}) {
        CHECK_FALSE(parse_bool(n));
    }
}
