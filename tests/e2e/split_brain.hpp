// Watches a cluster for two primaries: every 100 ms it asks each node's REST API for /primary
// and each PostgreSQL for pg_is_in_recovery() (a node that does not answer is not writable), and
// records every poll in which two or more nodes said 200 on /primary, or two or more PostgreSQL
// instances were out of recovery (= accepted writes).
#pragma once

#include "cluster.hpp"

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace pgwarden::e2e {

class SplitBrainChecker {
public:
    using Clock = std::chrono::steady_clock;

    struct Violation {
        Clock::time_point at;
        std::chrono::system_clock::time_point wall;  // to match the daemons' logs
        std::string kind;                            // "/primary" or "pg_is_in_recovery"
        std::vector<std::string> nodes;
    };

    explicit SplitBrainChecker(std::vector<NodeEndpoint> nodes,
                               std::string password = "su-secret",
                               std::chrono::milliseconds interval = std::chrono::milliseconds(100));
    ~SplitBrainChecker();
    SplitBrainChecker(const SplitBrainChecker&) = delete;
    SplitBrainChecker& operator=(const SplitBrainChecker&) = delete;

    void stop();  // joins; idempotent

    std::size_t polls() const;
    std::vector<Violation> violations() const;
    // The last completed poll: nodes answering 200 on /primary, and nodes out of recovery.
    std::vector<std::string> last_api_primaries() const;
    std::vector<std::string> last_writable() const;
    // Polls in which exactly one node was writable (PostgreSQL out of recovery).
    std::size_t polls_with_one_writable() const;
    // One line per violation ("+12.34s 16:02:03.456 pg_is_in_recovery: node1, node2"), or
    // "no split brain in N polls".
    std::string summary() const;

private:
    void run();

    std::vector<NodeEndpoint> nodes_;
    std::string password_;
    std::chrono::milliseconds interval_;
    Clock::time_point started_;
    std::atomic<bool> stop_{false};
    mutable std::mutex mu_;
    std::size_t polls_ = 0;
    std::size_t one_writable_ = 0;
    std::vector<Violation> violations_;
    std::vector<std::string> last_api_;
    std::vector<std::string> last_writable_;
    std::thread thread_;
};

}  // namespace pgwarden::e2e
