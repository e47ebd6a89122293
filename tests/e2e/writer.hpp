// A client that writes all the time: its own thread and libpq connection (multi-host conninfo,
// target_session_attrs=read-write), one INSERT of an increasing id every 20 ms. It records every
// acknowledged id with its time and every outage (first failure .. next acknowledged write);
// on any error it drops the connection and reconnects, at most 5 attempts per second.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace pgwarden::e2e {

// Which acknowledged writes count as "writes resumed" after a fault.
struct AckFilter {
    bool new_connection = false;     // on a connection opened after the fault
    unsigned short on_port = 0;      // 0 = any server
    unsigned short not_on_port = 0;  // 0 = any server
};

class Writer {
public:
    using Clock = std::chrono::steady_clock;

    struct Ack {
        std::int64_t id = 0;
        Clock::time_point at;
        unsigned short port = 0;              // the server that acknowledged it (PQport)
        Clock::time_point connection_opened;  // when that connection was established
    };
    struct Outage {
        Clock::time_point start;               // first failed attempt after an acknowledged write
        std::optional<Clock::time_point> end;  // next acknowledged write (none yet: open)
        std::string first_error;
    };

    static constexpr const char* kTable = "pgw_e2e_writes";

    explicit Writer(std::string conninfo,
                    std::chrono::milliseconds pacing = std::chrono::milliseconds(20));
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    void stop();  // joins the thread; idempotent

    std::size_t acked() const;
    // Time of the first acknowledged write that completed after `t` and passes `filter`.
    // Right after a fault the old primary may still acknowledge a write or two on the old
    // connection (a SIGTERMed daemon stops PostgreSQL, a demotion takes a moment), so the
    // scenarios ask for a write on a new connection, to another server when it must be one.
    std::optional<Clock::time_point> first_ack_after(Clock::time_point t,
                                                     AckFilter filter = {}) const;
    // Longest interval between consecutive acknowledged writes that overlaps [from, to]; an
    // interval still open at `to` counts up to `to`. This is the "write outage".
    Clock::duration longest_gap(Clock::time_point from, Clock::time_point to) const;
    std::vector<Ack> acks() const;
    std::vector<Outage> outages() const;
    std::string last_error() const;

private:
    void run();
    void note_failure(const std::string& error);

    std::string conninfo_;
    std::chrono::milliseconds pacing_;
    std::atomic<bool> stop_{false};
    mutable std::mutex mu_;
    std::vector<Ack> acks_;
    std::vector<Outage> outages_;
    std::string last_error_;
    std::thread thread_;
};

struct LostWrites {
    std::size_t acked = 0;
    std::size_t lost = 0;              // acknowledged ids missing on the primary
    std::vector<std::int64_t> sample;  // up to 20 of them
    std::string error;                 // non-empty when the primary could not be read
};
// Reads the table on the primary (`conninfo` names that one node) and compares.
LostWrites count_lost(const Writer& writer, const std::string& conninfo);

// Seconds with two decimals, for report lines: "8.41s".
std::string seconds(std::chrono::steady_clock::duration d);

}  // namespace pgwarden::e2e
