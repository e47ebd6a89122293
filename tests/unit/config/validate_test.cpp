// pgwarden --validate-config
#include "config/validate.hpp"

#include "config_test_support.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace pgwarden::config;
using namespace pgwarden::config::test;

namespace {

std::string write_temp(const std::string& name, const std::string& text) {
    const auto path = std::filesystem::temp_directory_path() / name;
    std::ofstream(path) << text;
    return path.string();
}

}  // namespace

TEST_CASE("config validate: a valid file exits 0, warnings allowed", "[config]") {
    std::ostringstream out;
    CHECK(validate_config_file(repo_path("config/patroni-consul.yml"), {}, out) == 0);
    CHECK(out.str().find("warning: initdb:") != std::string::npos);
    CHECK(out.str().find("0 errors, 3 warnings: configuration is valid") != std::string::npos);
}

TEST_CASE("config validate: a bad file exits 2 and lists every problem", "[config]") {
    const std::string path = write_temp("pgw_config_validate_bad.yml",
                                        replace(consul_yml(), "loop_wait: 10", "loop_wait: ten"));
    std::ostringstream out;
    CHECK(validate_config_file(path, {}, out) == 2);
    CHECK(out.str().find(path +
                         ":25: error: bootstrap.dcs.loop_wait: expected an integer number of "
                         "seconds, got 'ten'") != std::string::npos);
    CHECK(out.str().find("1 error, 3 warnings: configuration is invalid") != std::string::npos);
    std::filesystem::remove(path);
}

TEST_CASE("config validate: a missing file exits 2", "[config]") {
    std::ostringstream out;
    CHECK(validate_config_file("/nonexistent/pgwarden.yml", {}, out) == 2);
}
