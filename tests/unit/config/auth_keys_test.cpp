// The keys of an authentication section (core::kAuthKeys), read from patroni.yml and from
// PATRONI_<USER>_<KEY> variables.
#include "config/load.hpp"
#include "config_test_support.hpp"
#include "core/libpq_keywords.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace pgwarden;
using namespace pgwarden::config;
using namespace pgwarden::config::test;

namespace {

std::string upper_ascii(std::string s) {
    for (char& c : s) {
        if (c >= 'a' && c <= 'z') {
            c = static_cast<char>(c - 'a' + 'A');
        }
    }
    return s;
}

}  // namespace

TEST_CASE("config auth keys: a postgresql user takes every libpq TLS/GSS key, nothing else",
          "[config]") {
    // Patroni 4.1 config.py _AUTH_ALLOWED_PARAMETERS, in its order.
    std::string keys;
    for (const std::string_view key : core::kAuthKeys) {
        keys += (keys.empty() ? "" : " ") + std::string(key);
    }
    CHECK(keys ==
          "username password sslmode sslcert sslkey sslpassword sslrootcert sslcrl sslcrldir "
          "gssencmode channel_binding sslnegotiation");
    std::string section = "    rewind:\n";
    for (const std::string_view key : core::kAuthKeys) {
        section += "      " + std::string(key) + ": x\n";
    }
    section += "      sslfoo: x\n";
    const LoadResult r = load(minimal_yml() + section);
    INFO(dump(r));
    REQUIRE(r.ok());
    for (const std::string_view key : core::kAuthKeys) {
        INFO(key);
        CHECK(find_problem(r, "postgresql.authentication.rewind." + std::string(key)) == nullptr);
    }
    const Problem* unknown = find_problem(r, "postgresql.authentication.rewind.sslfoo");
    REQUIRE(unknown != nullptr);
    CHECK(unknown->severity == Problem::Severity::Warning);
    CHECK(unknown->message == "unknown key, ignored");
}

TEST_CASE("config auth keys: restapi.authentication takes only username and password", "[config]") {
    const LoadResult r =
        load(replace(minimal_yml(),
                     "  connect_address: 127.0.0.1:8008\n",
                     "  connect_address: 127.0.0.1:8008\n"
                     "  authentication: {username: u, password: p, sslmode: x}\n"));
    INFO(dump(r));
    const Problem* unknown = find_problem(r, "restapi.authentication.sslmode");
    REQUIRE(unknown != nullptr);
    CHECK(unknown->severity == Problem::Severity::Warning);
}

TEST_CASE("config auth keys: PATRONI_REWIND_<KEY> is read for every key, and only those",
          "[config]") {
    for (const std::string_view key : core::kAuthKeys) {
        INFO(key);
        const LoadResult r =
            load(minimal_yml(), {{"PATRONI_REWIND_" + upper_ascii(std::string(key)), "x"}});
        INFO(dump(r));
        CHECK(r.ok());
        CHECK(r.settings.postgresql.rewind.has_value());
    }
    const LoadResult r = load(minimal_yml(), {{"PATRONI_REWIND_SSLFOO", "x"}});
    CHECK_FALSE(r.settings.postgresql.rewind.has_value());
}
