// Internal to lib/config: typed, problem-collecting access to a detail::Value tree.
#pragma once

#include "config/load.hpp"
#include "config/value.hpp"

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pgwarden::config::detail {

// Python's parse_bool (utils.py): on/true/yes/1 and off/false/no/0, any case; bools as such.
std::optional<bool> parse_bool(const Value& v);
// Python's int(x) for a str/int: optional sign, digits, surrounding blanks.
std::optional<std::int64_t> python_int(const Value& v);

bool is_secret_key(std::string_view key);

// Patroni's strtol-then-unit split (utils.parse_int) on untrusted text: blanks removed, an
// optional sign, decimal digits, then the unit ("30min" -> {30, "min"}). nullopt when there are
// no digits or the number does not fit in 64 bits. Never throws.
struct NumberWithUnit {
    std::int64_t number = 0;
    std::string unit;
};
std::optional<NumberWithUnit> split_number_unit(const std::string& text);

// a * b, or nullopt when it overflows.
std::optional<std::int64_t> checked_mul(std::int64_t a, std::int64_t b);

// a / b rounded half up, for a >= 0 and b > 0, without overflow.
std::int64_t div_round(std::int64_t a, std::int64_t b);

class Walker {
public:
    explicit Walker(std::vector<Problem>* problems) : problems_(problems) {}

    std::string where(const Value& v, const std::string& path) const;
    void error(const Value& v, const std::string& path, const std::string& message);
    void warning(const Value& v, const std::string& path, const std::string& message);
    // "'ten'" (scalar source text), "a list", or "'******'" for secrets.
    static std::string show(const Value& v, bool secret);
    static std::string last_key(const std::string& path);

    bool get_string(const Value& v, const std::string& path, std::string* out);
    bool get_bool(const Value& v, const std::string& path, bool* out);
    bool get_int(const Value& v,
                 const std::string& path,
                 std::int64_t* out,
                 const char* expected = "an integer");
    bool get_int(const Value& v,
                 const std::string& path,
                 int* out,
                 const char* expected = "an integer");
    // ttl/loop_wait/retry_timeout: Python int(value) (Patroni's _safe_copy_dynamic_configuration).
    bool get_seconds(const Value& v, const std::string& path, int* out);
    bool get_string_list(const Value& v, const std::string& path, std::vector<std::string>* out);
    bool expect_map(const Value& v, const std::string& path);
    void unknown_keys(const Value& map,
                      const std::string& path,
                      std::span<const std::string_view> known,
                      const char* hint = nullptr);
    void unknown_keys(const Value& map,
                      const std::string& path,
                      std::initializer_list<std::string_view> known,
                      const char* hint = nullptr) {
        unknown_keys(
            map, path, std::span<const std::string_view>(known.begin(), known.size()), hint);
    }

private:
    std::vector<Problem>* problems_;
};

}  // namespace pgwarden::config::detail
