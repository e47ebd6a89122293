// The dynamic configuration (bootstrap.dcs and the DCS `config` key) -> core::DynamicSettings:
// the walker, Patroni's timeout adjustments, and the per-key fallback to the last good value.

#include "config/dynamic.hpp"

#include "config/dynamic_internal.hpp"
#include "config/pg_parameters.hpp"
#include "config/text.hpp"

#include <algorithm>
#include <array>

namespace pgwarden::config {

namespace detail {

namespace {

// Patroni's parse_int(value, 's') for member_slots_ttl: a number with an optional time unit.
// nullopt for anything unreadable, negative or beyond an int of seconds (never throws).
std::optional<int> parse_seconds_with_unit(const Value& v) {
    std::optional<std::int64_t> seconds;
    if (auto i = python_int(v)) {
        seconds = i;
    } else if (v.kind == Value::Kind::String) {
        const auto n = split_number_unit(v.s);
        if (!n) {
            return std::nullopt;
        }
        if (n->unit == "s" || n->unit.empty()) {
            seconds = n->number;
        } else if (n->unit == "min") {
            seconds = checked_mul(n->number, 60);
        } else if (n->unit == "h") {
            seconds = checked_mul(n->number, 3600);
        } else if (n->unit == "d") {
            seconds = checked_mul(n->number, 86400);
        } else if (n->unit == "ms") {
            seconds = n->number < 0 ? -1 : div_round(n->number, 1000);
        }
    }
    if (!seconds || *seconds < 0 || *seconds > INT32_MAX) {
        return std::nullopt;
    }
    return static_cast<int>(*seconds);
}

}  // namespace

std::optional<std::string> render_parameter(const Value& v) {
    switch (v.kind) {
        case Value::Kind::Bool:
            return std::string(v.b ? "on" : "off");
        case Value::Kind::Int:
        case Value::Kind::Float:
        case Value::Kind::String:
            return py_str(v);
        default:
            return std::nullopt;
    }
}

void parse_parameters(const Value& v,
                      const std::string& path,
                      std::map<std::string, std::string>* out,
                      Walker& w) {
    if (!w.expect_map(v, path)) {
        return;
    }
    for (const auto& [name, value] : v.entries) {
        const std::string p = path + "." + name;
        if (value.is_null()) {
            continue;  // Patroni writes nothing for a null value
        }
        if (auto rendered = render_parameter(value)) {
            (*out)[lower(name)] = *rendered;
        } else {
            w.error(value,
                    p,
                    "expected a PostgreSQL parameter value (string, number or boolean), got " +
                        Walker::show(value, false));
        }
    }
}

namespace {

// Dynamic postgresql.parameters: as parse_parameters, and a command-line option whose value is
// not of its type is an Error (and left out) instead of Patroni's silent fallback to the default.
void parse_dynamic_parameters(const Value& v,
                              const std::string& path,
                              std::map<std::string, std::string>* out,
                              Walker& w) {
    std::map<std::string, std::string> parsed;
    parse_parameters(v, path, &parsed, w);
    if (!v.is_map()) {
        return;
    }
    for (const auto& [name, value] : v.entries) {
        auto it = parsed.find(lower(name));
        if (it == parsed.end()) {
            continue;
        }
        if (auto reason = malformed_cmdline_option(it->first, it->second)) {
            w.error(value, path + "." + name, *reason);
            parsed.erase(it);
        }
    }
    *out = std::move(parsed);
}

// Keys of the dynamic `postgresql` section that Patroni applies and pgwarden does not (yet).
bool is_unimplemented_dynamic_postgresql_key(const std::string& key) {
    static constexpr std::array<std::string_view, 13> kKeys = {"parameters_primary",
                                                               "parameters_replica",
                                                               "parameters_standby_leader",
                                                               "pg_hba_primary",
                                                               "pg_hba_replica",
                                                               "pg_hba_standby_leader",
                                                               "pg_ident_primary",
                                                               "pg_ident_replica",
                                                               "pg_ident_standby_leader",
                                                               "recovery_conf",
                                                               "pg_ctl_timeout",
                                                               "basebackup",
                                                               "create_replica_methods"};
    return std::find(kKeys.begin(), kKeys.end(), key) != kKeys.end();
}

bool valid_slot_name(const std::string& name) {
    return !name.empty() && name.size() <= 63 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    });
}

// Permanent slots (Patroni's Cluster._get_permanent_slots): name -> null | {type, database,
// plugin}; type defaults to logical when database and plugin are set, else physical. Any bad
// entry is an Error and leaves `out` unchanged (a running node then keeps its last good slots).
void parse_permanent_slots(const Value& v,
                           const std::string& path,
                           std::vector<core::PermanentSlot>* out,
                           Walker& w) {
    if (!w.expect_map(v, path)) {
        return;
    }
    std::vector<core::PermanentSlot> slots;
    bool ok = true;
    for (const auto& [name, value] : v.entries) {
        const std::string p = path + "." + name;
        core::PermanentSlot slot;
        slot.name = name;
        if (!valid_slot_name(name)) {
            w.error(value,
                    p,
                    "invalid replication slot name (lower-case letters, digits and _, at most 63)");
            ok = false;
            continue;
        }
        if (!value.is_null()) {
            if (!w.expect_map(value, p)) {
                ok = false;
                continue;
            }
            w.unknown_keys(value, p, {"type", "database", "plugin", "cluster_type"});
            for (const auto& [key, field] :
                 {std::pair{"database", &slot.database}, std::pair{"plugin", &slot.plugin}}) {
                if (const Value* x = value.find(key)) {
                    if (!x->is_null() && x->kind != Value::Kind::String) {
                        w.error(
                            *x, p + "." + key, "expected a string, got " + Walker::show(*x, false));
                        ok = false;
                    } else if (!x->is_null()) {
                        *field = x->s;
                    }
                }
            }
            const Value* type = value.find("type");
            if (type == nullptr || type->is_null()) {
                slot.type = !slot.database.empty() && !slot.plugin.empty() ? "logical" : "physical";
            } else if (type->kind == Value::Kind::String &&
                       (type->s == "physical" || type->s == "logical")) {
                slot.type = type->s;
            } else {
                w.error(*type,
                        p + ".type",
                        "expected physical or logical, got " + Walker::show(*type, false));
                ok = false;
                continue;
            }
            if (slot.type == "logical" && (slot.database.empty() || slot.plugin.empty())) {
                w.error(value, p, "a logical slot needs both database and plugin");
                ok = false;
                continue;
            }
        }
        slots.push_back(std::move(slot));
    }
    if (ok) {
        *out = std::move(slots);
    }
}

// ignore_slots: a list of {name, type, database, plugin} matchers, every field optional.
void parse_ignore_slots(const Value& v,
                        const std::string& path,
                        std::vector<core::SlotMatcher>* out,
                        Walker& w) {
    if (v.is_null()) {
        return;
    }
    if (!v.is_list()) {
        w.error(v,
                path,
                "expected a list of {name, type, database, plugin}, got " + Walker::show(v, false));
        return;
    }
    std::vector<core::SlotMatcher> matchers;
    bool ok = true;
    for (std::size_t n = 0; n < v.items.size(); ++n) {
        const Value& item = v.items[n];
        const std::string p = path + "[" + std::to_string(n) + "]";
        if (!item.is_map()) {
            w.error(item,
                    p,
                    "expected a mapping {name, type, database, plugin}, got " +
                        Walker::show(item, false));
            ok = false;
            continue;
        }
        w.unknown_keys(item, p, {"name", "type", "database", "plugin"});
        core::SlotMatcher m;
        for (const auto& [key, field] : {std::pair{"name", &m.name},
                                         std::pair{"type", &m.type},
                                         std::pair{"database", &m.database},
                                         std::pair{"plugin", &m.plugin}}) {
            const Value* x = item.find(key);
            if (x == nullptr || x->is_null()) {
                continue;
            }
            if (x->kind != Value::Kind::String) {
                w.error(*x, p + "." + key, "expected a string, got " + Walker::show(*x, false));
                ok = false;
            } else {
                *field = x->s;
            }
        }
        if (!m.type.empty() && m.type != "physical" && m.type != "logical") {
            w.error(*item.find("type"),
                    p + ".type",
                    "expected physical or logical, got '" + m.type + "'");
            ok = false;
        }
        matchers.push_back(std::move(m));
    }
    if (ok) {
        *out = std::move(matchers);
    }
}

// standby_cluster: Patroni's is_standby_cluster() (a mapping with host, port or restore_command).
void parse_standby_cluster(const Value& v,
                           const std::string& path,
                           core::DynamicSettings& out,
                           Walker& w) {
    if (!w.expect_map(v, path)) {
        return;
    }
    out.standby_cluster_json = to_json(v).dump(-1, ' ', true);
    out.standby_cluster_present = false;
    for (const char* key : {"host", "port", "restore_command"}) {
        const Value* x = v.find(key);
        if (x != nullptr && !x->is_null() && !(x->kind == Value::Kind::String && x->s.empty()) &&
            !(x->kind == Value::Kind::Int && x->i == 0) &&
            !(x->kind == Value::Kind::Bool && !x->b)) {
            out.standby_cluster_present = true;
        }
    }
}

}  // namespace

void parse_dynamic_value(const Value& root,
                         const std::string& prefix,
                         core::DynamicSettings& out,
                         Walker& w) {
    if (!w.expect_map(root, prefix)) {
        return;
    }
    const auto path = [&](const std::string& key) {
        return prefix + "." + key;
    };
    w.unknown_keys(root,
                   prefix,
                   {"ttl",
                    "loop_wait",
                    "retry_timeout",
                    "maximum_lag_on_failover",
                    "maximum_lag_on_syncnode",
                    "max_timelines_history",
                    "primary_start_timeout",
                    "primary_stop_timeout",
                    "master_start_timeout",
                    "master_stop_timeout",
                    "primary_race_backoff",
                    "synchronous_mode",
                    "synchronous_mode_strict",
                    "synchronous_node_count",
                    "failsafe_mode",
                    "check_timeline",
                    "pause",
                    "postgresql",
                    "standby_cluster",
                    "slots",
                    "permanent_slots",
                    "permanent_replication_slots",
                    "ignore_slots",
                    "member_slots_ttl"});
    // Patroni's global_config.permanent_slots: the first non-empty of these three.
    std::string slots_key;
    for (const char* key : {"permanent_replication_slots", "permanent_slots", "slots"}) {
        const Value* x = root.find(key);
        if (slots_key.empty() && x != nullptr && !x->is_null() &&
            !(x->is_map() && x->entries.empty())) {
            slots_key = key;
        }
    }
    for (const auto& [key, value] : root.entries) {
        const std::string p = path(key);
        if (key == "ttl") {
            w.get_seconds(value, p, &out.ttl);
        } else if (key == "loop_wait") {
            w.get_seconds(value, p, &out.loop_wait);
        } else if (key == "retry_timeout") {
            w.get_seconds(value, p, &out.retry_timeout);
        } else if (key == "maximum_lag_on_failover") {
            w.get_int(value, p, &out.maximum_lag_on_failover, "an integer number of bytes");
        } else if (key == "maximum_lag_on_syncnode") {
            w.get_int(value, p, &out.maximum_lag_on_syncnode, "an integer number of bytes");
        } else if (key == "max_timelines_history") {
            w.get_int(value, p, &out.max_timelines_history);
        } else if (key == "primary_start_timeout" ||
                   (key == "master_start_timeout" &&
                    root.find("primary_start_timeout") == nullptr)) {
            w.get_seconds(value, p, &out.primary_start_timeout);
        } else if (key == "primary_stop_timeout" ||
                   (key == "master_stop_timeout" && root.find("primary_stop_timeout") == nullptr)) {
            w.get_seconds(value, p, &out.primary_stop_timeout);
        } else if (key == "primary_race_backoff") {
            w.get_seconds(value, p, &out.primary_race_backoff);
        } else if (key == "synchronous_node_count") {
            w.get_int(value, p, &out.synchronous_node_count);
        } else if (key == "synchronous_mode") {
            if (value.kind == Value::Kind::String && lower(value.s) == "quorum") {
                out.synchronous_mode = "quorum";
            } else if (auto b = parse_bool(value)) {
                out.synchronous_mode = *b ? "on" : "off";
            } else if (!value.is_null()) {
                w.error(value, p, "expected on, off or quorum, got " + Walker::show(value, false));
            }
        } else if (key == "synchronous_mode_strict") {
            w.get_bool(value, p, &out.synchronous_mode_strict);
        } else if (key == "failsafe_mode") {
            w.get_bool(value, p, &out.failsafe_mode);
        } else if (key == "check_timeline") {
            w.get_bool(value, p, &out.check_timeline);
        } else if (key == "pause") {
            w.get_bool(value, p, &out.pause);
        } else if (key == "member_slots_ttl") {
            if (auto s = parse_seconds_with_unit(value)) {
                out.member_slots_ttl = *s;
            } else if (!value.is_null()) {
                w.error(
                    value,
                    p,
                    "expected a duration such as 1800 or '30min' (0 to 2147483647 seconds), got " +
                        Walker::show(value, false));
            }
        } else if (key == slots_key) {
            parse_permanent_slots(value, p, &out.slots, w);
        } else if (key == "ignore_slots") {
            parse_ignore_slots(value, p, &out.ignore_slots, w);
        } else if (key == "standby_cluster") {
            parse_standby_cluster(value, p, out, w);
        } else if (key == "postgresql") {
            if (!w.expect_map(value, p)) {
                continue;
            }
            w.unknown_keys(value,
                           p,
                           {"use_pg_rewind",
                            "use_slots",
                            "parameters",
                            "parameters_primary",
                            "parameters_replica",
                            "parameters_standby_leader",
                            "pg_hba",
                            "pg_hba_primary",
                            "pg_hba_replica",
                            "pg_hba_standby_leader",
                            "pg_ident",
                            "pg_ident_primary",
                            "pg_ident_replica",
                            "pg_ident_standby_leader",
                            "recovery_conf",
                            "remove_data_directory_on_rewind_failure",
                            "remove_data_directory_on_diverged_timelines",
                            "pg_ctl_timeout",
                            "rewind",
                            "basebackup",
                            "create_replica_methods",
                            "connect_address",
                            "proxy_address",
                            "listen",
                            "config_dir",
                            "data_dir",
                            "pgpass",
                            "authentication"});
            for (const auto& [pkey, pvalue] : value.entries) {
                const std::string pp = p + "." + pkey;
                if (!pvalue.is_null() && is_unimplemented_dynamic_postgresql_key(pkey)) {
                    out.unimplemented_keys.push_back("postgresql." + pkey);
                }
                if (pkey == "use_pg_rewind") {
                    w.get_bool(pvalue, pp, &out.postgresql.use_pg_rewind);
                } else if (pkey == "use_slots") {
                    w.get_bool(pvalue, pp, &out.postgresql.use_slots);
                } else if (pkey == "parameters") {
                    parse_dynamic_parameters(pvalue, pp, &out.postgresql.parameters, w);
                } else if (pkey == "pg_hba") {
                    w.get_string_list(pvalue, pp, &out.postgresql.pg_hba);
                } else if (pkey == "pg_ident") {
                    w.get_string_list(pvalue, pp, &out.postgresql.pg_ident);
                } else if (pkey == "remove_data_directory_on_rewind_failure") {
                    w.get_bool(pvalue, pp, &out.postgresql.remove_data_directory_on_rewind_failure);
                } else if (pkey == "remove_data_directory_on_diverged_timelines") {
                    w.get_bool(
                        pvalue, pp, &out.postgresql.remove_data_directory_on_diverged_timelines);
                } else if (pkey == "connect_address" || pkey == "proxy_address" ||
                           pkey == "listen" || pkey == "config_dir" || pkey == "data_dir" ||
                           pkey == "pgpass" || pkey == "authentication") {
                    w.warning(
                        pvalue,
                        pp,
                        "is local configuration; Patroni ignores it in the dynamic configuration");
                }
            }
        }
    }
}

std::vector<TimeoutAdjustment> compute_timeout_adjustments(core::DynamicSettings& s) {
    std::vector<TimeoutAdjustment> out;
    const auto raise = [&](const char* key, int& value, int min) {
        if (value < min) {
            out.push_back({key,
                           min,
                           std::string(key) + "=" + std::to_string(value) +
                               " can't be smaller than " + std::to_string(min) + ", adjusting to " +
                               std::to_string(min)});
            value = min;
        }
    };
    constexpr int kMinLoopWait = 1;
    raise("loop_wait", s.loop_wait, kMinLoopWait);
    raise("retry_timeout", s.retry_timeout, 3);
    raise("ttl", s.ttl, 20);
    if (kMinLoopWait + 2 * s.retry_timeout > s.ttl) {
        const int old_loop_wait = s.loop_wait;
        const int old_retry = s.retry_timeout;
        s.loop_wait = kMinLoopWait;
        s.retry_timeout = (s.ttl - kMinLoopWait) / 2;
        const std::string message =
            "violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl=" +
            std::to_string(s.ttl) + ". Adjusting loop_wait from " + std::to_string(old_loop_wait) +
            " to " + std::to_string(s.loop_wait) + " and retry_timeout from " +
            std::to_string(old_retry) + " to " + std::to_string(s.retry_timeout);
        out.push_back({"loop_wait", s.loop_wait, message});
        out.push_back({"retry_timeout", s.retry_timeout, message});
    } else if (s.loop_wait + 2 * s.retry_timeout > s.ttl) {
        const int old_loop_wait = s.loop_wait;
        s.loop_wait = s.ttl - 2 * s.retry_timeout;
        out.push_back({"loop_wait",
                       s.loop_wait,
                       "violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl=" +
                           std::to_string(s.ttl) + " and retry_timeout=" +
                           std::to_string(s.retry_timeout) + ". Adjusting loop_wait from " +
                           std::to_string(old_loop_wait) + " to " + std::to_string(s.loop_wait)});
    }
    return out;
}

}  // namespace detail

void adjust_timeouts(core::DynamicSettings& settings,
                     std::vector<Problem>* problems,
                     const std::string& path_prefix) {
    const auto adjustments = detail::compute_timeout_adjustments(settings);
    if (problems == nullptr) {
        return;
    }
    std::string last_message;
    for (const auto& a : adjustments) {
        if (a.message == last_message) {
            continue;  // one warning for the combined loop_wait/retry_timeout adjustment
        }
        last_message = a.message;
        problems->push_back({Problem::Severity::Warning, path_prefix + "." + a.key, 0, a.message});
    }
}

DynamicResult parse_dynamic_json(const std::string& json_text) {
    DynamicResult result;
    const auto j = nlohmann::ordered_json::parse(json_text, nullptr, false);
    if (j.is_discarded()) {
        result.problems.push_back({Problem::Severity::Error, "config", 0, "is not valid JSON"});
        return result;
    }
    if (!j.is_object()) {
        result.problems.push_back(
            {Problem::Severity::Error, "config", 0, "expected a JSON object"});
        return result;
    }
    detail::Walker w(&result.problems);
    detail::parse_dynamic_value(detail::from_json(j), "config", result.settings, w);
    adjust_timeouts(result.settings, &result.problems, "config");
    return result;
}

std::string patch_config_json(const std::string& old_json,
                              const std::string& patch_json,
                              bool* changed) {
    if (changed != nullptr) {
        *changed = false;
    }
    const auto old_j = nlohmann::ordered_json::parse(old_json, nullptr, false);
    const auto patch_j = nlohmann::ordered_json::parse(patch_json, nullptr, false);
    if (old_j.is_discarded() || patch_j.is_discarded() || !old_j.is_object() ||
        !patch_j.is_object()) {
        return old_json;
    }
    detail::Value config = detail::from_json(old_j);
    const bool did_change = detail::patch(config, detail::from_json(patch_j));
    if (changed != nullptr) {
        *changed = did_change;
    }
    return detail::to_json(config).dump(-1, ' ', true);
}

namespace {

// The first segment of a dotted path ("postgresql.pg_hba[2]" -> "postgresql"); *rest gets what
// follows the separating dot ("pg_hba[2]"), or "" (also after "[").
std::string first_segment(const std::string& path, std::string* rest) {
    const auto end = path.find_first_of(".[");
    if (end == std::string::npos) {
        rest->clear();
        return path;
    }
    *rest = path[end] == '.' ? path.substr(end + 1) : "";
    return path.substr(0, end);
}

// Puts back the last good value of the setting that an Error at `path` (relative to "config",
// e.g. "postgresql.parameters.max_connections") is about. False if the path names no setting.
bool restore_last_good(const std::string& path,
                       const core::DynamicSettings& good,
                       core::DynamicSettings& out) {
    std::string rest;
    const std::string key = first_segment(path, &rest);
    if (key == "ttl") {
        out.ttl = good.ttl;
    } else if (key == "loop_wait") {
        out.loop_wait = good.loop_wait;
    } else if (key == "retry_timeout") {
        out.retry_timeout = good.retry_timeout;
    } else if (key == "maximum_lag_on_failover") {
        out.maximum_lag_on_failover = good.maximum_lag_on_failover;
    } else if (key == "maximum_lag_on_syncnode") {
        out.maximum_lag_on_syncnode = good.maximum_lag_on_syncnode;
    } else if (key == "max_timelines_history") {
        out.max_timelines_history = good.max_timelines_history;
    } else if (key == "primary_start_timeout" || key == "master_start_timeout") {
        out.primary_start_timeout = good.primary_start_timeout;
    } else if (key == "primary_stop_timeout" || key == "master_stop_timeout") {
        out.primary_stop_timeout = good.primary_stop_timeout;
    } else if (key == "primary_race_backoff") {
        out.primary_race_backoff = good.primary_race_backoff;
    } else if (key == "synchronous_mode") {
        out.synchronous_mode = good.synchronous_mode;
    } else if (key == "synchronous_mode_strict") {
        out.synchronous_mode_strict = good.synchronous_mode_strict;
    } else if (key == "synchronous_node_count") {
        out.synchronous_node_count = good.synchronous_node_count;
    } else if (key == "failsafe_mode") {
        out.failsafe_mode = good.failsafe_mode;
    } else if (key == "check_timeline") {
        out.check_timeline = good.check_timeline;
    } else if (key == "pause") {
        out.pause = good.pause;
    } else if (key == "member_slots_ttl") {
        out.member_slots_ttl = good.member_slots_ttl;
    } else if (key == "slots" || key == "permanent_slots" || key == "permanent_replication_slots") {
        out.slots = good.slots;
    } else if (key == "ignore_slots") {
        out.ignore_slots = good.ignore_slots;
    } else if (key == "standby_cluster") {
        out.standby_cluster_present = good.standby_cluster_present;
        out.standby_cluster_json = good.standby_cluster_json;
    } else if (key == "postgresql") {
        std::string name;
        const std::string pkey = first_segment(rest, &name);
        core::PostgresqlDynamic& pg = out.postgresql;
        if (pkey.empty()) {
            pg = good.postgresql;
        } else if (pkey == "use_pg_rewind") {
            pg.use_pg_rewind = good.postgresql.use_pg_rewind;
        } else if (pkey == "use_slots") {
            pg.use_slots = good.postgresql.use_slots;
        } else if (pkey == "pg_hba") {
            pg.pg_hba = good.postgresql.pg_hba;
        } else if (pkey == "pg_ident") {
            pg.pg_ident = good.postgresql.pg_ident;
        } else if (pkey == "remove_data_directory_on_rewind_failure") {
            pg.remove_data_directory_on_rewind_failure =
                good.postgresql.remove_data_directory_on_rewind_failure;
        } else if (pkey == "remove_data_directory_on_diverged_timelines") {
            pg.remove_data_directory_on_diverged_timelines =
                good.postgresql.remove_data_directory_on_diverged_timelines;
        } else if (pkey == "parameters" && name.empty()) {
            pg.parameters = good.postgresql.parameters;
        } else if (pkey == "parameters") {
            const auto it = good.postgresql.parameters.find(detail::lower(name));
            if (it != good.postgresql.parameters.end()) {
                pg.parameters[it->first] = it->second;
            } else {
                pg.parameters.erase(detail::lower(name));
            }
        } else {
            return false;
        }
    } else {
        return false;
    }
    return true;
}

}  // namespace

DynamicResult parse_dynamic_json(const std::string& json_text,
                                 const core::DynamicSettings& last_good) {
    DynamicResult result;
    const auto j = nlohmann::ordered_json::parse(json_text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        result.settings = last_good;
        result.problems.push_back(
            {Problem::Severity::Error,
             "config",
             0,
             std::string(j.is_discarded() ? "is not valid JSON" : "expected a JSON object") +
                 "; keeping the last good dynamic configuration"});
        return result;
    }
    // Absent keys take the compiled defaults, as in Patroni (the key holds the whole
    // configuration); only a key whose value is invalid keeps its last good value.
    detail::Walker w(&result.problems);
    detail::parse_dynamic_value(detail::from_json(j), "config", result.settings, w);
    const std::string prefix = "config.";
    for (Problem& p : result.problems) {
        if (p.severity != Problem::Severity::Error || p.path.rfind(prefix, 0) != 0) {
            continue;
        }
        if (restore_last_good(p.path.substr(prefix.size()), last_good, result.settings)) {
            p.message += "; keeping the last good value";
        }
    }
    adjust_timeouts(result.settings, &result.problems, "config");
    return result;
}

std::vector<Problem> validate_dynamic_json(const std::string& json_text) {
    std::vector<Problem> errors;
    for (auto& p : parse_dynamic_json(json_text).problems) {
        if (p.severity == Problem::Severity::Error) {
            errors.push_back(std::move(p));
        }
    }
    return errors;
}

}  // namespace pgwarden::config
