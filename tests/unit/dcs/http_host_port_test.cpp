#include "dcs/host_port.hpp"

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

TEST_CASE("parse_host_port: default ports, schemes, paths and userinfo", "[dcs][http]") {
    auto v6 = parse_host_port("[fe80::1]", 2379);  // bracketed, no port
    REQUIRE(v6.has_value());
    CHECK(v6->host == "fe80::1");
    CHECK(v6->port == 2379);

    auto bare_v6 = parse_host_port("::1", 2379);  // unbracketed: cannot carry a port
    REQUIRE(bare_v6.has_value());
    CHECK(bare_v6->host == "::1");
    CHECK(bare_v6->port == 2379);

    auto https = parse_host_port("https://etcd.example.com/v3/kv", 2379);
    REQUIRE(https.has_value());
    CHECK(https->host == "etcd.example.com");
    CHECK(https->port == 2379);

    auto url_v6 = parse_host_port("http://[2001:db8::5]:8008/patroni", 8008);
    REQUIRE(url_v6.has_value());
    CHECK(url_v6->host == "2001:db8::5");
    CHECK(url_v6->port == 8008);

    auto path = parse_host_port("etcd1:2379/ignored", 1);
    REQUIRE(path.has_value());
    CHECK(path->host == "etcd1");
    CHECK(path->port == 2379);

    auto empty_port = parse_host_port("etcd1:", 2379);  // "host:" keeps the default
    REQUIRE(empty_port.has_value());
    CHECK(empty_port->port == 2379);

    auto user = parse_host_port("http://user:secret@10.0.0.2:2379", 1);
    REQUIRE(user.has_value());
    CHECK(user->host == "10.0.0.2");
    CHECK(user->port == 2379);

    auto max_port = parse_host_port("h:65535", 1);
    REQUIRE(max_port.has_value());
    CHECK(max_port->port == 65535);

    CHECK_FALSE(parse_host_port("h:0", 2379).has_value());
    CHECK_FALSE(parse_host_port("[::1", 2379).has_value());
    CHECK_FALSE(parse_host_port("[::1]x", 2379).has_value());
    CHECK_FALSE(parse_host_port("http://", 2379).has_value());
    CHECK_FALSE(parse_host_port(":2379", 2379).has_value());
    CHECK_FALSE(parse_host_port("http://h:99999/", 2379).has_value());
}
