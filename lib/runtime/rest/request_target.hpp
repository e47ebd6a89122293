// Private to pgw_rest: the request target split as Patroni's urlparse/parse_qs see it, and the
// host/port of a member's URL (for /cluster and the member allowlist).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace pgwarden::rest {

struct Target {
    std::string path;  // raw (not percent-decoded), as Patroni's urlparse(...).path
    std::map<std::string, std::string> query;
    std::string first_segment;  // path.lstrip('/').split('/')[0]
};

Target split_target(std::string_view target);

std::optional<std::string> query_value(const Target& t, const std::string& key);

struct HostPort {
    std::string host;  // lower-case
    std::optional<int> port;
};

// urlparse(url).hostname / .port; `default_port` when the URL has none (5432 for conn_url, as
// Member.conn_kwargs). nullopt when `url` has no scheme.
std::optional<HostPort> url_host_port(std::string_view url, std::optional<int> default_port);

}  // namespace pgwarden::rest
