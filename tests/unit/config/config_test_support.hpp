// Helpers for the lib/config tests (files only from inside the repository).
#pragma once

#include "config/load.hpp"

#include <fstream>
#include <map>
#include <sstream>
#include <string>

namespace pgwarden::config::test {

inline std::string repo_path(const std::string& relative) {
    return std::string(PGW_SOURCE_DIR) + "/" + relative;
}

inline std::string read_repo_file(const std::string& relative) {
    std::ifstream in(repo_path(relative));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline std::string consul_yml() {
    return read_repo_file("config/patroni-consul.yml");
}

inline std::string replace(std::string text, const std::string& from, const std::string& to) {
    const auto pos = text.find(from);
    if (pos != std::string::npos) {
        text.replace(pos, from.size(), to);
    }
    return text;
}

inline const Problem* find_problem(const LoadResult& r, const std::string& path) {
    for (const auto& p : r.problems) {
        if (p.path == path) {
            return &p;
        }
    }
    return nullptr;
}

inline const Problem* find_problem(const std::vector<Problem>& problems, const std::string& path) {
    for (const auto& p : problems) {
        if (p.path == path) {
            return &p;
        }
    }
    return nullptr;
}

inline std::string dump(const LoadResult& r) {
    std::string out;
    for (const auto& p : r.problems) {
        out += format_problem(p, "test.yml") + "\n";
    }
    return out;
}

// A minimal valid configuration, to which tests add lines.
inline std::string minimal_yml() {
    return "scope: s\n"
           "name: n\n"
           "consul:\n"
           "  host: 127.0.0.1:8500\n"
           "restapi:\n"
           "  listen: 127.0.0.1:8008\n"
           "  connect_address: 127.0.0.1:8008\n"
           "postgresql:\n"
           "  listen: 127.0.0.1:5432\n"
           "  connect_address: 127.0.0.1:5432\n"
           "  data_dir: /tmp/pgdata\n"
           "  authentication:\n"
           "    superuser: {username: postgres, password: s3cret-super}\n"
           "    replication: {username: replicator, password: s3cret-repl}\n";
}

inline LoadResult load(const std::string& yaml,
                       const std::map<std::string, std::string>& env = {}) {
    return load_string(yaml, env, "test.yml");
}

}  // namespace pgwarden::config::test
