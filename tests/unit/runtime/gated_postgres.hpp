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
        return gated(fakes::PgOp::Observe, fake_.observe());
    }
    pg::Task<std::optional<core::PgQueryResult>> query_status() override {
        return gated(fakes::PgOp::QueryStatus, fake_.query_status());
    }
    pg::Task<pg::Status> initdb() override { return gated(fakes::PgOp::Initdb, fake_.initdb()); }
    pg::Task<pg::Status> write_config(pg::ConfigFiles files) override {
        return gated(fakes::PgOp::WriteConfig, fake_.write_config(std::move(files)));
    }
    pg::Task<pg::Status> start(std::chrono::seconds timeout) override {
        return gated(fakes::PgOp::Start, fake_.start(timeout));
    }
    pg::Task<pg::Status> stop(pg::StopMode mode, std::chrono::seconds timeout) override {
        return gated(fakes::PgOp::Stop, fake_.stop(mode, timeout));
    }
    pg::Task<pg::Status> promote(std::chrono::seconds timeout) override {
        return gated(fakes::PgOp::Promote, fake_.promote(timeout));
    }
    pg::Task<pg::Status> reload() override { return gated(fakes::PgOp::Reload, fake_.reload()); }
    pg::Task<pg::Status> create_roles() override {
        return gated(fakes::PgOp::CreateRoles, fake_.create_roles());
    }
    pg::Task<pg::Status> execute(std::string sql) override {
        return gated(fakes::PgOp::Execute, fake_.execute(std::move(sql)));
    }
    pg::Task<pg::Status> clone_from(std::string host,
                                    int port,
                                    std::vector<std::string> args) override {
        return gated(fakes::PgOp::CloneFrom,
                     fake_.clone_from(std::move(host), port, std::move(args)));
    }
    pg::Task<pg::Status> rewind_from(std::string host, int port) override {
        return gated(fakes::PgOp::RewindFrom, fake_.rewind_from(std::move(host), port));
    }
    pg::Task<pg::Status> sync_physical_slots(std::vector<std::string> names,
                                             std::vector<core::SlotMatcher> ignore = {}) override {
        return gated(fakes::PgOp::SyncPhysicalSlots,
                     fake_.sync_physical_slots(std::move(names), std::move(ignore)));
    }
    pg::Task<pg::Status> advance_physical_slots(std::vector<std::string> names) override {
        return gated(fakes::PgOp::AdvancePhysicalSlots,
                     fake_.advance_physical_slots(std::move(names)));
    }
    pg::Task<pg::Result<std::vector<core::HistoryLine>>> read_timeline_history(int tl) override {
        return gated(fakes::PgOp::ReadTimelineHistory, fake_.read_timeline_history(tl));
    }
    pg::Task<pg::Status> remove_data_directory() override {
        return gated(fakes::PgOp::RemoveDataDirectory, fake_.remove_data_directory());
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

    // Waits at the gate of `op`, then runs the fake's operation (an awaitable starts only
    // when awaited, so the fake counts and acts after the gate).
    template <class T>
    pg::Task<T> gated(fakes::PgOp op, pg::Task<T> call) {
        Gate& g = gate(op);
        while (g.held) {
            ++g.waiting;
            co_await g.timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
            --g.waiting;
        }
        co_return co_await std::move(call);
    }

    fakes::FakePostgres& fake_;
    std::array<std::unique_ptr<Gate>, fakes::kPgOpCount> gates_;
};

}  // namespace pgwarden::tests
