// Private to pgw_rest: nlohmann/json helpers shared by the handlers and the status builders.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace pgwarden::rest {

// Insertion-ordered, as Python dicts: keys appear in Patroni's order.
using OJson = nlohmann::ordered_json;

// Untrusted text (DCS values, PostgreSQL output) never throws: nullopt when not JSON.
inline std::optional<OJson> parse_json(const std::string& text) {
    OJson j = OJson::parse(text, nullptr, false);
    if (j.is_discarded()) {
        return std::nullopt;
    }
    return j;
}

// A tag value stored as JSON text; a value that is not JSON is kept as a string.
inline OJson parse_json_or_string(const std::string& text) {
    auto j = parse_json(text);
    return j ? std::move(*j) : OJson(text);
}

// Compact, ASCII-only (as Python's json.dumps ensure_ascii), invalid UTF-8 replaced, never throws.
inline std::string dump_json(const OJson& j) {
    return j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

}  // namespace pgwarden::rest
