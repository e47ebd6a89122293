#include "dcs/http_client.hpp"

#include <catch2/catch.hpp>

using pgwarden::dcs::parse_host_port;

TEST_CASE("parse_host_port: host, host:port, url and IPv6 forms", "[dcs][http]") {
    auto a = parse_host_port("127.0.0.1:2379", 1);
    REQUIRE(a.has_value());
    CHECK(a->host == "127.0.0.1");
    CHECK(a->port == 2379);

    auto b = parse_host_port("etcd1", 2379);
    REQUIRE(b.has_value());
    CHECK(b->host == "etcd1");
    CHECK(b->port == 2379);

    auto c = parse_host_port("http://10.0.0.1:4001/", 2379);
    REQUIRE(c.has_value());
    CHECK(c->host == "10.0.0.1");
    CHECK(c->port == 4001);

    auto d = parse_host_port("[::1]:2380", 2379);
    REQUIRE(d.has_value());
    CHECK(d->host == "::1");
    CHECK(d->port == 2380);

    CHECK_FALSE(parse_host_port("host:notaport", 2379).has_value());
    CHECK_FALSE(parse_host_port("host:70000", 2379).has_value());
    CHECK_FALSE(parse_host_port("", 2379).has_value());
}
