// Private to pgw_rest: proleptic Gregorian calendar arithmetic (Howard Hinnant's algorithms),
// shared by the ISO 8601 parser, PostgreSQL timestamps and the HTTP Date header.
#pragma once

#include <cstdint>

namespace pgwarden::rest {

// Days since 1970-01-01 of year y, month m (1-12), day d (1-31).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d);

}  // namespace pgwarden::rest
