// The one event helper and the one spawn helper of the runtime (STYLE.md point 11: never
// asio::detached; an escaping exception is logged with what() and escalated).
#include "runtime/runtime.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <exception>

namespace pgwarden::runtime {

Event::Event(net::any_io_executor ex) : timer_(ex, net::steady_timer::time_point::max()) {}

void Event::set() {
    set_ = true;
    timer_.cancel();
}

net::awaitable<void> Event::wait() {
    while (!set_) {
        co_await timer_.async_wait(net::as_tuple(net::use_awaitable));
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
                      try {
                          std::rethrow_exception(e);
                      } catch (const std::exception& ex) {
                          spdlog::error("{} failed with an exception: {}", name, ex.what());
                      } catch (...) {
                          spdlog::error("{} failed with an unknown exception", name);
                      }
                      if (on_error) {
                          on_error();
                      }
                  });
}

}  // namespace pgwarden::runtime
