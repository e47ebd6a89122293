// ISO 8601 timestamps as Patroni writes and accepts them (scheduled_at, schedule, history), and
// the calendar arithmetic under them: the one parser and formatter of the daemon.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgwarden::core {

// Days since 1970-01-01 of year y, month m (1-12), day d (1-31) (Howard Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept;

// A timestamp parsed by parse_iso8601.
struct IsoTimestamp {
    int year = 1970;
    int month = 1;
    int day = 1;
    int hour = 0;
    int minute = 0;
    int second = 0;
    int microsecond = 0;
    std::optional<int> offset_minutes;  // nullopt: no timezone given

    // Seconds since the epoch in UTC (the local time itself when there is no timezone).
    std::int64_t epoch_seconds() const noexcept;
};

// Strict ISO 8601 / RFC 3339 subset, what patronictl sends (Python's isoformat()) and what an
// operator types: YYYY-MM-DD, optionally followed by 'T', 't' or ' ' and HH:MM[:SS[.f...]]
// (fraction '.' or ',' 1-9 digits, truncated to microseconds), optionally followed by 'Z', 'z',
// +HH, +HH:MM or +HHMM (also '-'). Surrounding whitespace is ignored. Field ranges are checked
// (month, day of month with leap years, 23:59:59, offset below 24 h). nullopt when unparsable.
std::optional<IsoTimestamp> parse_iso8601(std::string_view text) noexcept;

// Python's datetime.isoformat(): "2024-08-28T19:39:26+02:00", ".ffffff" only when non-zero,
// no offset suffix when there is no timezone.
std::string format_iso8601(const IsoTimestamp& ts);

// Epoch milliseconds of a timestamp WITH a timezone (Patroni refuses naive times for
// scheduled_at and schedule); nullopt when unparsable or naive.
std::optional<std::int64_t> parse_iso8601_ms(std::string_view text) noexcept;

// Epoch milliseconds as "2026-01-01T09:00:00+00:00" (history rows).
std::string format_iso8601_utc(std::int64_t epoch_ms);

}  // namespace pgwarden::core
