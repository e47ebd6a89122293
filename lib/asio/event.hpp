// The one async event of the daemon: a one-shot flag that coroutines wait on (a timer that
// set() cancels), optionally with a deadline; and a countdown built on it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>

namespace pgwarden::async {

class Event {
public:
    explicit Event(boost::asio::any_io_executor ex);
    void set();
    bool is_set() const noexcept { return set_; }
    // Completes once set() was called (at once if it was already).
    boost::asio::awaitable<void> wait();
    // True if set before `deadline`.
    boost::asio::awaitable<bool> wait_until(std::chrono::steady_clock::time_point deadline);

private:
    boost::asio::steady_timer timer_;
    bool set_ = false;
};

// Set once `count` arrivals were counted (at once for count 0).
class Countdown {
public:
    Countdown(boost::asio::any_io_executor ex, std::size_t count);
    void arrive();
    std::size_t pending() const noexcept { return pending_; }
    Event& done() noexcept { return done_; }

private:
    std::size_t pending_;
    Event done_;
};

}  // namespace pgwarden::async
