// Event, Countdown and spawn_logged (event.hpp, spawn.hpp).
#include "asio/event.hpp"
#include "asio/spawn.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace net = boost::asio;

namespace pgwarden::async {

Event::Event(net::any_io_executor ex)
    : timer_(std::move(ex), net::steady_timer::time_point::max()) {}

void Event::set() {
    set_ = true;
    timer_.cancel();
}

net::awaitable<void> Event::wait() {
    while (!set_) {
        timer_.expires_at(net::steady_timer::time_point::max());
        co_await timer_.async_wait(net::as_tuple(net::use_awaitable));
    }
}

net::awaitable<bool> Event::wait_until(std::chrono::steady_clock::time_point deadline) {
    while (!set_ && std::chrono::steady_clock::now() < deadline) {
        timer_.expires_at(deadline);
        co_await timer_.async_wait(net::as_tuple(net::use_awaitable));
    }
    co_return set_;
}

Countdown::Countdown(net::any_io_executor ex, std::size_t count)
    : pending_(count), done_(std::move(ex)) {
    if (pending_ == 0) {
        done_.set();
    }
}

void Countdown::arrive() {
    if (pending_ > 0 && --pending_ == 0) {
        done_.set();
    }
}

void log_exception(const std::string& name, const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        spdlog::error("{} failed with an exception: {}", name, ex.what());
    } catch (...) {
        spdlog::error("{} failed with an unknown exception", name);
    }
}

void spawn_logged(net::any_io_executor ex,
                  net::awaitable<void> task,
                  std::string name,
                  std::function<void()> on_error) {
    net::co_spawn(ex,
                  std::move(task),
                  [name = std::move(name), on_error = std::move(on_error)](std::exception_ptr e) {
                      if (!e) {
                          return;
                      }
                      log_exception(name, e);
                      if (on_error) {
                          on_error();
                      }
                  });
}

}  // namespace pgwarden::async
