#include "config/dynamic.hpp"

#include "config/dynamic_internal.hpp"
#include "config/pg_parameters.hpp"

#include <algorithm>
#include <cctype>

namespace pgwarden::config {

namespace detail {

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

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
                    "ignore_slots",
                    "member_slots_ttl"});
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

// Placeholders with the old behaviour until the per-key fallback lands.
DynamicResult parse_dynamic_json(const std::string& json_text, const core::DynamicSettings&) {
    return parse_dynamic_json(json_text);
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
