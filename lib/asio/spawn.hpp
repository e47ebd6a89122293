// The one spawn helper (STYLE.md point 11): never asio::detached; an exception that escapes a
// spawned task is logged with what() and `on_error` runs (the owner escalates, e.g. shuts down).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <exception>
#include <functional>
#include <string>

namespace pgwarden::async {

void spawn_logged(boost::asio::any_io_executor ex,
                  boost::asio::awaitable<void> task,
                  std::string name,
                  std::function<void()> on_error = {});

// Logs an escaped exception of the task `name` at error level, with what() when it has one.
void log_exception(const std::string& name, const std::exception_ptr& e);

}  // namespace pgwarden::async
