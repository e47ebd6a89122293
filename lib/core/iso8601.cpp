// ISO 8601 parsing and formatting on the proleptic Gregorian calendar (no libc time zone state).
#include "core/iso8601.hpp"

#include <cstdio>

namespace pgwarden::core {
namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

std::string_view strip(std::string_view s) {
    while (!s.empty() &&
           (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r')) {
        s.remove_prefix(1);
    }
    while (!s.empty() &&
           (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
        s.remove_suffix(1);
    }
    return s;
}

bool is_leap(int y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int days_in_month(int y, int m) {
    static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

// Reads exactly n digits at s[pos]; advances pos.
std::optional<int> digits(std::string_view s, std::size_t& pos, std::size_t n) {
    if (pos + n > s.size()) {
        return std::nullopt;
    }
    int v = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (!is_digit(s[pos + i])) {
            return std::nullopt;
        }
        v = v * 10 + (s[pos + i] - '0');
    }
    pos += n;
    return v;
}

}  // namespace

std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

std::int64_t IsoTimestamp::epoch_seconds() const noexcept {
    const std::int64_t days =
        days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
    return days * 86400 + hour * 3600 + minute * 60 + second -
           static_cast<std::int64_t>(offset_minutes.value_or(0)) * 60;
}

std::optional<IsoTimestamp> parse_iso8601(std::string_view text) noexcept {
    const std::string_view s = strip(text);
    IsoTimestamp ts;
    std::size_t pos = 0;
    auto expect = [&](char c) {
        if (pos < s.size() && s[pos] == c) {
            ++pos;
            return true;
        }
        return false;
    };
    const auto year = digits(s, pos, 4);
    if (!year || !expect('-')) {
        return std::nullopt;
    }
    const auto month = digits(s, pos, 2);
    if (!month || !expect('-')) {
        return std::nullopt;
    }
    const auto day = digits(s, pos, 2);
    if (!day || *year < 1 || *month < 1 || *month > 12 || *day < 1 ||
        *day > days_in_month(*year, *month)) {
        return std::nullopt;
    }
    ts.year = *year;
    ts.month = *month;
    ts.day = *day;
    if (pos < s.size() && (s[pos] == 'T' || s[pos] == 't' || s[pos] == ' ')) {
        ++pos;
        const auto hour = digits(s, pos, 2);
        if (!hour || !expect(':')) {
            return std::nullopt;
        }
        const auto minute = digits(s, pos, 2);
        if (!minute || *hour > 23 || *minute > 59) {
            return std::nullopt;
        }
        ts.hour = *hour;
        ts.minute = *minute;
        if (expect(':')) {
            const auto second = digits(s, pos, 2);
            if (!second || *second > 59) {
                return std::nullopt;
            }
            ts.second = *second;
            if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
                ++pos;
                std::size_t n = 0;
                int micro = 0;
                while (pos < s.size() && is_digit(s[pos])) {
                    if (n < 6) {
                        micro = micro * 10 + (s[pos] - '0');
                    }
                    ++n;
                    ++pos;
                }
                if (n == 0 || n > 9) {
                    return std::nullopt;
                }
                for (std::size_t k = n; k < 6; ++k) {
                    micro *= 10;
                }
                ts.microsecond = micro;
            }
        }
        if (pos < s.size()) {
            if (s[pos] == 'Z' || s[pos] == 'z') {
                ++pos;
                ts.offset_minutes = 0;
            } else if (s[pos] == '+' || s[pos] == '-') {
                const int sign = s[pos] == '-' ? -1 : 1;
                ++pos;
                const auto oh = digits(s, pos, 2);
                if (!oh) {
                    return std::nullopt;
                }
                int om = 0;
                if (pos < s.size()) {
                    expect(':');
                    const auto m = digits(s, pos, 2);
                    if (!m || *m > 59) {
                        return std::nullopt;
                    }
                    om = *m;
                }
                if (*oh > 23) {
                    return std::nullopt;
                }
                ts.offset_minutes = sign * (*oh * 60 + om);
            }
        }
    }
    if (pos != s.size()) {
        return std::nullopt;
    }
    return ts;
}

std::string format_iso8601(const IsoTimestamp& ts) {
    char buf[64];
    std::snprintf(buf,
                  sizeof buf,
                  "%04d-%02d-%02dT%02d:%02d:%02d",
                  ts.year,
                  ts.month,
                  ts.day,
                  ts.hour,
                  ts.minute,
                  ts.second);
    std::string out = buf;
    if (ts.microsecond != 0) {
        std::snprintf(buf, sizeof buf, ".%06d", ts.microsecond);
        out += buf;
    }
    if (ts.offset_minutes) {
        const int off = *ts.offset_minutes;
        const int a = off < 0 ? -off : off;
        std::snprintf(buf, sizeof buf, "%c%02d:%02d", off < 0 ? '-' : '+', a / 60, a % 60);
        out += buf;
    }
    return out;
}

std::optional<std::int64_t> parse_iso8601_ms(std::string_view text) noexcept {
    const auto ts = parse_iso8601(text);
    if (!ts || !ts->offset_minutes) {
        return std::nullopt;
    }
    return ts->epoch_seconds() * 1000 + ts->microsecond / 1000;
}

std::string format_iso8601_utc(std::int64_t epoch_ms) {
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
    // civil_from_days (Howard Hinnant)
    const std::int64_t z = days + 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    IsoTimestamp ts;
    ts.day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
    ts.month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
    ts.year = static_cast<int>(y + (ts.month <= 2 ? 1 : 0));
    ts.hour = static_cast<int>(rem / 3600);
    ts.minute = static_cast<int>(rem / 60 % 60);
    ts.second = static_cast<int>(rem % 60);
    ts.offset_minutes = 0;
    return format_iso8601(ts);
}

}  // namespace pgwarden::core
