// Node status as Patroni shows it: the body of GET /patroni (and of every GET health check) and the
// DCS member key value. Both are built from the published NodeStatus, so they share this file.
#pragma once

#include "core/cluster.hpp"
#include "core/node_status.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace pgwarden::rest {

// Patroni's get_postgresql_status() as values (spec 3): what the health checks, /patroni and
// /metrics all look at. Built per request from NodeStatus and `now`.
struct StatusView {
    std::string state;        // PostgresqlState string, or "unknown" (running but query failed)
    bool state_known = true;  // false for "unknown"
    std::string role;      // reported role (primary/replica from pg_is_in_recovery, else internal)
    bool queried = false;  // the PostgreSQL query succeeded (NodeStatus::pg present)
    bool is_primary = false;             // queried and not in recovery
    std::int64_t location = 0;           // primary: flush LSN
    std::int64_t received_location = 0;  // replica
    std::int64_t replayed_location = 0;  // replica
    std::int64_t latest_end_lsn = 0;     // replica: pg_stat_wal_receiver.latest_end_lsn
    int server_version = 0;
    std::optional<int> timeline;  // queried: the timeline (nullopt if unknown, JSON null)
    std::optional<std::string> replication_state;
    bool sync_standby = false;
    bool quorum_standby = false;
    bool pause = false;
    bool cluster_unlocked = false;
    bool failsafe_mode_is_active = false;
    // The cached cluster while still valid (Patroni's dcs.cluster), else null.
    const core::Cluster* cluster = nullptr;
};

StatusView status_view(const core::NodeStatus& status, core::MonoMs now);

// JSON body of GET /patroni (spec 3), compact, ASCII-only (as Python's json.dumps).
std::string patroni_status_json(const core::NodeStatus& status, core::MonoMs now);

// The DCS member key value (patroni-ha-behaviour.md 1.1, Patroni's Ha.touch_member).
std::string member_key_json(const core::NodeStatus& status,
                            const std::string& conn_url,
                            const std::string& api_url);

// Patroni's format_lsn: "X/Y" in upper-case hex.
std::string format_lsn(std::int64_t lsn);

// Seconds since the epoch of a PostgreSQL/Python timestamp text such as
// "2024-08-28 19:39:26.352526+00" or "2024-08-28T19:39:26.352526+00:00"; nullopt if unparsable.
std::optional<double> timestamp_to_epoch(const std::string& text);

}  // namespace pgwarden::rest
