// The REST API of one node as pure functions: (request, published NodeStatus, injected time) ->
// response. No sockets, no clocks, no logging; server.cpp is the thin Beast layer around handle().
// Contract: /work/shared/spec/patroni-rest-api.md (Patroni 4.1.4).
#pragma once

#include "core/cluster.hpp"
#include "core/node_status.hpp"
#include "core/settings.hpp"
#include "runtime/rest/http_types.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace pgwarden::rest {

// Answers every request. GET/HEAD/OPTIONS are served from `status`; any other method goes to
// handle_unsafe_not_supported(settings, status.cluster). `settings` supplies the access rules and
// restapi.http_extra_headers (added to normal responses, as Patroni's write_response does).
// Date and Server headers are the transport's business (server.cpp).
Response handle(const Request& req,
                const core::NodeStatus& status,
                const Context& ctx,
                const core::RestApiSettings& settings = {});

// POST/PUT/PATCH/DELETE (and unknown methods): 501 for (method, path) pairs Patroni has no
// handler for; for its unsafe endpoints, check_access() first, then 503 "not supported by this
// pgwarden version yet". `cluster` feeds restapi.allowlist_include_members (may be null).
Response handle_unsafe_not_supported(const Request& req,
                                     const core::RestApiSettings& settings = {},
                                     const core::Cluster* cluster = nullptr);

// Patroni's RestApiServer.check_access (spec 1.1): IP allowlist (403 "Access is denied"), then
// basic auth (401 "no auth header received" / "not authenticated" with
// WWW-Authenticate: Basic realm="Patroni"). nullopt = access granted.
// Allowlist entries must be IP addresses or CIDR networks (host names are resolved by the
// config loader; an unresolved name matches nothing). With allowlist_include_members, the hosts
// of the members' api_url in `cluster` are allowed too when they are IP literals.
// TLS client certificates are not checked here: pgwarden's REST server has no TLS yet.
std::optional<Response> check_access(const Request& req,
                                     const core::RestApiSettings& settings,
                                     const core::Cluster* cluster = nullptr,
                                     bool allowlist_check_members = true);

// Patroni's parse_int(value, 'B'): "1024", "1MB", "1.5kB", "0x400kB"; units case-sensitive
// B/kB/MB/GB/TB, base 1024. nullopt when unparsable (e.g. "10mb").
std::optional<std::int64_t> parse_bytes(std::string_view value);

// urllib.parse.parse_qs semantics: '&'-separated, '+' and %XX decoded, blank values dropped,
// first occurrence of a key wins.
std::map<std::string, std::string> parse_query(std::string_view query);

// RFC 7231 IMF-fixdate for the Date header: "Sun, 06 Nov 1994 08:49:37 GMT".
std::string http_date(std::int64_t epoch_seconds);

}  // namespace pgwarden::rest
