// The HTTP Date header (ISO 8601 and the calendar arithmetic are core/iso8601.hpp).
#include "runtime/rest/calendar.hpp"

#include "runtime/rest/handlers.hpp"
#include "runtime/rest/unsafe.hpp"

#include <cstdio>

namespace pgwarden::rest {

std::string http_date(std::int64_t epoch_seconds) {
    static constexpr const char* kDays[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
    static constexpr const char* kMonths[] = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::int64_t days = epoch_seconds / 86400;
    std::int64_t secs = epoch_seconds % 86400;
    if (secs < 0) {
        secs += 86400;
        days -= 1;
    }
    const auto weekday = static_cast<int>(((days % 7) + 7) % 7);
    // civil_from_days (Howard Hinnant)
    const std::int64_t z = days + 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2 ? 1 : 0;
    char buf[64];
    std::snprintf(buf,
                  sizeof buf,
                  "%s, %02u %s %04lld %02d:%02d:%02d GMT",
                  kDays[weekday],
                  d,
                  kMonths[m - 1],
                  static_cast<long long>(y),
                  static_cast<int>(secs / 3600),
                  static_cast<int>((secs / 60) % 60),
                  static_cast<int>(secs % 60));
    return buf;
}

}  // namespace pgwarden::rest
