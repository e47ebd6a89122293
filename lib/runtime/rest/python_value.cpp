// Patroni's value semantics on JSON and text (one copy for the REST API): truthy, py_str,
// deep_compare, parse_bool, parse_seconds, parse_bytes, postgres_version_to_int.
#include "runtime/rest/python_value.hpp"

#include "dcs/patroni_values.hpp"
#include "runtime/rest/handlers.hpp"
#include "runtime/rest/parse_util.hpp"
#include "runtime/rest/unsafe.hpp"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace pgwarden::rest {

bool truthy(const OJson& v) {
    return dcs::patroni_truthy(v);
}

std::string py_str(const OJson& v) {
    if (v.is_string()) {
        return v.get<std::string>();
    }
    if (v.is_null()) {
        return "None";
    }
    if (v.is_boolean()) {
        return v.get<bool>() ? "True" : "False";
    }
    return dump_json(v);
}

const OJson* json_field(const OJson& obj, const char* key) {
    if (!obj.is_object()) {
        return nullptr;
    }
    const auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
}

std::optional<std::string> name_value(const OJson& obj, const char* key) {
    const OJson* v = json_field(obj, key);
    if (v == nullptr || !truthy(*v)) {
        return std::nullopt;
    }
    return v->is_string() ? v->get<std::string>() : dump_json(*v);
}

bool flag_value(const OJson& obj, const char* key) {
    const OJson* v = json_field(obj, key);
    return v != nullptr && parse_bool(py_str(*v)).value_or(false);
}

bool deep_compare(const OJson& a, const OJson& b) {
    if (!a.is_object() || !b.is_object() || a.size() != b.size()) {
        return false;
    }
    for (auto it = a.begin(); it != a.end(); ++it) {
        const auto other = b.find(it.key());
        if (other == b.end()) {
            return false;
        }
        if (it->is_object()) {
            if (!other->is_object() || !deep_compare(*it, *other)) {
                return false;
            }
        } else if (py_str(*it) != py_str(*other)) {
            return false;
        }
    }
    return true;
}

std::optional<int> postgres_version_to_int(std::string_view version, std::string* error) {
    auto fail = [&](std::string msg) -> std::optional<int> {
        if (error != nullptr) {
            *error = std::move(msg);
        }
        return std::nullopt;
    };
    // list(map(int, pg_version.split('.'))): each part an optionally signed, space-padded int
    std::vector<long long> parts;
    std::string_view rest = version;
    while (true) {
        const auto dot = rest.find('.');
        std::string_view part = strip(rest.substr(0, dot));
        bool negative = false;
        if (!part.empty() && (part.front() == '+' || part.front() == '-')) {
            negative = part.front() == '-';
            part.remove_prefix(1);
        }
        if (part.empty() || part.size() > 9 ||
            !std::all_of(part.begin(), part.end(), [](char c) { return is_digit(c); })) {
            return fail("Invalid PostgreSQL version: " + std::string(version));
        }
        const long long v = std::stoll(std::string(part));
        parts.push_back(negative ? -v : v);
        if (dot == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(dot + 1);
    }
    if (parts.size() < 2 || (parts.size() == 2 && parts[0] < 10) || parts.size() > 3) {
        return fail("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: " +
                    std::string(version));
    }
    if (parts.size() == 2) {
        parts.insert(parts.begin() + 1, 0);
    }
    // int(''.join('{0:02d}'.format(c) for c in components))
    std::string joined;
    for (long long c : parts) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%02lld", c);
        joined += buf;
    }
    char* end = nullptr;
    const long long v = std::strtoll(joined.c_str(), &end, 10);
    if (end == nullptr || *end != '\0' || v < INT_MIN || v > INT_MAX) {
        return fail("Invalid PostgreSQL version: " + std::string(version));
    }
    return static_cast<int>(v);
}

std::optional<std::int64_t> parse_seconds(std::string_view value) {
    // convert_to_base_unit(value, unit, 's'): factor, then round to the next smaller unit.
    static constexpr UnitFactor kUnits[] = {
        {"d", 86400.0, 3600.0},
        {"h", 3600.0, 60.0},
        {"min", 60.0, 1.0},
        {"s", 1.0, 1e-3},
        {"ms", 1e-3, 1e-6},
        {"us", 1e-6, 0.0},
    };
    return parse_int_with_unit(value, kUnits);
}

std::optional<bool> parse_bool(std::string_view value) {
    const std::string v = lower(std::string(value));
    if (v == "on" || v == "true" || v == "yes" || v == "1") {
        return true;
    }
    if (v == "off" || v == "false" || v == "no" || v == "0") {
        return false;
    }
    return std::nullopt;
}

std::optional<std::int64_t> parse_bytes(std::string_view value) {
    // convert_to_base_unit(value, unit, 'B'): TB->GB, GB->MB, MB->kB, kB->B rounding.
    constexpr double kKi = 1024.0;
    static constexpr UnitFactor kUnits[] = {
        {"TB", kKi * kKi * kKi * kKi, kKi * kKi * kKi},
        {"GB", kKi * kKi * kKi, kKi * kKi},
        {"MB", kKi * kKi, kKi},
        {"kB", kKi, 1},
        {"B", 1, 0},
    };
    return parse_int_with_unit(value, kUnits);
}

}  // namespace pgwarden::rest
