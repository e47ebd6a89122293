// Internal to lib/config: the PATRONI_* environment as a configuration tree (env.cpp), patched
// over patroni.yml by the loader.
#pragma once

#include "config/load.hpp"
#include "config/value.hpp"
#include "config/walker.hpp"

#include <map>
#include <string>
#include <vector>

namespace pgwarden::config::detail {

// The configuration Patroni builds from PATRONI_* variables (patched over the file's).
Value environment_tree(const std::map<std::string, std::string>& env,
                       std::vector<Problem>* problems);

}  // namespace pgwarden::config::detail
