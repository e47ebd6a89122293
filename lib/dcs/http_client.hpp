// A small async HTTP/1.1 client for one endpoint (host, port), shared by the DCS backends
// (etcd v3 JSON gateway, Consul). Plain HTTP, or HTTPS with TlsOptions (Consul's scheme https,
// verify, cacert, cert, key); Beast and OpenSSL stay inside http_client.cpp.
//
// * request(): one request/response with a deadline; idle keep-alive connections are reused
//   and a reused connection that the server closed meanwhile is retried once on a fresh one.
// * stream(): a long-lived response (etcd watch, Consul blocking reads are unary) read
//   incrementally; every newline-delimited line of the body is passed to `on_line`.
//
// Every connection has TCP keepalive and a TCP user timeout (about 5 s in all), so that a server
// that vanished without closing (half-open TCP) fails a stream or request within seconds.
//
// Errors: connect/read/write failures and TLS failures (handshake, certificate verification,
// unreadable cacert/cert/key; each logged with its reason) -> Errc::Unavailable, deadline ->
// Errc::Timeout, cancel()/destruction -> Errc::Cancelled. HTTP error statuses are NOT errors here:
// the caller gets the status and body and decides (the DCS bodies carry the real error codes).
//
// Coroutines keep the client's state alive by themselves, so destroying an HttpClient while a
// request or stream is in flight is safe (it is cancelled).
#pragma once

#include "dcs/errc.hpp"
#include "dcs/host_port.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgwarden::dcs {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
    unsigned status = 0;
    std::string body;
    HttpHeaders headers;  // as received (names in the server's spelling)

    // Case-insensitive header lookup; "" when absent.
    std::string header(std::string_view name) const;
};

// TLS for an HttpClient. With `verify` the server certificate must chain to `cacert` (the
// system's default CA paths when empty) and match `server_name` (host name or IP address;
// the client's host when empty), which is also sent as SNI unless it is an IP address.
// `cert` + `key` present a client certificate (PEM files).
struct TlsOptions {
    bool enabled = false;
    bool verify = true;
    std::string cacert;
    std::string cert;
    std::string key;
    std::string server_name;
};

class HttpClient {
public:
    // Called for every complete line of a streamed body (without the trailing '\n'; a final
    // unterminated line is delivered at the end). Return false to stop the stream.
    using LineHandler = std::function<bool(std::string_view line)>;

    HttpClient(boost::asio::any_io_executor executor, std::string host, unsigned short port);
    // HTTPS when tls.enabled (the files are loaded here; a failure is logged and every request
    // then ends with Errc::Unavailable).
    HttpClient(boost::asio::any_io_executor executor,
               std::string host,
               unsigned short port,
               TlsOptions tls);
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    const std::string& host() const;
    unsigned short port() const;

    // `timeout` bounds the whole exchange (resolve, connect, write, read).
    boost::asio::awaitable<Result<HttpResponse>> request(std::string method,
                                                         std::string target,
                                                         std::string body,
                                                         HttpHeaders headers,
                                                         std::chrono::milliseconds timeout);

    // Opens a dedicated connection, sends the request and reads the response body as it
    // arrives. `connect_timeout` bounds connect + write + reading the response header; the body
    // is read without a deadline (watch streams are idle for long periods) until the server
    // ends it, `on_line` returns false, or cancel()/cancel_streams() is called.
    // Returns the HTTP status when the stream ended normally (non-2xx bodies are passed to
    // `on_line` too).
    boost::asio::awaitable<Result<unsigned>> stream(std::string method,
                                                    std::string target,
                                                    std::string body,
                                                    HttpHeaders headers,
                                                    LineHandler on_line,
                                                    std::chrono::milliseconds connect_timeout);

    // Closes the connections of all running streams (they end with Errc::Cancelled).
    void cancel_streams();
    // Closes everything: idle connections, in-flight requests and streams.
    void cancel();

    struct Impl;

private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace pgwarden::dcs
