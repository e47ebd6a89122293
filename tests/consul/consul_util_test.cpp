// Unit tests of the double's Go-compatible helpers (duration syntax, base64, query parsing).
#include "consul_util.hpp"

#include <catch2/catch.hpp>

using namespace pgwarden::consul_test;
using namespace std::chrono_literals;

TEST_CASE("consul util: Go duration parsing accepts Patroni's decimals and compound units",
          "[consul][unit]") {
    REQUIRE(parse_go_duration("15.0s").value == Nanos{15s});
    REQUIRE(parse_go_duration("0.001s").value == Nanos{1ms});
    REQUIRE(parse_go_duration("1m30s").value == Nanos{90s});
    REQUIRE(parse_go_duration("9.876543s").value == Nanos{9876543000});
    REQUIRE(parse_go_duration("0").value == Nanos{0});
    REQUIRE(parse_go_duration("20ns").value == Nanos{20});
    REQUIRE(parse_go_duration("1.5h").value == Nanos{90min});
    REQUIRE(parse_go_duration("3us").value == Nanos{3000});
    REQUIRE(parse_go_duration("3\xC2\xB5s").value == Nanos{3000});
    REQUIRE(parse_go_duration(".5s").value == Nanos{500ms});
    REQUIRE(parse_go_duration("-2s").value == Nanos{-2s});
    REQUIRE(parse_go_duration("15").error == "time: missing unit in duration \"15\"");
    REQUIRE(parse_go_duration("").error == "time: invalid duration \"\"");
    REQUIRE(parse_go_duration("1x").error == "time: unknown unit \"x\" in duration \"1x\"");
    REQUIRE_FALSE(parse_go_duration("s").value);
    REQUIRE_FALSE(parse_go_duration(".s").value);
}

TEST_CASE("consul util: Go duration formatting matches time.Duration.String", "[consul][unit]") {
    REQUIRE(format_go_duration(10s) == "10s");
    REQUIRE(format_go_duration(24h) == "24h0m0s");
    REQUIRE(format_go_duration(90s) == "1m30s");
    REQUIRE(format_go_duration(250ms) == "250ms");
    REQUIRE(format_go_duration(1500ms) == "1.5s");
    REQUIRE(format_go_duration(Nanos{0}) == "0s");
    REQUIRE(format_go_duration(Nanos{20}) == "20ns");
    REQUIRE(format_go_duration(Nanos{1500}) == "1.5\xC2\xB5s");
}

TEST_CASE("consul util: base64 uses padding and queries test flags by presence", "[consul][unit]") {
    REQUIRE(base64_encode("node1") == "bm9kZTE=");
    REQUIRE(base64_encode("a") == "YQ==");
    REQUIRE(base64_encode("") == "");
    auto q = Query::parse("recurse&consistent=&index=12&tag=a&tag=b&x=%2F+y");
    REQUIRE(q);
    REQUIRE(q->has("recurse"));
    REQUIRE(q->has("consistent"));
    REQUIRE(q->get("index") == "12");
    REQUIRE(q->all("tag") == std::vector<std::string>{"a", "b"});
    REQUIRE(q->get("x") == "/ y");
    REQUIRE_FALSE(Query::parse("a=%zz"));
    REQUIRE(parse_uint64("18446744073709551615") == 18446744073709551615ULL);
    REQUIRE_FALSE(parse_uint64("18446744073709551616"));
    REQUIRE_FALSE(parse_uint64("-1"));
}
