// Health checks (spec 2): the status code of /primary, /replica, /sync, /read-only... with their
// ?lag= / ?tag_ filters, /liveness and /readiness.
#include "runtime/rest/endpoints.hpp"
#include "runtime/rest/handlers.hpp"
#include "runtime/rest/response_util.hpp"
#include "runtime/rest/status_json.hpp"

#include <algorithm>

namespace pgwarden::rest {

namespace {

using core::NodeStatus;
using core::PgState;

bool contains(std::string_view s, std::string_view needle) {
    return s.find(needle) != std::string_view::npos;
}

// Patroni's do_GET health logic: the status code for `path` (query already split off).
//
// Deliberate pgwarden improvement over Patroni (issue #2972): /primary (and /, /master,
// /read-write) answers 200 only when the leader lease is valid AND PostgreSQL itself reports that
// it is not in recovery. Patroni checks the lock only, so a node that has just taken the lock but
// not finished promotion answers 200 and HAProxy sends writes to a read-only server. Likewise it
// answers 503 as soon as pgwarden is about to stop PostgreSQL (state "stopping": demotion,
// restart, shutdown), before PostgreSQL refuses writes. /leader keeps Patroni's lock-only meaning
// (it also covers a standby leader).
int health_status_code(const Target& t,
                       const NodeStatus& status,
                       const StatusView& v,
                       core::MonoMs now) {
    const std::string path = t.path == "/" ? std::string("/primary") : t.path;
    const bool running = v.state == "running";
    const bool pg_says_primary = status.pg && !status.pg->in_recovery;

    // lag: max(cluster /status optime, pg_stat_wal_receiver.latest_end_lsn) vs replayed LSN
    const std::int64_t cluster_lsn =
        v.cluster != nullptr && v.cluster->last_lsn ? *v.cluster->last_lsn : 0;
    const std::int64_t leader_optime = std::max(cluster_lsn, v.latest_end_lsn);
    std::optional<std::int64_t> max_lag;
    if (auto lag = query_value(t, "lag")) {
        max_lag = parse_bytes(*lag);  // unparsable ("10mb") = no limit, as Patroni
    }
    const bool is_lagging =
        leader_optime != 0 && max_lag && leader_optime - v.replayed_location > *max_lag;
    bool matches_replication_state = true;
    if (auto wanted = query_value(t, "replication_state")) {
        matches_replication_state = v.replication_state && *v.replication_state == *wanted;
    }
    const int replica_code = !status.tags.noloadbalance && !is_lagging && v.role == "replica" &&
                                     running && matches_replication_state
                                 ? 200
                                 : 503;

    int leader_code = 503;
    int primary_code = 503;
    int standby_leader_code = 503;
    int replica_status_code = replica_code;
    if (v.cluster == nullptr && v.pause) {
        leader_code = v.role == "primary" || v.role == "standby_leader" ? 200 : 503;
        primary_code = v.role == "primary" && running && pg_says_primary ? 200 : 503;
        standby_leader_code = v.role == "standby_leader" ? 200 : 503;
    } else if (status.is_leader(now)) {
        leader_code = 200;
        if (status.standby_cluster) {
            primary_code = 503;
            replica_status_code = 503;
            standby_leader_code = v.role == "replica" || v.role == "standby_leader" ? 200 : 503;
        } else {
            primary_code = running && pg_says_primary ? 200 : 503;
            standby_leader_code = 503;
        }
    }

    int code = 503;
    bool ignore_tags = false;
    const bool leaderish = primary_code == 200 || standby_leader_code == 200;
    if (contains(path, "standby_leader") || contains(path, "standby-leader")) {
        code = standby_leader_code;
        ignore_tags = true;
    } else if (contains(path, "leader")) {
        code = leader_code;
        ignore_tags = true;
    } else if (contains(path, "master") || contains(path, "primary") ||
               contains(path, "read-write")) {
        code = primary_code;
        ignore_tags = true;
    } else if (contains(path, "replica")) {
        code = replica_status_code;
    } else if (contains(path, "read-only") && !contains(path, "sync") &&
               !contains(path, "quorum")) {
        code = leaderish ? 200 : replica_status_code;
    } else if (contains(path, "health")) {
        code = running ? 200 : 503;
    } else if (v.cluster != nullptr) {
        const bool is_quorum = v.quorum_standby;
        const bool is_sync = v.sync_standby;
        const bool replica_path =
            ((path == "/sync" || path == "/synchronous") && is_sync) ||
            (path == "/quorum" && is_quorum) ||
            ((path == "/async" || path == "/asynchronous") && !is_sync && !is_quorum);
        if (replica_path) {
            code = replica_status_code;
        } else if (path == "/read-only-quorum") {
            if (leaderish) {
                code = 200;
            } else if (is_quorum) {
                code = replica_status_code;
            }
        } else if (path == "/read-only-sync" || path == "/read-only-synchronous") {
            if (leaderish) {
                code = 200;
            } else if (is_sync) {
                code = replica_status_code;
            }
        }
    }

    // ?tag_<k>=<v>: every one must equal the configured tag as Patroni renders it.
    if (!ignore_tags && code == 200) {
        for (const auto& [key, value] : t.query) {
            if (key.rfind("tag_", 0) != 0) {
                continue;
            }
            const auto it = status.tags.rendered.find(key.substr(4));
            if (it == status.tags.rendered.end() || it->second != value) {
                code = 503;
                break;
            }
        }
    }
    return code;
}

}  // namespace

Response get_health(const Target& t,
                    const NodeStatus& status,
                    const Context& ctx,
                    bool only_status) {
    const StatusView v = status_view(status, ctx.now);
    const int code = health_status_code(t, status, v, ctx.now);
    if (only_status) {
        return status_only(code);
    }
    return json_response(code, patroni_status_json(status, ctx.now));
}

// spec 2.1
Response get_liveness(const NodeStatus& status, const Context& ctx) {
    const bool pg_alive = status.state == PgState::Running || status.state == PgState::Starting ||
                          status.state == PgState::Restarting || status.state == PgState::Stopping;
    const bool is_primary = status.role == core::Role::Primary && pg_alive;
    const core::MonoMs threshold =
        static_cast<core::MonoMs>(status.dynamic.ttl) * 1000 * (is_primary ? 1 : 2);
    const bool ok = status.dynamic.pause || status.next_run + threshold > ctx.now;
    return status_only(ok ? 200 : 503);
}

// spec 2.2: nullopt = ready, else the reason (Patroni logs it at DEBUG).
std::optional<std::string> readiness_failure(const Target& t,
                                             const NodeStatus& status,
                                             const Context& ctx) {
    if (status.is_leader(ctx.now)) {
        return std::nullopt;
    }
    if (status.state != PgState::Running) {
        return "PostgreSQL is not running";
    }
    const StatusView v = status_view(status, ctx.now);
    if (!v.replication_state || *v.replication_state != "streaming") {
        return "PostgreSQL replication state is not streaming";
    }
    if (v.cluster == nullptr && v.latest_end_lsn == 0) {
        if (status.failsafe_mode_is_active) {
            return std::nullopt;
        }
        return "DCS is not accessible";
    }
    const std::int64_t cluster_lsn =
        v.cluster != nullptr && v.cluster->last_lsn ? *v.cluster->last_lsn : 0;
    const std::int64_t leader_optime = std::max(cluster_lsn, v.latest_end_lsn);
    const bool write = query_value(t, "mode") == std::optional<std::string>("write");
    const std::int64_t lag = leader_optime - (write ? v.received_location : v.replayed_location);
    std::optional<std::int64_t> max_lag;
    if (auto q = query_value(t, "lag")) {
        max_lag = parse_bytes(*q);
    }
    const std::int64_t limit = max_lag.value_or(status.dynamic.maximum_lag_on_failover);
    if (lag > limit) {
        return "Replication " + std::string(write ? "write" : "apply") + " lag " +
               std::to_string(lag) + " exceeds maximum allowable " + std::to_string(limit);
    }
    return std::nullopt;
}

}  // namespace pgwarden::rest
