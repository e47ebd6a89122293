// GET /patroni and the DCS member key: the node status as Patroni shows it (StatusView), plus
// LSN and PostgreSQL timestamp text.
#include "runtime/rest/status_json.hpp"

#include "runtime/rest/calendar.hpp"
#include "runtime/rest/json_util.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace pgwarden::rest {

using core::PgState;

StatusView status_view(const core::NodeStatus& status, core::MonoMs now) {
    StatusView v;
    v.cluster = status.cluster_valid(now) ? status.cluster.get() : nullptr;
    if (status.pg) {
        const auto& pg = *status.pg;
        v.queried = true;
        v.state = std::string(core::to_string(status.state));
        v.server_version = pg.server_version;
        if (pg.in_recovery) {
            v.role = "replica";
            v.received_location =
                pg.receive_location != 0 ? pg.receive_location : pg.replay_location;
            v.replayed_location = pg.replay_location;
            v.latest_end_lsn = pg.latest_end_lsn;
            if (status.standby_cluster) {
                v.role = std::string(core::to_string(status.role));
            }
        } else {
            v.role = "primary";
            v.is_primary = true;
            v.location = pg.wal_location;
        }
        if (pg.timeline > 0) {
            v.timeline = pg.timeline;
        }
        v.replication_state = pg.replication_state;
        // Patroni: only a replica listed in the cached, valid /sync key (synchronous_mode on).
        if (v.role == "replica" && v.cluster != nullptr) {
            v.quorum_standby = status.quorum_standby;
            v.sync_standby = status.sync_standby;
        }
    } else {
        // No query result: Patroni reports "unknown" when PostgreSQL should be running.
        v.state_known = status.state != PgState::Running;
        v.state = v.state_known ? std::string(core::to_string(status.state)) : "unknown";
        v.role = std::string(core::to_string(status.role));
    }
    v.pause = status.dynamic.pause;
    v.cluster_unlocked = v.cluster == nullptr || !v.cluster->is_locked();
    v.failsafe_mode_is_active = status.failsafe_mode_is_active;
    return v;
}

namespace {

const std::map<std::string, std::string>& effective_tags(const core::NodeStatus& status) {
    return status.effective_tags_json ? *status.effective_tags_json : status.tags.json;
}

void put_tags(OJson& out, const core::NodeStatus& status) {
    const auto& tags = effective_tags(status);
    if (tags.empty()) {
        return;
    }
    OJson t = OJson::object();
    for (const auto& [k, text] : tags) {
        t[k] = parse_json_or_string(text);
    }
    out["tags"] = std::move(t);
}

void put_pending_restart(OJson& out, const core::NodeStatus& status) {
    if (!status.pending_restart) {
        return;
    }
    out["pending_restart"] = true;
    if (auto reason = parse_json(status.pending_restart_reason_json);
        reason && reason->is_object()) {
        out["pending_restart_reason"] = std::move(*reason);
    }
}

}  // namespace

std::string patroni_status_json(const core::NodeStatus& status, core::MonoMs now) {
    const StatusView v = status_view(status, now);
    OJson out = OJson::object();
    out["state"] = v.state;
    if (v.queried) {
        const auto& pg = *status.pg;
        out["postmaster_start_time"] = pg.postmaster_start_time;
        out["role"] = v.role;
        out["server_version"] = pg.server_version;
        if (v.is_primary) {
            out["xlog"] = OJson{{"location", v.location}};
        } else {
            OJson xlog = OJson::object();
            xlog["received_location"] = v.received_location;
            xlog["replayed_location"] = v.replayed_location;
            xlog["replayed_timestamp"] =
                pg.replayed_timestamp ? OJson(*pg.replayed_timestamp) : OJson(nullptr);
            xlog["paused"] = pg.replay_paused;
            out["xlog"] = std::move(xlog);
        }
        if (v.sync_standby) {
            out["sync_standby"] = true;
        }
        if (v.quorum_standby) {
            out["quorum_standby"] = true;
        }
        out["timeline"] = v.timeline ? OJson(*v.timeline) : OJson(nullptr);
        if (v.replication_state) {
            out["replication_state"] = *v.replication_state;
        }
        if (auto repl = parse_json(pg.replication_json);
            repl && repl->is_array() && !repl->empty()) {
            out["replication"] = std::move(*repl);
        }
    } else {
        out["role"] = v.role;
    }
    if (v.pause) {
        out["pause"] = true;
    }
    if (v.cluster_unlocked) {
        out["cluster_unlocked"] = true;
    }
    if (v.failsafe_mode_is_active) {
        out["failsafe_mode_is_active"] = true;
    }
    out["dcs_last_seen"] = status.dcs_last_seen;
    put_tags(out, status);
    if (status.sysid && !status.sysid->empty()) {
        out["database_system_identifier"] = *status.sysid;
    }
    put_pending_restart(out, status);
    out["patroni"] =
        OJson{{"version", status.version}, {"scope", status.scope}, {"name", status.name}};
    if (status.scheduled_restart_json) {
        if (auto sr = parse_json(*status.scheduled_restart_json); sr && sr->is_object()) {
            sr->erase("postmaster_start_time");
            out["scheduled_restart"] = std::move(*sr);
        }
    }
    if (status.watchdog_failed) {
        out["watchdog_failed"] = true;
    }
    if (!status.unsupported_settings.empty()) {
        // pgwarden extension: DCS settings this version does not implement (Patroni ignores
        // unknown fields).
        OJson list = OJson::array();
        for (const auto& u : status.unsupported_settings) {
            list.push_back(u);
        }
        out["unsupported_settings"] = std::move(list);
    }
    return dump_json(out);
}

std::string member_key_json(const core::NodeStatus& status,
                            const std::string& conn_url,
                            const std::string& api_url) {
    OJson out = OJson::object();
    out["conn_url"] = conn_url;
    out["api_url"] = api_url;
    out["state"] = std::string(core::to_string(status.state));
    out["role"] = std::string(core::to_string(status.role));
    out["version"] = status.version;
    if (status.checkpoint_after_promote_pending) {
        out["checkpoint_after_promote"] = false;
    }
    put_tags(out, status);
    put_pending_restart(out, status);
    const bool pg_up = status.state == PgState::Running || status.state == PgState::Restarting ||
                       status.state == PgState::Starting;
    if (pg_up && status.pg) {
        const auto& pg = *status.pg;
        if (pg.in_recovery) {
            out["xlog_location"] = std::max(pg.receive_location, pg.replay_location);
            if (pg.replay_location != 0) {
                out["replay_lsn"] = pg.replay_location;
            }
            if (pg.receive_location != 0) {
                out["receive_lsn"] = pg.receive_location;
            }
            if (pg.replication_state) {
                out["replication_state"] = *pg.replication_state;
            }
        } else {
            out["xlog_location"] = pg.wal_location;
        }
        if (pg.timeline > 0) {
            out["timeline"] = pg.timeline;
        }
    }
    if (status.scheduled_restart_json) {
        if (auto sr = parse_json(*status.scheduled_restart_json); sr && sr->is_object()) {
            out["scheduled_restart"] = std::move(*sr);
        }
    }
    if (status.dynamic.pause) {
        out["pause"] = true;
    }
    return dump_json(out);
}

std::string format_lsn(std::int64_t lsn) {
    const auto u = static_cast<std::uint64_t>(lsn);
    char buf[40];
    std::snprintf(buf,
                  sizeof buf,
                  "%llX/%llX",
                  static_cast<unsigned long long>(u >> 32),
                  static_cast<unsigned long long>(u & 0xFFFFFFFFULL));
    return buf;
}

namespace {

class Scanner {
public:
    explicit Scanner(const std::string& s) : s_(s) {}
    bool digits(std::size_t n, int& out) {
        if (pos_ + n > s_.size()) {
            return false;
        }
        int v = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const char c = s_[pos_ + i];
            if (c < '0' || c > '9') {
                return false;
            }
            v = v * 10 + (c - '0');
        }
        pos_ += n;
        out = v;
        return true;
    }
    bool eat(char c) {
        if (pos_ < s_.size() && s_[pos_] == c) {
            ++pos_;
            return true;
        }
        return false;
    }
    bool at_end() const { return pos_ == s_.size(); }
    char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }

private:
    const std::string& s_;
    std::size_t pos_ = 0;
};

}  // namespace

std::optional<double> timestamp_to_epoch(const std::string& text) {
    Scanner sc(text);
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0;
    if (!sc.digits(4, y) || !sc.eat('-') || !sc.digits(2, mo) || !sc.eat('-') || !sc.digits(2, d)) {
        return std::nullopt;
    }
    if (!sc.eat(' ') && !sc.eat('T')) {
        return std::nullopt;
    }
    if (!sc.digits(2, h) || !sc.eat(':') || !sc.digits(2, mi) || !sc.eat(':') ||
        !sc.digits(2, se)) {
        return std::nullopt;
    }
    std::int64_t micros = 0;
    if (sc.eat('.')) {
        int digit = 0;
        int count = 0;
        while (sc.digits(1, digit)) {
            if (count < 6) {
                micros = micros * 10 + digit;
            }
            ++count;
        }
        if (count == 0) {
            return std::nullopt;
        }
        for (; count < 6; ++count) {
            micros *= 10;
        }
    }
    std::int64_t offset = 0;
    if (sc.eat('Z')) {
        // UTC
    } else if (sc.peek() == '+' || sc.peek() == '-') {
        const int sign = sc.eat('+') ? 1 : (sc.eat('-'), -1);
        int oh = 0, om = 0, os = 0;
        if (!sc.digits(2, oh)) {
            return std::nullopt;
        }
        if (sc.eat(':')) {
            if (!sc.digits(2, om)) {
                return std::nullopt;
            }
            if (sc.eat(':') && !sc.digits(2, os)) {
                return std::nullopt;
            }
        } else {
            sc.digits(2, om);
        }
        offset = std::int64_t{sign} * (std::int64_t{oh} * 3600 + std::int64_t{om} * 60 + os);
    }
    if (!sc.at_end() || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) {
        return std::nullopt;
    }
    const std::int64_t secs =
        days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 +
        std::int64_t{h} * 3600 + std::int64_t{mi} * 60 + se - offset;
    // As Python's timedelta.total_seconds(): exact integer microseconds, one rounding.
    return static_cast<double>(secs * 1000000 + micros) / 1e6;
}

}  // namespace pgwarden::rest
