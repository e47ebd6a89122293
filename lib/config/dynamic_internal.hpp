// Internal to lib/config: the dynamic-configuration walker shared by bootstrap.dcs (YAML) and the
// DCS `config` key (JSON).
#pragma once

#include "config/value.hpp"
#include "config/walker.hpp"
#include "core/settings.hpp"

#include <optional>
#include <string>
#include <vector>

namespace pgwarden::config::detail {

// Fills `out` from the dynamic configuration map `root` (problems at `prefix`.<key>).
void parse_dynamic_value(const Value& root,
                         const std::string& prefix,
                         core::DynamicSettings& out,
                         Walker& w);

// A postgresql.parameters value as PostgreSQL reads it from postgresql.conf: strings as given,
// integers in decimal, floats as Python prints them, booleans "on"/"off". nullopt for null,
// lists and mappings.
std::optional<std::string> render_parameter(const Value& v);

// Parses postgresql.parameters (dynamic or local) into lower-cased names and rendered values.
void parse_parameters(const Value& v,
                      const std::string& path,
                      std::map<std::string, std::string>* out,
                      Walker& w);

struct TimeoutAdjustment {
    std::string key;  // ttl | loop_wait | retry_timeout
    int new_value = 0;
    std::string message;
};

std::vector<TimeoutAdjustment> compute_timeout_adjustments(core::DynamicSettings& settings);

}  // namespace pgwarden::config::detail
