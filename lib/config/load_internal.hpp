// Internal to lib/config: the patroni.yml loader's shared context (class Loader) and the helpers
// its sections share. Each section of the file is read in its own load_*.cpp (listed below).
#pragma once

#include "config/load.hpp"
#include "config/value.hpp"
#include "config/walker.hpp"

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pgwarden::config::detail {

// Python split_host_port(value, default_port) -> host, port; false if the port is not a number.
bool split_host_port(const std::string& value, int default_port, std::string* host, int* port);
// host:port with a port in 1-65535.
bool valid_host_port(const std::string& value);
// Python falsiness of a scalar: "", false, 0, 0.0.
bool py_falsy(const Value& v);

// Walks one configuration tree into r->settings, collecting problems into r->problems.
class Loader {
public:
    explicit Loader(LoadResult* result) : r_(result), w_(&result->problems) {}

    // The top level: name, scope, namespace, then every section, then the checks that need all of
    // them (load.cpp).
    void run(Value root);

private:
    void err(const Value& v, const std::string& path, const std::string& message) {
        w_.error(v, path, message);
    }

    // load_node.cpp: this node's log, watchdog and tags sections.
    void parse_log(const Value& v);
    void parse_watchdog(const Value& v);
    void parse_tags(const Value& v);

    // load_restapi.cpp
    void parse_restapi(const Value& v);

    // load_bootstrap.cpp: bootstrap (and the option lists it shares with postgresql.basebackup).
    void parse_bootstrap(const Value& v);
    // utils.process_user_options: a list of "flag" / {key: "value"}, or a mapping.
    void render_options(const Value& v,
                        const std::string& path,
                        std::span<const std::string_view> not_allowed,
                        std::vector<std::string>* out);

    // load_postgresql.cpp: the local postgresql section and its credentials.
    void parse_postgresql(const Value& v);
    // A credentials mapping; `full` = an authentication user (core::kAuthKeys), else only
    // username and password.
    bool parse_credentials(const Value& v,
                           const std::string& path,
                           core::Credentials* out,
                           bool full);
    // config.py _build_effective_configuration, "special treatment for old config".
    void finish_credentials(const Value* pg);

    // load_dcs.cpp: which DCS, and its consul or etcd3 section.
    void parse_dcs(const Value& root);
    void parse_consul(const Value& v);
    void parse_etcd3(const Value& v);

    // load.cpp: bootstrap.dcs after Patroni's timeout adjustments, as JSON.
    void finish_dynamic();

    LoadResult* r_;
    Walker w_;
    Value dcs_value_;
    bool have_dcs_ = false;
};

}  // namespace pgwarden::config::detail
