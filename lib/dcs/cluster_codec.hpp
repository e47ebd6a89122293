// Builds core::Cluster from the raw keys under /<namespace>/<scope>/, as Patroni's
// AbstractDCS._cluster_from_nodes does. Shared by all DCS backends; no I/O, never throws:
// malformed values are tolerated the way Patroni tolerates them (a bad member value gives a
// member with empty fields, a bad history gives no history lines, ...).
#pragma once

#include "core/cluster.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgwarden::dcs {

// One key as stored: value, version (etcd mod_revision / Consul ModifyIndex) and owner (etcd
// lease id / Consul session; "" when not ephemeral).
struct RawKey {
    std::string value;
    std::int64_t version = 0;
    std::string owner;
};

// Keys relative to the cluster prefix: "leader", "members/node1", "config", "optime/leader", ...
using RawKeys = std::map<std::string, RawKey>;

core::Cluster build_cluster(const RawKeys& keys);

// The pieces, exposed for the backends and for tests.
core::Member parse_member(std::string name, const RawKey& key);
core::FailoverKey parse_failover(const RawKey& key);
std::vector<core::HistoryLine> parse_history(std::string_view text);

struct StatusValue {
    std::optional<std::int64_t> optime;  // nullopt when absent, 0 or malformed
    std::map<std::string, std::int64_t> slots;
};
// `status` JSON ({"optime":N,"slots":{...}}) or a legacy optime/leader value (a plain number).
StatusValue parse_status(std::string_view text);

// The `status` value the leader writes: {"optime":N}.
std::string make_status_json(std::int64_t optime);

}  // namespace pgwarden::dcs
