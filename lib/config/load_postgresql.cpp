// patroni.yml, the local postgresql section: addresses, directories, parameters, pg_hba, callbacks,
// rewind and replica options, and the credentials (postgresql.authentication or the legacy layout).

#include "config/dynamic_internal.hpp"
#include "config/load_internal.hpp"
#include "config/pg_parameters.hpp"
#include "config/text.hpp"
#include "core/libpq_keywords.hpp"
#include "core/pg_parameters.hpp"

#include <algorithm>
#include <map>
#include <optional>

namespace pgwarden::config::detail {

void Loader::parse_postgresql(const Value& v) {
    if (!w_.expect_map(v, "postgresql")) {
        return;
    }
    core::PostgresqlSettings& pg = r_->settings.postgresql;
    std::vector<std::string> replica_methods = {"basebackup"};
    if (const Value* crm = v.find("create_replica_methods")) {
        w_.get_string_list(*crm, "postgresql.create_replica_methods", &replica_methods);
    }
    pg.create_replica_methods = replica_methods;
    const Value* listen = v.find("listen");
    if (listen == nullptr || listen->is_null()) {
        err(listen != nullptr ? *listen : v,
            "postgresql.listen",
            "is required (host[,host...]:port)");
    } else if (w_.get_string(*listen, "postgresql.listen", &pg.listen)) {
        std::string hosts;
        int port = 0;
        if (!split_host_port(pg.listen, 5432, &hosts, &port) || hosts.empty()) {
            err(*listen,
                "postgresql.listen",
                "expected host[,host...]:port, got '" + pg.listen + "'");
        }
    }
    const Value* data_dir = v.find("data_dir");
    if (data_dir == nullptr || data_dir->is_null()) {
        err(data_dir != nullptr ? *data_dir : v, "postgresql.data_dir", "is required");
    } else if (w_.get_string(*data_dir, "postgresql.data_dir", &pg.data_dir) &&
               pg.data_dir.empty()) {
        err(*data_dir, "postgresql.data_dir", "must not be empty");
    }
    if (const Value* ca = v.find("connect_address")) {
        if (w_.get_string(*ca, "postgresql.connect_address", &pg.connect_address) &&
            !valid_host_port(pg.connect_address)) {
            err(*ca,
                "postgresql.connect_address",
                "expected host:port, got '" + pg.connect_address + "'");
        }
    } else {
        w_.warning(v,
                   "postgresql.connect_address",
                   "is not set; Patroni publishes a local address as conn_url");
    }
    if (const Value* pa = v.find("proxy_address")) {
        if (w_.get_string(*pa, "postgresql.proxy_address", &pg.proxy_address) &&
            !valid_host_port(pg.proxy_address)) {
            err(*pa,
                "postgresql.proxy_address",
                "expected host:port, got '" + pg.proxy_address + "'");
        }
    }
    for (const auto& [key, value] : v.entries) {
        const std::string p = "postgresql." + key;
        if (key == "bin_dir") {
            w_.get_string(value, p, &pg.bin_dir);
        } else if (key == "config_dir") {
            w_.get_string(value, p, &pg.config_dir);
        } else if (key == "pgpass") {
            w_.get_string(value, p, &pg.pgpass);
        } else if (key == "database") {
            w_.get_string(value, p, &pg.database);
        } else if (key == "parameters") {
            std::map<std::string, std::string> params;
            parse_parameters(value, p, &params, w_);
            for (const auto& [name, text] : params) {
                const Value* at = value.find(name);
                if (at == nullptr) {
                    for (const auto& [k2, v2] : value.entries) {
                        if (lower(k2) == name) {
                            at = &v2;
                        }
                    }
                }
                if (is_cmdline_option(name)) {
                    w_.warning(
                        at != nullptr ? *at : value,
                        p + "." + name,
                        "Patroni ignores " + name +
                            " in the local postgresql.parameters; it can only be set in the "
                            "dynamic configuration (bootstrap.dcs or patronictl edit-config)");
                    continue;
                }
                pg.parameters[name] = text;
            }
        } else if (key == "pg_hba") {
            w_.get_string_list(value, p, &pg.pg_hba);
        } else if (key == "pg_ident") {
            w_.get_string_list(value, p, &pg.pg_ident);
        } else if (key == "callbacks") {
            if (w_.expect_map(value, p)) {
                w_.unknown_keys(
                    value, p, {"on_reload", "on_restart", "on_role_change", "on_start", "on_stop"});
                for (const auto& [ck, cv] : value.entries) {
                    std::string text;
                    if (w_.get_string(cv, p + "." + ck, &text)) {
                        pg.callbacks[ck] = text;
                    }
                }
            }
        } else if (key == "basebackup") {
            render_options(value, p, core::kBasebackupNotAllowedOptions, &pg.basebackup_args);
        } else if (key == "use_unix_socket") {
            w_.get_bool(value, p, &pg.use_unix_socket);
        } else if (key == "pg_ctl_timeout") {
            w_.get_seconds(value, p, &pg.pg_ctl_timeout);
        } else if (key == "remove_data_directory_on_rewind_failure") {
            w_.get_bool(value, p, &pg.remove_data_directory_on_rewind_failure);
        } else if (key == "remove_data_directory_on_diverged_timelines") {
            w_.get_bool(value, p, &pg.remove_data_directory_on_diverged_timelines);
        } else if (key == "use_pg_rewind") {
            bool b = false;
            if (w_.get_bool(value, p, &b)) {
                pg.use_pg_rewind = b;
            }
        } else if (key == "use_slots") {
            w_.warning(
                value,
                p,
                "Patroni ignores use_slots in the local configuration (replication slots are "
                "enabled or disabled globally, in the dynamic configuration)");
        } else if (key == "bin_name") {
            if (w_.expect_map(value, p)) {
                w_.unknown_keys(value,
                                p,
                                {"pg_ctl",
                                 "initdb",
                                 "pg_controldata",
                                 "pg_basebackup",
                                 "postgres",
                                 "pg_isready",
                                 "pg_rewind"});
                for (const auto& [bk, bv] : value.entries) {
                    std::string text;
                    if (w_.get_string(bv, p + "." + bk, &text)) {
                        pg.bin_name[bk] = text;
                    }
                }
            }
        } else if (key == "listen" || key == "data_dir" || key == "connect_address" ||
                   key == "proxy_address" || key == "create_replica_methods" ||
                   key == "authentication" || key == "superuser" || key == "replication" ||
                   key == "pg_rewind" || key == "name" || key == "custom_conf" ||
                   key == "recovery_conf" || key == "rewind" || key == "use_unix_socket_repl" ||
                   key == "config_base_name" || key == "parameters_primary" ||
                   key == "parameters_replica" || key == "parameters_standby_leader" ||
                   key == "pg_hba_primary" || key == "pg_hba_replica" ||
                   key == "pg_hba_standby_leader" || key == "pg_ident_primary" ||
                   key == "pg_ident_replica" || key == "pg_ident_standby_leader" ||
                   std::find(replica_methods.begin(), replica_methods.end(), key) !=
                       replica_methods.end()) {
            // handled above or in finish_credentials, or passed through by Patroni
            if (!value.is_null() &&
                (key == "custom_conf" || key == "recovery_conf" || key == "config_base_name" ||
                 key == "use_unix_socket_repl" || key.rfind("parameters_", 0) == 0 ||
                 key.rfind("pg_hba_", 0) == 0 || key.rfind("pg_ident_", 0) == 0)) {
                r_->settings.unimplemented_keys.push_back(p);
            }
        } else {
            w_.warning(value, p, "unknown key, ignored");
        }
    }
}

bool Loader::parse_credentials(const Value& v,
                               const std::string& path,
                               core::Credentials* out,
                               bool full) {
    if (!w_.expect_map(v, path)) {
        return false;
    }
    if (full) {
        w_.unknown_keys(v, path, core::kAuthKeys);
    } else {
        w_.unknown_keys(v, path, {"username", "password"});
    }
    if (const Value* u = v.find("username")) {
        w_.get_string(*u, path + ".username", &out->username);
    }
    if (const Value* p = v.find("password")) {
        w_.get_string(*p, path + ".password", &out->password);
    }
    return true;
}

void Loader::finish_credentials(const Value* pg) {
    if (pg == nullptr || !pg->is_map()) {
        return;
    }
    core::PostgresqlSettings& out = r_->settings.postgresql;
    const Value* authentication = pg->find("authentication");
    const Value* pg_rewind = pg->find("pg_rewind");
    std::optional<core::Credentials> superuser;
    std::optional<core::Credentials> replication;
    std::string superuser_path = "postgresql.authentication.superuser";
    if (authentication != nullptr) {
        if (w_.expect_map(*authentication, "postgresql.authentication")) {
            w_.unknown_keys(*authentication,
                            "postgresql.authentication",
                            {"superuser", "replication", "rewind"});
            core::Credentials c;
            if (const Value* u = authentication->find("superuser");
                u != nullptr && parse_credentials(*u, superuser_path, &c, true)) {
                superuser = c;
            }
            c = {};
            if (const Value* u = authentication->find("replication");
                u != nullptr &&
                parse_credentials(*u, "postgresql.authentication.replication", &c, true)) {
                replication = c;
            }
            c = {};
            if (const Value* u = authentication->find("rewind");
                u != nullptr &&
                parse_credentials(*u, "postgresql.authentication.rewind", &c, true)) {
                out.rewind = c;
            }
        }
        for (const char* legacy : {"superuser", "replication"}) {
            if (const Value* x = pg->find(legacy)) {
                w_.warning(*x,
                           std::string("postgresql.") + legacy,
                           "ignored: postgresql.authentication is present, and Patroni then "
                           "reads only "
                           "postgresql.authentication." +
                               std::string(legacy));
            }
        }
    } else {
        // No postgresql.authentication: the legacy layout. Patroni takes superuser and
        // replication from postgresql.*, and sets use_pg_rewind to whether postgresql.pg_rewind
        // exists.
        core::Credentials c;
        if (const Value* u = pg->find("superuser");
            u != nullptr && parse_credentials(*u, "postgresql.superuser", &c, true)) {
            superuser = c;
            superuser_path = "postgresql.superuser";
        }
        c = {};
        if (const Value* u = pg->find("replication");
            u != nullptr && parse_credentials(*u, "postgresql.replication", &c, true)) {
            replication = c;
        }
        out.use_pg_rewind = pg_rewind != nullptr;
        if (pg->find("superuser") != nullptr || pg->find("replication") != nullptr ||
            pg_rewind != nullptr) {
            w_.warning(*pg,
                       "postgresql",
                       std::string(
                           "legacy credentials layout (postgresql.superuser/replication instead of "
                           "postgresql.authentication): read as Patroni reads it; this also sets "
                           "use_pg_rewind=") +
                           (pg_rewind != nullptr ? "true" : "false") +
                           " on this node whatever the dynamic configuration says");
        }
    }
    if (pg_rewind != nullptr) {
        core::Credentials c;
        if (parse_credentials(*pg_rewind, "postgresql.pg_rewind", &c, true)) {
            if (!superuser) {
                superuser = c;
                w_.warning(*pg_rewind,
                           "postgresql.pg_rewind",
                           "legacy key: used as the superuser because none is configured");
            } else {
                w_.warning(
                    *pg_rewind,
                    "postgresql.pg_rewind",
                    "legacy key: Patroni does not use these credentials (pg_rewind runs as the "
                    "superuser '" +
                        superuser->username +
                        "'; use postgresql.authentication.rewind for a dedicated user)");
            }
        }
    }
    if (superuser) {
        out.superuser = *superuser;
    } else {
        w_.warning(*pg,
                   "postgresql.authentication.superuser",
                   "is not set; Patroni connects as the OS user");
    }
    if (replication) {
        out.replication = *replication;
    } else {
        w_.warning(*pg,
                   "postgresql.authentication.replication",
                   "is not set; replicas cannot be created or stream from the primary");
    }
}

}  // namespace pgwarden::config::detail
