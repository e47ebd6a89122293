#include "config/load.hpp"

#include "config/dynamic.hpp"
#include "config/dynamic_internal.hpp"
#include "config/env_internal.hpp"
#include "config/pg_parameters.hpp"
#include "config/value.hpp"
#include "config/walker.hpp"
#include "core/go_duration.hpp"
#include "core/pg_parameters.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <optional>
#include <span>
#include <sstream>
#include <string_view>

extern char** environ;  // NOLINT(readability-identifier-naming): POSIX

namespace pgwarden::config {

using detail::Value;
using detail::Walker;

namespace {

constexpr const char* kSyncStrictPlaceholder = "__patroni_strict_sync_replica_placeholder__";

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

// Python split_host_port(value, default_port) -> host, port; false if the port is not a number.
bool split_host_port(const std::string& value, int default_port, std::string* host, int* port) {
    const auto colon = value.rfind(':');
    if (colon == std::string::npos) {
        *host = value;
        *port = default_port;
        return true;
    }
    *host = value.substr(0, colon);
    const std::string p = value.substr(colon + 1);
    const Value pv = Value::string(p);
    auto n = detail::python_int(pv);
    if (!n || *n < 0 || *n > 65535) {
        return false;
    }
    *port = static_cast<int>(*n);
    return true;
}

bool valid_host_port(const std::string& value) {
    std::string host;
    int port = 0;
    return value.rfind(':') != std::string::npos && split_host_port(value, 0, &host, &port) &&
           port > 0;
}

struct Url {
    std::string scheme;
    std::string host;
    int port = 0;
    std::string username;
    std::string password;
};

bool parse_url(const std::string& text, Url* out) {
    const auto sep = text.find("://");
    if (sep == std::string::npos || sep == 0) {
        return false;
    }
    out->scheme = lower(text.substr(0, sep));
    std::string rest = text.substr(sep + 3);
    rest = rest.substr(0, rest.find_first_of("/?#"));
    const auto at = rest.rfind('@');
    if (at != std::string::npos) {
        const std::string userinfo = rest.substr(0, at);
        rest = rest.substr(at + 1);
        const auto colon = userinfo.find(':');
        out->username = userinfo.substr(0, colon);
        if (colon != std::string::npos) {
            out->password = userinfo.substr(colon + 1);
        }
    }
    if (!rest.empty() && rest[0] == '[') {
        const auto close = rest.find(']');
        if (close == std::string::npos) {
            return false;
        }
        out->host = rest.substr(1, close - 1);
        rest = rest.substr(close + 1);
        if (!rest.empty() && rest[0] == ':') {
            auto n = detail::python_int(Value::string(rest.substr(1)));
            if (!n || *n <= 0 || *n > 65535) {
                return false;
            }
            out->port = static_cast<int>(*n);
        }
        return !out->host.empty();
    }
    const auto colon = rest.rfind(':');
    out->host = rest.substr(0, colon);
    if (colon != std::string::npos) {
        auto n = detail::python_int(Value::string(rest.substr(colon + 1)));
        if (!n || *n <= 0 || *n > 65535) {
            return false;
        }
        out->port = static_cast<int>(*n);
    }
    return !out->host.empty();
}

// Go duration ("5s", "1m30s", "500ms") -> whole seconds (at least 1 for a positive duration).
bool parse_go_duration(const std::string& text, int* seconds) {
    const std::optional<double> total_ms = core::parse_go_duration_ms(text);
    if (!total_ms || *total_ms / 1000 > INT32_MAX - 1) {
        return false;  // not a duration, or more seconds than an int holds
    }
    const int s = static_cast<int>((*total_ms + 999) / 1000);
    *seconds = *total_ms > 0 ? std::max(1, s) : 0;
    return true;
}

class Loader {
public:
    Loader(LoadResult* result) : r_(result), w_(&result->problems) {}

    void run(Value root) {
        core::Settings& s = r_->settings;
        if (!root.is_map()) {
            if (root.is_null()) {
                err(root, "", "the configuration is empty");
            } else {
                err(root,
                    "",
                    "the configuration must be a mapping, got " + Walker::show(root, false));
            }
            return;
        }
        const Value* name = root.find("name");
        // Patroni: a missing top-level name is taken from postgresql.name (old format).
        const Value* pg = root.find("postgresql");
        if ((name == nullptr || name->is_null()) && pg != nullptr && pg->is_map() &&
            pg->find("name") != nullptr) {
            name = pg->find("name");
        }
        if (name == nullptr || !w_.get_string(*name, "name", &s.name) || s.name.empty()) {
            err(name != nullptr ? *name : root,
                "name",
                "is required (the member name, unique in the cluster)");
        } else if (s.name == kSyncStrictPlaceholder) {
            err(*name, "name", "'" + s.name + "' is reserved by Patroni");
        }
        const Value* scope = root.find("scope");
        if (scope == nullptr || !w_.get_string(*scope, "scope", &s.scope) || s.scope.empty()) {
            err(scope != nullptr ? *scope : root, "scope", "is required (the cluster name)");
        }
        if (const Value* ns = root.find("namespace")) {
            std::string text;
            if (w_.get_string(*ns, "namespace", &text)) {
                // AbstractDCS: '/' + namespace.strip('/') + '/'
                const auto first = text.find_first_not_of('/');
                const auto last = text.find_last_not_of('/');
                const std::string stripped =
                    first == std::string::npos ? "" : text.substr(first, last - first + 1);
                s.namespace_ = "/" + stripped + (stripped.empty() ? "" : "/");
            }
        }
        for (const auto& [key, value] : root.entries) {
            if (key == "log") {
                parse_log(value);
            } else if (key == "restapi") {
                parse_restapi(value);
            } else if (key == "bootstrap") {
                parse_bootstrap(value);
            } else if (key == "postgresql") {
                parse_postgresql(value);
            } else if (key == "watchdog") {
                parse_watchdog(value);
            } else if (key == "tags") {
                parse_tags(value);
            } else if (key == "initdb") {
                w_.warning(
                    value,
                    "initdb",
                    "top-level initdb is not read by Patroni (it only reads bootstrap.initdb); "
                    "did you mean bootstrap.initdb? Not applied: initdb runs without these "
                    "options");
            } else if (key == "ttl" || key == "loop_wait" || key == "retry_timeout" ||
                       key == "maximum_lag_on_failover" || key == "synchronous_mode" ||
                       key == "synchronous_mode_strict" || key == "synchronous_node_count" ||
                       key == "primary_start_timeout" || key == "primary_stop_timeout" ||
                       key == "failsafe_mode" || key == "check_timeline" || key == "pause" ||
                       key == "max_timelines_history" || key == "maximum_lag_on_syncnode" ||
                       key == "master_start_timeout" || key == "master_stop_timeout" ||
                       key == "standby_cluster" || key == "slots" || key == "ignore_slots" ||
                       key == "member_slots_ttl" || key == "primary_race_backoff") {
                w_.warning(
                    value,
                    key,
                    "is a dynamic setting; Patroni does not read it at the top level of the file "
                    "(put it in bootstrap.dcs, or change it with patronictl edit-config)");
            } else if (key == "citus") {
                w_.warning(value, key, "Citus is not supported by pgwarden; ignored");
            } else if (key == "name" || key == "scope" || key == "namespace" || key == "ctl" ||
                       key == "thread_pool_size" || key == "thread_stack_size" || key == "consul" ||
                       key == "etcd" || key == "etcd3" || key == "zookeeper" ||
                       key == "exhibitor" || key == "kubernetes" || key == "raft") {
                // handled elsewhere, or read only by patronictl
            } else {
                w_.warning(value, key, "unknown key, ignored");
            }
        }
        parse_dcs(root);
        if (root.find("restapi") == nullptr) {
            err(root, "restapi", "section is required (restapi.listen)");
        }
        if (pg == nullptr) {
            err(root, "postgresql", "section is required (postgresql.listen, postgresql.data_dir)");
        }
        finish_credentials(pg);
        // Timing: Patroni validates and adjusts the dynamic configuration it starts from.
        finish_dynamic();
    }

private:
    void err(const Value& v, const std::string& path, const std::string& message) {
        w_.error(v, path, message);
    }

    void parse_log(const Value& v) {
        if (!w_.expect_map(v, "log")) {
            return;
        }
        w_.unknown_keys(v,
                        "log",
                        {"type",
                         "level",
                         "traceback_level",
                         "format",
                         "dateformat",
                         "static_fields",
                         "max_queue_size",
                         "dir",
                         "file_num",
                         "file_size",
                         "mode",
                         "loggers",
                         "deduplicate_heartbeat_logs"});
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
                        "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got '" + text +
                            "'");
                } else {
                    r_->settings.log.level = text;
                }
            }
        }
    }

    bool parse_credentials(const Value& v,
                           const std::string& path,
                           core::Credentials* out,
                           bool full) {
        if (!w_.expect_map(v, path)) {
            return false;
        }
        if (full) {
            w_.unknown_keys(v,
                            path,
                            {"username",
                             "password",
                             "sslmode",
                             "sslcert",
                             "sslkey",
                             "sslpassword",
                             "sslrootcert",
                             "sslcrl",
                             "sslcrldir",
                             "gssencmode",
                             "channel_binding",
                             "sslnegotiation"});
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

    void parse_restapi(const Value& v) {
        if (!w_.expect_map(v, "restapi")) {
            return;
        }
        core::RestApiSettings& api = r_->settings.restapi;
        w_.unknown_keys(v,
                        "restapi",
                        {"listen",
                         "connect_address",
                         "authentication",
                         "auth",
                         "certfile",
                         "keyfile",
                         "keyfile_password",
                         "cafile",
                         "ciphers",
                         "verify_client",
                         "allowlist",
                         "allowlist_include_members",
                         "http_extra_headers",
                         "https_extra_headers",
                         "request_queue_size",
                         "thread_pool_size",
                         "server_tokens"});
        const Value* listen = v.find("listen");
        if (listen == nullptr || listen->is_null()) {
            err(listen != nullptr ? *listen : v, "restapi.listen", "is required (host:port)");
        } else if (w_.get_string(*listen, "restapi.listen", &api.listen) &&
                   !valid_host_port(api.listen)) {
            err(*listen, "restapi.listen", "expected host:port, got '" + api.listen + "'");
        }
        if (const Value* ca = v.find("connect_address")) {
            if (w_.get_string(*ca, "restapi.connect_address", &api.connect_address) &&
                !valid_host_port(api.connect_address)) {
                err(*ca,
                    "restapi.connect_address",
                    "expected host:port, got '" + api.connect_address + "'");
            }
        } else {
            w_.warning(v,
                       "restapi.connect_address",
                       "is not set; the listen address is published as api_url");
        }
        // Legacy restapi.auth: 'username:password' (api.py reads restapi.auth; config.py derives it
        // from restapi.authentication when that is present, so authentication wins).
        if (const Value* auth = v.find("auth");
            auth != nullptr && v.find("authentication") == nullptr) {
            std::string text;
            if (w_.get_string(*auth, "restapi.auth", &text)) {
                const auto colon = text.find(':');
                if (colon == std::string::npos) {
                    err(*auth, "restapi.auth", "expected 'username:password' (value not shown)");
                } else {
                    api.authentication =
                        core::Credentials{text.substr(0, colon), text.substr(colon + 1)};
                }
            }
        }
        if (const Value* a = v.find("authentication")) {
            core::Credentials c;
            if (parse_credentials(*a, "restapi.authentication", &c, false)) {
                if (a->find("username") == nullptr || a->find("password") == nullptr) {
                    err(*a, "restapi.authentication", "needs both username and password");
                } else {
                    api.authentication = c;
                }
            }
        }
        const auto str = [&](const char* key, std::string* out) {
            if (const Value* x = v.find(key)) {
                w_.get_string(*x, std::string("restapi.") + key, out);
            }
        };
        str("certfile", &api.certfile);
        str("keyfile", &api.keyfile);
        str("keyfile_password", &api.keyfile_password);
        str("cafile", &api.cafile);
        str("ciphers", &api.ciphers);
        if (const Value* vc = v.find("verify_client")) {
            std::string text;
            if (w_.get_string(*vc, "restapi.verify_client", &text)) {
                if (text != "none" && text != "optional" && text != "required") {
                    err(*vc,
                        "restapi.verify_client",
                        "expected none, optional or required, got '" + text + "'");
                } else {
                    api.verify_client = text;
                }
            }
        }
        if (const Value* al = v.find("allowlist")) {
            w_.get_string_list(*al, "restapi.allowlist", &api.allowlist);
        }
        if (const Value* aim = v.find("allowlist_include_members")) {
            w_.get_bool(*aim, "restapi.allowlist_include_members", &api.allowlist_include_members);
        }
        if (const Value* h = v.find("http_extra_headers")) {
            if (w_.expect_map(*h, "restapi.http_extra_headers")) {
                for (const auto& [hk, hv] : h->entries) {
                    std::string text;
                    if (w_.get_string(hv, "restapi.http_extra_headers." + hk, &text)) {
                        api.http_extra_headers[hk] = text;
                    }
                }
            }
        }
    }

    void parse_bootstrap(const Value& v) {
        if (!w_.expect_map(v, "bootstrap")) {
            return;
        }
        core::BootstrapSettings& b = r_->settings.bootstrap;
        std::string method = "initdb";
        if (const Value* m = v.find("method")) {
            w_.get_string(*m, "bootstrap.method", &method);
            if (method.empty()) {
                method = "initdb";
            }
        }
        b.method = method;
        for (const auto& [key, value] : v.entries) {
            const std::string p = "bootstrap." + key;
            if (key == "dcs") {
                dcs_value_ = value;
                have_dcs_ = true;
                detail::parse_dynamic_value(value, p, b.dcs, w_);
                if (const Value* pgv = value.find("postgresql"); pgv != nullptr && pgv->is_map()) {
                    if (const Value* params = pgv->find("parameters");
                        params != nullptr && params->is_map()) {
                        for (const auto& [pname, pvalue] : params->entries) {
                            if (auto text = detail::render_parameter(pvalue)) {
                                auto reason = check_cmdline_option(pname, *text);
                                if (reason && !malformed_cmdline_option(pname, *text)) {
                                    w_.warning(
                                        pvalue, p + ".postgresql.parameters." + pname, *reason);
                                }
                            }
                            if (is_recovery_parameter(pname)) {
                                w_.warning(
                                    pvalue,
                                    p + ".postgresql.parameters." + pname,
                                    "is a recovery parameter: Patroni moves it into the recovery "
                                    "settings it manages instead of writing it as a server "
                                    "parameter");
                            }
                        }
                    }
                }
            } else if (key == "initdb") {
                if (method == "initdb") {
                    static constexpr std::array<std::string_view, 5> kInitdbNotAllowed = {
                        "pgdata", "nosync", "pwfile", "sync-only", "version"};
                    render_options(value, p, kInitdbNotAllowed, &b.initdb_args);
                }
            } else if (key == "post_bootstrap" || key == "post_init") {
                w_.get_string(value, p, &b.post_bootstrap);
            } else if (key == "method" || key == "pg_hba" || key == "users" ||
                       key == key_for_method(method)) {
                if (key == "users") {
                    w_.warning(value, p, "bootstrap.users was removed in Patroni 4; ignored");
                }
            } else {
                w_.warning(value, p, "unknown key, ignored");
            }
        }
        if (!have_dcs_) {
            w_.warning(v,
                       "bootstrap.dcs",
                       "is missing; a new cluster starts with the default dynamic configuration");
        }
    }

    static std::string key_for_method(const std::string& method) { return method; }

    // utils.process_user_options: a list of "flag" / {key: "value"}, or a mapping.
    void render_options(const Value& v,
                        const std::string& path,
                        std::span<const std::string_view> not_allowed,
                        std::vector<std::string>* out) {
        const auto allowed = [&](const std::string& name, const Value& at, const std::string& p) {
            if (std::find(not_allowed.begin(), not_allowed.end(), name) != not_allowed.end()) {
                err(at, p, "option " + name + " is not allowed here (Patroni sets it itself)");
                return false;
            }
            return true;
        };
        const auto unquote = [](std::string s) {
            if (s.size() >= 2 && ((s.front() == '"' && s.back() == '"') ||
                                  (s.front() == '\'' && s.back() == '\''))) {
                const std::string inner = s.substr(1, s.size() - 2);
                if (inner.find(s.front()) == std::string::npos) {
                    return inner;
                }
            }
            return s;
        };
        std::vector<std::string> result;
        if (v.is_null()) {
            return;
        }
        if (v.is_map()) {
            for (const auto& [key, value] : v.entries) {
                const std::string p = path + "." + key;
                if (!value.is_scalar() || value.is_null() || py_falsy(value)) {
                    if (!value.is_scalar()) {
                        err(value, p, "expected a string value, got " + Walker::show(value, false));
                    }
                    continue;
                }
                if (allowed(key, value, p)) {
                    result.push_back("--" + key + "=" + unquote(detail::py_str(value)));
                }
            }
        } else if (v.is_list()) {
            for (std::size_t n = 0; n < v.items.size(); ++n) {
                const Value& item = v.items[n];
                const std::string p = path + "[" + std::to_string(n) + "]";
                if (item.kind == Value::Kind::String) {
                    if (allowed(item.s, item, p)) {
                        result.push_back("--" + item.s);
                    }
                } else if (item.is_map()) {
                    if (item.entries.size() != 1 ||
                        item.entries[0].second.kind != Value::Kind::String) {
                        err(item,
                            p,
                            "expected a single key with a string value, e.g. {encoding: UTF8}");
                        continue;
                    }
                    const auto& [key, value] = item.entries[0];
                    if (allowed(key, item, p)) {
                        result.push_back("--" + key + "=" + unquote(value.s));
                    }
                } else {
                    err(item,
                        p,
                        "expected an option name or a {name: value} mapping, got " +
                            Walker::show(item, false));
                }
            }
        } else {
            err(v, path, "expected a list of options or a mapping, got " + Walker::show(v, false));
            return;
        }
        *out = std::move(result);
    }

    static bool py_falsy(const Value& v) {
        return (v.kind == Value::Kind::String && v.s.empty()) ||
               (v.kind == Value::Kind::Bool && !v.b) || (v.kind == Value::Kind::Int && v.i == 0) ||
               (v.kind == Value::Kind::Float && v.f == 0.0);
    }

    void parse_postgresql(const Value& v) {
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
                detail::parse_parameters(value, p, &params, w_);
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
                        value,
                        p,
                        {"on_reload", "on_restart", "on_role_change", "on_start", "on_stop"});
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

    // config.py _build_effective_configuration, "special treatment for old config".
    void finish_credentials(const Value* pg) {
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
                w_.warning(
                    *pg,
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

    void parse_watchdog(const Value& v) {
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
                    w_.warning(*m,
                               "watchdog.mode",
                               "'" + m->s + "' not recognized; the watchdog is disabled");
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

    void parse_tags(const Value& v) {
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
            if (failover_priority && ((nofailover && *failover_priority > 0) ||
                                      (!nofailover && *failover_priority <= 0))) {
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
            t.rendered[key] =
                value.kind == Value::Kind::String ? value.s : lower(detail::py_str(value));
            t.json[key] = detail::to_json(value).dump(-1, ' ', true);
        }
    }

    void parse_dcs(const Value& root) {
        // Patroni takes the first configured DCS in module order (alphabetical).
        static const std::vector<std::string> kOrder = {
            "consul", "etcd", "etcd3", "exhibitor", "kubernetes", "raft", "zookeeper"};
        std::string chosen;
        for (const auto& name : kOrder) {
            if (root.find(name) == nullptr) {
                continue;
            }
            if (chosen.empty()) {
                chosen = name;
            } else {
                w_.warning(
                    *root.find(name),
                    name,
                    "ignored: Patroni uses the first configured DCS in alphabetical order (" +
                        chosen + ")");
            }
        }
        if (chosen.empty()) {
            err(root, "", "no DCS configured: add a consul: or etcd3: section");
            return;
        }
        const Value& section = *root.find(chosen);
        if (chosen == "consul") {
            r_->settings.dcs.kind = core::DcsKind::Consul;
            parse_consul(section);
        } else if (chosen == "etcd3") {
            r_->settings.dcs.kind = core::DcsKind::Etcd3;
            parse_etcd3(section);
        } else if (chosen == "etcd") {
            err(section, "etcd", "etcd v2 is not supported, use etcd3");
        } else {
            err(section, chosen, chosen + " is not supported by pgwarden; use consul or etcd3");
        }
    }

    void parse_consul(const Value& v) {
        if (!v.is_null() && !w_.expect_map(v, "consul")) {
            return;
        }
        core::ConsulSettings& c = r_->settings.dcs.consul;
        w_.unknown_keys(v,
                        "consul",
                        {"host",
                         "url",
                         "port",
                         "scheme",
                         "token",
                         "verify",
                         "cacert",
                         "cert",
                         "key",
                         "dc",
                         "consistency",
                         "checks",
                         "register_service",
                         "service_tags",
                         "service_check_interval",
                         "service_check_tls_server_name"});
        const auto str = [&](const char* key, std::string* out) {
            if (const Value* x = v.find(key)) {
                w_.get_string(*x, std::string("consul.") + key, out);
            }
        };
        std::optional<int> explicit_port;
        if (const Value* p = v.find("port"); p != nullptr && !p->is_null()) {
            int port = 0;
            if (w_.get_int(*p, "consul.port", &port)) {
                if (port <= 0 || port > 65535) {
                    err(*p,
                        "consul.port",
                        "expected a port number (1-65535), got " + Walker::show(*p, false));
                } else {
                    explicit_port = port;
                }
            }
        }
        str("scheme", &c.scheme);
        if (const Value* u = v.find("url"); u != nullptr && !u->is_null()) {
            std::string text;
            Url url;
            if (w_.get_string(*u, "consul.url", &text)) {
                if (!parse_url(text, &url)) {
                    err(*u, "consul.url", "expected http(s)://host:port, got '" + text + "'");
                } else {
                    c.scheme = url.scheme;
                    c.host = url.host;
                    c.port = url.port != 0 ? url.port : 8500;  // the url's port wins, as in Patroni
                }
            }
        } else if (const Value* h = v.find("host"); h != nullptr && !h->is_null()) {
            std::string text;
            if (w_.get_string(*h, "consul.host", &text)) {
                std::string host;
                int port = 8500;
                if (!split_host_port(text, 8500, &host, &port) || host.empty()) {
                    err(*h, "consul.host", "expected host or host:port, got '" + text + "'");
                } else {
                    c.host = host;
                    c.port = explicit_port.value_or(port);
                }
            }
        } else if (explicit_port) {
            c.port = *explicit_port;
        }
        str("token", &c.token);
        if (const Value* vr = v.find("verify")) {
            w_.get_bool(*vr, "consul.verify", &c.verify);
        }
        str("cacert", &c.cacert);
        str("cert", &c.cert);
        str("key", &c.key);
        str("dc", &c.dc);
        if (const Value* cs = v.find("consistency")) {
            std::string text;
            if (w_.get_string(*cs, "consul.consistency", &text)) {
                if (text != "default" && text != "consistent" && text != "stale") {
                    err(*cs,
                        "consul.consistency",
                        "expected default, consistent or stale, got '" + text + "'");
                } else {
                    c.consistency = text;
                }
            }
        }
        if (const Value* ch = v.find("checks")) {
            w_.get_string_list(*ch, "consul.checks", &c.checks);
        }
        if (const Value* rs = v.find("register_service")) {
            w_.get_bool(*rs, "consul.register_service", &c.register_service);
        }
        if (const Value* st = v.find("service_tags")) {
            w_.get_string_list(*st, "consul.service_tags", &c.service_tags);
        }
        if (const Value* si = v.find("service_check_interval"); si != nullptr && !si->is_null()) {
            if (si->kind != Value::Kind::String) {
                err(*si,
                    "consul.service_check_interval",
                    "expected a duration string such as '5s' (Patroni passes it to Consul "
                    "verbatim, and "
                    "Consul reads a bare number as nanoseconds), got " +
                        Walker::show(*si, false));
            } else if (int seconds = 0; !parse_go_duration(si->s, &seconds)) {
                err(*si,
                    "consul.service_check_interval",
                    "expected a duration such as '5s', '30s' or '1m', got '" + si->s + "'");
            } else {
                c.service_check_interval = seconds;
                c.service_check_interval_text = si->s;
            }
        }
        str("service_check_tls_server_name", &c.service_check_tls_server_name);
    }

    void parse_etcd3(const Value& v) {
        if (!w_.expect_map(v, "etcd3")) {
            err(v, "etcd3", "needs host, hosts or url");
            return;
        }
        core::Etcd3Settings& e = r_->settings.dcs.etcd3;
        w_.unknown_keys(v,
                        "etcd3",
                        {"host",
                         "hosts",
                         "url",
                         "proxy",
                         "port",
                         "protocol",
                         "username",
                         "password",
                         "cacert",
                         "cert",
                         "key",
                         "use_proxies",
                         "srv",
                         "srv_suffix",
                         "discovery_srv",
                         "srv_domain",
                         "version_prefix",
                         "retry_timeout",
                         "key_password"});
        const auto str = [&](const char* key, std::string* out) {
            if (const Value* x = v.find(key)) {
                w_.get_string(*x, std::string("etcd3.") + key, out);
            }
        };
        str("protocol", &e.protocol);
        str("username", &e.username);
        str("password", &e.password);
        str("cacert", &e.cacert);
        str("cert", &e.cert);
        str("key", &e.key);
        if (const Value* up = v.find("use_proxies")) {
            w_.get_bool(*up, "etcd3.use_proxies", &e.use_proxies);
        }
        int default_port = 2379;
        if (const Value* p = v.find("port"); p != nullptr && !p->is_null()) {
            w_.get_int(*p, "etcd3.port", &default_port);
        }
        const Value* url = v.find("url");
        std::string url_path = "etcd3.url";
        if (const Value* proxy = v.find("proxy"); proxy != nullptr && !proxy->is_null()) {
            e.use_proxies = true;
            url = proxy;
            url_path = "etcd3.proxy";
        }
        for (const char* srv : {"srv", "discovery_srv", "srv_domain"}) {
            if (const Value* x = v.find(srv)) {
                w_.warning(*x,
                           std::string("etcd3.") + srv,
                           "SRV discovery is not supported by pgwarden; ignored");
            }
        }
        if (url != nullptr && url->kind == Value::Kind::String) {
            Url u;
            if (!parse_url(url->s, &u)) {
                err(*url,
                    url_path,
                    "expected http(s)://[user:password@]host:port, got a malformed url");
            } else {
                e.protocol = u.scheme;
                e.hosts = {u.host + ":" + std::to_string(u.port != 0 ? u.port : 2379)};
                if (!u.username.empty()) {
                    e.username = u.username;
                    e.password = u.password;
                }
            }
        } else if (const Value* hosts = v.find("hosts"); hosts != nullptr && !hosts->is_null()) {
            std::vector<std::string> list;
            if (hosts->kind == Value::Kind::String) {
                std::stringstream ss(hosts->s);
                std::string item;
                while (std::getline(ss, item, ',')) {
                    list.push_back(item);
                }
            } else {
                w_.get_string_list(*hosts, "etcd3.hosts", &list);
            }
            for (std::string item : list) {
                item.erase(0, item.find_first_not_of(' '));
                item.erase(item.find_last_not_of(' ') + 1);
                std::string host;
                int port = default_port;
                if (!split_host_port(item, default_port, &host, &port) || host.empty()) {
                    err(*hosts, "etcd3.hosts", "expected host:port items, got '" + item + "'");
                } else {
                    e.hosts.push_back(host + ":" + std::to_string(port));
                }
            }
        } else if (const Value* host = v.find("host");
                   host != nullptr && host->kind == Value::Kind::String) {
            std::string h;
            int port = default_port;
            if (!split_host_port(host->s, 2379, &h, &port) || h.empty()) {
                err(*host, "etcd3.host", "expected host:port, got '" + host->s + "'");
            } else {
                if (v.find("port") != nullptr) {
                    port = default_port;
                }
                e.hosts = {h + ":" + std::to_string(port)};
            }
        }
        if (e.hosts.empty()) {
            err(v, "etcd3", "needs host, hosts or url");
        }
    }

    void finish_dynamic() {
        core::BootstrapSettings& b = r_->settings.bootstrap;
        const auto adjustments = detail::compute_timeout_adjustments(b.dcs);
        nlohmann::ordered_json j = have_dcs_ && dcs_value_.is_map()
                                       ? detail::to_json(dcs_value_)
                                       : nlohmann::ordered_json::object();
        std::string last_message;
        for (const auto& a : adjustments) {
            j[a.key] = a.new_value;  // in place if present, appended otherwise (as the Python dict)
            if (a.message == last_message) {
                continue;
            }
            last_message = a.message;
            const Value* at = have_dcs_ && dcs_value_.is_map() ? dcs_value_.find(a.key) : nullptr;
            r_->problems.push_back({Problem::Severity::Warning,
                                    "bootstrap.dcs." + a.key,
                                    at != nullptr ? at->line : 0,
                                    a.message});
        }
        b.dcs_json = j.dump(-1, ' ', true);
    }

    LoadResult* r_;
    Walker w_;
    Value dcs_value_;
    bool have_dcs_ = false;
};

LoadResult load_tree(detail::YamlResult parsed, const std::map<std::string, std::string>& env) {
    LoadResult result;
    if (!parsed.ok) {
        result.problems.push_back({Problem::Severity::Error,
                                   "",
                                   parsed.error_line,
                                   "YAML syntax error: " + parsed.error});
        return result;
    }
    for (const auto& [path, line] : parsed.duplicate_keys) {
        result.problems.push_back({Problem::Severity::Warning,
                                   path,
                                   line,
                                   "duplicate key; the last value is used (as Patroni does)"});
    }
    Value root = std::move(parsed.root);
    const Value env_tree = detail::environment_tree(env, &result.problems);
    if (root.is_map() && !env_tree.entries.empty()) {
        detail::patch(root, env_tree);
    } else if (root.is_null() && !env_tree.entries.empty()) {
        root = env_tree;  // Patroni: no file -> configuration from the environment alone
    }
    Loader(&result).run(std::move(root));
    return result;
}

}  // namespace

bool LoadResult::ok() const {
    return std::none_of(problems.begin(), problems.end(), [](const Problem& p) {
        return p.severity == Problem::Severity::Error;
    });
}

LoadResult load_string(const std::string& yaml_text,
                       const std::map<std::string, std::string>& env,
                       const std::string& origin_name) {
    LoadResult result;
    try {
        result = load_tree(detail::parse_yaml(yaml_text), env);
    } catch (const std::exception& e) {
        result.problems.push_back(
            {Problem::Severity::Error, "", 0, std::string("internal error: ") + e.what()});
    }
    result.settings.config_file = origin_name;
    return result;
}

LoadResult load_file(const std::string& path, const std::map<std::string, std::string>& env) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        LoadResult result;
        result.settings.config_file = path;
        result.problems.push_back({Problem::Severity::Error, "", 0, "cannot read the file"});
        return result;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return load_string(ss.str(), env, path);
}

std::map<std::string, std::string> environment_map() {
    std::map<std::string, std::string> out;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        const std::string entry(*e);
        const auto eq = entry.find('=');
        if (eq != std::string::npos) {
            out.emplace(entry.substr(0, eq), entry.substr(eq + 1));
        }
    }
    return out;
}

std::string format_problem(const Problem& problem, const std::string& file) {
    std::string out = file;
    if (problem.line > 0) {
        out += ":" + std::to_string(problem.line);
    }
    out += problem.severity == Problem::Severity::Error ? ": error: " : ": warning: ";
    if (!problem.path.empty()) {
        out += problem.path + ": ";
    }
    return out + problem.message;
}

}  // namespace pgwarden::config
