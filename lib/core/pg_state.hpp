// What pgwarden observed of its local PostgreSQL in one cycle.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgwarden::core {

// Patroni's PostgresqlState strings (patroni/postgresql/misc.py).
enum class PgState {
    Initdb,
    InitdbFailed,
    CustomBootstrap,
    CustomBootstrapFailed,
    CreatingReplica,
    Running,
    Starting,
    BootstrapStarting,
    StartFailed,
    Restarting,
    RestartFailed,
    Stopping,
    Stopped,
    StopFailed,
    Crashed,
};

constexpr std::string_view to_string(PgState s) noexcept {
    switch (s) {
        case PgState::Initdb:
            return "initializing new cluster";
        case PgState::InitdbFailed:
            return "initdb failed";
        case PgState::CustomBootstrap:
            return "running custom bootstrap script";
        case PgState::CustomBootstrapFailed:
            return "custom bootstrap failed";
        case PgState::CreatingReplica:
            return "creating replica";
        case PgState::Running:
            return "running";
        case PgState::Starting:
            return "starting";
        case PgState::BootstrapStarting:
            return "starting after custom bootstrap";
        case PgState::StartFailed:
            return "start failed";
        case PgState::Restarting:
            return "restarting";
        case PgState::RestartFailed:
            return "restart failed";
        case PgState::Stopping:
            return "stopping";
        case PgState::Stopped:
            return "stopped";
        case PgState::StopFailed:
            return "stop failed";
        case PgState::Crashed:
            return "crashed";
    }
    return "unknown";
}

// Index used by /metrics patroni_postgres_state.
constexpr int metrics_index(PgState s) noexcept {
    return static_cast<int>(s);
}

// Internal role (Patroni's PostgresqlRole): what pgwarden believes this node is.
enum class Role { Uninitialized, Primary, Replica, StandbyLeader, Demoted, Promoted };

constexpr std::string_view to_string(Role r) noexcept {
    switch (r) {
        case Role::Uninitialized:
            return "uninitialized";
        case Role::Primary:
            return "primary";
        case Role::Replica:
            return "replica";
        case Role::StandbyLeader:
            return "standby_leader";
        case Role::Demoted:
            return "demoted";
        case Role::Promoted:
            return "promoted";
    }
    return "unknown";
}

// Result of querying a running PostgreSQL (one round trip).
struct PgQueryResult {
    bool in_recovery = false;
    int server_version = 0;
    int timeline = 0;
    std::string postmaster_start_time;  // text as PostgreSQL prints it
    std::int64_t wal_location = 0;      // primary: pg_current_wal_flush_lsn
    std::int64_t receive_location = 0;  // replica
    std::int64_t replay_location = 0;   // replica
    std::optional<std::string> replayed_timestamp;
    bool replay_paused = false;
    std::optional<std::string> replication_state;  // "streaming" / "in archive recovery"
    std::string replication_json = "[]";           // pg_stat_replication rows as JSON list
    std::int64_t latest_end_lsn = 0;               // pg_stat_wal_receiver.latest_end_lsn
    // Parameters changed in the configuration that only a restart applies:
    // {"name": {"old_value": ..., "new_value": ...}} ("{}" when none).
    std::string pending_restart_json = "{}";
};

// Everything observed locally in one cycle.
struct PgObservation {
    bool data_dir_exists = false;
    bool data_dir_empty = true;        // missing or empty
    std::optional<std::string> sysid;  // from pg_control (pg_controldata)
    std::string cluster_state;         // pg_controldata "Database cluster state"
    int control_timeline = 0;          // "Latest checkpoint's TimeLineID"
    std::int64_t checkpoint_lsn = 0;   // "Latest checkpoint location" (when read)
    // Where that checkpoint record ends (pg_waldump), only after a clean shutdown ("shut
    // down", "shut down in recovery"); else 0. A replica that received WAL up to here has
    // everything the stopped primary wrote (Patroni: the end of the shutdown checkpoint).
    std::int64_t checkpoint_end_lsn = 0;
    bool postmaster_running = false;     // a live postmaster owns data_dir
    bool accepting_connections = false;  // a query succeeded this cycle
    std::optional<PgQueryResult> query;  // nullopt if not running or the query failed
    std::string query_error;             // why the query failed, if it did
};

}  // namespace pgwarden::core
