// ISO 8601 parsing and formatting on the proleptic Gregorian calendar (no libc time zone state).
#include "core/iso8601.hpp"

#include <cstdio>

namespace pgwarden::core {
namespace {

// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Cursor {
    std::string_view s;
    std::size_t i = 0;
    bool digits(int n, int* out) {
        int v = 0;
        for (int k = 0; k < n; ++k) {
            if (i >= s.size() || s[i] < '0' || s[i] > '9') {
                return false;
            }
            v = v * 10 + (s[i++] - '0');
        }
        *out = v;
        return true;
    }
    bool eat(char c) {
        if (i < s.size() && s[i] == c) {
            ++i;
            return true;
        }
        return false;
    }
};

}  // namespace

std::optional<std::int64_t> parse_iso8601_ms(std::string_view text) noexcept {
    Cursor c{text};
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    if (!c.digits(4, &y) || !c.eat('-') || !c.digits(2, &mo) || !c.eat('-') || !c.digits(2, &d)) {
        return std::nullopt;
    }
    if (!c.eat('T') && !c.eat('t') && !c.eat(' ')) {
        return std::nullopt;
    }
    if (!c.digits(2, &h) || !c.eat(':') || !c.digits(2, &mi)) {
        return std::nullopt;
    }
    std::int64_t ms = 0;
    if (c.eat(':')) {
        if (!c.digits(2, &sec)) {
            return std::nullopt;
        }
        if (c.eat('.') || c.eat(',')) {
            int scale = 100;
            bool any = false;
            while (c.i < text.size() && text[c.i] >= '0' && text[c.i] <= '9') {
                ms += (text[c.i++] - '0') * scale;
                scale /= 10;
                any = true;
            }
            if (!any) {
                return std::nullopt;
            }
        }
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return std::nullopt;
    }
    int offset_min = 0;
    if (c.eat('Z') || c.eat('z')) {
        offset_min = 0;
    } else if (c.i < text.size() && (text[c.i] == '+' || text[c.i] == '-')) {
        const int sign = text[c.i++] == '-' ? -1 : 1;
        int th = 0, tm = 0;
        if (!c.digits(2, &th)) {
            return std::nullopt;
        }
        c.eat(':');
        if (c.i < text.size() && !c.digits(2, &tm)) {
            return std::nullopt;
        }
        if (th > 23 || tm > 59) {
            return std::nullopt;
        }
        offset_min = sign * (th * 60 + tm);
    } else {
        return std::nullopt;  // Patroni requires the timezone
    }
    if (c.i != text.size()) {
        return std::nullopt;
    }
    const std::int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
    const std::int64_t seconds = days * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    return seconds * 1000 + ms;
}

std::string format_iso8601(std::int64_t epoch_ms) {
    std::int64_t secs = epoch_ms / 1000;
    if (epoch_ms < 0 && epoch_ms % 1000 != 0) {
        --secs;
    }
    std::int64_t days = secs / 86400;
    std::int64_t rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        --days;
    }
    // civil_from_days (H. Hinnant)
    const std::int64_t z = days + 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    char buf[40];
    std::snprintf(buf,
                  sizeof buf,
                  "%04lld-%02u-%02uT%02lld:%02lld:%02lld+00:00",
                  static_cast<long long>(y + (m <= 2)),
                  m,
                  d,
                  static_cast<long long>(rem / 3600),
                  static_cast<long long>(rem / 60 % 60),
                  static_cast<long long>(rem % 60));
    return buf;
}

}  // namespace pgwarden::core
