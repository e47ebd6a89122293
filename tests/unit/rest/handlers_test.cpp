#include "runtime/rest/handlers.hpp"

#include "status_fixtures.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

using namespace pgwarden;
using namespace pgwarden::rest;
using namespace pgwarden::rest::test;

namespace {

Request req(const std::string& method, const std::string& target) {
    Request r;
    r.method = method;
    r.target = target;
    r.peer_address = "10.0.0.9";
    return r;
}

Response get(const std::string& target, const core::NodeStatus& s, core::MonoMs now = kNow) {
    return handle(req("GET", target), s, Context{now, kEpoch});
}

struct Case {
    const char* path;
    int code;
};

void check_codes(const core::NodeStatus& s, const std::vector<Case>& cases) {
    for (const auto& c : cases) {
        INFO("GET " << c.path);
        const Response r = get(c.path, s);
        CHECK(r.status == c.code);
        // Every GET health check answers with the /patroni JSON body.
        if (std::string(c.path).find("liveness") == std::string::npos &&
            std::string(c.path).find("readiness") == std::string::npos) {
            CHECK(r.content_type == "application/json");
            CHECK_FALSE(r.status_only);
        }
        INFO("HEAD/OPTIONS " << c.path);
        const Response h = handle(req("HEAD", c.path), s, Context{kNow, kEpoch});
        CHECK(h.status == c.code);
        CHECK(h.status_only);
        CHECK(h.body.empty());
        CHECK(handle(req("OPTIONS", c.path), s, Context{kNow, kEpoch}).status == c.code);
    }
}

}  // namespace

TEST_CASE("health: primary with a valid lease and not in recovery", "[rest][health]") {
    check_codes(primary_status(),
                {{"/", 200},
                 {"/primary", 200},
                 {"/master", 200},
                 {"/read-write", 200},
                 {"/primary/anything", 200},
                 {"/primary?tag_zone=b", 200},  // tags ignored for leader paths
                 {"/leader", 200},
                 {"/standby-leader", 503},
                 {"/standby_leader", 503},
                 {"/replica", 503},
                 {"/read-only", 200},
                 {"/read-only?tag_zone=a", 200},
                 {"/read-only?tag_zone=b", 503},
                 {"/health", 200},
                 {"/sync", 503},
                 {"/synchronous", 503},
                 {"/async", 503},
                 {"/asynchronous", 503},
                 {"/quorum", 503},
                 {"/read-only-sync", 200},
                 {"/read-only-synchronous", 200},
                 {"/read-only-quorum", 200},
                 {"/foo", 503}});
}

TEST_CASE("health: primary whose lease expired", "[rest][health]") {
    auto s = primary_status();
    s.leader_lease_until = kNow;  // lease ends exactly now: expired
    check_codes(s,
                {{"/", 503},
                 {"/primary", 503},
                 {"/leader", 503},
                 {"/read-only", 503},  // role primary: replica code is 503 too
                 {"/read-only-sync", 503},
                 {"/health", 200}});
}

TEST_CASE("health: lease valid but still in recovery answers 503 on /primary (Patroni #2972)",
          "[rest][health]") {
    auto s = replica_status();
    s.leader_lease_until = kNow + 1;
    check_codes(s,
                {{"/primary", 503},
                 {"/", 503},
                 {"/master", 503},
                 {"/read-write", 503},
                 {"/leader", 200},  // /leader stays lock-only, as Patroni
                 {"/replica", 200},
                 {"/read-only", 200}});
}

TEST_CASE("health: a leader about to stop or restart PostgreSQL answers 503 on /primary at once",
          "[rest][health]") {
    for (auto state : {core::PgState::Stopping, core::PgState::Restarting}) {
        auto s = primary_status();  // lease valid, PostgreSQL still out of recovery
        s.state = state;
        INFO(core::to_string(state));
        check_codes(s,
                    {{"/primary", 503},
                     {"/", 503},
                     {"/read-write", 503},
                     {"/leader", 200}});  // lock-only, as Patroni
    }
}

TEST_CASE("health: streaming replica", "[rest][health]") {
    check_codes(replica_status(),
                {{"/replica", 200},
                 {"/replicas", 200},  // substring match, as Patroni
                 {"/read-only", 200},
                 {"/async", 200},
                 {"/asynchronous", 200},
                 {"/async/", 503},  // exact match breaks on a trailing slash
                 {"/sync", 503},
                 {"/quorum", 503},
                 {"/read-only-sync", 503},
                 {"/read-only-quorum", 503},
                 {"/primary", 503},
                 {"/leader", 503},
                 {"/standby-leader", 503},
                 {"/health", 200},
                 {"/replica?replication_state=streaming", 200},
                 {"/replica?replication_state=in+archive+recovery", 503},
                 {"/replica?replication_state=in%20archive%20recovery", 503},
                 {"/replica?tag_zone=a", 200},
                 {"/replica?tag_zone=b", 503},
                 {"/replica?tag_nofailover=false", 200},
                 {"/replica?tag_rack=1", 503},  // tag not configured
                 {"/health?tag_zone=b", 503}});
}

TEST_CASE("health: lagging replica and ?lag=", "[rest][health]") {
    auto s = replica_status();
    auto c = std::make_shared<core::Cluster>(*s.cluster);
    c->last_lsn = kLsn + 2 * 1024 * 1024;  // leader is 2 MB ahead of our replay LSN
    s.cluster = c;
    check_codes(s,
                {{"/replica", 200},  // no ?lag: no limit
                 {"/replica?lag=1MB", 503},
                 {"/replica?lag=1048576", 503},
                 {"/replica?lag=2MB", 200},
                 {"/replica?lag=3MB", 200},
                 {"/replica?lag=10mb", 200},  // lower-case unit: unparsable, ignored
                 {"/replica?lag=", 200},
                 {"/async?lag=1MB", 503},
                 {"/read-only?lag=1MB", 503},
                 {"/health?lag=1MB", 200}});

    SECTION("latest_end_lsn from the WAL receiver counts as the leader's position") {
        auto s2 = replica_status();
        s2.pg->latest_end_lsn = kLsn + 4096;
        check_codes(s2, {{"/replica?lag=4096", 200}, {"/replica?lag=4095", 503}});
    }
}

TEST_CASE("health: noloadbalance tag", "[rest][health]") {
    auto s = replica_status();
    s.tags.noloadbalance = true;
    check_codes(s, {{"/replica", 503}, {"/read-only", 503}, {"/async", 503}, {"/health", 200}});
}

TEST_CASE("health: synchronous and quorum standbys", "[rest][health]") {
    SECTION("sync standby") {
        auto s = replica_status();
        s.sync_standby = true;
        check_codes(s,
                    {{"/sync", 200},
                     {"/synchronous", 200},
                     {"/read-only-sync", 200},
                     {"/read-only-synchronous", 200},
                     {"/async", 503},
                     {"/quorum", 503},
                     {"/read-only-quorum", 503},
                     {"/replica", 200}});
    }
    SECTION("quorum standby") {
        auto s = replica_status();
        s.quorum_standby = true;
        check_codes(s,
                    {{"/quorum", 200},
                     {"/read-only-quorum", 200},
                     {"/sync", 503},
                     {"/async", 503},
                     {"/replica", 200}});
    }
    SECTION("sync standby with a stale cluster: sync endpoints need a valid cached cluster") {
        auto s = replica_status();
        s.sync_standby = true;
        s.cluster_valid_until = kNow;
        check_codes(s, {{"/sync", 503}, {"/async", 503}, {"/replica", 200}, {"/read-only", 200}});
    }
}

TEST_CASE("health: cluster stale", "[rest][health]") {
    SECTION("not paused: the lease decides") {
        auto s = primary_status();
        s.cluster_valid_until = kNow - 1;
        s.leader_lease_until = kNow - 1;
        check_codes(s, {{"/primary", 503}, {"/leader", 503}, {"/health", 200}});
    }
    SECTION("paused: the reported role decides") {
        auto s = primary_status();
        s.cluster_valid_until = kNow - 1;
        s.leader_lease_until.reset();
        s.dynamic.pause = true;
        check_codes(s, {{"/primary", 200}, {"/leader", 200}, {"/standby-leader", 503}});
        auto r = replica_status();
        r.cluster_valid_until = kNow - 1;
        r.dynamic.pause = true;
        check_codes(r, {{"/primary", 503}, {"/leader", 503}, {"/replica", 200}});
    }
    SECTION("no cluster read at all") {
        auto s = replica_status();
        s.cluster.reset();
        s.cluster_valid_until.reset();
        check_codes(s, {{"/replica", 200}, {"/async", 503}, {"/foo", 503}});
    }
}

TEST_CASE("health: standby cluster", "[rest][health]") {
    SECTION("standby leader holding the lock") {
        auto s = replica_status();
        s.standby_cluster = true;
        s.role = core::Role::StandbyLeader;
        s.leader_lease_until = kNow + 10'000;
        check_codes(s,
                    {{"/standby-leader", 200},
                     {"/standby_leader", 200},
                     {"/leader", 200},
                     {"/primary", 503},
                     {"/replica", 503},
                     {"/read-only", 200},
                     {"/read-only-sync", 200},
                     {"/health", 200}});
    }
    SECTION("replica of a standby cluster") {
        auto s = replica_status();
        s.standby_cluster = true;
        check_codes(
            s, {{"/standby-leader", 503}, {"/leader", 503}, {"/replica", 200}, {"/primary", 503}});
    }
}

TEST_CASE("health: PostgreSQL not running or query failed", "[rest][health]") {
    SECTION("running but the status query failed: state unknown") {
        auto s = replica_status();
        s.pg.reset();
        check_codes(s, {{"/replica", 503}, {"/health", 503}, {"/read-only", 503}});
    }
    SECTION("stopped") {
        auto s = replica_status();
        s.pg.reset();
        s.state = core::PgState::Stopped;
        check_codes(s, {{"/replica", 503}, {"/health", 503}});
    }
}

TEST_CASE("HEAD and OPTIONS always run the health logic, status only", "[rest][health]") {
    const auto s = primary_status();
    for (const char* method : {"HEAD", "OPTIONS"}) {
        INFO(method);
        CHECK(handle(req(method, "/"), s, Context{kNow, kEpoch}).status == 200);
        for (const char* path : {"/patroni", "/liveness", "/metrics", "/config", "/cluster"}) {
            const Response r = handle(req(method, path), s, Context{kNow, kEpoch});
            CHECK(r.status == 503);
            CHECK(r.status_only);
            CHECK(r.body.empty());
            CHECK(r.headers.empty());
        }
    }
}

TEST_CASE("/liveness thresholds", "[rest][liveness]") {
    auto primary = primary_status();
    primary.dynamic.ttl = 30;
    primary.next_run = kNow;
    auto replica = replica_status();
    replica.dynamic.ttl = 30;
    replica.next_run = kNow;

    const auto live = [](const core::NodeStatus& s, core::MonoMs now) {
        const Response r = get("/liveness", s, now);
        CHECK(r.status_only);
        CHECK(r.body.empty());
        return r.status;
    };
    CHECK(live(primary, kNow + 29'999) == 200);
    CHECK(live(primary, kNow + 30'000) == 503);  // running primary: ttl
    CHECK(live(replica, kNow + 59'999) == 200);
    CHECK(live(replica, kNow + 60'000) == 503);  // otherwise 2*ttl
    auto stopped_primary = primary;
    stopped_primary.state = core::PgState::Stopped;
    stopped_primary.pg.reset();
    CHECK(live(stopped_primary, kNow + 45'000) == 200);
    primary.dynamic.pause = true;  // paused: a stuck loop is fine
    CHECK(live(primary, kNow + 1'000'000) == 200);
    CHECK(get("/liveness/x?y=1", replica, kNow).status == 200);
}

TEST_CASE("/readiness", "[rest][readiness]") {
    const auto ready = [](const core::NodeStatus& s, const std::string& target = "/readiness") {
        const Response r = get(target, s);
        CHECK(r.status_only);
        return r.status;
    };
    CHECK(ready(primary_status()) == 200);

    auto r = replica_status();
    CHECK(ready(r) == 200);

    auto lagging = r;
    lagging.pg->replay_location = kLsn - 2 * 1024 * 1024;  // > maximum_lag_on_failover (1 MB)
    CHECK(ready(lagging) == 503);
    CHECK(ready(lagging, "/readiness?lag=4MB") == 200);
    CHECK(ready(lagging, "/readiness?mode=write") == 200);  // received LSN is caught up
    CHECK(ready(lagging, "/readiness?mode=apply&lag=2MB") == 200);
    CHECK(ready(lagging, "/readiness?mode=apply&lag=2097151") == 503);

    auto archive = r;
    archive.pg->replication_state = "in archive recovery";
    CHECK(ready(archive) == 503);

    auto stopped = r;
    stopped.state = core::PgState::Starting;
    CHECK(ready(stopped) == 503);

    auto no_dcs = r;
    no_dcs.cluster_valid_until = kNow - 1;
    no_dcs.pg->latest_end_lsn = 0;
    CHECK(ready(no_dcs) == 503);
    no_dcs.failsafe_mode_is_active = true;
    CHECK(ready(no_dcs) == 200);

    auto dcs_down_but_receiver = r;
    dcs_down_but_receiver.cluster_valid_until = kNow - 1;
    dcs_down_but_receiver.pg->latest_end_lsn = kLsn + 4 * 1024 * 1024;
    CHECK(ready(dcs_down_but_receiver) == 503);
    CHECK(ready(dcs_down_but_receiver, "/readiness?lag=8MB") == 200);
}

TEST_CASE("/config", "[rest][config]") {
    auto s = primary_status();
    Response r = get("/config", s);
    CHECK(r.status == 200);
    CHECK(r.content_type == "application/json");
    CHECK(nlohmann::json::parse(r.body) ==
          nlohmann::json::parse(
              R"({"ttl":30,"loop_wait":10,"postgresql":{"parameters":{"max_connections":100}}})"));

    auto no_config = std::make_shared<core::Cluster>(*s.cluster);
    no_config->config_json.reset();
    s.cluster = no_config;
    r = get("/config", s);
    CHECK(r.status == 502);
    CHECK(r.body.find("Error code: 502") != std::string::npos);
    CHECK(r.content_type == "text/html;charset=utf-8");

    s.cluster.reset();
    CHECK(get("/config", s).status == 502);
}

TEST_CASE("/cluster from the cached cluster", "[rest][cluster]") {
    auto s = replica_status();
    s.dynamic.synchronous_mode = "on";
    auto c = std::make_shared<core::Cluster>(*s.cluster);
    c->sync_json = R"({"leader":"node1","sync_standby":"NODE2","quorum":0})";
    c->failover = core::FailoverKey{
        std::string("node1"), std::string("node2"), std::string("2030-01-01T00:00:00+00:00"), 3};
    s.cluster = c;
    const Response r = get("/cluster", s);
    REQUIRE(r.status == 200);
    const auto j = nlohmann::ordered_json::parse(r.body);
    CHECK(j["scope"] == "batman");
    REQUIRE(j["members"].size() == 3);
    const auto& m1 = j["members"][0];
    CHECK(m1["name"] == "node1");
    CHECK(m1["role"] == "leader");
    CHECK(m1["state"] == "running");
    CHECK(m1["host"] == "10.0.0.1");
    CHECK(m1["port"] == 5432);
    CHECK(m1["timeline"] == 3);
    CHECK_FALSE(m1.contains("lag"));
    const auto& m2 = j["members"][1];
    CHECK(m2["role"] == "sync_standby");
    CHECK(m2["state"] == "streaming");
    CHECK(m2["port"] == 5433);
    CHECK(m2["tags"]["zone"] == "b");
    CHECK(m2["receive_lag"] == 16);
    CHECK(m2["receive_lsn"] == "0/3000050");
    CHECK(m2["replay_lag"] == 32);
    CHECK(m2["lag"] == 16);
    CHECK(m2["lsn"] == "0/3000050");
    const auto& m3 = j["members"][2];
    CHECK(m3["role"] == "replica");
    CHECK(m3["state"] == "stopped");
    CHECK(m3["port"] == 5432);  // default port
    CHECK(m3["lsn"] == "unknown");
    CHECK(m3["lag"] == "unknown");
    CHECK(j["scheduled_switchover"]["at"] == "2030-01-01T00:00:00+00:00");
    CHECK(j["scheduled_switchover"]["from"] == "node1");
    CHECK(j["scheduled_switchover"]["to"] == "node2");

    s.cluster.reset();
    CHECK(get("/cluster", s).status == 503);
}

TEST_CASE("/history", "[rest][history]") {
    auto s = primary_status();
    CHECK(get("/history", s).body == "[]");
    auto c = std::make_shared<core::Cluster>(*s.cluster);
    c->history_json =
        R"([[1,25165984,"no recovery target specified","2024-08-28T19:40:00+00:00","node1"],[2,33554592,"no recovery target specified"]])";
    s.cluster = c;
    const Response r = get("/history", s);
    CHECK(r.status == 200);
    const auto j = nlohmann::json::parse(r.body);
    REQUIRE(j.size() == 2);
    CHECK(j[0][4] == "node1");
    CHECK(j[1].size() == 3);

    c->history_json.reset();
    c->history = {core::HistoryLine{1, 100, "reason", std::string("2024-01-01"), std::string("n")}};
    CHECK(nlohmann::json::parse(get("/history", s).body) ==
          nlohmann::json::parse(R"([[1,100,"reason","2024-01-01","n"]])"));
}

TEST_CASE("unknown GET paths fall into the health check: 503 + JSON", "[rest]") {
    const auto s = primary_status();
    const Response r = get("/nonexistent", s);
    CHECK(r.status == 503);
    CHECK(r.content_type == "application/json");
    CHECK(nlohmann::json::parse(r.body)["role"] == "primary");
}

TEST_CASE("/metrics", "[rest][metrics]") {
    auto s = primary_status();
    const Response r = get("/metrics", s);
    REQUIRE(r.status == 200);
    CHECK(r.content_type == "text/plain");
    const std::string& b = r.body;
    REQUIRE(b.back() == '\n');
    const std::string l = R"({scope="batman",name="node1"})";

    std::vector<std::string> samples;  // metric names in order
    std::size_t pos = 0;
    while (pos < b.size()) {
        const auto eol = b.find('\n', pos);
        const std::string line = b.substr(pos, eol - pos);
        pos = eol + 1;
        if (line.rfind('#', 0) != 0) {
            samples.push_back(line.substr(0, line.find('{')));
        }
    }
    CHECK(samples == std::vector<std::string>{"patroni_version",
                                              "patroni_postgres_running",
                                              "patroni_postmaster_start_time",
                                              "patroni_primary",
                                              "patroni_xlog_location",
                                              "patroni_standby_leader",
                                              "patroni_replica",
                                              "patroni_sync_standby",
                                              "patroni_quorum_standby",
                                              "patroni_xlog_received_location",
                                              "patroni_xlog_replayed_location",
                                              "patroni_xlog_replayed_timestamp",
                                              "patroni_xlog_paused",
                                              "patroni_postgres_streaming",
                                              "patroni_postgres_in_archive_recovery",
                                              "patroni_postgres_server_version",
                                              "patroni_cluster_unlocked",
                                              "patroni_failsafe_mode_is_active",
                                              "patroni_failsafe_mode_enabled",
                                              "patroni_failsafe_member",
                                              "patroni_postgres_timeline",
                                              "patroni_dcs_last_seen",
                                              "patroni_pending_restart",
                                              "patroni_is_paused",
                                              "patroni_postgres_state",
                                              "patroni_failover_priority"});
    const auto has = [&](const std::string& line) {
        INFO(line);
        CHECK(b.find(line + "\n") != std::string::npos);
    };
    has("# HELP patroni_version Patroni semver without periods.\n# TYPE patroni_version gauge\n"
        "patroni_version" +
        l + " 040104");
    has("patroni_postgres_running" + l + " 1");
    has("patroni_postmaster_start_time" + l + " 1724873966.352526");
    has("patroni_primary" + l + " 1");
    has("# TYPE patroni_xlog_location counter\npatroni_xlog_location" + l + " 50331744");
    has("patroni_xlog_replayed_timestamp" + l + " 0");
    has("patroni_postgres_streaming" + l + " 0");
    has("patroni_postgres_server_version" + l + " 160004");
    has("patroni_cluster_unlocked" + l + " 0");
    has("# TYPE patroni_postgres_timeline gauge\npatroni_postgres_timeline" + l + " 3");
    has("patroni_dcs_last_seen" + l + " " + std::to_string(kEpoch - 3));
    has("# HELP patroni_postgres_state Numeric representation of Postgres state.\n"
        "# Values: 0=initdb, 1=initdb_failed, 2=custom_bootstrap, 3=custom_bootstrap_failed, "
        "4=creating_replica, 5=running, 6=starting, 7=bootstrap_starting, 8=start_failed, "
        "9=restarting, 10=restart_failed, 11=stopping, 12=stopped, 13=stop_failed, 14=crashed\n"
        "# TYPE patroni_postgres_state gauge\npatroni_postgres_state" +
        l + " 5");
    has("patroni_failover_priority" + l + " 1");

    SECTION("replica values") {
        auto rs = replica_status();
        rs.pg->replayed_timestamp = "2024-08-28 19:39:26+00";
        rs.pg->replay_paused = true;
        rs.sync_standby = true;
        rs.tags.nofailover = true;
        const std::string rl = R"({scope="batman",name="node2"})";
        const std::string rb = get("/metrics", rs).body;
        CHECK(rb.find("patroni_replica" + rl + " 1\n") != std::string::npos);
        CHECK(rb.find("patroni_primary" + rl + " 0\n") != std::string::npos);
        CHECK(rb.find("patroni_xlog_location" + rl + " 0\n") != std::string::npos);
        CHECK(rb.find("patroni_xlog_received_location" + rl + " 50331744\n") != std::string::npos);
        CHECK(rb.find("patroni_xlog_replayed_timestamp" + rl + " 1724873966.0\n") !=
              std::string::npos);
        CHECK(rb.find("patroni_xlog_paused" + rl + " 1\n") != std::string::npos);
        CHECK(rb.find("patroni_sync_standby" + rl + " 1\n") != std::string::npos);
        CHECK(rb.find("patroni_postgres_streaming" + rl + " 1\n") != std::string::npos);
        CHECK(rb.find("patroni_failover_priority" + rl + " 0\n") != std::string::npos);
    }
    SECTION("not running: unknown state, no streaming lines") {
        auto rs = replica_status();
        rs.pg.reset();
        const std::string rb = get("/metrics", rs).body;
        CHECK(rb.find("patroni_postgres_state{scope=\"batman\",name=\"node2\"} -1\n") !=
              std::string::npos);
        CHECK(rb.find("patroni_postgres_streaming") == std::string::npos);
        CHECK(rb.find("patroni_postmaster_start_time{scope=\"batman\",name=\"node2\"} 0\n") !=
              std::string::npos);
    }
}

TEST_CASE("http_extra_headers on normal responses only", "[rest]") {
    core::RestApiSettings settings;
    settings.http_extra_headers = {{"X-Frame-Options", "DENY"}};
    const auto s = primary_status();
    const auto has_extra = [](const Response& r) {
        return std::find(r.headers.begin(),
                         r.headers.end(),
                         std::pair<std::string, std::string>{"X-Frame-Options", "DENY"}) !=
               r.headers.end();
    };
    CHECK(has_extra(handle(req("GET", "/patroni"), s, Context{kNow, kEpoch}, settings)));
    CHECK(has_extra(handle(req("GET", "/metrics"), s, Context{kNow, kEpoch}, settings)));
    CHECK_FALSE(has_extra(handle(req("HEAD", "/"), s, Context{kNow, kEpoch}, settings)));
    auto no_cfg = s;
    no_cfg.cluster.reset();
    CHECK_FALSE(has_extra(handle(req("GET", "/config"), no_cfg, Context{kNow, kEpoch}, settings)));
}

TEST_CASE("unsafe methods: 501 for unknown paths, auth then 503 for known ones", "[rest][auth]") {
    core::RestApiSettings open;
    SECTION("unknown method/path pairs are 501 without any auth check") {
        core::RestApiSettings secured;
        secured.authentication = core::Credentials{"admin", "secret"};
        for (const auto& [method, path] :
             std::vector<std::pair<std::string, std::string>>{{"POST", "/"},
                                                              {"POST", "/primary"},
                                                              {"POST", "/config"},
                                                              {"DELETE", "/reload"},
                                                              {"PUT", "/switchover"},
                                                              {"TRACE", "/"},
                                                              {"get", "/patroni"}}) {
            INFO(method << " " << path);
            const Response r = handle_unsafe_not_supported(req(method, path), secured);
            CHECK(r.status == 501);
            CHECK(r.body.find("Unsupported method ('" + method + "')") != std::string::npos);
        }
    }
    SECTION("known endpoints without configured auth: 503 not supported") {
        for (const auto& [method, path] :
             std::vector<std::pair<std::string, std::string>>{{"POST", "/switchover"},
                                                              {"POST", "/failover"},
                                                              {"POST", "/restart"},
                                                              {"DELETE", "/restart"},
                                                              {"DELETE", "/switchover"},
                                                              {"POST", "/reload"},
                                                              {"POST", "/reinitialize"},
                                                              {"PATCH", "/config"},
                                                              {"PUT", "/config"},
                                                              {"POST", "/restart/now?x=1"}}) {
            INFO(method << " " << path);
            const Response r = handle_unsafe_not_supported(req(method, path), open);
            CHECK(r.status == 503);
            CHECK(r.content_type == "text/html");
            CHECK(r.body == "not supported by this pgwarden version yet");
        }
    }
    SECTION("handle() routes unsafe methods the same way") {
        const auto s = primary_status();
        CHECK(handle(req("POST", "/switchover"), s, Context{kNow, kEpoch}).status == 503);
        CHECK(handle(req("POST", "/nope"), s, Context{kNow, kEpoch}).status == 501);
    }
}

TEST_CASE("check_access: basic auth", "[rest][auth]") {
    core::RestApiSettings settings;
    settings.authentication = core::Credentials{"admin", "secret"};
    // base64("admin:secret") = YWRtaW46c2VjcmV0
    const auto www = [](const Response& r) {
        for (const auto& [k, v] : r.headers) {
            if (k == "WWW-Authenticate") {
                return v;
            }
        }
        return std::string();
    };
    Request r = req("POST", "/restart");
    auto denied = check_access(r, settings);
    REQUIRE(denied);
    CHECK(denied->status == 401);
    CHECK(denied->body == "no auth header received");
    CHECK(www(*denied) == "Basic realm=\"Patroni\"");

    r.headers["authorization"] = "Basic YWRtaW46d3Jvbmc=";
    denied = check_access(r, settings);
    REQUIRE(denied);
    CHECK(denied->status == 401);
    CHECK(denied->body == "not authenticated");
    CHECK(www(*denied) == "Basic realm=\"Patroni\"");

    r.headers["authorization"] = "Bearer YWRtaW46c2VjcmV0";
    REQUIRE(check_access(r, settings));
    r.headers["authorization"] = "basic YWRtaW46c2VjcmV0";  // scheme is case-sensitive in Patroni
    REQUIRE(check_access(r, settings));

    r.headers["authorization"] = "Basic YWRtaW46c2VjcmV0";
    CHECK_FALSE(check_access(r, settings));
    CHECK(handle_unsafe_not_supported(r, settings).status == 503);

    r.headers.erase("authorization");
    CHECK(handle_unsafe_not_supported(r, settings).status == 401);
    // Safe endpoints are never protected by basic auth.
    CHECK(
        handle(req("GET", "/patroni"), primary_status(), Context{kNow, kEpoch}, settings).status ==
        200);
}

TEST_CASE("check_access: allowlist comes before auth", "[rest][auth]") {
    core::RestApiSettings settings;
    settings.allowlist = {"127.0.0.1", "10.1.0.0/16", "fd00::/8", "some-host-name"};
    settings.authentication = core::Credentials{"admin", "secret"};
    const auto status_for = [&](const std::string& peer) {
        Request r = req("POST", "/reload");
        r.peer_address = peer;
        r.headers["authorization"] = "Basic YWRtaW46c2VjcmV0";
        return handle_unsafe_not_supported(r, settings).status;
    };
    CHECK(status_for("127.0.0.1") == 503);
    CHECK(status_for("10.1.200.3") == 503);
    CHECK(status_for("::ffff:10.1.2.3") == 503);
    CHECK(status_for("fd12::1") == 503);
    CHECK(status_for("10.2.0.1") == 403);
    CHECK(status_for("::1") == 403);
    CHECK(status_for("") == 403);

    Request bad = req("POST", "/reload");
    bad.peer_address = "10.9.9.9";  // denied before the (missing) auth header is looked at
    const auto denied = check_access(bad, settings);
    REQUIRE(denied);
    CHECK(denied->status == 403);
    CHECK(denied->body == "Access is denied");

    SECTION("allowlist_include_members uses the members' api_url hosts") {
        core::RestApiSettings members_only;
        members_only.allowlist_include_members = true;
        const auto cluster = cluster_with_leader("node1");
        Request r = req("POST", "/switchover");
        r.peer_address = "10.0.0.2";
        CHECK_FALSE(check_access(r, members_only, cluster.get()));
        r.peer_address = "10.0.0.99";
        CHECK(check_access(r, members_only, cluster.get())->status == 403);
        // POST /failsafe: Patroni skips the member allowlist
        CHECK(handle_unsafe_not_supported(req("POST", "/failsafe"), members_only, cluster.get())
                  .status == 503);
    }
}

TEST_CASE("parse_bytes follows Patroni's parse_int(value, 'B')", "[rest][parse]") {
    CHECK(parse_bytes("0") == 0);
    CHECK(parse_bytes("1024") == 1024);
    CHECK(parse_bytes(" 1024 ") == 1024);
    CHECK(parse_bytes("1B") == 1);
    CHECK(parse_bytes("1kB") == 1024);
    CHECK(parse_bytes("1MB") == 1048576);
    CHECK(parse_bytes("10MB") == 10485760);
    CHECK(parse_bytes("1GB") == 1073741824);
    CHECK(parse_bytes("1TB") == 1099511627776LL);
    CHECK(parse_bytes("1 MB") == 1048576);
    CHECK(parse_bytes("1.5kB") == 1536);
    CHECK(parse_bytes("0x10kB") == 16384);
    CHECK(parse_bytes("010") == 8);  // octal, as strtol base 0
    CHECK(parse_bytes("1e3") == 1000);
    CHECK(parse_bytes("-5") == -5);
    CHECK_FALSE(parse_bytes("10mb"));
    CHECK_FALSE(parse_bytes("1kb"));
    CHECK_FALSE(parse_bytes("MB"));
    CHECK_FALSE(parse_bytes(""));
    CHECK_FALSE(parse_bytes("1 M B"));
    CHECK_FALSE(parse_bytes("08"));
}

TEST_CASE("parse_query and http_date", "[rest][parse]") {
    const auto q = parse_query("lag=1MB&tag_a=x+y&tag_b=%2Fz&empty=&noeq&lag=2MB");
    CHECK(q.at("lag") == "1MB");  // first wins
    CHECK(q.at("tag_a") == "x y");
    CHECK(q.at("tag_b") == "/z");
    CHECK(q.count("empty") == 0);
    CHECK(q.count("noeq") == 0);
    CHECK(http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");
    CHECK(http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
    CHECK(http_date(1709251199) == "Thu, 29 Feb 2024 23:59:59 GMT");
}
