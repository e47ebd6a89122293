// Private to pgw_rest: the DCS values the REST handlers read (/sync, /config, /history,
// /failsafe), decoded once here as Patroni's SyncState / ClusterConfig / global_config see them.
#pragma once

#include "core/cluster.hpp"
#include "core/node_status.hpp"
#include "runtime/rest/json_util.hpp"

#include <optional>
#include <string>
#include <vector>

namespace pgwarden::rest {

// The /sync key as Patroni's SyncState: a missing or invalid key is empty.
struct SyncKey {
    bool has_leader = false;            // "leader" is set (truthy)
    std::vector<std::string> standbys;  // sync_standby split on ',', stripped, lower-case
};
SyncKey decode_sync(const core::Cluster& cluster);

// SyncState.matches(name): the key has a leader and lists `name` (case-insensitive).
bool sync_matches(const SyncKey& sync, const std::string& name);

// The /config key.
struct ConfigKey {
    bool exists = false;        // the key is there
    bool versioned = false;     // ... with a modification version (Patroni's cluster.config)
    std::optional<OJson> json;  // its value when it is JSON (of any type)
    // ClusterConfig.from_node: the value when it is a JSON object, else {}.
    OJson data() const;
};
ConfigKey decode_config(const core::Cluster& cluster);

// The /history key when it is a JSON array, the /failsafe key when it is a JSON object.
std::optional<OJson> decode_history(const core::Cluster& cluster);
std::optional<OJson> decode_failsafe(const core::Cluster& cluster);

// The global configuration as Patroni's global_config.from_cluster(cluster) sees it.
struct GlobalFlags {
    bool paused = false;
    bool synchronous_mode = false;  // on or quorum, and not a standby cluster
    bool quorum = false;
};
// Without a usable config key, Patroni falls back to its own (local) configuration: `status`.
GlobalFlags global_flags(const core::Cluster& cluster, const core::NodeStatus& status);

}  // namespace pgwarden::rest
