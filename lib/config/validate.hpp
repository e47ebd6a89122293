// `pgwarden --validate-config FILE`: the same loader the daemon uses, reporting every problem.
#pragma once

#include <map>
#include <ostream>
#include <string>

namespace pgwarden::config {

// Prints every problem (format_problem), then a summary line. Returns 0 when there is no error
// (warnings allowed), 2 otherwise (exit code 2 = bad configuration).
int validate_config_file(const std::string& path,
                         const std::map<std::string, std::string>& env,
                         std::ostream& out);

}  // namespace pgwarden::config
