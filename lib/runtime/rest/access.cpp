// Access control of the unsafe endpoints (Patroni's check_access): the IP/CIDR allowlist with
// allowlist_include_members, and HTTP basic auth compared in constant time (OpenSSL).
#include "runtime/rest/handlers.hpp"
#include "runtime/rest/request_target.hpp"
#include "runtime/rest/response_util.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <charconv>
#include <cstring>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <vector>

namespace pgwarden::rest {

namespace {

struct IpNet {
    int family = 0;  // AF_INET / AF_INET6
    std::array<unsigned char, 16> addr{};
    int prefix = 0;
};

std::optional<IpNet> parse_ip(const std::string& text) {
    IpNet n;
    std::string host = text;
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    if (inet_pton(AF_INET, host.c_str(), n.addr.data()) == 1) {
        n.family = AF_INET;
        n.prefix = 32;
        return n;
    }
    if (inet_pton(AF_INET6, host.c_str(), n.addr.data()) == 1) {
        // IPv4-mapped IPv6 (::ffff:a.b.c.d) compares as IPv4
        static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (std::memcmp(n.addr.data(), kMapped, 12) == 0) {
            std::memmove(n.addr.data(), n.addr.data() + 12, 4);
            std::fill(n.addr.begin() + 4, n.addr.end(), 0);
            n.family = AF_INET;
            n.prefix = 32;
            return n;
        }
        n.family = AF_INET6;
        n.prefix = 128;
        return n;
    }
    return std::nullopt;
}

// "10.0.0.0/8", "::1/128", "10.1.2.3" (ip_network(..., strict=False))
std::optional<IpNet> parse_net(const std::string& text) {
    const auto slash = text.find('/');
    auto net = parse_ip(text.substr(0, slash));
    if (!net) {
        return std::nullopt;
    }
    if (slash != std::string::npos) {
        int prefix = -1;
        const std::string p = text.substr(slash + 1);
        if (std::from_chars(p.data(), p.data() + p.size(), prefix).ec != std::errc{} ||
            prefix < 0 || prefix > net->prefix) {
            return std::nullopt;
        }
        net->prefix = prefix;
    }
    return net;
}

bool net_contains(const IpNet& net, const IpNet& ip) {
    if (net.family != ip.family) {
        return false;
    }
    const int full = net.prefix / 8;
    if (std::memcmp(net.addr.data(), ip.addr.data(), static_cast<std::size_t>(full)) != 0) {
        return false;
    }
    const int bits = net.prefix % 8;
    if (bits == 0) {
        return true;
    }
    const auto mask = static_cast<unsigned char>(0xFF << (8 - bits));
    return (net.addr[full] & mask) == (ip.addr[full] & mask);
}

// base64.b64encode(text) (OpenSSL's EVP_EncodeBlock: standard alphabet, '=' padding).
std::string base64(std::string_view text) {
    std::string out(4 * ((text.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(text.data()),
                                  static_cast<int>(text.size()));
    out.resize(static_cast<std::size_t>(std::max(n, 0)));
    return out;
}

// hmac.compare_digest: time depends only on the lengths.
bool constant_time_equal(std::string_view a, std::string_view b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

std::optional<Response> check_access(const Request& req,
                                     const core::RestApiSettings& settings,
                                     const core::Cluster* cluster,
                                     bool allowlist_check_members) {
    const bool check_members = allowlist_check_members && settings.allowlist_include_members;
    if (!settings.allowlist.empty() || check_members) {
        std::vector<IpNet> allowed;
        for (const auto& entry : settings.allowlist) {
            if (auto n = parse_net(entry)) {
                allowed.push_back(*n);
            }
        }
        if (check_members && cluster != nullptr) {
            for (const auto& m : cluster->members) {
                if (auto hp = url_host_port(m.api_url, std::nullopt)) {
                    if (auto n = parse_ip(hp->host)) {
                        allowed.push_back(*n);
                    }
                }
            }
        }
        const auto peer = parse_ip(req.peer_address);
        const bool ok = peer && std::any_of(allowed.begin(), allowed.end(), [&](const IpNet& n) {
                            return net_contains(n, *peer);
                        });
        if (!ok) {
            Response r = message(403, "Access is denied");
            add_extra_headers(r, settings);
            return r;
        }
    }
    if (settings.authentication) {
        const auto it = req.headers.find("authorization");
        std::optional<std::string_view> reason;
        if (it == req.headers.end()) {
            reason = "no auth header received";
        } else {
            const std::string expected =
                base64(settings.authentication->username + ":" + settings.authentication->password);
            const std::string_view header = it->second;
            if (header.substr(0, 6) != "Basic " ||
                !constant_time_equal(header.substr(6), expected)) {
                reason = "not authenticated";
            }
        }
        if (reason) {
            Response r = message(401, *reason);
            r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"Patroni\"");
            add_extra_headers(r, settings);
            return r;
        }
    }
    return std::nullopt;
}

}  // namespace pgwarden::rest
