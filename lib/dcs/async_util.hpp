// Private to the DCS backends (etcd3, Consul) and the member probes (runtime/member_probe.cpp),
// the other users of the DCS HTTP client: small coroutine, deadline and logging helpers.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <string>

namespace pgwarden::dcs {

// Waits `d` on `executor`; a cancelled wait returns early without an error. Parameters by value
// (GCC 12 coroutine rule, house style T2).
inline boost::asio::awaitable<void> sleep_for(boost::asio::any_io_executor executor,
                                              std::chrono::steady_clock::duration d) {
    boost::asio::steady_timer timer(executor, d);
    co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
}

// Time left until `deadline` (negative once it has passed).
inline std::chrono::milliseconds remaining(std::chrono::steady_clock::time_point deadline) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                 std::chrono::steady_clock::now());
}

// The log of a background loop that retries on failure (the DCS watches): a failure is reported
// at warn once, repeats at debug, and the recovery at info. Never swallowed, never one warning
// per retry.
class RetryLog {
public:
    explicit RetryLog(const char* what) : what_(what) {}
    void failed(const std::string& why) {
        if (!failing_) {
            spdlog::warn("{} failed: {}; retrying with backoff", what_, why);
            failing_ = true;
        } else {
            spdlog::debug("{} failed: {}", what_, why);
        }
    }
    void working() {
        if (failing_) {
            spdlog::info("{} resumed", what_);
            failing_ = false;
        }
    }
    // A failure logged elsewhere (restart_on_exception): the recovery is still reported.
    void mark_failing() { failing_ = true; }

private:
    const char* what_;
    bool failing_ = false;
};

// A background loop that must never stop for good (the DCS watches): `loop()` (returning an
// awaitable) runs again whenever it throws, after `after_failure()` and a backoff that doubles
// from `first` up to `max`, and every failure is logged at warn with its what(). Ends when
// `alive()` is false. Callables by value (STYLE T2: no capturing lambda coroutines; these are
// plain functions returning a named coroutine's awaitable).
template <class Loop, class Alive, class AfterFailure>
boost::asio::awaitable<void> restart_on_exception(boost::asio::any_io_executor executor,
                                                  std::string name,
                                                  Loop loop,
                                                  Alive alive,
                                                  AfterFailure after_failure,
                                                  std::chrono::milliseconds first,
                                                  std::chrono::milliseconds max) {
    auto backoff = first;
    while (alive()) {
        std::string failure;
        try {
            co_await loop();
        } catch (const std::exception& e) {
            failure = e.what();
        } catch (...) {
            failure = "unknown exception";
        }
        if (failure.empty() || !alive()) {
            continue;  // the loop returns by itself only once it is stopped
        }
        after_failure();
        spdlog::warn("{} failed: {}; restarting it in {} ms", name, failure, backoff.count());
        co_await sleep_for(executor, backoff);
        backoff = std::min(backoff * 2, max);
    }
}

}  // namespace pgwarden::dcs
