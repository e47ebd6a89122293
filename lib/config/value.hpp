// Internal to lib/config: a small ordered value tree that both YAML (patroni.yml, typed the way
// PyYAML types YAML 1.1 plain scalars) and JSON (the DCS `config` key) are converted into, so one
// strict walker serves both and every value keeps its line and (for PATRONI_* values) its variable.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgwarden::config::detail {

struct Value {
    enum class Kind { Null, Bool, Int, Float, String, List, Map };

    Kind kind = Kind::Null;
    bool b = false;
    std::int64_t i = 0;
    double f = 0.0;
    std::string s;  // the string value; for other scalars the source text
    std::vector<Value> items;
    std::vector<std::pair<std::string, Value>> entries;  // insertion order, as Python dicts
    int line = 0;                                        // 1-based YAML line, 0 = unknown
    std::string env;  // the PATRONI_* variable this value came from, "" = the file

    bool is_map() const { return kind == Kind::Map; }
    bool is_list() const { return kind == Kind::List; }
    bool is_null() const { return kind == Kind::Null; }
    bool is_scalar() const { return kind != Kind::List && kind != Kind::Map; }
    const Value* find(std::string_view key) const;
    Value* find(std::string_view key);
    // Sets key (replacing in place, or appending), returns the stored value.
    Value& set(const std::string& key, Value v);
    void erase(std::string_view key);

    static Value string(std::string text, int line = 0);
    static Value map(int line = 0);
};

// "a string", "an integer", ... for messages.
std::string kind_name(Value::Kind kind);

struct YamlResult {
    Value root;
    bool ok = true;
    std::string error;
    int error_line = 0;
    std::vector<std::pair<std::string, int>> duplicate_keys;  // dotted path, line
};

// Parses YAML text; plain scalars are typed as PyYAML's safe_load types them (YAML 1.1: on/off/
// yes/no booleans, 0x/0o/0b/sexagesimal integers, floats only with a dot, ~/null).
YamlResult parse_yaml(const std::string& text);

// Types one plain (unquoted) YAML scalar as PyYAML would.
Value resolve_plain_scalar(const std::string& text, int line);

Value from_json(const nlohmann::ordered_json& j);
nlohmann::ordered_json to_json(const Value& v);

// Python's str(v) and repr(v) of the value Patroni would hold.
std::string py_str(const Value& v);
std::string py_repr(const Value& v);
std::string py_float_repr(double d);

// Patroni's utils.patch_config on the tree: null deletes, maps merge recursively, scalars are
// replaced when str(old) != str(new). Returns whether anything changed.
bool patch(Value& config, const Value& data);

// Marks v and everything below it as coming from environment variable `name`.
void mark_env(Value& v, const std::string& name);

}  // namespace pgwarden::config::detail
