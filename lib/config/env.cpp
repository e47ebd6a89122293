// PATRONI_* environment -> a configuration tree, as Patroni's
// Config._build_environment_configuration builds it (patroni/config.py), each value marked with its
// variable for problem reports.
#include "config/env_internal.hpp"
#include "config/section_keys.hpp"
#include "config/text.hpp"
#include "core/libpq_keywords.hpp"

#include <algorithm>
#include <array>
#include <span>
#include <string_view>

namespace pgwarden::config::detail {

namespace {

constexpr const char* kPrefix = "PATRONI_";

// The credentials of ctl, restapi and etcd/etcd3 (the first two keys of core::kAuthKeys).
constexpr std::array<std::string_view, 2> kUserAndPassword = {"username", "password"};

constexpr std::array<std::string_view, 5> kCtlEnvKeys = {
    "insecure", "cacert", "certfile", "keyfile", "keyfile_password"};
constexpr std::array<std::string_view, 7> kPostgresqlEnvKeys = {
    "listen", "connect_address", "proxy_address", "config_dir", "data_dir", "pgpass", "bin_dir"};

std::string trim(const std::string& s) {
    const auto first = s.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) {
        return "";
    }
    return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

class EnvBuilder {
public:
    EnvBuilder(std::map<std::string, std::string> env, std::vector<Problem>* problems)
        : env_(std::move(env)), problems_(problems) {
        root_.kind = Value::Kind::Map;
    }

    std::optional<std::string> pop(const std::string& name) {
        auto it = env_.find(kPrefix + upper(name));
        if (it == env_.end()) {
            return std::nullopt;
        }
        std::string v = it->second;
        env_.erase(it);
        return v;
    }

    Value& section(const std::string& name) {
        Value* s = root_.find(name);
        if (s == nullptr) {
            s = &root_.set(name, Value::map());
        }
        return *s;
    }

    void put(Value& where, const std::string& key, Value v, const std::string& var) {
        mark_env(v, var);
        where.set(key, std::move(v));
    }

    void bad(const std::string& var, const std::string& message) {
        problems_->push_back({Problem::Severity::Error, var, 0, message});
    }

    // _parse_list: "a,b" -> [a, b]; YAML flow or block list otherwise.
    std::optional<Value> parse_list(const std::string& text) {
        std::string t = text;
        if (!(trim(t).rfind('-', 0) == 0 || t.find('[') != std::string::npos)) {
            t = "[" + t + "]";
        }
        YamlResult r = parse_yaml(t);
        if (!r.ok || !r.root.is_list()) {
            return std::nullopt;
        }
        return r.root;
    }

    std::optional<Value> parse_dict(const std::string& text) {
        std::string t = text;
        if (trim(t).rfind('{', 0) != 0) {
            t = "{" + t + "}";
        }
        YamlResult r = parse_yaml(t);
        if (!r.ok || !r.root.is_map()) {
            return std::nullopt;
        }
        return r.root;
    }

    void section_values(const std::string& section_name, std::span<const std::string_view> params) {
        for (const std::string_view key : params) {
            const std::string param(key);
            const std::string var = kPrefix + upper(section_name + "_" + param);
            auto value = pop(section_name + "_" + param);
            if (value && !value->empty()) {
                put(section(section_name), param, Value::string(*value), var);
            }
        }
    }

    void typed(const std::string& section_name, const std::string& key, char type) {
        Value* s = root_.find(section_name);
        if (s == nullptr) {
            return;
        }
        Value* v = s->find(key);
        if (v == nullptr) {
            return;
        }
        const std::string var = v->env;
        const std::string text = v->s;
        if (type == 'b') {
            auto b = parse_bool(*v);
            if (!b) {
                bad(var,
                    "expected a boolean (true/false, on/off, yes/no, 1/0), got '" + text + "'");
                s->erase(key);
                return;
            }
            Value nv;
            nv.kind = Value::Kind::Bool;
            nv.b = *b;
            nv.s = text;
            put(*s, key, nv, var);
        } else if (type == 'i') {
            auto i = python_int(*v);
            if (!i) {
                bad(var, "expected an integer, got '" + text + "'");
                s->erase(key);
                return;
            }
            Value nv;
            nv.kind = Value::Kind::Int;
            nv.i = *i;
            nv.s = text;
            put(*s, key, nv, var);
        } else if (type == 'l') {
            auto l = parse_list(text);
            if (!l) {
                bad(var, "expected a list such as 'a,b' or '[a, b]', got '" + text + "'");
                s->erase(key);
                return;
            }
            put(*s, key, *l, var);
        } else if (type == 'd') {
            auto d = parse_dict(text);
            if (!d) {
                bad(var, "expected a mapping such as '{a: b}', got '" + text + "'");
                s->erase(key);
                return;
            }
            put(*s, key, *d, var);
        }
    }

    // PATRONI_<NAME>_<PARAM> for each of `params` -> {param: value}; nullopt when none is set.
    std::optional<Value> auth(const std::string& name, std::span<const std::string_view> params) {
        Value v = Value::map();
        bool any = false;
        for (const std::string_view key : params) {
            const std::string param(key);
            const std::string var = kPrefix + upper(name + "_" + param);
            auto value = pop(name + "_" + param);
            if (value && !value->empty()) {
                put(v, param, Value::string(*value), var);
                any = true;
            }
        }
        if (!any) {
            return std::nullopt;
        }
        return v;
    }

    Value build() {
        for (const char* param :
             {"name", "namespace", "scope", "thread_pool_size", "thread_stack_size"}) {
            auto value = pop(param);
            if (value && !value->empty()) {
                put(root_, param, Value::string(*value), kPrefix + upper(param));
            }
        }
        // Legacy log variable names.
        for (auto [name, oldname] : {std::pair{"LEVEL", "LOGLEVEL"},
                                     std::pair{"FORMAT", "LOGFORMAT"},
                                     std::pair{"DATEFORMAT", "LOG_DATEFMT"}}) {
            auto value = pop(oldname);
            const std::string newname = std::string(kPrefix) + "LOG_" + name;
            if (value && !value->empty() && env_.find(newname) == env_.end()) {
                env_[newname] = *value;
            }
        }
        section_values("restapi", kRestapiEnvKeys);
        section_values("ctl", kCtlEnvKeys);
        section_values("postgresql", kPostgresqlEnvKeys);
        section_values("log", kLogKeys);
        for (const char* binary : {"pg_ctl",
                                   "initdb",
                                   "pg_controldata",
                                   "pg_basebackup",
                                   "postgres",
                                   "pg_isready",
                                   "pg_rewind"}) {
            const std::string var = std::string(kPrefix) + "POSTGRESQL_BIN_" + upper(binary);
            auto value = pop(std::string("postgresql_bin_") + binary);
            if (value && !value->empty()) {
                Value& pg = section("postgresql");
                Value* names = pg.find("bin_name");
                if (names == nullptr) {
                    names = &pg.set("bin_name", Value::map());
                }
                put(*names, binary, Value::string(*value), var);
            }
        }
        typed("restapi", "allowlist_include_members", 'b');
        typed("ctl", "insecure", 'b');
        typed("log", "deduplicate_heartbeat_logs", 'b');
        typed("restapi", "request_queue_size", 'i');
        for (const char* k : {"max_queue_size", "file_size", "file_num", "mode"}) {
            typed("log", k, 'i');
        }
        typed("restapi", "allowlist", 'l');
        typed("restapi", "http_extra_headers", 'd');
        typed("restapi", "https_extra_headers", 'd');
        typed("log", "static_fields", 'd');
        typed("log", "loggers", 'd');
        for (const char* s : {"ctl", "restapi"}) {
            if (auto a = auth(s, kUserAndPassword)) {
                section(s).set("authentication", *a);
            }
        }
        Value authentication = Value::map();
        for (const char* user : {"replication", "superuser", "rewind"}) {
            if (auto a = auth(user, core::kAuthKeys)) {
                authentication.set(user, *a);
            }
        }
        if (!authentication.entries.empty()) {
            section("postgresql").set("authentication", authentication);
        }
        static const std::vector<std::string> kSuffixes = {"HOST",
                                                           "HOSTS",
                                                           "PORT",
                                                           "USE_PROXIES",
                                                           "PROTOCOL",
                                                           "SRV",
                                                           "SRV_SUFFIX",
                                                           "URL",
                                                           "PROXY",
                                                           "CACERT",
                                                           "CERT",
                                                           "KEY",
                                                           "VERIFY",
                                                           "TOKEN",
                                                           "CHECKS",
                                                           "DC",
                                                           "CONSISTENCY",
                                                           "REGISTER_SERVICE",
                                                           "SERVICE_CHECK_INTERVAL",
                                                           "SERVICE_CHECK_TLS_SERVER_NAME",
                                                           "SERVICE_TAGS",
                                                           "NAMESPACE",
                                                           "CONTEXT",
                                                           "USE_ENDPOINTS",
                                                           "SCOPE_LABEL",
                                                           "ROLE_LABEL",
                                                           "POD_IP",
                                                           "PORTS",
                                                           "LABELS",
                                                           "BYPASS_API_SERVICE",
                                                           "RETRIABLE_HTTP_CODES",
                                                           "KEY_PASSWORD",
                                                           "USE_SSL",
                                                           "SET_ACLS",
                                                           "GROUP",
                                                           "DATABASE",
                                                           "LEADER_LABEL_VALUE",
                                                           "FOLLOWER_LABEL_VALUE",
                                                           "STANDBY_LEADER_LABEL_VALUE",
                                                           "TMP_ROLE_LABEL",
                                                           "AUTH_DATA",
                                                           "BOOTSTRAP_LABELS"};
        std::vector<std::string> vars;
        for (const auto& [k, v] : env_) {
            if (k.rfind(kPrefix, 0) == 0) {
                vars.push_back(k);
            }
        }
        for (const std::string& var : vars) {
            const std::string rest = var.substr(std::string(kPrefix).size());
            const auto underscore = rest.find('_');
            if (underscore == std::string::npos || underscore == 0) {
                continue;
            }
            const std::string name = rest.substr(0, underscore);
            const std::string suffix = rest.substr(underscore + 1);
            if (std::find(kSuffixes.begin(), kSuffixes.end(), suffix) == kSuffixes.end()) {
                continue;
            }
            const std::string text = env_[var];
            env_.erase(var);
            if (name == "CITUS" && suffix != "GROUP" && suffix != "DATABASE") {
                continue;
            }
            Value& s = section(lower(name));
            put(s, lower(suffix), Value::string(text), var);
            if (suffix == "PORT" || (name == "CITUS" && suffix == "GROUP")) {
                if (!text.empty()) {
                    typed(lower(name), lower(suffix), 'i');
                }
            } else if (suffix == "HOSTS" || suffix == "PORTS" || suffix == "CHECKS" ||
                       suffix == "SERVICE_TAGS" || suffix == "RETRIABLE_HTTP_CODES") {
                if (!text.empty()) {
                    typed(lower(name), lower(suffix), 'l');
                }
            } else if (suffix == "LABELS" || suffix == "SET_ACLS" || suffix == "AUTH_DATA" ||
                       suffix == "BOOTSTRAP_LABELS") {
                typed(lower(name), lower(suffix), 'd');
            } else if (suffix == "USE_PROXIES" || suffix == "REGISTER_SERVICE" ||
                       suffix == "USE_ENDPOINTS" || suffix == "BYPASS_API_SERVICE" ||
                       suffix == "VERIFY") {
                typed(lower(name), lower(suffix), 'b');
            }
        }
        for (const char* dcs : {"etcd", "etcd3"}) {
            if (root_.find(dcs) != nullptr) {
                if (auto a = auth(dcs, kUserAndPassword)) {
                    for (auto& [k, v] : a->entries) {
                        section(dcs).set(k, v);
                    }
                }
            }
        }
        return root_;
    }

private:
    std::map<std::string, std::string> env_;
    std::vector<Problem>* problems_;
    Value root_;
};

}  // namespace

Value environment_tree(const std::map<std::string, std::string>& env,
                       std::vector<Problem>* problems) {
    return EnvBuilder(env, problems).build();
}

}  // namespace pgwarden::config::detail
