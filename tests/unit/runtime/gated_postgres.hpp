// pg::PgControl over a FakePostgres whose operations can be held: a held operation waits (on
// the executor, no thread, no sleep) until the test releases it. That keeps a long action
// "running" for as many loop cycles as a test needs, which the immediate fake cannot.
#pragma once

#include "fakes/fake_postgres.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <memory>

namespace pgwarden::tests {

class GatedPostgres final : public pg::PgControl {
public:
    GatedPostgres(boost::asio::any_io_executor ex, fakes::FakePostgres& fake) : fake_(fake) {
        for (auto& g : gates_) {
            g = std::make_unique<Gate>(ex);
        }
    }

    // Calls of `op` from now on wait until release(op).
    void hold(fakes::PgOp op) { gate(op).held = true; }
    void release(fakes::PgOp op) {
        gate(op).held = false;
        gate(op).timer.cancel();
    }
    void release_all() {
        for (std::size_t i = 0; i < fakes::kPgOpCount; ++i) {
            release(static_cast<fakes::PgOp>(i));
        }
    }
    // Calls of `op` waiting at the gate now.
    int waiting(fakes::PgOp op) const { return gates_[static_cast<std::size_t>(op)]->waiting; }

    void start_supervision(std::function<void()> on_exit) override {
        fake_.start_supervision(std::move(on_exit));
    }
    pg::Task<core::PgObservation> observe() override {
        co_await pass(fakes::PgOp::Observe);
        co_return co_await fake_.observe();
    }
    pg::Task<std::optional<core::PgQueryResult>> query_status() override {
        co_await pass(fakes::PgOp::QueryStatus);
        co_return co_await fake_.query_status();
    }
    pg::Task<pg::Status> initdb() override {
        co_await pass(fakes::PgOp::Initdb);
        co_return co_await fake_.initdb();
    }
    pg::Task<pg::Status> write_config(pg::ConfigFiles files) override {
        co_await pass(fakes::PgOp::WriteConfig);
        co_return co_await fake_.write_config(std::move(files));
    }
    pg::Task<pg::Status> start(std::chrono::seconds timeout) override {
        co_await pass(fakes::PgOp::Start);
        co_return co_await fake_.start(timeout);
    }
    pg::Task<pg::Status> stop(pg::StopMode mode, std::chrono::seconds timeout) override {
        co_await pass(fakes::PgOp::Stop);
        co_return co_await fake_.stop(mode, timeout);
    }
    pg::Task<pg::Status> promote(std::chrono::seconds timeout) override {
        co_await pass(fakes::PgOp::Promote);
        co_return co_await fake_.promote(timeout);
    }
    pg::Task<pg::Status> reload() override {
        co_await pass(fakes::PgOp::Reload);
        co_return co_await fake_.reload();
    }
    pg::Task<pg::Status> create_roles() override {
        co_await pass(fakes::PgOp::CreateRoles);
        co_return co_await fake_.create_roles();
    }
    pg::Task<pg::Status> execute(std::string sql) override {
        co_await pass(fakes::PgOp::Execute);
        co_return co_await fake_.execute(std::move(sql));
    }
    pg::Task<pg::Status> clone_from(std::string host,
                                    int port,
                                    std::vector<std::string> args) override {
        co_await pass(fakes::PgOp::CloneFrom);
        co_return co_await fake_.clone_from(std::move(host), port, std::move(args));
    }
    pg::Task<pg::Status> rewind_from(std::string host, int port) override {
        co_await pass(fakes::PgOp::RewindFrom);
        co_return co_await fake_.rewind_from(std::move(host), port);
    }
    pg::Task<pg::Status> sync_physical_slots(std::vector<std::string> names) override {
        co_await pass(fakes::PgOp::SyncPhysicalSlots);
        co_return co_await fake_.sync_physical_slots(std::move(names));
    }
    pg::Task<pg::Status> advance_physical_slots(std::vector<std::string> names) override {
        co_await pass(fakes::PgOp::AdvancePhysicalSlots);
        co_return co_await fake_.advance_physical_slots(std::move(names));
    }
    pg::Task<pg::Result<std::vector<core::HistoryLine>>> read_timeline_history(int tl) override {
        co_await pass(fakes::PgOp::ReadTimelineHistory);
        co_return co_await fake_.read_timeline_history(tl);
    }
    pg::Task<pg::Status> remove_data_directory() override {
        co_await pass(fakes::PgOp::RemoveDataDirectory);
        co_return co_await fake_.remove_data_directory();
    }

private:
    struct Gate {
        explicit Gate(boost::asio::any_io_executor ex)
            : timer(ex, boost::asio::steady_timer::time_point::max()) {}
        boost::asio::steady_timer timer;
        bool held = false;
        int waiting = 0;
    };

    Gate& gate(fakes::PgOp op) { return *gates_[static_cast<std::size_t>(op)]; }

    boost::asio::awaitable<void> pass(fakes::PgOp op) {
        Gate& g = gate(op);
        while (g.held) {
            ++g.waiting;
            co_await g.timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
            --g.waiting;
        }
    }

    fakes::FakePostgres& fake_;
    std::array<std::unique_ptr<Gate>, fakes::kPgOpCount> gates_;
};

}  // namespace pgwarden::tests
