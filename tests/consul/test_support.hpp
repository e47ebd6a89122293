// Test harness for the Consul API test server: child process control, a small synchronous HTTP
// client (Beast) and a tiny HTTP target for health checks. Used only by tests/consul/.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <thread>
#include <utility>
#include <vector>

namespace pgwarden::consul_test::testing {

using namespace std::chrono_literals;
using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
    unsigned status = 0;
    std::string body;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string transport_error;                 // non-empty when no response was received

    bool has_header(std::string_view name) const;
    std::string header(std::string_view name) const;
    std::uint64_t index() const;  // X-Consul-Index as a number (0 when absent)
    nlohmann::json json() const;  // throws on invalid JSON
};

// One request on a fresh connection; never throws on network errors (see transport_error).
HttpResponse http_request(std::uint16_t port,
                          std::string method,
                          std::string target,
                          std::string body = {},
                          Headers headers = {},
                          std::chrono::milliseconds timeout = 20s);

// Polls `pred` every `poll` until it is true or `timeout` elapsed; returns the last result.
bool wait_until(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll = 20ms);

// Runs pgw-consul-test-server on 127.0.0.1:0 as a child process; SIGTERM + waitpid on exit.
class ConsulServerProcess {
public:
    explicit ConsulServerProcess(std::vector<std::string> extra_args = {});
    ~ConsulServerProcess();
    ConsulServerProcess(const ConsulServerProcess&) = delete;
    ConsulServerProcess& operator=(const ConsulServerProcess&) = delete;

    std::uint16_t port() const { return port_; }
    std::string url(std::string_view path) const;

    HttpResponse get(std::string target, Headers headers = {}) const;
    HttpResponse put(std::string target, std::string body = {}, Headers headers = {}) const;
    HttpResponse del(std::string target, Headers headers = {}) const;

    // Creates a session from a JSON body and returns its ID; throws if creation fails.
    std::string create_session(const nlohmann::json& body) const;
    // Sets a fault mode through the test control endpoint; throws on failure.
    void fault(std::string_view mode) const;
    // Returns true when SIGTERM stopped the child with exit status 0 within the deadline.
    bool stop();

private:
    pid_t pid_ = -1;
    std::uint16_t port_ = 0;
};

// A loopback HTTP server on its own thread answering every request with a settable status.
class HttpTarget {
public:
    HttpTarget();
    ~HttpTarget();
    HttpTarget(const HttpTarget&) = delete;
    HttpTarget& operator=(const HttpTarget&) = delete;

    std::uint16_t port() const { return port_; }
    std::string url(std::string_view path) const;
    void set_status(unsigned status) { status_ = status; }
    int hits() const { return hits_; }
    std::string last_method() const;
    std::string last_target() const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
    std::uint16_t port_ = 0;
    std::atomic<unsigned> status_{200};
    std::atomic<int> hits_{0};
    mutable std::mutex mutex_;
    std::string last_method_;
    std::string last_target_;
    std::thread thread_;

    friend struct Impl;
};

// A loopback port on which nothing listens (bound once, then closed).
std::uint16_t closed_port();

}  // namespace pgwarden::consul_test::testing
