// Parsing a DCS or REST endpoint ("host", "host:port", "[v6]:port", "http://host:port/path")
// into host and port, with Boost.URL.
#pragma once

#include "dcs/errc.hpp"

#include <string>
#include <string_view>

namespace pgwarden::dcs {

struct HostPort {
    std::string host;  // IPv6 without brackets
    unsigned short port = 0;
};

// `text` is an authority (userinfo@host:port, the port optional: then `default_port`) or a URL
// with a scheme ("scheme://authority/..."). A bare IPv6 address without brackets is accepted too
// (it cannot carry a port). BadRequest: no host, a port that is not 1..65535, or not parsable.
Result<HostPort> parse_host_port(std::string_view text, unsigned short default_port);

}  // namespace pgwarden::dcs
