#include "dcs/host_port.hpp"

#include <catch2/catch.hpp>

#include <string>

using pgwarden::dcs::parse_host_port;

namespace {

struct Case {
    const char* text;
    unsigned short default_port;
    const char* host;
    unsigned short port;
};

void check_parses(const Case& c) {
    INFO(c.text);
    auto hp = parse_host_port(c.text, c.default_port);
    REQUIRE(hp.has_value());
    CHECK(hp->host == c.host);
    CHECK(hp->port == c.port);
}

}  // namespace

TEST_CASE("parse_host_port: host, host:port, url and IPv6 forms", "[dcs][http]") {
    for (const Case& c : {Case{"127.0.0.1:2379", 1, "127.0.0.1", 2379},
                          Case{"etcd1", 2379, "etcd1", 2379},
                          Case{"http://10.0.0.1:4001/", 2379, "10.0.0.1", 4001},
                          Case{"[::1]:2380", 2379, "::1", 2380}}) {
        check_parses(c);
    }
    CHECK_FALSE(parse_host_port("host:notaport", 2379).has_value());
    CHECK_FALSE(parse_host_port("host:70000", 2379).has_value());
    CHECK_FALSE(parse_host_port("", 2379).has_value());
}

TEST_CASE("parse_host_port: default ports, schemes, paths and userinfo", "[dcs][http]") {
    for (const Case& c : {
             Case{"[fe80::1]", 2379, "fe80::1", 2379},  // bracketed, no port
             Case{"::1", 2379, "::1", 2379},            // unbracketed: cannot carry a port
             Case{"https://etcd.example.com/v3/kv", 2379, "etcd.example.com", 2379},
             Case{"http://[2001:db8::5]:8008/patroni", 1, "2001:db8::5", 8008},
             Case{"etcd1:2379/ignored", 1, "etcd1", 2379},
             Case{"etcd1:", 2379, "etcd1", 2379},  // "host:" keeps the default
             Case{"http://user:secret@10.0.0.2:2379", 1, "10.0.0.2", 2379},
             Case{"h:65535", 1, "h", 65535},
         }) {
        check_parses(c);
    }
    for (const char* bad : {"h:0", "[::1", "[::1]x", "http://", ":2379", "http://h:99999/"}) {
        INFO(bad);
        CHECK_FALSE(parse_host_port(bad, 2379).has_value());
    }
}
