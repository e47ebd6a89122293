// A real etcd (Debian etcd-server 3.4) on loopback for integration tests
// (spec/etcd3-gateway.md §12): free ports, a temporary data dir, started and stopped by PID.
#pragma once

#include "support/process.hpp"
#include "support/temp_dir.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace pgwarden::testing {

struct EtcdOptions {
    std::string binary = "etcd";
    // Small values make leader election fast; the minimum lease TTL is
    // ceil(1.5 * election_timeout) seconds (1 s with 50/500 ms).
    int heartbeat_interval_ms = 50;
    int election_timeout_ms = 500;
    std::chrono::milliseconds start_timeout = std::chrono::seconds(20);
};

class EtcdServer {
public:
    explicit EtcdServer(EtcdOptions options = {});  // starts and waits for /health; throws
    ~EtcdServer();
    EtcdServer(const EtcdServer&) = delete;
    EtcdServer& operator=(const EtcdServer&) = delete;

    unsigned short client_port() const { return client_port_; }
    std::string endpoint() const;  // "127.0.0.1:PORT"
    int pid() const { return process_.pid(); }
    bool healthy() const;
    void stop();  // SIGTERM by PID, waits; idempotent
    // Stops it and starts it again on the same ports and data dir (a server restart); throws
    // when it does not become healthy.
    void restart();
    const std::string& log_file() const { return log_file_; }

private:
    EtcdOptions options_;
    TempDir dir_;
    unsigned short client_port_ = 0;
    unsigned short peer_port_ = 0;
    std::string log_file_;
    std::vector<std::string> argv_;  // of the running server, for restart()
    Process process_;
};

}  // namespace pgwarden::testing
