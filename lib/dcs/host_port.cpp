#include "dcs/host_port.hpp"

#include <boost/url/authority_view.hpp>
#include <boost/url/ipv6_address.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <charconv>

namespace pgwarden::dcs {

namespace urls = boost::urls;

Result<HostPort> parse_host_port(std::string_view text, unsigned short default_port) {
    urls::authority_view authority;
    if (text.find("://") != std::string_view::npos) {
        auto url = urls::parse_uri(text);
        if (!url || !url->has_authority()) {
            return Errc::BadRequest;
        }
        authority = url->authority();
    } else {
        // A bare authority; anything from the first '/' on is a path and ignored.
        text = text.substr(0, text.find('/'));
        if (urls::parse_ipv6_address(text)) {
            return HostPort{std::string(text), default_port};
        }
        auto parsed = urls::parse_authority(text);
        if (!parsed) {
            return Errc::BadRequest;
        }
        authority = *parsed;
    }
    HostPort out;
    out.host = authority.host_address();
    out.port = default_port;
    const std::string_view port_text = authority.port();
    if (!port_text.empty()) {  // "host:" keeps the default port
        unsigned value = 0;
        auto [ptr, ec] =
            std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
        if (ec != std::errc{} || ptr != port_text.data() + port_text.size() || value == 0 ||
            value > 65535) {
            return Errc::BadRequest;
        }
        out.port = static_cast<unsigned short>(value);
    }
    if (out.host.empty()) {
        return Errc::BadRequest;
    }
    return out;
}

}  // namespace pgwarden::dcs
