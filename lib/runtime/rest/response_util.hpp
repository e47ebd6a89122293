// Private to pgw_rest: the Response builders shared by the read-only handlers and the unsafe
// endpoints (Patroni's write_response / BaseHTTPRequestHandler.send_error).
#pragma once

#include "core/settings.hpp"
#include "runtime/rest/http_types.hpp"

#include <string>
#include <string_view>
#include <utility>

namespace pgwarden::rest {

// write_response(): a plain message; Patroni sends it as text/html.
inline Response message(int status, std::string_view text) {
    Response r;
    r.status = status;
    r.content_type = "text/html";
    r.body = text;
    return r;
}

inline Response json_response(int status, std::string body) {
    Response r;
    r.status = status;
    r.content_type = "application/json";
    r.body = std::move(body);
    return r;
}

// restapi.http_extra_headers, in their configured order.
inline void add_extra_headers(Response& r, const core::RestApiSettings& settings) {
    for (const auto& [k, v] : settings.http_extra_headers) {
        r.headers.emplace_back(k, v);
    }
}

// write_response() as the unsafe endpoints use it: plain text + restapi.http_extra_headers.
inline Response message(int status, std::string_view text, const core::RestApiSettings& settings) {
    Response r = message(status, text);
    add_extra_headers(r, settings);
    return r;
}

inline Response json_response(int status, std::string body, const core::RestApiSettings& settings) {
    Response r = json_response(status, std::move(body));
    add_extra_headers(r, settings);
    return r;
}

// A status line without body or headers (HEAD/OPTIONS health checks, /liveness, /readiness).
inline Response status_only(int status) {
    Response r;
    r.status = status;
    r.status_only = true;
    return r;
}

// Python's BaseHTTPRequestHandler.send_error(code, msg) page (Python 3.11); no extra headers.
// `msg` defaults to the status phrase. A code not listed here is answered as 503.
inline Response error_page(int code, std::string_view msg = {}) {
    std::string_view phrase;
    std::string_view explain;
    switch (code) {
        case 400:
            phrase = "Bad Request";
            explain = "Bad request syntax or unsupported method";
            break;
        case 409:
            phrase = "Conflict";
            explain = "Request conflict";
            break;
        case 411:
            phrase = "Length Required";
            explain = "Client must specify Content-Length";
            break;
        case 501:
            phrase = "Not Implemented";
            explain = "Server does not support this operation";
            break;
        case 502:
            phrase = "Bad Gateway";
            explain = "Invalid responses from another server/proxy";
            break;
        default:
            code = 503;
            phrase = "Service Unavailable";
            explain = "The server cannot process the request due to a high load";
            break;
    }
    if (msg.empty()) {
        msg = phrase;
    }
    std::string escaped;  // html.escape(quote=False)
    for (char c : msg) {
        switch (c) {
            case '&':
                escaped += "&amp;";
                break;
            case '<':
                escaped += "&lt;";
                break;
            case '>':
                escaped += "&gt;";
                break;
            default:
                escaped += c;
        }
    }
    const std::string c = std::to_string(code);
    Response r;
    r.status = code;
    r.content_type = "text/html;charset=utf-8";
    r.body =
        "<!DOCTYPE HTML>\n<html lang=\"en\">\n    <head>\n        <meta charset=\"utf-8\">\n"
        "        <title>Error response</title>\n    </head>\n    <body>\n"
        "        <h1>Error response</h1>\n        <p>Error code: " +
        c + "</p>\n        <p>Message: " + escaped +
        ".</p>\n        <p>Error code explanation: " + c + " - " + std::string(explain) +
        ".</p>\n    </body>\n</html>\n";
    return r;
}

}  // namespace pgwarden::rest
