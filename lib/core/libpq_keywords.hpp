// The libpq connection keywords pgwarden passes through, written once: lib/pg writes connection
// strings from them; lib/config reads authentication sections and PATRONI_* variables with them.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace pgwarden::core {

struct LibpqKeyword {
    std::string_view name;
    // Also a key of postgresql.authentication.{superuser,replication,rewind} (Patroni config.py
    // _AUTH_ALLOWED_PARAMETERS), passed to libpq as it is.
    bool auth_key = false;
};

// Patroni's format_dsn keywords (postgresql/config.py), in the order it writes them. `passfile`
// and `password` are alternatives: format_dsn writes `passfile` when it is set.
inline constexpr std::array<LibpqKeyword, 20> kDsnKeywords = {{
    {"dbname"},
    {"user"},
    {"passfile"},
    {"password"},
    {"host"},
    {"port"},
    {"sslmode", true},
    {"sslcompression"},
    {"sslcert", true},
    {"sslkey", true},
    {"sslpassword", true},
    {"sslrootcert", true},
    {"sslcrl", true},
    {"sslcrldir", true},
    {"application_name"},
    {"krbsrvname"},
    {"gssencmode", true},
    {"channel_binding", true},
    {"target_session_attrs"},
    {"sslnegotiation", true},
}};

namespace detail {

constexpr std::size_t count_auth_keywords() {
    std::size_t n = 0;
    for (const auto& k : kDsnKeywords) {
        n += k.auth_key ? 1 : 0;
    }
    return n;
}

template <std::size_t N>
constexpr std::array<std::string_view, N> make_auth_keys() {
    std::array<std::string_view, N> out{"username", "password"};
    std::size_t n = 2;
    for (const auto& k : kDsnKeywords) {
        if (k.auth_key) {
            out[n++] = k.name;
        }
    }
    return out;
}

}  // namespace detail

// The keys an authentication section may hold, in Patroni's order: username, password, then the
// libpq keywords marked auth_key above.
inline constexpr auto kAuthKeys = detail::make_auth_keys<2 + detail::count_auth_keywords()>();

}  // namespace pgwarden::core
