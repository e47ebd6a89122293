// How Patroni reads loosely typed values of the member key and of another member's /patroni
// answer, in ONE place for the DCS codec (cluster_codec.cpp) and the member probes
// (runtime/member_probe.cpp), so that both read a member the same way.
//
// Patroni (patroni/tags.py, patroni/ha.py _MemberStatus) reads the tags with Python truthiness,
// not with utils.parse_bool:
//   nofailover / nosync  `bool(tags['nofailover'])` when present and not None, otherwise
//                        `failover_priority <= 0` (parse_int) — the bool tag wins;
//   failover_priority    0 when nofailover is truthy, else parse_int(failover_priority), else 1;
//   clonefrom            `tags.get('clonefrom', False)` used in a boolean context;
//   watchdog_failed      `data.get('watchdog_failed', False)` used in a boolean context.
// So the string "false" is true (a non-empty string), 0, "", [] and {} are false. Only
// `nostream` (not used here) goes through parse_bool.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace pgwarden::dcs {

// Python's bool(x) for a JSON value: false for null, false, 0, 0.0, "", [] and {}. For any
// nlohmann::basic_json (the REST API's ordered_json too): the one copy of this rule.
template <class Json>
bool patroni_truthy(const Json& value) noexcept {
    if (value.is_boolean()) {
        return value.template get<bool>();
    }
    if (value.is_number_integer()) {
        return value.template get<std::int64_t>() != 0;
    }
    if (value.is_number_unsigned()) {
        return value.template get<std::uint64_t>() != 0;
    }
    if (value.is_number_float()) {
        return value.template get<double>() != 0.0;
    }
    if (value.is_string()) {  // (json::empty() is false for every string)
        return !value.template get_ref<const typename Json::string_t&>().empty();
    }
    if (value.is_array() || value.is_object()) {
        return !value.empty();
    }
    if (value.is_binary()) {
        return !value.get_binary().empty();
    }
    return false;  // null, discarded
}

// Python's int(x) for the JSON types Patroni meets: integers, integral floats (truncated) and
// decimal strings; nullopt otherwise (or out of int64 range).
std::optional<std::int64_t> patroni_int(const nlohmann::json& value) noexcept;

// `object[name]` when it is a string, else nullopt (absent, null, a number, ...): a field of the
// wrong type is treated as absent, never as an error.
std::optional<std::string> patroni_string(const nlohmann::json& object, const char* name);

struct FailoverTags {
    bool nofailover = false;
    int failover_priority = 1;
};

// Tags.nofailover and Tags.failover_priority of a `tags` object (anything else: the defaults).
FailoverTags patroni_failover_tags(const nlohmann::json& tags) noexcept;

// Tags.clonefrom of a `tags` object.
bool patroni_clonefrom(const nlohmann::json& tags) noexcept;

}  // namespace pgwarden::dcs
