// GET /metrics (spec 11): the Prometheus text Patroni writes, with its Python float and version
// formatting and label escaping.
#include "runtime/rest/dcs_values.hpp"
#include "runtime/rest/endpoints.hpp"
#include "runtime/rest/status_json.hpp"

#include <array>
#include <charconv>

namespace pgwarden::rest {

namespace {

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

}  // namespace

Response get_metrics(const core::NodeStatus& status, const Context& ctx) {
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
    if (status.cluster) {
        if (auto fs = decode_failsafe(*status.cluster)) {
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

}  // namespace pgwarden::rest
