// The dynamic configuration (the DCS `config` key, and bootstrap.dcs in patroni.yml).
#pragma once

#include "config/load.hpp"
#include "core/settings.hpp"

#include <string>
#include <vector>

namespace pgwarden::config {

struct DynamicResult {
    core::DynamicSettings settings;
    std::vector<Problem> problems;  // paths like "config.loop_wait"
};

// Parses the DCS `config` key with the same strictness as bootstrap.dcs; timeouts are adjusted as
// Patroni adjusts them (each adjustment is a Warning). Never throws.
DynamicResult parse_dynamic_json(const std::string& json_text);

// The same, for a running node: a key whose new value is invalid keeps its value from
// `last_good` (Patroni ignores invalid values per key), and text that is not a JSON object
// keeps `last_good` whole. Each such key is a Problem naming it. Never throws.
DynamicResult parse_dynamic_json(const std::string& json_text,
                                 const core::DynamicSettings& last_good);

// What PATCH/PUT /config may write: the resulting `config` key checked with the same rules.
// Returns the Errors (each naming its key, e.g. "ttl" or "postgresql.parameters.max_connections");
// empty = acceptable. Never throws.
std::vector<Problem> validate_dynamic_json(const std::string& json_text);

// Patroni's Config._validate_and_adjust_timeouts: raises ttl/loop_wait/retry_timeout to their
// minimums (20/1/3), then enforces loop_wait + 2*retry_timeout <= ttl by lowering loop_wait (and
// retry_timeout when loop_wait is already 1). Each adjustment is appended as a Warning whose path
// is `path_prefix`.<key>.
void adjust_timeouts(core::DynamicSettings& settings,
                     std::vector<Problem>* problems,
                     const std::string& path_prefix = "config");

// Patroni's utils.patch_config on JSON text: objects merge recursively, null deletes a key, a
// scalar is replaced when str(old) != str(new) in Python terms (so 1 and "1" are equal).
// Returns the patched compact JSON; *changed (if given) tells whether anything changed. If either
// text is not a JSON object, returns old_json unchanged and sets *changed = false.
std::string patch_config_json(const std::string& old_json,
                              const std::string& patch_json,
                              bool* changed);

}  // namespace pgwarden::config
