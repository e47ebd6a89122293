// Small synchronous network helpers for tests (plain POSIX sockets).
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace pgwarden::testing {

// A port that was free a moment ago on 127.0.0.1 (bind to port 0, read it, close).
unsigned short free_port();

struct HttpResult {
    int status = 0;  // 0 = connection failure / timeout / unparsable reply
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string header(const std::string& name) const;  // case-insensitive, "" when absent
};

// One HTTP/1.1 request with "Connection: close"; handles Content-Length, chunked and
// read-to-EOF bodies.
HttpResult http_request(const std::string& host,
                        unsigned short port,
                        const std::string& method,
                        const std::string& target,
                        const std::string& body = "",
                        const std::vector<std::pair<std::string, std::string>>& headers = {},
                        std::chrono::milliseconds timeout = std::chrono::seconds(5));

// Polls `pred` every `interval` until it returns true or `timeout` passes.
bool wait_until(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = std::chrono::milliseconds(50));

}  // namespace pgwarden::testing
