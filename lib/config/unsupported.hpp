// "No setting is ever silently ignored": the Patroni settings that pgwarden parses but does not
// implement yet. Errors are settings whose absence would make pgwarden unsafe or make it do
// something else than the operator asked (the daemon refuses to start with exit code 2, and the
// HA loop reports them when they arrive later through the DCS); Warnings are settings that simply
// have no effect. Pure functions.
#pragma once

#include "config/load.hpp"
#include "core/settings.hpp"

#include <map>
#include <string>
#include <vector>

namespace pgwarden::config {

// Everything in patroni.yml (and PATRONI_* variables) that pgwarden does not implement,
// including bootstrap.dcs (paths "bootstrap.dcs.<key>"). Paths are dotted keys; line is 0.
std::vector<Problem> unsupported_settings(const core::Settings& settings);

// The same for a dynamic configuration, e.g. the DCS `config` key after parse_dynamic_json; the
// HA loop can call it every cycle. Paths are `path_prefix`.<key> ("config.synchronous_mode").
std::vector<Problem> unsupported_dynamic(const core::DynamicSettings& dynamic,
                                         const std::string& path_prefix = "config");

// load_file() followed by unsupported_settings() on what it read: what the daemon starts from and
// what --validate-config reports (ok() is false when a setting is not supported yet).
LoadResult load_file_checked(const std::string& path,
                             const std::map<std::string, std::string>& env);

}  // namespace pgwarden::config
