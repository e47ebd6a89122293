// patroni.yml, this node's own sections: log (the level; the rest is recorded as unimplemented),
// watchdog (mode, device, safety margin) and tags (failover tags and what the member key
// publishes).

#include "config/load_internal.hpp"
#include "config/section_keys.hpp"
#include "config/text.hpp"

#include <algorithm>
#include <optional>

namespace pgwarden::config::detail {

void Loader::parse_log(const Value& v) {
    if (!w_.expect_map(v, "log")) {
        return;
    }
    w_.unknown_keys(v, "log", kLogKeys);
    for (const auto& [key, value] : v.entries) {
        if (key != "level" && !value.is_null()) {
            r_->settings.unimplemented_keys.push_back("log." + key);
        }
    }
    if (const Value* level = v.find("level")) {
        std::string text;
        if (w_.get_string(*level, "log.level", &text)) {
            static const std::vector<std::string> kLevels = {
                "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL"};
            if (std::find(kLevels.begin(), kLevels.end(), text) == kLevels.end()) {
                err(*level,
                    "log.level",
                    "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got '" + text + "'");
            } else {
                r_->settings.log.level = text;
            }
        }
    }
}

void Loader::parse_watchdog(const Value& v) {
    if (!w_.expect_map(v, "watchdog")) {
        return;
    }
    w_.unknown_keys(v, "watchdog", {"mode", "device", "safety_margin", "driver"});
    core::Settings& s = r_->settings;
    if (const Value* m = v.find("mode")) {
        // watchdog/base.py parse_mode: False (YAML `off`) -> off; strings case-insensitively.
        if (m->kind == Value::Kind::Bool && !m->b) {
            s.watchdog_mode = "off";
        } else if (m->kind == Value::Kind::String) {
            const std::string mode = lower(m->s);
            if (mode == "require" || mode == "required") {
                s.watchdog_mode = "required";
            } else if (mode == "auto" || mode == "automatic") {
                s.watchdog_mode = "automatic";
            } else if (mode == "off" || mode == "disable" || mode == "disabled") {
                s.watchdog_mode = "off";
            } else {
                w_.warning(
                    *m, "watchdog.mode", "'" + m->s + "' not recognized; the watchdog is disabled");
                s.watchdog_mode = "off";
            }
        } else if (!m->is_null()) {
            err(*m,
                "watchdog.mode",
                "expected off, automatic or required, got " + Walker::show(*m, false));
        }
    }
    if (const Value* d = v.find("device")) {
        w_.get_string(*d, "watchdog.device", &s.watchdog_device);
    }
    if (const Value* sm = v.find("safety_margin")) {
        if (w_.get_int(*sm, "watchdog.safety_margin", &s.watchdog_safety_margin) &&
            s.watchdog_safety_margin < -1) {
            err(*sm, "watchdog.safety_margin", "must be -1 or more");
        }
    }
}

void Loader::parse_tags(const Value& v) {
    if (!w_.expect_map(v, "tags")) {
        return;
    }
    core::Tags& t = r_->settings.tags;
    const auto strict_bool = [&](const char* key, bool* out) {
        const Value* x = v.find(key);
        if (x == nullptr || x->is_null()) {
            return false;
        }
        if (x->kind == Value::Kind::Bool) {
            *out = x->b;
            return true;
        }
        err(*x,
            std::string("tags.") + key,
            "expected a boolean, got " + Walker::show(*x, false) +
                " (Patroni would take any non-empty string as true)");
        return false;
    };
    std::optional<std::int64_t> failover_priority;
    if (const Value* fp = v.find("failover_priority"); fp != nullptr && !fp->is_null()) {
        int n = 0;  // an int, as the member key and /patroni publish it
        if (w_.get_int(*fp, "tags.failover_priority", &n)) {
            failover_priority = n;
        }
    }
    bool nofailover = false;
    if (strict_bool("nofailover", &nofailover)) {
        t.nofailover = nofailover;
        t.failover_priority = nofailover ? 0 : static_cast<int>(failover_priority.value_or(1));
        if (failover_priority &&
            ((nofailover && *failover_priority > 0) || (!nofailover && *failover_priority <= 0))) {
            w_.warning(*v.find("nofailover"),
                       "tags.nofailover",
                       "conflicts with tags.failover_priority; nofailover wins");
        }
    } else {
        t.failover_priority = static_cast<int>(failover_priority.value_or(1));
        t.nofailover = failover_priority.has_value() && *failover_priority <= 0;
    }
    strict_bool("noloadbalance", &t.noloadbalance);
    strict_bool("clonefrom", &t.clonefrom);
    strict_bool("nosync", &t.nosync);
    if (const Value* ns = v.find("nostream"); ns != nullptr && !ns->is_null()) {
        w_.get_bool(*ns, "tags.nostream", &t.nostream);
    }
    if (const Value* rf = v.find("replicatefrom")) {
        w_.get_string(*rf, "tags.replicatefrom", &t.replicatefrom);
    }
    // tags.py _filter_tags: the predefined boolean tags are published only when true (and
    // nofailover also when failover_priority is set).
    for (const auto& [key, value] : v.entries) {
        const bool predefined = key == "clonefrom" || key == "nofailover" ||
                                key == "noloadbalance" || key == "nosync" || key == "nostream";
        const bool truthy = !value.is_null() && !py_falsy(value) &&
                            !(value.is_list() && value.items.empty()) &&
                            !(value.is_map() && value.entries.empty());
        if (predefined && !truthy &&
            !(key == "nofailover" && v.find("failover_priority") != nullptr) &&
            !(key == "nosync" && v.find("sync_priority") != nullptr)) {
            continue;
        }
        t.rendered[key] = value.kind == Value::Kind::String ? value.s : lower(py_str(value));
        t.json[key] = to_json(value).dump(-1, ' ', true);
    }
}

}  // namespace pgwarden::config::detail
