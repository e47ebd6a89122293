// Private to the DCS backends (etcd3, Consul): small coroutine and deadline helpers.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>

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

}  // namespace pgwarden::dcs
