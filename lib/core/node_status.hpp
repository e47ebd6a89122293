// The immutable value the HA loop publishes after every cycle and the REST API answers from.
// Never mutated after publication: the runtime builds a new one and swaps a shared_ptr.
#pragma once

#include "core/cluster.hpp"
#include "core/pg_state.hpp"
#include "core/settings.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pgwarden::core {

// Monotonic milliseconds (steady clock), injected: handlers take `now` as a parameter.
using MonoMs = std::int64_t;

struct NodeStatus {
    std::string name;
    std::string scope;
    std::string version = "4.1.4";  // Patroni-compatible version published to tools (spec 1.1)

    PgState state = PgState::Stopped;
    Role role = Role::Uninitialized;  // internal role
    std::optional<PgQueryResult> pg;  // nullopt: not running, or the last query failed
    std::optional<std::string> sysid;

    // Leader lease: valid while now < leader_lease_until (last successful lock update + ttl).
    std::optional<MonoMs> leader_lease_until;
    // Cached cluster: valid while now < cluster_valid_until (last successful DCS read + ttl).
    std::optional<MonoMs> cluster_valid_until;
    std::shared_ptr<const Cluster> cluster;  // last successful DCS read (may be stale)
    std::int64_t dcs_last_seen = 0;          // epoch seconds of the last successful DCS read

    // HA loop heartbeat for /liveness: the loop is alive while now < next_run + threshold.
    MonoMs next_run = 0;

    DynamicSettings dynamic;  // effective dynamic configuration
    Tags tags;                // configured tags
    bool standby_cluster = false;
    bool sync_standby = false;    // listed in /sync and synchronous_mode on
    bool quorum_standby = false;  // same, synchronous_mode quorum
    bool failsafe_mode_is_active = false;

    bool pending_restart = false;
    std::string pending_restart_reason_json;  // {"param": {"old_value":..,"new_value":..}}
    std::optional<std::string> scheduled_restart_json;

    std::string last_outcome;  // the last decision's reason sentence (pgwarden extension)
    // Settings of the DCS configuration this version does not implement ("config.key: why"),
    // reported in /patroni as `unsupported_settings` (pgwarden extension).
    std::vector<std::string> unsupported_settings;

    // Added for the REST API (lib/runtime/rest):
    // Effective tags (configured + dynamic nosync/sync_priority, Patroni's get_effective_tags) as
    // compact JSON values; nullopt means "same as tags.json". Published in /patroni and the member
    // key.
    std::optional<std::map<std::string, std::string>> effective_tags_json;
    bool watchdog_failed = false;  // watchdog required but unhealthy (/patroni `watchdog_failed`)
    // Leader only: the post-promote CHECKPOINT has not completed yet (member key
    // `checkpoint_after_promote: false`, replicas wait for it before pg_rewind).
    bool checkpoint_after_promote_pending = false;

    bool is_leader(MonoMs now) const { return leader_lease_until && now < *leader_lease_until; }
    bool cluster_valid(MonoMs now) const {
        return cluster && cluster_valid_until && now < *cluster_valid_until;
    }
};

}  // namespace pgwarden::core
