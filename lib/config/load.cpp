// patroni.yml loading, top level: the driver (name, scope, namespace, which section goes where,
// the checks that need every section), the public load_* entry points and shared helpers.

#include "config/load.hpp"

#include "config/dynamic_internal.hpp"
#include "config/env_internal.hpp"
#include "config/load_internal.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace pgwarden::config::detail {

namespace {

constexpr const char* kSyncStrictPlaceholder = "__patroni_strict_sync_replica_placeholder__";

}  // namespace

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
    auto n = python_int(pv);
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

bool py_falsy(const Value& v) {
    return (v.kind == Value::Kind::String && v.s.empty()) ||
           (v.kind == Value::Kind::Bool && !v.b) || (v.kind == Value::Kind::Int && v.i == 0) ||
           (v.kind == Value::Kind::Float && v.f == 0.0);
}

void Loader::run(Value root) {
    core::Settings& s = r_->settings;
    if (!root.is_map()) {
        if (root.is_null()) {
            err(root, "", "the configuration is empty");
        } else {
            err(root, "", "the configuration must be a mapping, got " + Walker::show(root, false));
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
            w_.warning(value,
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
                   key == "etcd" || key == "etcd3" || key == "zookeeper" || key == "exhibitor" ||
                   key == "kubernetes" || key == "raft") {
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

void Loader::finish_dynamic() {
    core::BootstrapSettings& b = r_->settings.bootstrap;
    const auto adjustments = compute_timeout_adjustments(b.dcs);
    nlohmann::ordered_json j =
        have_dcs_ && dcs_value_.is_map() ? to_json(dcs_value_) : nlohmann::ordered_json::object();
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

}  // namespace pgwarden::config::detail

namespace pgwarden::config {

namespace {

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
    detail::Value root = std::move(parsed.root);
    const detail::Value env_tree = detail::environment_tree(env, &result.problems);
    if (root.is_map() && !env_tree.entries.empty()) {
        detail::patch(root, env_tree);
    } else if (root.is_null() && !env_tree.entries.empty()) {
        root = env_tree;  // Patroni: no file -> configuration from the environment alone
    }
    detail::Loader(&result).run(std::move(root));
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
