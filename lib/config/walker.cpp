// Typed, problem-collecting reads of a value tree (Walker), and Patroni's bool/int/unit parsing of
// untrusted values.

#include "config/walker.hpp"

#include "config/text.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace pgwarden::config::detail {

namespace {

std::string trim(const std::string& s) {
    const auto first = s.find_first_not_of(" \t\r\n\f\v");
    if (first == std::string::npos) {
        return "";
    }
    const auto last = s.find_last_not_of(" \t\r\n\f\v");
    return s.substr(first, last - first + 1);
}

}  // namespace

std::optional<bool> parse_bool(const Value& v) {
    if (v.kind == Value::Kind::Bool) {
        return v.b;
    }
    if (!v.is_scalar() || v.is_null()) {
        return std::nullopt;
    }
    const std::string s = lower(py_str(v));
    if (s == "on" || s == "true" || s == "yes" || s == "1") {
        return true;
    }
    if (s == "off" || s == "false" || s == "no" || s == "0") {
        return false;
    }
    return std::nullopt;
}

std::optional<std::int64_t> python_int(const Value& v) {
    if (v.kind == Value::Kind::Int) {
        return v.i;
    }
    if (v.kind != Value::Kind::String) {
        return std::nullopt;
    }
    std::string s = trim(v.s);
    bool negative = false;
    if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
        negative = s[0] == '-';
        s.erase(0, 1);
    }
    if (s.empty() ||
        !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    std::int64_t out = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || ptr != s.data() + s.size()) {
        return std::nullopt;
    }
    return negative ? -out : out;
}

std::optional<NumberWithUnit> split_number_unit(const std::string& text) {
    std::string s = text;
    s.erase(std::remove_if(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); }),
            s.end());
    std::size_t n = 0;
    if (n < s.size() && (s[n] == '-' || s[n] == '+')) {
        ++n;
    }
    const std::size_t digits_start = n;
    while (n < s.size() && s[n] >= '0' && s[n] <= '9') {
        ++n;
    }
    if (n == digits_start) {
        return std::nullopt;
    }
    NumberWithUnit out;
    const char* first = s.data() + (s[0] == '+' ? 1 : 0);
    auto [ptr, ec] = std::from_chars(first, s.data() + n, out.number);
    if (ec != std::errc() || ptr != s.data() + n) {
        return std::nullopt;  // out of range
    }
    out.unit = s.substr(n);
    return out;
}

std::optional<std::int64_t> checked_mul(std::int64_t a, std::int64_t b) {
    std::int64_t out = 0;
    if (__builtin_mul_overflow(a, b, &out)) {
        return std::nullopt;
    }
    return out;
}

std::int64_t div_round(std::int64_t a, std::int64_t b) {
    return a / b + (a % b >= b - b / 2 ? 1 : 0);
}

bool is_secret_key(std::string_view key) {
    return key == "password" || key == "token" || key == "keyfile_password" || key == "auth" ||
           key == "key_password" || key == "auth_data" || key == "sslpassword";
}

std::string Walker::where(const Value& v, const std::string& path) const {
    return v.env.empty() ? path : v.env;
}

void Walker::error(const Value& v, const std::string& path, const std::string& message) {
    problems_->push_back(
        {Problem::Severity::Error, where(v, path), v.env.empty() ? v.line : 0, message});
}

void Walker::warning(const Value& v, const std::string& path, const std::string& message) {
    problems_->push_back(
        {Problem::Severity::Warning, where(v, path), v.env.empty() ? v.line : 0, message});
}

std::string Walker::show(const Value& v, bool secret) {
    if (secret) {
        return "'******'";
    }
    switch (v.kind) {
        case Value::Kind::List:
            return "a list";
        case Value::Kind::Map:
            return "a mapping";
        case Value::Kind::Null:
            return "null";
        default: {
            std::string text = v.s.empty() && v.kind != Value::Kind::String ? py_str(v) : v.s;
            if (text.size() > 60) {
                text = text.substr(0, 57) + "...";
            }
            return "'" + text + "'";
        }
    }
}

std::string Walker::last_key(const std::string& path) {
    const auto dot = path.rfind('.');
    return dot == std::string::npos ? path : path.substr(dot + 1);
}

bool Walker::get_string(const Value& v, const std::string& path, std::string* out) {
    if (v.kind == Value::Kind::String) {
        *out = v.s;
        return true;
    }
    if (v.is_null()) {
        return false;  // absent in Patroni's eyes as well (config.get(...) or default)
    }
    if (v.kind == Value::Kind::Int || v.kind == Value::Kind::Float) {
        // PyYAML gives a number; Patroni mostly str()s it. Accept, but say so.
        *out = py_str(v);
        warning(v,
                path,
                "expected a string, got the number " + show(v, is_secret_key(last_key(path))) +
                    "; using it as the string '" +
                    (is_secret_key(last_key(path)) ? std::string("******") : *out) +
                    "' (quote it to silence this)");
        return true;
    }
    error(v,
          path,
          "expected a string, got " + (v.kind == Value::Kind::Bool
                                           ? "the boolean " + show(v, false)
                                           : show(v, is_secret_key(last_key(path)))));
    return false;
}

bool Walker::get_bool(const Value& v, const std::string& path, bool* out) {
    if (v.is_null()) {
        return false;
    }
    if (auto b = parse_bool(v)) {
        *out = *b;
        return true;
    }
    error(v, path, "expected a boolean (true/false, on/off, yes/no), got " + show(v, false));
    return false;
}

bool Walker::get_int(const Value& v,
                     const std::string& path,
                     std::int64_t* out,
                     const char* expected) {
    if (v.is_null()) {
        return false;
    }
    if (auto i = python_int(v)) {
        *out = *i;
        return true;
    }
    error(v, path, std::string("expected ") + expected + ", got " + show(v, false));
    return false;
}

bool Walker::get_int(const Value& v, const std::string& path, int* out, const char* expected) {
    std::int64_t wide = 0;
    if (!get_int(v, path, &wide, expected)) {
        return false;
    }
    if (wide < INT32_MIN || wide > INT32_MAX) {
        error(v,
              path,
              std::string("expected ") + expected + ", got " + show(v, false) + " (out of range)");
        return false;
    }
    *out = static_cast<int>(wide);
    return true;
}

bool Walker::get_seconds(const Value& v, const std::string& path, int* out) {
    return get_int(v, path, out, "an integer number of seconds");
}

bool Walker::get_string_list(const Value& v,
                             const std::string& path,
                             std::vector<std::string>* out) {
    if (v.is_null()) {
        return false;
    }
    if (!v.is_list()) {
        error(v, path, "expected a list of strings, got " + show(v, false));
        return false;
    }
    std::vector<std::string> result;
    bool ok = true;
    for (std::size_t n = 0; n < v.items.size(); ++n) {
        const Value& item = v.items[n];
        const std::string item_path = path + "[" + std::to_string(n) + "]";
        if (item.kind == Value::Kind::String) {
            result.push_back(item.s);
        } else if (item.kind == Value::Kind::Int || item.kind == Value::Kind::Float) {
            result.push_back(py_str(item));
        } else {
            error(item, item_path, "expected a string, got " + show(item, false));
            ok = false;
        }
    }
    if (ok) {
        *out = std::move(result);
    }
    return ok;
}

bool Walker::expect_map(const Value& v, const std::string& path) {
    if (v.is_map()) {
        return true;
    }
    if (!v.is_null()) {
        error(v, path, "expected a mapping, got " + show(v, false));
    }
    return false;
}

void Walker::unknown_keys(const Value& map,
                          const std::string& path,
                          std::span<const std::string_view> known,
                          const char* hint) {
    for (const auto& [key, value] : map.entries) {
        if (std::find(known.begin(), known.end(), key) == known.end()) {
            const std::string p = path.empty() ? key : path + "." + key;
            std::string message = "unknown key, ignored";
            if (hint != nullptr) {
                message += std::string(" (") + hint + ")";
            }
            warning(value, p, message);
        }
    }
}

}  // namespace pgwarden::config::detail
