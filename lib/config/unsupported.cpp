// The settings pgwarden parses but does not implement: Errors that stop the daemon, Warnings
// that only say a setting has no effect.

#include "config/unsupported.hpp"

#include <algorithm>

namespace pgwarden::config {

namespace {

constexpr const char* kNotYet = " is not supported by this pgwarden version yet";

class Report {
public:
    explicit Report(std::vector<Problem>* out) : out_(out) {}

    void error(const std::string& path, const std::string& value, const std::string& why) {
        add(Problem::Severity::Error, path, value, why);
    }
    void warning(const std::string& path, const std::string& value, const std::string& why) {
        add(Problem::Severity::Warning, path, value, why);
    }

private:
    void add(Problem::Severity severity,
             const std::string& path,
             const std::string& value,
             const std::string& why) {
        std::string message = value.empty() ? std::string("set, but") : "'" + value + "'";
        message += kNotYet;
        if (!why.empty()) {
            message += ": " + why;
        }
        out_->push_back({severity, path, 0, message});
    }

    std::vector<Problem>* out_;
};

// Why a key that pgwarden only records (core::*::unimplemented_keys) matters.
std::string effect_of(const std::string& key) {
    if (key.rfind("log.", 0) == 0) {
        return "pgwarden logs to stderr only, with its own format";
    }
    if (key.find("_primary") != std::string::npos || key.find("_replica") != std::string::npos ||
        key.find("_standby_leader") != std::string::npos) {
        return "role-specific settings are not applied; only the common ones are";
    }
    if (key.ends_with("recovery_conf")) {
        return "these recovery settings (restore_command, ...) are not written";
    }
    if (key.ends_with("custom_conf") || key.ends_with("config_base_name")) {
        return "pgwarden writes postgresql.conf itself, without this";
    }
    return "ignored";
}

}  // namespace

std::vector<Problem> unsupported_dynamic(const core::DynamicSettings& d,
                                         const std::string& path_prefix) {
    std::vector<Problem> out;
    Report r(&out);
    const auto path = [&](const std::string& key) {
        return path_prefix + "." + key;
    };
    if (d.standby_cluster_present) {
        r.error(path("standby_cluster"),
                d.standby_cluster_json,
                "the standby leader would be promoted to a second writable primary instead of "
                "replicating from the remote cluster");
    }
    if (d.synchronous_mode != "off") {
        r.error(path("synchronous_mode"),
                d.synchronous_mode,
                "replication would silently stay asynchronous, and a failover could lose "
                "commits acknowledged as synchronous");
    }
    if (d.synchronous_mode_strict) {
        r.error(path("synchronous_mode_strict"),
                "true",
                "pgwarden does not implement synchronous replication");
    }
    if (d.failsafe_mode) {
        r.warning(path("failsafe_mode"),
                  "true",
                  "without the DCS a primary is demoted, as with failsafe_mode off");
    }
    if (d.primary_race_backoff > 0) {
        r.warning(path("primary_race_backoff"),
                  std::to_string(d.primary_race_backoff),
                  "replicas race for the leader lock at once");
    }
    for (const auto& slot : d.slots) {
        if (slot.type == "logical") {
            r.warning(path("slots." + slot.name),
                      "logical",
                      "permanent logical slots are neither created nor copied to replicas "
                      "(permanent physical slots are kept)");
        }
    }
    for (const auto& key : d.unimplemented_keys) {
        r.warning(path(key), "", effect_of(key));
    }
    return out;
}

std::vector<Problem> unsupported_settings(const core::Settings& s) {
    std::vector<Problem> out = unsupported_dynamic(s.bootstrap.dcs, "bootstrap.dcs");
    Report r(&out);
    if (!s.restapi.certfile.empty()) {
        r.error(
            "restapi.certfile", s.restapi.certfile, "the REST API would be served over plain HTTP");
    } else {
        for (const auto& [key, value] : {std::pair{"keyfile", &s.restapi.keyfile},
                                         std::pair{"cafile", &s.restapi.cafile},
                                         std::pair{"ciphers", &s.restapi.ciphers}}) {
            if (!value->empty()) {
                r.warning(std::string("restapi.") + key, *value, "no TLS without certfile");
            }
        }
    }
    if (s.restapi.verify_client != "none") {
        r.error("restapi.verify_client",
                s.restapi.verify_client,
                "client certificates would not be checked, so anyone reaching the REST API "
                "could switch over, restart or reconfigure the cluster");
    }
    if (s.watchdog_mode == "required") {
        r.error("watchdog.mode",
                "required",
                "no watchdog device is opened; a frozen or killed pgwarden leaves PostgreSQL "
                "writable");
    } else if (s.watchdog_mode == "automatic") {
        r.warning("watchdog.mode", "automatic", "no watchdog device is used");
    }
    if (s.bootstrap.method != "initdb") {
        r.error("bootstrap.method",
                s.bootstrap.method,
                "a new cluster would be created with initdb instead");
    }
    if (!s.bootstrap.post_bootstrap.empty()) {
        r.warning("bootstrap.post_bootstrap",
                  s.bootstrap.post_bootstrap,
                  "the script does not run after bootstrap");
    }
    for (const auto& [name, command] : s.postgresql.callbacks) {
        r.warning("postgresql.callbacks." + name, command, "the callback never runs");
    }
    for (const auto& method : s.postgresql.create_replica_methods) {
        if (method != "basebackup") {
            r.warning("postgresql.create_replica_methods",
                      method,
                      "replicas are always created with pg_basebackup");
        }
    }
    if (!s.postgresql.proxy_address.empty()) {
        r.warning("postgresql.proxy_address",
                  s.postgresql.proxy_address,
                  "proxy_url is not published in the member key");
    }
    for (const auto& [binary, name] : s.postgresql.bin_name) {
        r.warning("postgresql.bin_name." + binary, name, "the standard binary name is used");
    }
    if (s.postgresql.remove_data_directory_on_rewind_failure) {
        r.warning("postgresql.remove_data_directory_on_rewind_failure",
                  "true",
                  "only the dynamic setting (bootstrap.dcs or the DCS config) is read");
    }
    if (!s.tags.replicatefrom.empty()) {
        r.warning("tags.replicatefrom",
                  s.tags.replicatefrom,
                  "the node replicates from the primary (no cascading)");
    }
    if (s.tags.nostream) {
        r.warning("tags.nostream", "true", "the node streams from the primary as usual");
    }
    if (s.dcs.kind == core::DcsKind::Etcd3 && s.dcs.etcd3.use_proxies) {
        r.warning("etcd3.use_proxies", "true", "the cluster members are discovered as usual");
    }
    for (const auto& key : s.unimplemented_keys) {
        r.warning(key, "", effect_of(key));
    }
    return out;
}

LoadResult load_file_checked(const std::string& path,
                             const std::map<std::string, std::string>& env) {
    LoadResult result = load_file(path, env);
    for (Problem& p : unsupported_settings(result.settings)) {
        result.problems.push_back(std::move(p));
    }
    return result;
}

}  // namespace pgwarden::config
