// Construction of Postgres and its state (Postgres::Impl, postgres_impl.hpp); the operations
// live in layout, file_ops, postmaster, probe, control, roles, clone, rewind, slots, timeline.
#include "pg/postgres_impl.hpp"

namespace pgwarden::pg {

namespace net = boost::asio;

Postgres::Impl::Impl(net::any_io_executor e, core::Settings s, std::shared_ptr<ProcessRunner> r)
    : ex(std::move(e)),
      settings(std::move(s)),
      runner(r ? std::move(r) : std::make_shared<ProcessRunner>(ex)),
      conn(ex),
      conn_lock(ex) {}

Postgres::Impl::~Impl() {
    if (pm_pid && pm_watched) {
        runner->unwatch(*pm_pid);
    }
}

Postgres::Postgres(net::any_io_executor ex, core::Settings settings)
    : impl_(std::make_unique<Impl>(std::move(ex), std::move(settings), nullptr)) {}

Postgres::Postgres(net::any_io_executor ex,
                   core::Settings settings,
                   std::shared_ptr<ProcessRunner> runner)
    : impl_(std::make_unique<Impl>(std::move(ex), std::move(settings), std::move(runner))) {}

Postgres::~Postgres() = default;

std::shared_ptr<ProcessRunner> Postgres::process_runner() const {
    return impl_->runner;
}

std::string Postgres::postmaster_log_file() const {
    return impl_->log_file();
}

std::string Postgres::socket_directory() const {
    return impl_->socket_dir();
}

}  // namespace pgwarden::pg
