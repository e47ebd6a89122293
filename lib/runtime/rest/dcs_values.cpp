// Decoding of the DCS values the REST API reads (/sync, /config, /history, /failsafe): pure
// functions over core::Cluster, so no handler parses DCS text itself.
#include "runtime/rest/dcs_values.hpp"

#include "runtime/rest/parse_util.hpp"
#include "runtime/rest/python_value.hpp"
#include "runtime/rest/unsafe.hpp"

#include <algorithm>

namespace pgwarden::rest {

namespace {

std::optional<OJson> decode(const std::optional<std::string>& text) {
    return text ? parse_json(*text) : std::nullopt;
}

}  // namespace

SyncKey decode_sync(const core::Cluster& cluster) {
    SyncKey out;
    const auto sync = decode(cluster.sync_json);
    if (!sync || !sync->is_object()) {
        return out;
    }
    const OJson* leader = json_field(*sync, "leader");
    const OJson* standby = json_field(*sync, "sync_standby");
    out.has_leader = leader != nullptr && truthy(*leader);
    if (standby == nullptr || !standby->is_string()) {
        return out;
    }
    std::string_view list = standby->get_ref<const std::string&>();
    while (true) {
        const auto comma = list.find(',');
        const std::string_view item = strip(list.substr(0, comma));
        if (!item.empty()) {
            out.standbys.push_back(lower(std::string(item)));
        }
        if (comma == std::string_view::npos) {
            return out;
        }
        list.remove_prefix(comma + 1);
    }
}

bool sync_matches(const SyncKey& sync, const std::string& name) {
    if (!sync.has_leader) {
        return false;
    }
    const std::string wanted = lower(name);
    return std::find(sync.standbys.begin(), sync.standbys.end(), wanted) != sync.standbys.end();
}

OJson ConfigKey::data() const {
    return json && json->is_object() ? *json : OJson::object();
}

ConfigKey decode_config(const core::Cluster& cluster) {
    ConfigKey out;
    out.exists = cluster.config_json.has_value();
    out.versioned = out.exists && cluster.config_version != 0;
    out.json = decode(cluster.config_json);
    return out;
}

std::optional<OJson> decode_history(const core::Cluster& cluster) {
    auto h = decode(cluster.history_json);
    return h && h->is_array() ? std::move(h) : std::nullopt;
}

std::optional<OJson> decode_failsafe(const core::Cluster& cluster) {
    auto fs = decode(cluster.failsafe_json);
    return fs && fs->is_object() ? std::move(fs) : std::nullopt;
}

GlobalFlags global_flags(const core::Cluster& cluster, const core::NodeStatus& status) {
    GlobalFlags f;
    const ConfigKey key = decode_config(cluster);
    if (!key.versioned || !key.json || !key.json->is_object()) {
        // No usable config key: Patroni falls back to its own (local) global configuration.
        f.paused = status.dynamic.pause;
        f.quorum = status.dynamic.synchronous_mode == "quorum";
        f.synchronous_mode = status.dynamic.synchronous_mode != "off" && !status.standby_cluster;
        return f;
    }
    const OJson& cfg = *key.json;
    f.paused = flag_value(cfg, "pause");
    std::string sync_mode;
    if (const OJson* v = json_field(cfg, "synchronous_mode")) {
        sync_mode = lower(py_str(*v));
    }
    f.quorum = sync_mode == "quorum";
    bool standby = false;
    if (const OJson* sc = json_field(cfg, "standby_cluster"); sc != nullptr && sc->is_object()) {
        for (const char* k : {"host", "port", "restore_command"}) {
            const OJson* v = json_field(*sc, k);
            standby = standby || (v != nullptr && truthy(*v));
        }
    }
    f.synchronous_mode = (flag_value(cfg, "synchronous_mode") || f.quorum) && !standby;
    return f;
}

}  // namespace pgwarden::rest
