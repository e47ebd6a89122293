// core/iso8601: the one ISO 8601 parser (scheduled switchovers and restarts, history rows).
#include "core/iso8601.hpp"

#include <catch2/catch.hpp>

using namespace pgwarden::core;

TEST_CASE("iso8601: epoch milliseconds need a timezone", "[core][iso8601]") {
    CHECK(parse_iso8601_ms("1970-01-01T00:00:00Z") == 0);
    CHECK(parse_iso8601_ms("2024-08-28T21:39:26.5+02:00") == 1724873966500);
    CHECK(parse_iso8601_ms("2024-08-28 19:39+00:00") == 1724873940000);
    CHECK_FALSE(parse_iso8601_ms("2024-08-28T19:39:26"));  // naive: Patroni refuses it
    CHECK_FALSE(parse_iso8601_ms("2024-02-30T00:00:00Z"));
    CHECK_FALSE(parse_iso8601_ms("soon"));
}

TEST_CASE("iso8601: UTC formatting round-trips", "[core][iso8601]") {
    CHECK(format_iso8601_utc(0) == "1970-01-01T00:00:00+00:00");
    CHECK(format_iso8601_utc(1724873966000) == "2024-08-28T19:39:26+00:00");
    CHECK(format_iso8601_utc(951868800000) == "2000-03-01T00:00:00+00:00");
    for (std::int64_t ms : {0LL, 1724873966000LL, 4102444799000LL, 951782400000LL}) {
        CHECK(parse_iso8601_ms(format_iso8601_utc(ms)) == ms);
    }
}
