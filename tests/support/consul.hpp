// A Consul for tests: the project's Consul API test server (tests/consul), or — when a real
// `consul` binary is on PATH — `consul agent -dev` on loopback. Both stopped by PID.
#pragma once

#include "support/process.hpp"
#include "support/temp_dir.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace pgwarden::testing {

enum class ConsulKind { TestServer, RealAgent };

struct ConsulOptions {
    ConsulKind kind = ConsulKind::TestServer;
    // Test server only: lets tests use small TTLs (real Consul's minimum is 10 s).
    std::string session_ttl_min = "10s";
    std::string acl_master_token;  // non-empty: ACLs on with default policy deny
    std::vector<std::string> extra_args;
    // Test server only (§13.50): with tls_cert + tls_key an HTTPS listener is opened too (see
    // https_port()); tls_verify_incoming requires client certificates signed by tls_ca.
    std::string tls_cert;
    std::string tls_key;
    std::string tls_ca;
    bool tls_verify_incoming = false;
    std::chrono::milliseconds start_timeout = std::chrono::seconds(30);
};

class ConsulServer {
public:
    explicit ConsulServer(ConsulOptions options = {});  // starts and waits until it answers
    ~ConsulServer();
    ConsulServer(const ConsulServer&) = delete;
    ConsulServer& operator=(const ConsulServer&) = delete;

    unsigned short port() const { return port_; }
    unsigned short https_port() const { return https_port_; }  // 0 without an HTTPS listener
    std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
    int pid() const { return process_.pid(); }
    ConsulKind kind() const { return options_.kind; }
    void stop();
    // Stops it and starts it again on the same port(s) (a server restart: the test server and
    // `-dev` keep nothing); throws when it does not answer again.
    void restart();
    const std::string& log_file() const { return log_file_; }

    // True when a real `consul` binary is on PATH (then tests also run against it).
    static bool real_consul_available();
    static std::string test_server_path();

private:
    ConsulOptions options_;
    TempDir dir_;
    unsigned short port_ = 0;
    unsigned short https_port_ = 0;
    std::string log_file_;
    std::vector<std::string> argv_;  // of the running server, for restart()
    Process process_;
};

}  // namespace pgwarden::testing
