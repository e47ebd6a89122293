// The lib/config value tree: YAML (as PyYAML types it) and JSON in, JSON and Python str/repr out,
// and Patroni's patch_config.

#include "config/value.hpp"

#include "config/text.hpp"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <regex>

namespace pgwarden::config::detail {

const Value* Value::find(std::string_view key) const {
    for (const auto& [k, v] : entries) {
        if (k == key) {
            return &v;
        }
    }
    return nullptr;
}

Value* Value::find(std::string_view key) {
    for (auto& [k, v] : entries) {
        if (k == key) {
            return &v;
        }
    }
    return nullptr;
}

Value& Value::set(const std::string& key, Value v) {
    if (Value* existing = find(key)) {
        *existing = std::move(v);
        return *existing;
    }
    entries.emplace_back(key, std::move(v));
    return entries.back().second;
}

void Value::erase(std::string_view key) {
    for (auto it = entries.begin(); it != entries.end(); ++it) {
        if (it->first == key) {
            entries.erase(it);
            return;
        }
    }
}

Value Value::string(std::string text, int line) {
    Value v;
    v.kind = Kind::String;
    v.s = std::move(text);
    v.line = line;
    return v;
}

Value Value::map(int line) {
    Value v;
    v.kind = Kind::Map;
    v.line = line;
    return v;
}

std::string kind_name(Value::Kind kind) {
    switch (kind) {
        case Value::Kind::Null:
            return "null";
        case Value::Kind::Bool:
            return "a boolean";
        case Value::Kind::Int:
            return "an integer";
        case Value::Kind::Float:
            return "a floating point number";
        case Value::Kind::String:
            return "a string";
        case Value::Kind::List:
            return "a list";
        case Value::Kind::Map:
            return "a mapping";
    }
    return "a value";
}

namespace {

std::string strip_underscores(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c != '_') {
            out.push_back(c);
        }
    }
    return out;
}

bool parse_int_base(const std::string& digits, int base, bool negative, std::int64_t* out) {
    if (digits.empty()) {
        return false;
    }
    std::int64_t v = 0;
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
    if (ec != std::errc() || ptr != digits.data() + digits.size()) {
        return false;
    }
    *out = negative ? -v : v;
    return true;
}

}  // namespace

Value resolve_plain_scalar(const std::string& text, int line) {
    // The implicit resolvers of PyYAML (resolver.py), which Patroni reads its YAML with.
    static const std::regex kBool(
        "^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$");
    static const std::regex kInt(
        "^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+"
        "|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$");
    static const std::regex kFloat(
        "^(?:[-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+][0-9]+)?|\\.[0-9_]+(?:[eE][-+][0-9]+)?"
        "|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\\.[0-9_]*|[-+]?\\.(?:inf|Inf|INF)"
        "|\\.(?:nan|NaN|NAN))$");
    Value v = Value::string(text, line);
    if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
        v.kind = Value::Kind::Null;
        return v;
    }
    if (std::regex_match(text, kBool)) {
        v.kind = Value::Kind::Bool;
        const char c = static_cast<char>(text[0] | 0x20);
        v.b = c == 'y' || c == 't' || (c == 'o' && (text[1] | 0x20) == 'n');
        return v;
    }
    if (std::regex_match(text, kInt)) {
        std::string t = strip_underscores(text);
        bool negative = false;
        if (!t.empty() && (t[0] == '-' || t[0] == '+')) {
            negative = t[0] == '-';
            t.erase(0, 1);
        }
        std::int64_t value = 0;
        bool ok = false;
        if (t.rfind("0b", 0) == 0) {
            ok = parse_int_base(t.substr(2), 2, negative, &value);
        } else if (t.rfind("0x", 0) == 0) {
            ok = parse_int_base(t.substr(2), 16, negative, &value);
        } else if (t.find(':') != std::string::npos) {
            std::int64_t total = 0;
            ok = true;
            std::size_t start = 0;
            while (ok && start <= t.size()) {
                const std::size_t colon = t.find(':', start);
                const std::string part =
                    t.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
                std::int64_t p = 0;
                // An overflow keeps the scalar a string (as for any integer beyond 64 bits).
                ok = parse_int_base(part, 10, false, &p) &&
                     !__builtin_mul_overflow(total, 60, &total) &&
                     !__builtin_add_overflow(total, p, &total);
                if (colon == std::string::npos) {
                    break;
                }
                start = colon + 1;
            }
            value = negative ? -total : total;
        } else if (t.size() > 1 && t[0] == '0') {
            ok = parse_int_base(t.substr(1), 8, negative, &value);
        } else {
            ok = parse_int_base(t, 10, negative, &value);
        }
        if (ok) {
            v.kind = Value::Kind::Int;
            v.i = value;
        }
        return v;  // out of range: kept as a string
    }
    if (std::regex_match(text, kFloat)) {
        std::string t = strip_underscores(text);
        double d = 0.0;
        const std::string l = lower(t);
        if (l.find("inf") != std::string::npos) {
            d = l[0] == '-' ? -INFINITY : INFINITY;
        } else if (l.find("nan") != std::string::npos) {
            d = NAN;
        } else if (t.find(':') != std::string::npos) {
            bool negative = t[0] == '-';
            if (t[0] == '-' || t[0] == '+') {
                t.erase(0, 1);
            }
            double total = 0;
            std::size_t start = 0;
            while (true) {
                const std::size_t colon = t.find(':', start);
                const std::string part =
                    t.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
                total = total * 60 + std::strtod(part.c_str(), nullptr);
                if (colon == std::string::npos) {
                    break;
                }
                start = colon + 1;
            }
            d = negative ? -total : total;
        } else {
            d = std::strtod(t.c_str(), nullptr);
        }
        v.kind = Value::Kind::Float;
        v.f = d;
        return v;
    }
    return v;
}

namespace {

Value convert(const YAML::Node& node, const std::string& path, YamlResult* result) {
    const int line = node.Mark().line >= 0 ? node.Mark().line + 1 : 0;
    Value v;
    v.line = line;
    switch (node.Type()) {
        case YAML::NodeType::Undefined:
        case YAML::NodeType::Null:
            v.kind = Value::Kind::Null;
            return v;
        case YAML::NodeType::Scalar: {
            const std::string& tag = node.Tag();
            const std::string& text = node.Scalar();
            if (tag == "?") {
                return resolve_plain_scalar(text, line);
            }
            if (tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:float" ||
                tag == "tag:yaml.org,2002:bool" || tag == "tag:yaml.org,2002:null") {
                Value r = resolve_plain_scalar(text, line);
                return r;
            }
            return Value::string(text, line);  // quoted, !!str or another explicit tag
        }
        case YAML::NodeType::Sequence: {
            v.kind = Value::Kind::List;
            int index = 0;
            for (const auto& item : node) {
                v.items.push_back(
                    convert(item, path + "[" + std::to_string(index++) + "]", result));
            }
            return v;
        }
        case YAML::NodeType::Map: {
            v.kind = Value::Kind::Map;
            for (const auto& kv : node) {
                std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
                const std::string child = path.empty() ? key : path + "." + key;
                Value item = convert(kv.second, child, result);
                item.line = kv.first.Mark().line + 1;  // report a key's problems at the key
                if (v.find(key) != nullptr) {
                    result->duplicate_keys.emplace_back(child, kv.first.Mark().line + 1);
                }
                v.set(key, std::move(item));
            }
            return v;
        }
    }
    return v;
}

}  // namespace

YamlResult parse_yaml(const std::string& text) {
    YamlResult result;
    try {
        const YAML::Node root = YAML::Load(text);
        result.root = convert(root, "", &result);
    } catch (const YAML::Exception& e) {
        result.ok = false;
        result.error = e.msg;
        result.error_line = e.mark.line >= 0 ? e.mark.line + 1 : 0;
    } catch (const std::exception& e) {
        result.ok = false;
        result.error = e.what();
    }
    return result;
}

Value from_json(const nlohmann::ordered_json& j) {
    Value v;
    switch (j.type()) {
        case nlohmann::ordered_json::value_t::null:
        case nlohmann::ordered_json::value_t::discarded:
            v.kind = Value::Kind::Null;
            break;
        case nlohmann::ordered_json::value_t::boolean:
            v.kind = Value::Kind::Bool;
            v.b = j.get<bool>();
            v.s = v.b ? "true" : "false";
            break;
        case nlohmann::ordered_json::value_t::number_integer:
            v.kind = Value::Kind::Int;
            v.i = j.get<std::int64_t>();
            v.s = std::to_string(v.i);
            break;
        case nlohmann::ordered_json::value_t::number_unsigned: {
            const auto u = j.get<std::uint64_t>();
            if (u > static_cast<std::uint64_t>(INT64_MAX)) {
                v.kind = Value::Kind::Float;
                v.f = static_cast<double>(u);
            } else {
                v.kind = Value::Kind::Int;
                v.i = static_cast<std::int64_t>(u);
            }
            v.s = std::to_string(u);
            break;
        }
        case nlohmann::ordered_json::value_t::number_float:
            v.kind = Value::Kind::Float;
            v.f = j.get<double>();
            v.s = py_float_repr(v.f);
            break;
        case nlohmann::ordered_json::value_t::string:
            v.kind = Value::Kind::String;
            v.s = j.get<std::string>();
            break;
        case nlohmann::ordered_json::value_t::array:
            v.kind = Value::Kind::List;
            for (const auto& item : j) {
                v.items.push_back(from_json(item));
            }
            break;
        case nlohmann::ordered_json::value_t::object:
            v.kind = Value::Kind::Map;
            for (const auto& [key, item] : j.items()) {
                v.set(key, from_json(item));
            }
            break;
        case nlohmann::ordered_json::value_t::binary:
            v.kind = Value::Kind::Null;
            break;
    }
    return v;
}

nlohmann::ordered_json to_json(const Value& v) {
    switch (v.kind) {
        case Value::Kind::Null:
            return nullptr;
        case Value::Kind::Bool:
            return v.b;
        case Value::Kind::Int:
            return v.i;
        case Value::Kind::Float:
            return v.f;
        case Value::Kind::String:
            return v.s;
        case Value::Kind::List: {
            auto arr = nlohmann::ordered_json::array();
            for (const auto& item : v.items) {
                arr.push_back(to_json(item));
            }
            return arr;
        }
        case Value::Kind::Map: {
            auto obj = nlohmann::ordered_json::object();
            for (const auto& [key, item] : v.entries) {
                obj[key] = to_json(item);
            }
            return obj;
        }
    }
    return nullptr;
}

std::string py_float_repr(double d) {
    if (std::isnan(d)) {
        return "nan";
    }
    if (std::isinf(d)) {
        return d < 0 ? "-inf" : "inf";
    }
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
    std::string sci(buf, res.ptr);
    // sci = [-]D[.DDD]e[+-]XX
    const std::size_t e = sci.find('e');
    std::string mantissa = sci.substr(0, e);
    const int exponent = std::atoi(sci.c_str() + e + 1);
    bool negative = false;
    if (!mantissa.empty() && mantissa[0] == '-') {
        negative = true;
        mantissa.erase(0, 1);
    }
    std::string digits;
    for (char c : mantissa) {
        if (c != '.') {
            digits.push_back(c);
        }
    }
    std::string out;
    if (exponent >= -4 && exponent < 16) {
        if (exponent >= 0) {
            std::string int_part =
                digits.substr(0, std::min<std::size_t>(digits.size(), exponent + 1));
            while (static_cast<int>(int_part.size()) < exponent + 1) {
                int_part.push_back('0');
            }
            std::string frac =
                static_cast<int>(digits.size()) > exponent + 1 ? digits.substr(exponent + 1) : "0";
            out = int_part + "." + frac;
        } else {
            out = "0." + std::string(static_cast<std::size_t>(-exponent - 1), '0') + digits;
        }
    } else {
        std::string m = digits.substr(0, 1);
        if (digits.size() > 1) {
            m += "." + digits.substr(1);
        }
        char ebuf[16];
        std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
        out = m + ebuf;
    }
    return negative ? "-" + out : out;
}

namespace {

std::string py_str_repr(const std::string& s) {
    const bool use_double = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
    const char q = use_double ? '"' : '\'';
    std::string out(1, q);
    for (char c : s) {
        if (c == q || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\r') {
            out += "\\r";
        } else {
            out.push_back(c);
        }
    }
    out.push_back(q);
    return out;
}

}  // namespace

std::string py_repr(const Value& v) {
    switch (v.kind) {
        case Value::Kind::String:
            return py_str_repr(v.s);
        case Value::Kind::List: {
            std::string out = "[";
            for (std::size_t n = 0; n < v.items.size(); ++n) {
                out += (n ? ", " : "") + py_repr(v.items[n]);
            }
            return out + "]";
        }
        case Value::Kind::Map: {
            std::string out = "{";
            bool first = true;
            for (const auto& [key, item] : v.entries) {
                out += (first ? "" : ", ") + py_str_repr(key) + ": " + py_repr(item);
                first = false;
            }
            return out + "}";
        }
        default:
            return py_str(v);
    }
}

std::string py_str(const Value& v) {
    switch (v.kind) {
        case Value::Kind::Null:
            return "None";
        case Value::Kind::Bool:
            return v.b ? "True" : "False";
        case Value::Kind::Int:
            return std::to_string(v.i);
        case Value::Kind::Float:
            return py_float_repr(v.f);
        case Value::Kind::String:
            return v.s;
        case Value::Kind::List:
        case Value::Kind::Map:
            return py_repr(v);
    }
    return "";
}

bool patch(Value& config, const Value& data) {
    bool changed = false;
    for (const auto& [name, value] : data.entries) {
        Value* existing = config.find(name);
        if (value.is_null()) {
            if (existing != nullptr) {
                changed = changed || !existing->is_null();
                config.erase(name);
            }
        } else if (existing != nullptr) {
            if (value.is_map()) {
                if (existing->is_map()) {
                    changed = patch(*existing, value) || changed;
                } else {
                    *existing = value;
                    changed = true;
                }
            } else if (py_str(*existing) != py_str(value)) {
                *existing = value;
                changed = true;
            }
        } else {
            config.set(name, value);
            changed = true;
        }
    }
    return changed;
}

void mark_env(Value& v, const std::string& name) {
    v.env = name;
    for (auto& item : v.items) {
        mark_env(item, name);
    }
    for (auto& [key, item] : v.entries) {
        mark_env(item, name);
    }
}

}  // namespace pgwarden::config::detail
