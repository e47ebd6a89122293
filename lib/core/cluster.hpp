// The cluster as read from the DCS in one request: Patroni's key layout, parsed.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pgwarden::core {

struct Member {
    std::string name;
    std::string data_json = "{}";  // the member key's value as stored
    std::string conn_url;
    std::string api_url;
    std::string state;
    std::string role;
    std::optional<std::int64_t> xlog_location;
    std::optional<std::int64_t> receive_lsn;
    std::optional<std::int64_t> replay_lsn;
    std::optional<std::string> replication_state;
    std::optional<int> timeline;
    bool nofailover = false;
    int failover_priority = 1;
    bool clonefrom = false;
    bool checkpoint_after_promote_pending = false;  // new leader has not checkpointed yet
    std::int64_t version = 0;                       // etcd mod_revision / Consul ModifyIndex
    std::string owner;  // etcd lease id / Consul session the key is tied to
};

struct LeaderKey {
    std::string name;
    std::int64_t version = 0;
    std::string owner;  // etcd lease id / Consul session
};

struct FailoverKey {
    std::optional<std::string> leader;
    std::optional<std::string> member;        // the candidate ("member" in the DCS)
    std::optional<std::string> scheduled_at;  // ISO 8601
    std::int64_t version = 0;
    bool empty() const { return !leader && !member && !scheduled_at; }
};

struct HistoryLine {
    int timeline = 0;
    std::int64_t lsn = 0;
    std::string reason;
    std::optional<std::string> timestamp;
    std::optional<std::string> new_leader;
};

// What another member's REST API (GET <api_url>, i.e. /patroni) said in the leader race.
struct MemberProbe {
    std::string name;
    bool reachable = false;         // answered 200 with a usable body within the deadline
    bool is_primary = false;        // role primary / not in recovery
    std::int64_t wal_position = 0;  // primary: xlog.location; replica: max(received, replayed)
    int timeline = 0;
    bool nofailover = false;
    int failover_priority = 1;
    bool watchdog_failed = false;
    std::string state;  // "running", ...
};

struct Cluster {
    std::optional<std::string> initialize;   // sysid; "" while bootstrap is in progress
    std::optional<std::string> config_json;  // the `config` key as stored
    std::int64_t config_version = 0;
    std::optional<LeaderKey> leader;
    std::vector<Member> members;  // sorted by name
    std::optional<FailoverKey> failover;
    std::optional<std::string> sync_json;
    std::int64_t sync_version = 0;
    std::optional<std::string> history_json;  // raw JSON list
    std::vector<HistoryLine> history;
    std::optional<std::int64_t> last_lsn;  // status.optime (or legacy optime/leader)
    std::map<std::string, std::int64_t> slots;
    std::optional<std::string> failsafe_json;

    const Member* member(const std::string& name) const {
        for (const auto& m : members) {
            if (m.name == name) {
                return &m;
            }
        }
        return nullptr;
    }
    bool is_locked() const { return leader.has_value() && !leader->name.empty(); }
    bool sysid_valid() const { return initialize && initialize->size() >= 10; }
};

}  // namespace pgwarden::core
