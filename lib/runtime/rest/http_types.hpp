// The REST API's value types: a request as received, the response to send, the injected time.
// Shared by every handler file and the Beast server; no behaviour here.
#pragma once

#include "core/node_status.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace pgwarden::rest {

struct Request {
    std::string method;                          // "GET", "HEAD", ...
    std::string target;                          // path?query, as received
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;
    bool has_content_length = false;
    std::string peer_address;  // client IP (IPv4-mapped IPv6 already unwrapped)
};

struct Response {
    int status = 200;
    std::string content_type;  // empty: no Content-Type header
    std::string body;
    // Status-only answer (HEAD, OPTIONS, /liveness, /readiness): no body and no headers besides
    // Content-Length: 0 (Patroni writes the bare status line).
    bool status_only = false;
    std::vector<std::pair<std::string, std::string>> headers;  // extra headers (Date, Server, ...)
};

// Time injected by the caller: monotonic ms for leases/heartbeats, epoch seconds for Date.
struct Context {
    core::MonoMs now = 0;
    std::int64_t epoch_now = 0;
};

}  // namespace pgwarden::rest
