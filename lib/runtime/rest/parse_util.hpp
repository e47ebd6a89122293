// Private to pgw_rest: text parsing shared by the read-only handlers and the unsafe endpoints:
// Patroni's number parsing (strtol / strtod / parse_int with units) and request-target splitting.
#pragma once

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace pgwarden::rest {

inline bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// The value of one hex digit, -1 when `c` is not one.
inline int hex_value(char c) {
    if (is_digit(c)) {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

inline bool is_hex(char c) {
    return hex_value(c) >= 0;
}

// ASCII lower case (Python's str.lower() on the names and modes compared here).
inline std::string lower(std::string s) {
    for (char& c : s) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return s;
}

// Python's str.strip(): ASCII whitespace.
inline std::string_view strip(std::string_view s) {
    auto space = [](char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    };
    while (!s.empty() && space(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && space(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

struct Parsed {
    double value = 0;
    std::string_view rest;  // the text after the number
};

// Patroni's strtol:
// HEX_RE ^[-+]?0x[0-9a-fA-F]+, OCT_RE ^[-+]?0[0-7]*, DEC_RE ^[-+]?(0|[1-9][0-9]*).
// Accumulated in long double, exact up to 2^64, then rounded once to double.
inline std::optional<Parsed> py_strtol(std::string_view s) {
    std::size_t pos = 0;
    bool negative = false;
    if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
        negative = s[pos] == '-';
        ++pos;
    }
    long double acc = 0;
    std::size_t end = pos;
    if (s.substr(pos, 2) == "0x" && pos + 2 < s.size() && is_hex(s[pos + 2])) {
        end = pos + 2;
        while (end < s.size() && is_hex(s[end])) {
            acc = acc * 16 + hex_value(s[end]);
            ++end;
        }
    } else if (pos < s.size() && s[pos] == '0') {
        end = pos + 1;
        while (end < s.size() && s[end] >= '0' && s[end] <= '7') {
            acc = acc * 8 + (s[end] - '0');
            ++end;
        }
    } else if (pos < s.size() && is_digit(s[pos])) {
        while (end < s.size() && is_digit(s[end])) {
            acc = acc * 10 + (s[end] - '0');
            ++end;
        }
    } else {
        return std::nullopt;
    }
    return Parsed{static_cast<double>(negative ? -acc : acc), s.substr(end)};
}

// Patroni's strtod: DBL_RE ^[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?
inline std::optional<Parsed> py_strtod(std::string_view s) {
    std::size_t p = 0;
    if (p < s.size() && (s[p] == '+' || s[p] == '-')) {
        ++p;
    }
    const std::size_t int_start = p;
    while (p < s.size() && is_digit(s[p])) {
        ++p;
    }
    std::size_t end = 0;
    if (p + 1 < s.size() && s[p] == '.' && is_digit(s[p + 1])) {
        p += 1;
        while (p < s.size() && is_digit(s[p])) {
            ++p;
        }
        end = p;
    } else if (p > int_start) {
        end = p;
    } else {
        return std::nullopt;
    }
    if (end < s.size() && (s[end] == 'e' || s[end] == 'E')) {
        std::size_t q = end + 1;
        if (q < s.size() && (s[q] == '+' || s[q] == '-')) {
            ++q;
        }
        if (q < s.size() && is_digit(s[q])) {
            while (q < s.size() && is_digit(s[q])) {
                ++q;
            }
            end = q;
        }
    }
    return Parsed{std::strtod(std::string(s.substr(0, end)).c_str(), nullptr), s.substr(end)};
}

// Python's round(): half to even (std::nearbyint in the default rounding mode); nullopt when the
// result does not fit an int64.
inline std::optional<std::int64_t> py_round(double x) {
    if (!std::isfinite(x) || std::fabs(x) > 9.2e18) {
        return std::nullopt;
    }
    return static_cast<std::int64_t>(std::nearbyint(x));
}

// One row of convert_to_base_unit's table for a base unit.
struct UnitFactor {
    std::string_view name;
    double factor;    // in the base unit
    double round_to;  // factor of the next smaller unit; 0: none
};

// Patroni's parse_int(value, base_unit): strtol, or strtod when the number goes on with '.', 'e'
// or 'E'; then convert_to_base_unit (the unit's factor, rounded to the next smaller unit) and
// round(). nullopt if the text is not a number or the unit is not in `units`.
inline std::optional<std::int64_t> parse_int_with_unit(std::string_view value,
                                                       std::span<const UnitFactor> units) {
    const std::string_view s = strip(value);
    std::optional<Parsed> p = py_strtol(s);
    const std::string_view after = p ? p->rest : s;
    if ((!p && !after.empty() && after.front() == '.') ||
        (!after.empty() &&
         (after.front() == '.' || after.front() == 'e' || after.front() == 'E'))) {
        p = py_strtod(s);
    }
    if (!p) {
        return std::nullopt;
    }
    const std::string_view unit = strip(p->rest);
    if (unit.empty()) {
        return py_round(p->value);
    }
    for (const auto& u : units) {
        if (unit == u.name) {
            double x = p->value * u.factor;
            if (u.round_to > 0) {
                x = std::nearbyint(x / u.round_to) * u.round_to;
            }
            return py_round(x);
        }
    }
    return std::nullopt;
}

// An absolute-form request target ("http://host/path?q") reduced to its path and query, as
// urlparse() splits it; any other target unchanged.
inline std::string_view strip_absolute_form(std::string_view target) {
    for (std::string_view scheme : {"http://", "https://"}) {
        if (target.substr(0, scheme.size()) == scheme) {
            target.remove_prefix(scheme.size());
            const auto slash = target.find_first_of("/?#");
            return slash == std::string_view::npos ? std::string_view{} : target.substr(slash);
        }
    }
    return target;
}

// path.lstrip('/').split('/')[0]
inline std::string_view first_path_segment(std::string_view path) {
    while (!path.empty() && path.front() == '/') {
        path.remove_prefix(1);
    }
    return path.substr(0, path.find('/'));
}

}  // namespace pgwarden::rest
