// Private to pgw_rest: JSON values seen through Python's eyes (Patroni's value semantics, one
// copy): truthiness, str(), deep_compare. parse_bool/parse_seconds/parse_bytes are public
// (unsafe.hpp, handlers.hpp).
#pragma once

#include "runtime/rest/json_util.hpp"

#include <optional>
#include <string>

namespace pgwarden::rest {

// bool(value) of a json.loads() result.
bool truthy(const OJson& v);

// str(value) as Python prints a json.loads() result (close enough for comparisons and parsing).
std::string py_str(const OJson& v);

// obj.get(key): null when `obj` is not an object or has no such key.
const OJson* json_field(const OJson& obj, const char* key);

// request.get(key) used as a name: nullopt when missing or falsy; a non-string as JSON text.
std::optional<std::string> name_value(const OJson& obj, const char* key);

// parse_bool(obj.get(key)) or False: a flag in a request body or the config key.
bool flag_value(const OJson& obj, const char* key);

// Patroni's utils.deep_compare: same keys; dicts recursively, everything else by str().
bool deep_compare(const OJson& a, const OJson& b);

}  // namespace pgwarden::rest
