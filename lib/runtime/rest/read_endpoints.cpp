// The read endpoints over the cached cluster: GET /cluster (Patroni's utils.cluster_as_json),
// /history, /config and /failsafe.
#include "runtime/rest/dcs_values.hpp"
#include "runtime/rest/endpoints.hpp"
#include "runtime/rest/json_util.hpp"
#include "runtime/rest/parse_util.hpp"
#include "runtime/rest/response_util.hpp"
#include "runtime/rest/status_json.hpp"

#include <algorithm>
#include <vector>

namespace pgwarden::rest {

using core::NodeStatus;

namespace {

std::string cluster_json(const NodeStatus& status, const core::Cluster& cluster) {
    const std::string leader_name = cluster.leader ? cluster.leader->name : std::string();
    const std::int64_t cluster_lsn = cluster.last_lsn.value_or(0);
    const bool sync_mode = status.dynamic.synchronous_mode == "on" ||
                           status.dynamic.synchronous_mode == "quorum" ||
                           status.dynamic.synchronous_mode == "true";
    const std::string sync_role =
        status.dynamic.synchronous_mode == "quorum" ? "quorum_standby" : "sync_standby";
    const SyncKey sync = decode_sync(cluster);

    std::vector<const core::Member*> members;
    for (const auto& m : cluster.members) {
        members.push_back(&m);
    }
    std::sort(members.begin(), members.end(), [](const auto* a, const auto* b) {
        return a->name < b->name;
    });

    OJson list = OJson::array();
    for (const core::Member* m : members) {
        const bool is_leader = !leader_name.empty() && m->name == leader_name;
        std::string role = "replica";
        if (is_leader) {
            role = status.standby_cluster ? "standby_leader" : "leader";
        } else if (sync_mode && sync_matches(sync, m->name)) {
            role = sync_role;
        }
        std::string state =
            role != "leader" && m->replication_state ? *m->replication_state : std::string();
        if (state.empty()) {
            state = m->state;
        }
        OJson j = OJson::object();
        j["name"] = m->name;
        j["role"] = role;
        j["state"] = state;
        j["api_url"] = m->api_url.empty() ? OJson(nullptr) : OJson(m->api_url);
        if (auto hp = url_host_port(m->conn_url, 5432); hp && !hp->host.empty()) {
            j["host"] = hp->host;
            if (hp->port) {
                j["port"] = *hp->port;
            }
        }
        if (auto data = parse_json(m->data_json); data && data->is_object()) {
            for (const char* key : {"timeline",
                                    "pending_restart",
                                    "pending_restart_reason",
                                    "scheduled_restart",
                                    "tags"}) {
                if (auto it = data->find(key); it != data->end()) {
                    j[key] = *it;
                }
            }
        }
        if (!is_leader) {
            const std::pair<const char*, std::optional<std::int64_t>> locations[] = {
                {"receive_", m->receive_lsn}, {"replay_", m->replay_lsn}, {"", m->xlog_location}};
            for (const auto& [prefix, lsn] : locations) {
                const std::string lsn_key = std::string(prefix) + "lsn";
                const std::string lag_key = std::string(prefix) + "lag";
                if (!lsn || *lsn == 0) {
                    j[lsn_key] = "unknown";
                    j[lag_key] = "unknown";
                } else {
                    j[lag_key] = cluster_lsn >= *lsn ? cluster_lsn - *lsn : 0;
                    j[lsn_key] = format_lsn(*lsn);
                }
            }
        }
        list.push_back(std::move(j));
    }

    OJson out = OJson::object();
    out["members"] = std::move(list);
    if (status.dynamic.pause) {
        out["pause"] = true;
    }
    if (cluster.failover && cluster.failover->scheduled_at) {
        OJson sw = OJson::object();
        sw["at"] = *cluster.failover->scheduled_at;
        if (cluster.failover->leader) {
            sw["from"] = *cluster.failover->leader;
        }
        if (cluster.failover->member) {
            sw["to"] = *cluster.failover->member;
        }
        out["scheduled_switchover"] = std::move(sw);
    }
    out["scope"] = status.scope;
    return dump_json(out);
}

}  // namespace

Response get_cluster(const NodeStatus& status) {
    // Patroni reads the DCS afresh here and, when that fails, closes the socket without any
    // answer. pgwarden answers from the last successful read (never a DCS call per request) and
    // says 503 when there has been none.
    if (!status.cluster) {
        return message(503, "cluster state unknown: no successful DCS read yet");
    }
    return json_response(200, cluster_json(status, *status.cluster));
}

Response get_history(const NodeStatus& status) {
    if (!status.cluster) {
        return message(503, "cluster state unknown: no successful DCS read yet");
    }
    const core::Cluster& c = *status.cluster;
    if (auto h = decode_history(c)) {
        return json_response(200, dump_json(*h));
    }
    OJson lines = OJson::array();
    for (const auto& h : c.history) {
        OJson line = OJson::array({h.timeline, h.lsn, h.reason});
        if (h.timestamp) {
            line.push_back(*h.timestamp);
            if (h.new_leader) {
                line.push_back(*h.new_leader);
            }
        }
        lines.push_back(std::move(line));
    }
    return json_response(200, dump_json(lines));
}

Response get_config(const NodeStatus& status) {
    const ConfigKey cfg = status.cluster ? decode_config(*status.cluster) : ConfigKey{};
    if (!cfg.versioned) {
        return error_page(502);
    }
    // The stored value; Patroni treats an unparsable one as {}.
    return json_response(200, cfg.json ? dump_json(*cfg.json) : std::string("{}"));
}

Response get_failsafe(const NodeStatus& status) {
    if (status.cluster) {
        if (auto fs = decode_failsafe(*status.cluster)) {
            return json_response(200, dump_json(*fs));
        }
    }
    return error_page(502);
}

}  // namespace pgwarden::rest
