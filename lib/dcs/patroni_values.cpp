#include "dcs/patroni_values.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <string_view>

namespace pgwarden::dcs {

using json = nlohmann::json;

namespace {

std::optional<std::int64_t> parse_int_text(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t' || text.front() == '\n')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\n')) {
        text.remove_suffix(1);
    }
    if (!text.empty() && text.front() == '+') {
        text.remove_prefix(1);
    }
    std::int64_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

}  // namespace

std::optional<std::int64_t> patroni_int(const json& value) noexcept {
    if (value.is_number_unsigned()) {
        const auto u = value.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            return std::nullopt;
        }
        return static_cast<std::int64_t>(u);
    }
    if (value.is_number_integer()) {
        return value.get<std::int64_t>();
    }
    if (value.is_number_float()) {
        const double d = value.get<double>();
        if (!std::isfinite(d) || std::fabs(d) > 9.0e18) {
            return std::nullopt;
        }
        return static_cast<std::int64_t>(d);
    }
    if (value.is_string()) {
        return parse_int_text(value.get_ref<const std::string&>());
    }
    return std::nullopt;
}

std::optional<std::string> patroni_string(const json& object, const char* name) {
    if (!object.is_object()) {
        return std::nullopt;
    }
    auto it = object.find(name);
    if (it == object.end() || !it->is_string()) {
        return std::nullopt;
    }
    return it->get<std::string>();
}

FailoverTags patroni_failover_tags(const json& tags) noexcept {
    FailoverTags out;
    if (!tags.is_object()) {
        return out;
    }
    std::optional<std::int64_t> priority;
    if (auto p = tags.find("failover_priority"); p != tags.end()) {
        priority = patroni_int(*p);
    }
    auto nofailover = tags.find("nofailover");
    if (nofailover != tags.end() && !nofailover->is_null()) {
        out.nofailover = patroni_truthy(*nofailover);  // the bool tag wins
    } else {
        out.nofailover = priority && *priority <= 0;
    }
    if (nofailover != tags.end() && patroni_truthy(*nofailover)) {
        out.failover_priority = 0;
    } else if (priority) {
        out.failover_priority = static_cast<int>(std::clamp<std::int64_t>(
            *priority, std::numeric_limits<int>::min(), std::numeric_limits<int>::max()));
    }
    return out;
}

bool patroni_clonefrom(const json& tags) noexcept {
    if (!tags.is_object()) {
        return false;
    }
    auto it = tags.find("clonefrom");
    return it != tags.end() && patroni_truthy(*it);
}

}  // namespace pgwarden::dcs
