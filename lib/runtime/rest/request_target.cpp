// Request-target and URL parsing for the REST API: path/query splitting (urlparse, parse_qs with
// %XX and '+' decoding) and the host/port of member URLs.
#include "runtime/rest/request_target.hpp"

#include "runtime/rest/handlers.hpp"
#include "runtime/rest/parse_util.hpp"

#include <charconv>

namespace pgwarden::rest {

namespace {

std::string url_unquote_plus(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '+') {
            out += ' ';
        } else if (c == '%' && i + 2 < s.size() && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
            out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace

Target split_target(std::string_view target) {
    target = strip_absolute_form(target);
    if (const auto hash = target.find('#'); hash != std::string_view::npos) {
        target = target.substr(0, hash);
    }
    Target t;
    const auto q = target.find('?');
    t.path = std::string(target.substr(0, q));
    if (q != std::string_view::npos) {
        t.query = parse_query(target.substr(q + 1));
    }
    t.first_segment = std::string(first_path_segment(t.path));
    return t;
}

std::optional<std::string> query_value(const Target& t, const std::string& key) {
    if (auto it = t.query.find(key); it != t.query.end()) {
        return it->second;
    }
    return std::nullopt;
}

std::map<std::string, std::string> parse_query(std::string_view query) {
    std::map<std::string, std::string> out;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        const auto eq = pair.find('=');
        if (eq == std::string_view::npos) {
            continue;  // no '=': dropped (keep_blank_values=False)
        }
        const std::string_view value = pair.substr(eq + 1);
        if (value.empty()) {
            continue;  // blank value dropped
        }
        out.emplace(url_unquote_plus(pair.substr(0, eq)), url_unquote_plus(value));
    }
    return out;
}

std::optional<HostPort> url_host_port(std::string_view url, std::optional<int> default_port) {
    const auto scheme = url.find("://");
    if (scheme == std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view netloc = url.substr(scheme + 3);
    netloc = netloc.substr(0, netloc.find_first_of("/?#"));
    if (const auto at = netloc.rfind('@'); at != std::string_view::npos) {
        netloc.remove_prefix(at + 1);
    }
    HostPort hp;
    std::string_view port_text;
    if (!netloc.empty() && netloc.front() == '[') {
        const auto close = netloc.find(']');
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        hp.host = std::string(netloc.substr(1, close - 1));
        const std::string_view after = netloc.substr(close + 1);
        if (!after.empty() && after.front() == ':') {
            port_text = after.substr(1);
        }
    } else {
        const auto colon = netloc.rfind(':');
        hp.host = std::string(netloc.substr(0, colon));
        if (colon != std::string_view::npos) {
            port_text = netloc.substr(colon + 1);
        }
    }
    hp.host = lower(std::move(hp.host));
    int port = 0;
    if (!port_text.empty() &&
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port).ec ==
            std::errc{}) {
        hp.port = port;
    } else {
        hp.port = default_port;
    }
    return hp;
}

}  // namespace pgwarden::rest
