#include "runtime/rest/handlers.hpp"

#include "runtime/rest/json_util.hpp"
#include "runtime/rest/parse_util.hpp"
#include "runtime/rest/response_util.hpp"
#include "runtime/rest/status_json.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>

namespace pgwarden::rest {

namespace {

using core::NodeStatus;
using core::PgState;

constexpr std::string_view kNotSupported = "not supported by this pgwarden version yet";

bool contains(std::string_view s, std::string_view needle) {
    return s.find(needle) != std::string_view::npos;
}

// ---------------------------------------------------------------------------------------------
// Responses

Response status_only(int status) {
    Response r;
    r.status = status;
    r.status_only = true;
    return r;
}

// ---------------------------------------------------------------------------------------------
// Request target

struct Target {
    std::string path;  // raw (not percent-decoded), as Patroni's urlparse(...).path
    std::map<std::string, std::string> query;
    std::string first_segment;  // path.lstrip('/').split('/')[0]
};

Target split_target(std::string_view target) {
    target = strip_absolute_form(target);
    if (const auto hash = target.find('#'); hash != std::string_view::npos) {
        target = target.substr(0, hash);
    }
    Target t;
    const auto q = target.find('?');
    t.path = std::string(target.substr(0, q));
    if (q != std::string_view::npos) {
        t.query = parse_query(target.substr(q + 1));
    }
    t.first_segment = std::string(first_path_segment(t.path));
    return t;
}

std::optional<std::string> query_value(const Target& t, const std::string& key) {
    if (auto it = t.query.find(key); it != t.query.end()) {
        return it->second;
    }
    return std::nullopt;
}

std::string url_unquote_plus(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        if (c >= 'A' && c <= 'F') {
            return c - 'A' + 10;
        }
        return -1;
    };
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '+') {
            out += ' ';
        } else if (c == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
            out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
            i += 2;
        } else {
            out += c;
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Health checks (spec 2)

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

// ---------------------------------------------------------------------------------------------
// /cluster (spec 4, Patroni's utils.cluster_as_json)

struct HostPort {
    std::string host;
    std::optional<int> port;
};

// urlparse(url).hostname / .port (default 5432 for conn_url, as Member.conn_kwargs)
std::optional<HostPort> url_host_port(std::string_view url, std::optional<int> default_port) {
    const auto scheme = url.find("://");
    if (scheme == std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view netloc = url.substr(scheme + 3);
    netloc = netloc.substr(0, netloc.find_first_of("/?#"));
    if (const auto at = netloc.rfind('@'); at != std::string_view::npos) {
        netloc.remove_prefix(at + 1);
    }
    HostPort hp;
    std::string_view port_text;
    if (!netloc.empty() && netloc.front() == '[') {
        const auto close = netloc.find(']');
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        hp.host = std::string(netloc.substr(1, close - 1));
        const std::string_view after = netloc.substr(close + 1);
        if (!after.empty() && after.front() == ':') {
            port_text = after.substr(1);
        }
    } else {
        const auto colon = netloc.rfind(':');
        hp.host = std::string(netloc.substr(0, colon));
        if (colon != std::string_view::npos) {
            port_text = netloc.substr(colon + 1);
        }
    }
    std::transform(hp.host.begin(), hp.host.end(), hp.host.begin(), [](unsigned char c) {
        return static_cast<char>(std::tolower(c));
    });
    int port = 0;
    if (!port_text.empty() &&
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port).ec ==
            std::errc{}) {
        hp.port = port;
    } else {
        hp.port = default_port;
    }
    return hp;
}

std::set<std::string> sync_members(const core::Cluster& cluster) {
    std::set<std::string> out;
    if (!cluster.sync_json) {
        return out;
    }
    const auto sync = parse_json(*cluster.sync_json);
    if (!sync || !sync->is_object()) {
        return out;
    }
    const auto it = sync->find("sync_standby");
    if (it == sync->end() || !it->is_string()) {
        return out;
    }
    const std::string names = it->get<std::string>();
    std::size_t start = 0;
    while (start <= names.size()) {
        const auto comma = names.find(',', start);
        std::string n =
            names.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) {
            return static_cast<char>(std::tolower(c));
        });
        if (!n.empty()) {
            out.insert(n);
        }
        if (comma == std::string::npos) {
            break;
        }
        start = comma + 1;
    }
    return out;
}

std::string cluster_json(const NodeStatus& status, const core::Cluster& cluster) {
    const std::string leader_name = cluster.leader ? cluster.leader->name : std::string();
    const std::int64_t cluster_lsn = cluster.last_lsn.value_or(0);
    const bool sync_mode = status.dynamic.synchronous_mode == "on" ||
                           status.dynamic.synchronous_mode == "quorum" ||
                           status.dynamic.synchronous_mode == "true";
    const std::string sync_role =
        status.dynamic.synchronous_mode == "quorum" ? "quorum_standby" : "sync_standby";
    const auto syncs = sync_members(cluster);

    std::vector<const core::Member*> members;
    for (const auto& m : cluster.members) {
        members.push_back(&m);
    }
    std::sort(members.begin(), members.end(), [](const auto* a, const auto* b) {
        return a->name < b->name;
    });

    OJson list = OJson::array();
    for (const core::Member* m : members) {
        std::string lower = m->name;
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) {
            return static_cast<char>(std::tolower(c));
        });
        const bool is_leader = !leader_name.empty() && m->name == leader_name;
        std::string role = "replica";
        if (is_leader) {
            role = status.standby_cluster ? "standby_leader" : "leader";
        } else if (sync_mode && syncs.count(lower) != 0) {
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

// ---------------------------------------------------------------------------------------------
// Simple GET endpoints

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
    if (c.history_json) {
        if (auto h = parse_json(*c.history_json); h && h->is_array()) {
            return json_response(200, dump_json(*h));
        }
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
    if (!status.cluster || !status.cluster->config_json || status.cluster->config_version == 0) {
        return error_page(502);
    }
    // The stored value; Patroni treats an unparsable one as {}.
    auto cfg = parse_json(*status.cluster->config_json);
    return json_response(200, cfg ? dump_json(*cfg) : std::string("{}"));
}

Response get_failsafe(const NodeStatus& status) {
    if (status.cluster && status.cluster->failsafe_json) {
        if (auto fs = parse_json(*status.cluster->failsafe_json); fs && fs->is_object()) {
            return json_response(200, dump_json(*fs));
        }
    }
    return error_page(502);
}

// ---------------------------------------------------------------------------------------------
// /metrics (spec 11)

std::string prom_label_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '\\' || c == '"') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

// Python's str(float) for the values we emit (finite, < 1e16): shortest round-trip, ".0" if
// integral; 0 is emitted as the int 0 by the caller.
std::string python_float(double v) {
    std::array<char, 64> buf{};
    auto res = std::to_chars(buf.data(), buf.data() + buf.size(), v);
    std::string s(buf.data(), res.ptr);
    if (s.find_first_of(".en") == std::string::npos) {
        s += ".0";
    }
    return s;
}

std::string epoch_or_zero(const std::optional<std::string>& ts) {
    if (!ts) {
        return "0";
    }
    auto e = timestamp_to_epoch(*ts);
    return e ? python_float(*e) : "0";
}

std::string padded_version(const std::string& version) {
    std::string out;
    std::size_t start = 0;
    while (true) {
        const auto dot = version.find('.', start);
        std::string part =
            version.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        if (part.size() < 2) {
            part.insert(0, 2 - part.size(), '0');
        }
        out += part;
        if (dot == std::string::npos) {
            break;
        }
        start = dot + 1;
    }
    return out;
}

Response get_metrics(const NodeStatus& status, const Context& ctx) {
    const StatusView v = status_view(status, ctx.now);
    const std::string labels = "{scope=\"" + prom_label_escape(status.scope) + "\",name=\"" +
                               prom_label_escape(status.name) + "\"}";
    std::string out;
    auto metric =
        [&](const char* name, const char* help, const char* type, const std::string& value) {
            out += "# HELP ";
            out += name;
            out += ' ';
            out += help;
            out += "\n# TYPE ";
            out += name;
            out += ' ';
            out += type;
            out += '\n';
            out += name;
            out += labels;
            out += ' ';
            out += value;
            out += '\n';
        };
    auto b = [](bool x) {
        return std::string(x ? "1" : "0");
    };
    auto i = [](std::int64_t x) {
        return std::to_string(x);
    };
    const core::PgQueryResult* pg = status.pg ? &*status.pg : nullptr;

    metric("patroni_version",
           "Patroni semver without periods.",
           "gauge",
           padded_version(status.version));
    metric("patroni_postgres_running",
           "Value is 1 if Postgres is running, 0 otherwise.",
           "gauge",
           b(v.state == "running"));
    metric("patroni_postmaster_start_time",
           "Epoch seconds since Postgres started.",
           "gauge",
           pg != nullptr && !pg->postmaster_start_time.empty()
               ? epoch_or_zero(pg->postmaster_start_time)
               : "0");
    metric("patroni_primary",
           "Value is 1 if this node is the leader, 0 otherwise.",
           "gauge",
           b(v.role == "primary"));
    metric("patroni_xlog_location",
           "Current location of the Postgres transaction log, 0 if this node is not the leader.",
           "counter",
           i(v.location));
    metric("patroni_standby_leader",
           "Value is 1 if this node is the standby_leader, 0 otherwise.",
           "gauge",
           b(v.role == "standby_leader"));
    metric("patroni_replica",
           "Value is 1 if this node is a replica, 0 otherwise.",
           "gauge",
           b(v.role == "replica"));
    metric("patroni_sync_standby",
           "Value is 1 if this node is a sync standby, 0 otherwise.",
           "gauge",
           b(v.sync_standby));
    metric("patroni_quorum_standby",
           "Value is 1 if this node is a quorum standby, 0 otherwise.",
           "gauge",
           b(v.quorum_standby));
    metric("patroni_xlog_received_location",
           "Current location of the received Postgres transaction log, 0 if this node is not a "
           "replica.",
           "counter",
           i(v.received_location));
    metric("patroni_xlog_replayed_location",
           "Current location of the replayed Postgres transaction log, 0 if this node is not a "
           "replica.",
           "counter",
           i(v.replayed_location));
    metric("patroni_xlog_replayed_timestamp",
           "Current timestamp of the replayed Postgres transaction log, 0 if null.",
           "gauge",
           pg != nullptr && pg->in_recovery ? epoch_or_zero(pg->replayed_timestamp) : "0");
    metric("patroni_xlog_paused",
           "Value is 1 if the Postgres xlog is paused, 0 otherwise.",
           "gauge",
           b(pg != nullptr && pg->in_recovery && pg->replay_paused));
    if (v.queried && v.server_version >= 90600) {
        metric("patroni_postgres_streaming",
               "Value is 1 if Postgres is streaming, 0 otherwise.",
               "gauge",
               b(v.replication_state == std::optional<std::string>("streaming")));
        metric("patroni_postgres_in_archive_recovery",
               "Value is 1 if Postgres is replicating from archive, 0 otherwise.",
               "gauge",
               b(v.replication_state == std::optional<std::string>("in archive recovery")));
    }
    metric("patroni_postgres_server_version",
           "Version of Postgres (if running), 0 otherwise.",
           "gauge",
           i(v.queried ? v.server_version : 0));
    metric("patroni_cluster_unlocked",
           "Value is 1 if the cluster is unlocked, 0 if locked.",
           "gauge",
           b(v.cluster_unlocked));
    metric("patroni_failsafe_mode_is_active",
           "Value is 1 if failsafe mode is active, 0 if inactive.",
           "gauge",
           b(v.failsafe_mode_is_active));
    metric("patroni_failsafe_mode_enabled",
           "Value is 1 if failsafe_mode is enabled, 0 otherwise.",
           "gauge",
           b(status.dynamic.failsafe_mode));
    bool failsafe_member = false;
    if (status.cluster && status.cluster->failsafe_json) {
        if (auto fs = parse_json(*status.cluster->failsafe_json); fs && fs->is_object()) {
            failsafe_member = fs->contains(status.name);
        }
    }
    metric("patroni_failsafe_member",
           "Value is 1 if this node is a member of failsafe, 0 otherwise.",
           "gauge",
           b(failsafe_member));
    metric("patroni_postgres_timeline",
           "Postgres timeline of this node (if running), 0 otherwise.",
           "gauge",
           i(v.timeline.value_or(0)));
    metric("patroni_dcs_last_seen",
           "Epoch timestamp when DCS was last contacted successfully by Patroni.",
           "gauge",
           i(status.dcs_last_seen));
    metric("patroni_pending_restart",
           "Value is 1 if the node needs a restart, 0 otherwise.",
           "gauge",
           b(status.pending_restart));
    metric("patroni_is_paused",
           "Value is 1 if auto failover is disabled, 0 otherwise.",
           "gauge",
           b(v.pause));

    out += "# HELP patroni_postgres_state Numeric representation of Postgres state.\n";
    out +=
        "# Values: 0=initdb, 1=initdb_failed, 2=custom_bootstrap, 3=custom_bootstrap_failed, "
        "4=creating_replica, 5=running, 6=starting, 7=bootstrap_starting, 8=start_failed, "
        "9=restarting, 10=restart_failed, 11=stopping, 12=stopped, 13=stop_failed, "
        "14=crashed\n";
    out += "# TYPE patroni_postgres_state gauge\n";
    out += "patroni_postgres_state" + labels + ' ' +
           std::to_string(v.state_known ? core::metrics_index(status.state) : -1) + '\n';

    const int priority = status.tags.nofailover ? 0 : status.tags.failover_priority;
    metric("patroni_failover_priority", "Failover priority of this node.", "gauge", i(priority));

    Response r;
    r.status = 200;
    r.content_type = "text/plain";
    r.body = std::move(out);
    return r;
}

// ---------------------------------------------------------------------------------------------
// Access control helpers

struct IpNet {
    int family = 0;  // AF_INET / AF_INET6
    std::array<unsigned char, 16> addr{};
    int prefix = 0;
};

std::optional<IpNet> parse_ip(const std::string& text) {
    IpNet n;
    std::string host = text;
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    if (inet_pton(AF_INET, host.c_str(), n.addr.data()) == 1) {
        n.family = AF_INET;
        n.prefix = 32;
        return n;
    }
    if (inet_pton(AF_INET6, host.c_str(), n.addr.data()) == 1) {
        // IPv4-mapped IPv6 (::ffff:a.b.c.d) compares as IPv4
        static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (std::memcmp(n.addr.data(), kMapped, 12) == 0) {
            std::memmove(n.addr.data(), n.addr.data() + 12, 4);
            std::fill(n.addr.begin() + 4, n.addr.end(), 0);
            n.family = AF_INET;
            n.prefix = 32;
            return n;
        }
        n.family = AF_INET6;
        n.prefix = 128;
        return n;
    }
    return std::nullopt;
}

// "10.0.0.0/8", "::1/128", "10.1.2.3" (ip_network(..., strict=False))
std::optional<IpNet> parse_net(const std::string& text) {
    const auto slash = text.find('/');
    auto net = parse_ip(text.substr(0, slash));
    if (!net) {
        return std::nullopt;
    }
    if (slash != std::string::npos) {
        int prefix = -1;
        const std::string p = text.substr(slash + 1);
        if (std::from_chars(p.data(), p.data() + p.size(), prefix).ec != std::errc{} ||
            prefix < 0 || prefix > net->prefix) {
            return std::nullopt;
        }
        net->prefix = prefix;
    }
    return net;
}

bool net_contains(const IpNet& net, const IpNet& ip) {
    if (net.family != ip.family) {
        return false;
    }
    const int full = net.prefix / 8;
    if (std::memcmp(net.addr.data(), ip.addr.data(), static_cast<std::size_t>(full)) != 0) {
        return false;
    }
    const int bits = net.prefix % 8;
    if (bits == 0) {
        return true;
    }
    const auto mask = static_cast<unsigned char>(0xFF << (8 - bits));
    return (net.addr[full] & mask) == (ip.addr[full] & mask);
}

std::string base64(std::string_view in) {
    static constexpr char kTable[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                           (static_cast<unsigned char>(in[i + 1]) << 8) |
                           static_cast<unsigned char>(in[i + 2]);
        out += kTable[(v >> 18) & 63];
        out += kTable[(v >> 12) & 63];
        out += kTable[(v >> 6) & 63];
        out += kTable[v & 63];
    }
    if (i + 1 == in.size()) {
        const unsigned v = static_cast<unsigned char>(in[i]) << 16;
        out += kTable[(v >> 18) & 63];
        out += kTable[(v >> 12) & 63];
        out += "==";
    } else if (i + 2 == in.size()) {
        const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                           (static_cast<unsigned char>(in[i + 1]) << 8);
        out += kTable[(v >> 18) & 63];
        out += kTable[(v >> 12) & 63];
        out += kTable[(v >> 6) & 63];
        out += '=';
    }
    return out;
}

// hmac.compare_digest: time depends only on the lengths.
bool constant_time_equal(std::string_view a, std::string_view b) {
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    const std::size_t n = std::min(a.size(), b.size());
    for (std::size_t k = 0; k < n; ++k) {
        diff |= static_cast<unsigned char>(a[k] ^ b[k]);
    }
    return diff == 0;
}

// Patroni's do_<METHOD>_<segment> handlers that exist for unsafe methods.
struct UnsafeEndpoint {
    std::string_view method;
    std::string_view segment;
    bool allowlist_check_members;
};
constexpr UnsafeEndpoint kUnsafeEndpoints[] = {
    {"POST", "reload", true},
    {"POST", "restart", true},
    {"POST", "reinitialize", true},
    {"POST", "failover", true},
    {"POST", "switchover", true},
    {"POST", "failsafe", false},  // member allowlist not applied, as Patroni
    {"POST", "sigterm", true},
    {"POST", "citus", true},
    {"POST", "mpp", true},  // Patroni forgot check_access here; pgwarden applies it
    {"PATCH", "config", true},
    {"PUT", "config", true},
    {"DELETE", "restart", true},
    {"DELETE", "switchover", true},
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public functions

std::optional<std::int64_t> parse_bytes(std::string_view value) {
    // convert_to_base_unit(value, unit, 'B'): TB->GB, GB->MB, MB->kB, kB->B rounding.
    constexpr double kKi = 1024.0;
    static constexpr UnitFactor kUnits[] = {
        {"TB", kKi * kKi * kKi * kKi, kKi * kKi * kKi},
        {"GB", kKi * kKi * kKi, kKi * kKi},
        {"MB", kKi * kKi, kKi},
        {"kB", kKi, 1},
        {"B", 1, 0},
    };
    return parse_int_with_unit(value, kUnits);
}

std::map<std::string, std::string> parse_query(std::string_view query) {
    std::map<std::string, std::string> out;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        const auto eq = pair.find('=');
        if (eq == std::string_view::npos) {
            continue;  // no '=': dropped (keep_blank_values=False)
        }
        const std::string_view value = pair.substr(eq + 1);
        if (value.empty()) {
            continue;  // blank value dropped
        }
        out.emplace(url_unquote_plus(pair.substr(0, eq)), url_unquote_plus(value));
    }
    return out;
}

std::string http_date(std::int64_t epoch_seconds) {
    static constexpr const char* kDays[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
    static constexpr const char* kMonths[] = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::int64_t days = epoch_seconds / 86400;
    std::int64_t secs = epoch_seconds % 86400;
    if (secs < 0) {
        secs += 86400;
        days -= 1;
    }
    const auto weekday = static_cast<int>(((days % 7) + 7) % 7);
    // civil_from_days (Howard Hinnant)
    const std::int64_t z = days + 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2 ? 1 : 0;
    char buf[64];
    std::snprintf(buf,
                  sizeof buf,
                  "%s, %02u %s %04lld %02d:%02d:%02d GMT",
                  kDays[weekday],
                  d,
                  kMonths[m - 1],
                  static_cast<long long>(y),
                  static_cast<int>(secs / 3600),
                  static_cast<int>((secs / 60) % 60),
                  static_cast<int>(secs % 60));
    return buf;
}

std::optional<Response> check_access(const Request& req,
                                     const core::RestApiSettings& settings,
                                     const core::Cluster* cluster,
                                     bool allowlist_check_members) {
    const bool check_members = allowlist_check_members && settings.allowlist_include_members;
    if (!settings.allowlist.empty() || check_members) {
        std::vector<IpNet> allowed;
        for (const auto& entry : settings.allowlist) {
            if (auto n = parse_net(entry)) {
                allowed.push_back(*n);
            }
        }
        if (check_members && cluster != nullptr) {
            for (const auto& m : cluster->members) {
                if (auto hp = url_host_port(m.api_url, std::nullopt)) {
                    if (auto n = parse_ip(hp->host)) {
                        allowed.push_back(*n);
                    }
                }
            }
        }
        const auto peer = parse_ip(req.peer_address);
        const bool ok = peer && std::any_of(allowed.begin(), allowed.end(), [&](const IpNet& n) {
                            return net_contains(n, *peer);
                        });
        if (!ok) {
            Response r = message(403, "Access is denied");
            add_extra_headers(r, settings);
            return r;
        }
    }
    if (settings.authentication) {
        const auto it = req.headers.find("authorization");
        std::optional<std::string_view> reason;
        if (it == req.headers.end()) {
            reason = "no auth header received";
        } else {
            const std::string expected =
                base64(settings.authentication->username + ":" + settings.authentication->password);
            const std::string_view header = it->second;
            if (header.substr(0, 6) != "Basic " ||
                !constant_time_equal(header.substr(6), expected)) {
                reason = "not authenticated";
            }
        }
        if (reason) {
            Response r = message(401, *reason);
            r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"Patroni\"");
            add_extra_headers(r, settings);
            return r;
        }
    }
    return std::nullopt;
}

Response handle_unsafe_not_supported(const Request& req,
                                     const core::RestApiSettings& settings,
                                     const core::Cluster* cluster) {
    const Target t = split_target(req.target);
    const UnsafeEndpoint* endpoint = nullptr;
    for (const auto& e : kUnsafeEndpoints) {
        if (e.method == req.method && e.segment == t.first_segment) {
            endpoint = &e;
            break;
        }
    }
    if (endpoint == nullptr) {
        // Python's BaseHTTPRequestHandler: no do_<METHOD> -> 501 "Unsupported method ('X')"
        return error_page(501, "Unsupported method ('" + req.method + "')");
    }
    if (auto denied = check_access(req, settings, cluster, endpoint->allowlist_check_members)) {
        return *denied;
    }
    Response r = message(503, kNotSupported);
    add_extra_headers(r, settings);
    return r;
}

Response handle(const Request& req,
                const core::NodeStatus& status,
                const Context& ctx,
                const core::RestApiSettings& settings) {
    if (req.method != "GET" && req.method != "HEAD" && req.method != "OPTIONS") {
        return handle_unsafe_not_supported(req, settings, status.cluster.get());
    }
    const Target t = split_target(req.target);
    if (req.method != "GET") {
        // HEAD/OPTIONS always run the health logic (so HEAD /patroni is 503, as Patroni).
        return get_health(t, status, ctx, true);
    }
    Response r;
    const std::string& seg = t.first_segment;
    if (seg == "liveness") {
        return get_liveness(status, ctx);
    } else if (seg == "readiness") {
        return status_only(readiness_failure(t, status, ctx) ? 503 : 200);
    } else if (seg == "patroni") {
        r = json_response(200, patroni_status_json(status, ctx.now));
    } else if (seg == "cluster") {
        r = get_cluster(status);
    } else if (seg == "history") {
        r = get_history(status);
    } else if (seg == "config") {
        r = get_config(status);
    } else if (seg == "metrics") {
        r = get_metrics(status, ctx);
    } else if (seg == "failsafe") {
        r = get_failsafe(status);
    } else {
        r = get_health(t, status, ctx, false);
    }
    // send_error pages carry no extra headers (Patroni); everything else does.
    if (r.content_type != "text/html;charset=utf-8") {
        add_extra_headers(r, settings);
    }
    return r;
}

}  // namespace pgwarden::rest
