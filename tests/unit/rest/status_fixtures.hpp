// Builders of published NodeStatus values by situation, shared by the REST tests.
#pragma once

#include "core/node_status.hpp"

#include <memory>

namespace pgwarden::rest::test {

constexpr core::MonoMs kNow = 1'000'000;
constexpr std::int64_t kEpoch = 1'724'873'966;
constexpr std::int64_t kLsn = 0x3000060;

inline std::shared_ptr<core::Cluster> cluster_with_leader(const std::string& leader) {
    auto c = std::make_shared<core::Cluster>();
    c->initialize = "7408355428143771740";
    c->config_json =
        R"({"ttl":30,"loop_wait":10,"postgresql":{"parameters":{"max_connections":100}}})";
    c->config_version = 5;
    if (!leader.empty()) {
        c->leader = core::LeaderKey{leader, 7, "session-1"};
    }
    c->last_lsn = kLsn;
    core::Member n1;
    n1.name = "node1";
    n1.conn_url = "postgres://10.0.0.1:5432/postgres";
    n1.api_url = "http://10.0.0.1:8008/patroni";
    n1.state = "running";
    n1.role = "primary";
    n1.xlog_location = kLsn;
    n1.timeline = 3;
    n1.data_json =
        R"({"conn_url":"postgres://10.0.0.1:5432/postgres","api_url":"http://10.0.0.1:8008/patroni","state":"running","role":"primary","version":"4.1.4","xlog_location":50331744,"timeline":3})";
    core::Member n2;
    n2.name = "node2";
    n2.conn_url = "postgres://10.0.0.2:5433/postgres";
    n2.api_url = "http://10.0.0.2:8008/patroni";
    n2.state = "running";
    n2.role = "replica";
    n2.xlog_location = kLsn - 16;
    n2.receive_lsn = kLsn - 16;
    n2.replay_lsn = kLsn - 32;
    n2.replication_state = "streaming";
    n2.timeline = 3;
    n2.data_json = R"({"state":"running","role":"replica","timeline":3,"tags":{"zone":"b"}})";
    core::Member n3;
    n3.name = "node3";
    n3.conn_url = "postgres://10.0.0.3/postgres";
    n3.api_url = "http://10.0.0.3:8008/patroni";
    n3.state = "stopped";
    n3.role = "uninitialized";
    c->members = {n3, n1, n2};  // deliberately unsorted
    return c;
}

inline core::NodeStatus base_status(const std::string& name) {
    core::NodeStatus s;
    s.name = name;
    s.scope = "batman";
    s.state = core::PgState::Running;
    s.sysid = "7408355428143771740";
    s.cluster = cluster_with_leader("node1");
    s.cluster_valid_until = kNow + 30'000;
    s.dcs_last_seen = kEpoch - 3;
    s.next_run = kNow + 5'000;
    s.tags.json = {{"zone", "\"a\""}, {"nofailover", "false"}};
    s.tags.rendered = {{"zone", "a"}, {"nofailover", "false"}};
    return s;
}

// node1: holds a valid leader lease, PostgreSQL says not in recovery.
inline core::NodeStatus primary_status() {
    core::NodeStatus s = base_status("node1");
    s.role = core::Role::Primary;
    s.leader_lease_until = kNow + 30'000;
    core::PgQueryResult pg;
    pg.in_recovery = false;
    pg.server_version = 160004;
    pg.timeline = 3;
    pg.postmaster_start_time = "2024-08-28 19:39:26.352526+00:00";
    pg.wal_location = kLsn;
    pg.replication_json =
        R"([{"usename":"replicator","application_name":"node2","client_addr":"10.0.0.2","state":"streaming","sync_state":"async","sync_priority":0}])";
    s.pg = pg;
    return s;
}

// node2: streaming replica, no lease, caught up with the leader's optime.
inline core::NodeStatus replica_status() {
    core::NodeStatus s = base_status("node2");
    s.role = core::Role::Replica;
    core::PgQueryResult pg;
    pg.in_recovery = true;
    pg.server_version = 160004;
    pg.timeline = 3;
    pg.postmaster_start_time = "2024-08-28 19:40:00+00:00";
    pg.receive_location = kLsn;
    pg.replay_location = kLsn;
    pg.replication_state = "streaming";
    pg.latest_end_lsn = kLsn;
    s.pg = pg;
    return s;
}

}  // namespace pgwarden::rest::test
