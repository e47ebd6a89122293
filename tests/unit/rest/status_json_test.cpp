#include "runtime/rest/status_json.hpp"

#include "runtime/rest/handlers.hpp"
#include "status_fixtures.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

using namespace pgwarden;
using namespace pgwarden::rest;
using namespace pgwarden::rest::test;
using OJson = nlohmann::ordered_json;

namespace {

std::vector<std::string> keys(const OJson& j) {
    std::vector<std::string> out;
    for (auto it = j.begin(); it != j.end(); ++it) {
        out.push_back(it.key());
    }
    return out;
}

OJson patroni_json(const core::NodeStatus& s) {
    Request r;
    r.method = "GET";
    r.target = "/patroni";
    const Response resp = handle(r, s, Context{kNow, kEpoch});
    REQUIRE(resp.status == 200);
    REQUIRE(resp.content_type == "application/json");
    return OJson::parse(resp.body);
}

}  // namespace

TEST_CASE("/patroni: primary", "[rest][patroni]") {
    auto s = primary_status();
    s.pending_restart = true;
    s.pending_restart_reason_json = R"({"max_connections":{"old_value":"100","new_value":"200"}})";
    const OJson j = patroni_json(s);
    CHECK(keys(j) == std::vector<std::string>{"state",
                                              "postmaster_start_time",
                                              "role",
                                              "server_version",
                                              "xlog",
                                              "timeline",
                                              "replication",
                                              "dcs_last_seen",
                                              "tags",
                                              "database_system_identifier",
                                              "pending_restart",
                                              "pending_restart_reason",
                                              "patroni"});
    CHECK(j["state"] == "running");
    CHECK(j["postmaster_start_time"] == "2024-08-28 19:39:26.352526+00:00");
    CHECK(j["role"] == "primary");
    CHECK(j["server_version"] == 160004);
    CHECK(j["xlog"] == OJson{{"location", kLsn}});
    CHECK(j["timeline"] == 3);
    REQUIRE(j["replication"].is_array());
    CHECK(j["replication"][0]["application_name"] == "node2");
    CHECK(j["dcs_last_seen"] == kEpoch - 3);
    CHECK(j["tags"] == OJson{{"nofailover", false}, {"zone", "a"}});
    CHECK(j["database_system_identifier"] == "7408355428143771740");
    CHECK(j["pending_restart"] == true);
    CHECK(j["pending_restart_reason"]["max_connections"]["new_value"] == "200");
    CHECK(j["patroni"] == OJson{{"version", "4.1.4"}, {"scope", "batman"}, {"name", "node1"}});
}

TEST_CASE("/patroni: replica", "[rest][patroni]") {
    auto s = replica_status();
    s.sync_standby = true;
    s.dynamic.pause = true;
    s.pg->replayed_timestamp = "2024-08-28 19:41:00.1+00:00";
    s.effective_tags_json =
        std::map<std::string, std::string>{{"nosync", "true"}, {"sync_priority", "0"}};
    s.scheduled_restart_json =
        R"({"schedule":"2030-01-01T00:00:00+00:00","postmaster_start_time":"x","role":"replica"})";
    s.watchdog_failed = true;
    const OJson j = patroni_json(s);
    CHECK(j["role"] == "replica");
    CHECK(keys(j["xlog"]) ==
          std::vector<std::string>{
              "received_location", "replayed_location", "replayed_timestamp", "paused"});
    CHECK(j["xlog"]["received_location"] == kLsn);
    CHECK(j["xlog"]["replayed_location"] == kLsn);
    CHECK(j["xlog"]["replayed_timestamp"] == "2024-08-28 19:41:00.1+00:00");
    CHECK(j["xlog"]["paused"] == false);
    CHECK(j["sync_standby"] == true);
    CHECK_FALSE(j.contains("quorum_standby"));
    CHECK(j["timeline"] == 3);
    CHECK(j["replication_state"] == "streaming");
    CHECK_FALSE(j.contains("replication"));  // no walsenders
    CHECK(j["pause"] == true);
    CHECK_FALSE(j.contains("cluster_unlocked"));
    CHECK(j["tags"] == OJson{{"nosync", true}, {"sync_priority", 0}});
    CHECK(j["scheduled_restart"] ==
          OJson{{"schedule", "2030-01-01T00:00:00+00:00"}, {"role", "replica"}});
    CHECK(j["watchdog_failed"] == true);
    CHECK_FALSE(j.contains("latest_end_lsn"));

    SECTION("received location falls back to the replayed one") {
        auto s2 = replica_status();
        s2.pg->receive_location = 0;
        s2.pg->replay_location = 42;
        CHECK(patroni_json(s2)["xlog"]["received_location"] == 42);
    }
    SECTION("replayed_timestamp null, timeline unknown") {
        auto s2 = replica_status();
        s2.pg->timeline = 0;
        const OJson j2 = patroni_json(s2);
        CHECK(j2["xlog"]["replayed_timestamp"].is_null());
        CHECK(j2["timeline"].is_null());
    }
}

TEST_CASE("/patroni: cluster_unlocked, unknown state, standby leader", "[rest][patroni]") {
    SECTION("stale cluster") {
        auto s = replica_status();
        s.cluster_valid_until = kNow;
        s.sync_standby = true;
        const OJson j = patroni_json(s);
        CHECK(j["cluster_unlocked"] == true);
        CHECK_FALSE(j.contains("sync_standby"));
    }
    SECTION("no leader key") {
        auto s = replica_status();
        s.cluster = cluster_with_leader("");
        CHECK(patroni_json(s)["cluster_unlocked"] == true);
    }
    SECTION("failsafe active") {
        auto s = primary_status();
        s.failsafe_mode_is_active = true;
        CHECK(patroni_json(s)["failsafe_mode_is_active"] == true);
    }
    SECTION("running but the query failed") {
        auto s = primary_status();
        s.pg.reset();
        const OJson j = patroni_json(s);
        CHECK(
            keys(j) ==
            std::vector<std::string>{
                "state", "role", "dcs_last_seen", "tags", "database_system_identifier", "patroni"});
        CHECK(j["state"] == "unknown");
        CHECK(j["role"] == "primary");
    }
    SECTION("stopped, uninitialized") {
        auto s = replica_status();
        s.pg.reset();
        s.state = core::PgState::Stopped;
        s.role = core::Role::Uninitialized;
        s.sysid.reset();
        s.tags.json.clear();
        const OJson j = patroni_json(s);
        CHECK(j["state"] == "stopped");
        CHECK(j["role"] == "uninitialized");
        CHECK_FALSE(j.contains("tags"));
        CHECK_FALSE(j.contains("database_system_identifier"));
    }
    SECTION("standby cluster: a recovering node reports its internal role") {
        auto s = replica_status();
        s.standby_cluster = true;
        s.role = core::Role::StandbyLeader;
        CHECK(patroni_json(s)["role"] == "standby_leader");
    }
}

TEST_CASE("member key JSON", "[rest][member]") {
    const std::string conn = "postgres://10.0.0.1:5432/postgres";
    const std::string api = "http://10.0.0.1:8008/patroni";
    SECTION("primary") {
        auto s = primary_status();
        s.checkpoint_after_promote_pending = true;
        const OJson j = OJson::parse(member_key_json(s, conn, api));
        CHECK(keys(j) == std::vector<std::string>{"conn_url",
                                                  "api_url",
                                                  "state",
                                                  "role",
                                                  "version",
                                                  "checkpoint_after_promote",
                                                  "tags",
                                                  "xlog_location",
                                                  "timeline"});
        CHECK(j["conn_url"] == conn);
        CHECK(j["api_url"] == api);
        CHECK(j["state"] == "running");
        CHECK(j["role"] == "primary");
        CHECK(j["version"] == "4.1.4");
        CHECK(j["checkpoint_after_promote"] == false);
        CHECK(j["xlog_location"] == kLsn);
        CHECK(j["timeline"] == 3);
    }
    SECTION("replica") {
        auto s = replica_status();
        s.pg->receive_location = kLsn + 10;
        s.pending_restart = true;
        s.pending_restart_reason_json =
            R"({"shared_buffers":{"old_value":"128MB","new_value":"1GB"}})";
        s.dynamic.pause = true;
        const OJson j = OJson::parse(member_key_json(s, conn, api));
        CHECK(j["role"] == "replica");
        CHECK(j["xlog_location"] == kLsn + 10);  // max(receive, replay)
        CHECK(j["replay_lsn"] == kLsn);
        CHECK(j["receive_lsn"] == kLsn + 10);
        CHECK(j["replication_state"] == "streaming");
        CHECK(j["timeline"] == 3);
        CHECK(j["pending_restart"] == true);
        CHECK(j["pending_restart_reason"]["shared_buffers"]["new_value"] == "1GB");
        CHECK(j["pause"] == true);
        CHECK_FALSE(j.contains("checkpoint_after_promote"));
    }
    SECTION("stopped: no WAL positions") {
        auto s = replica_status();
        s.state = core::PgState::Stopped;
        s.pg.reset();
        const OJson j = OJson::parse(member_key_json(s, conn, api));
        CHECK(j["state"] == "stopped");
        CHECK_FALSE(j.contains("xlog_location"));
        CHECK_FALSE(j.contains("timeline"));
    }
}

TEST_CASE("format_lsn and timestamp_to_epoch", "[rest][parse]") {
    CHECK(format_lsn(0x3000060) == "0/3000060");
    CHECK(format_lsn((std::int64_t{0x1A} << 32) | 0xB) == "1A/B");
    CHECK(timestamp_to_epoch("2024-08-28 19:39:26.352526+00:00") == Approx(1724873966.352526));
    CHECK(timestamp_to_epoch("2024-08-28 21:39:26+02") == 1724873966.0);
    CHECK(timestamp_to_epoch("2024-08-28T19:39:26Z") == 1724873966.0);
    CHECK(timestamp_to_epoch("1970-01-01 00:00:00.5-00:30") == 1800.5);
    CHECK_FALSE(timestamp_to_epoch("yesterday"));
    CHECK_FALSE(timestamp_to_epoch("2024-13-01 00:00:00"));
}
