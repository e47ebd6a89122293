#include "consul_util.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <limits>

namespace pgwarden::consul_test {

namespace {

std::string go_quote(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

std::optional<std::int64_t> unit_nanos(std::string_view unit) {
    if (unit == "ns") {
        return 1;
    }
    if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") {
        return 1'000;
    }
    if (unit == "ms") {
        return 1'000'000;
    }
    if (unit == "s") {
        return 1'000'000'000;
    }
    if (unit == "m") {
        return 60LL * 1'000'000'000;
    }
    if (unit == "h") {
        return 3600LL * 1'000'000'000;
    }
    return std::nullopt;
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// Formats `v` (< 10^prec units) as Go does: integer part plus trimmed fraction.
std::string fmt_frac(std::uint64_t v, int prec) {
    std::uint64_t scale = 1;
    for (int i = 0; i < prec; ++i) {
        scale *= 10;
    }
    std::string out = std::to_string(v / scale);
    std::uint64_t frac = v % scale;
    if (frac != 0) {
        std::string digits = std::to_string(frac);
        digits.insert(0, static_cast<std::size_t>(prec) - digits.size(), '0');
        while (!digits.empty() && digits.back() == '0') {
            digits.pop_back();
        }
        out += "." + digits;
    }
    return out;
}

}  // namespace

DurationResult parse_go_duration(std::string_view text) {
    const std::string_view orig = text;
    auto invalid = [&] {
        return DurationResult{std::nullopt, "time: invalid duration " + go_quote(orig)};
    };
    std::string_view s = text;
    bool neg = false;
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        s.remove_prefix(1);
    }
    if (s == "0") {
        return {Nanos{0}, {}};
    }
    if (s.empty()) {
        return invalid();
    }
    long double total = 0;
    while (!s.empty()) {
        if (!(is_digit(s[0]) || s[0] == '.')) {
            return invalid();
        }
        std::size_t i = 0;
        std::string int_part;
        while (i < s.size() && is_digit(s[i])) {
            int_part += s[i++];
        }
        std::string frac_part;
        if (i < s.size() && s[i] == '.') {
            ++i;
            while (i < s.size() && is_digit(s[i])) {
                frac_part += s[i++];
            }
        }
        if (int_part.empty() && frac_part.empty()) {
            return invalid();
        }
        std::size_t u = i;
        while (u < s.size() && !is_digit(s[u]) && s[u] != '.') {
            ++u;
        }
        std::string_view unit = s.substr(i, u - i);
        if (unit.empty()) {
            return {std::nullopt, "time: missing unit in duration " + go_quote(orig)};
        }
        auto mult = unit_nanos(unit);
        if (!mult) {
            return {std::nullopt,
                    "time: unknown unit " + go_quote(unit) + " in duration " + go_quote(orig)};
        }
        long double v = int_part.empty() ? 0 : std::stold(int_part);
        if (!frac_part.empty()) {
            v += std::stold("0." + frac_part);
        }
        total += v * static_cast<long double>(*mult);
        if (total > static_cast<long double>(std::numeric_limits<std::int64_t>::max())) {
            return invalid();
        }
        s.remove_prefix(u);
    }
    auto ns = static_cast<std::int64_t>(std::llround(total));
    return {Nanos{neg ? -ns : ns}, {}};
}

std::string format_go_duration(Nanos d) {
    std::int64_t v = d.count();
    if (v == 0) {
        return "0s";
    }
    std::string sign = v < 0 ? "-" : "";
    std::uint64_t u =
        v < 0 ? static_cast<std::uint64_t>(-(v + 1)) + 1 : static_cast<std::uint64_t>(v);
    if (u < 1'000'000'000ULL) {
        if (u < 1'000ULL) {
            return sign + std::to_string(u) + "ns";
        }
        if (u < 1'000'000ULL) {
            return sign + fmt_frac(u, 3) + "\xC2\xB5s";
        }
        return sign + fmt_frac(u, 6) + "ms";
    }
    std::uint64_t secs_total_ns = u % 60'000'000'000ULL;
    std::uint64_t minutes_total = u / 60'000'000'000ULL;
    std::string out = fmt_frac(secs_total_ns, 9) + "s";
    if (minutes_total > 0) {
        std::uint64_t hours = minutes_total / 60;
        std::uint64_t minutes = minutes_total % 60;
        out = std::to_string(minutes) + "m" + out;
        if (hours > 0) {
            out = std::to_string(hours) + "h" + out;
        }
    }
    return sign + out;
}

std::string base64_encode(std::string_view data) {
    static constexpr std::string_view kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((data.size() + 2) / 3 * 4);
    std::size_t i = 0;
    while (i + 2 < data.size()) {
        std::uint32_t n = (static_cast<unsigned char>(data[i]) << 16) |
                          (static_cast<unsigned char>(data[i + 1]) << 8) |
                          static_cast<unsigned char>(data[i + 2]);
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        out += kAlphabet[(n >> 6) & 63];
        out += kAlphabet[n & 63];
        i += 3;
    }
    std::size_t rest = data.size() - i;
    if (rest == 1) {
        std::uint32_t n = static_cast<unsigned char>(data[i]) << 16;
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        out += "==";
    } else if (rest == 2) {
        std::uint32_t n = (static_cast<unsigned char>(data[i]) << 16) |
                          (static_cast<unsigned char>(data[i + 1]) << 8);
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        out += kAlphabet[(n >> 6) & 63];
        out += '=';
    }
    return out;
}

std::optional<std::string> url_decode(std::string_view text, bool plus_is_space) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '%') {
            if (i + 2 >= text.size() || !std::isxdigit(static_cast<unsigned char>(text[i + 1])) ||
                !std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
                return std::nullopt;
            }
            out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out += ' ';
        } else {
            out += c;
        }
    }
    return out;
}

std::optional<Query> Query::parse(std::string_view raw) {
    Query q;
    while (!raw.empty()) {
        std::size_t amp = raw.find('&');
        std::string_view part = raw.substr(0, amp);
        raw = amp == std::string_view::npos ? std::string_view{} : raw.substr(amp + 1);
        if (part.empty()) {
            continue;
        }
        std::size_t eq = part.find('=');
        auto key = url_decode(part.substr(0, eq), true);
        auto value = eq == std::string_view::npos ? std::optional<std::string>{""}
                                                  : url_decode(part.substr(eq + 1), true);
        if (!key || !value) {
            return std::nullopt;
        }
        q.items_.emplace_back(std::move(*key), std::move(*value));
    }
    return q;
}

bool Query::has(std::string_view key) const {
    return std::any_of(
        items_.begin(), items_.end(), [&](const auto& kv) { return kv.first == key; });
}

std::optional<std::string> Query::get(std::string_view key) const {
    for (const auto& kv : items_) {
        if (kv.first == key) {
            return kv.second;
        }
    }
    return std::nullopt;
}

std::vector<std::string> Query::all(std::string_view key) const {
    std::vector<std::string> out;
    for (const auto& kv : items_) {
        if (kv.first == key) {
            out.push_back(kv.second);
        }
    }
    return out;
}

std::string Query::encode() const {
    auto sorted = items_;
    std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
        return a.first < b.first;
    });
    std::string out;
    for (const auto& kv : sorted) {
        if (!out.empty()) {
            out += '&';
        }
        out += kv.first + "=" + kv.second;
    }
    return out;
}

std::optional<std::uint64_t> parse_uint64(std::string_view text) {
    if (text.empty() || text.size() > 20) {
        return std::nullopt;
    }
    std::uint64_t v = 0;
    for (char c : text) {
        if (!is_digit(c)) {
            return std::nullopt;
        }
        std::uint64_t d = static_cast<std::uint64_t>(c - '0');
        if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) {
            return std::nullopt;
        }
        v = v * 10 + d;
    }
    return v;
}

std::string to_lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
        return static_cast<char>(std::tolower(c));
    });
    return out;
}

}  // namespace pgwarden::consul_test
