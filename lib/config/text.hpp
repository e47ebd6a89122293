// Internal to lib/config: ASCII case folding for keys, keywords and enum-like values (the one
// lower()/upper() of the module; Python's str.lower() on the ASCII letters Patroni's keys use).
#pragma once

#include <string>

namespace pgwarden::config::detail {

inline std::string lower(std::string s) {
    for (char& c : s) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return s;
}

inline std::string upper(std::string s) {
    for (char& c : s) {
        if (c >= 'a' && c <= 'z') {
            c = static_cast<char>(c - 'a' + 'A');
        }
    }
    return s;
}

}  // namespace pgwarden::config::detail
