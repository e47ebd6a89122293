// patroni.yml + PATRONI_* environment -> core::Settings, with every problem collected and reported
// with its dotted key path and YAML line. Means what Patroni 4.1 means by the same file.
#pragma once

#include "core/settings.hpp"

#include <map>
#include <string>
#include <vector>

namespace pgwarden::config {

struct Problem {
    enum class Severity { Warning, Error } severity = Severity::Error;
    std::string path;  // dotted key path, e.g. "bootstrap.dcs.loop_wait", or a PATRONI_* variable
    int line = 0;      // 1-based YAML line, 0 = unknown
    std::string message;
};

struct LoadResult {
    core::Settings settings;
    std::vector<Problem> problems;
    bool ok() const;  // no Error
};

// Reads and parses the file; `env` is the environment to apply (pass environment_map() in the
// daemon, a hand-made map in tests). Never throws.
LoadResult load_file(const std::string& path, const std::map<std::string, std::string>& env);
LoadResult load_string(const std::string& yaml_text,
                       const std::map<std::string, std::string>& env,
                       const std::string& origin_name);

// The process environment (environ) as a map.
std::map<std::string, std::string> environment_map();

// "FILE:LINE: error: bootstrap.dcs.loop_wait: expected an integer number of seconds, got 'ten'"
// (no ":LINE" when the line is unknown; "warning" for warnings).
std::string format_problem(const Problem& problem, const std::string& file);

}  // namespace pgwarden::config
