// A hand-written fake of pg::PgControl for executor and loop tests: a small in-memory model of
// one PostgreSQL (running, in recovery, timeline, WAL position), switches to make the next call
// of an operation fail, and counters of every call. Every awaitable completes at once.
#pragma once

#include "pg/pg_control.hpp"

#include <boost/system/error_code.hpp>

#include <array>
#include <cerrno>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pgwarden::fakes {

// The operations of PgControl that can be made to fail and are counted.
enum class PgOp {
    Initdb,
    WriteConfig,
    Start,
    Stop,
    Promote,
    Reload,
    CreateRoles,
    Execute,
    CloneFrom,
    RewindFrom,
    SyncPhysicalSlots,
    AdvancePhysicalSlots,
    ReadTimelineHistory,
    RemoveDataDirectory,
    Observe,      // counted only
    QueryStatus,  // counted only
};
inline constexpr std::size_t kPgOpCount = 16;

class FakePostgres final : public pg::PgControl {
public:
    // ---- the modelled instance (tests may set these directly) --------------------------------
    bool data_dir_exists = false;
    bool initialized = false;  // a cluster is in the data directory (initdb or clone)
    bool running = false;
    bool in_recovery = false;
    int timeline = 1;
    std::int64_t wal_location = 0x3000000;  // primary: flush; replica: received and replayed
    std::string sysid = "7000000000000000001";
    std::string cluster_state;               // pg_controldata's, "" when not initialized
    std::int64_t checkpoint_lsn = 0;         // set by stop()
    std::int64_t checkpoint_end_lsn = 0;     // set by a clean stop(); 0 after a crash
    std::optional<std::string> query_error;  // observe(): the status query fails with this
    std::map<int, std::vector<core::HistoryLine>> history;  // read_timeline_history()

    // ---- what the runtime asked for ----------------------------------------------------------
    std::optional<pg::ConfigFiles> last_config;
    std::vector<std::string> executed;  // execute() statements
    std::optional<std::pair<std::string, int>> clone_source;
    std::optional<std::pair<std::string, int>> rewind_source;
    std::vector<std::string> slots;  // after sync_physical_slots
    std::optional<pg::StopMode> last_stop_mode;
    std::function<void()> on_postmaster_exit;  // from start_supervision

    // ---- switches ------------------------------------------------------------------------------
    // The next call of `op` fails with `err` (queued: several calls fail in order). The call has
    // no other effect then.
    void fail_next(PgOp op, pg::PgError err) { failures_[index(op)].push_back(std::move(err)); }
    int count(PgOp op) const { return counts_[index(op)]; }

    // The postmaster dies (kill -9): not running, pg_control says "in production", and
    // on_postmaster_exit runs (as the real one reports it).
    void crash() {
        running = false;
        cluster_state = in_recovery ? "in archive recovery" : "in production";
        checkpoint_end_lsn = 0;
        if (on_postmaster_exit) {
            on_postmaster_exit();
        }
    }

    // ---- PgControl ------------------------------------------------------------------------------
    void start_supervision(std::function<void()> on_exit) override {
        on_postmaster_exit = std::move(on_exit);
    }

    pg::Task<core::PgObservation> observe() override {
        ++counts_[index(PgOp::Observe)];
        core::PgObservation obs;
        obs.data_dir_exists = data_dir_exists;
        obs.data_dir_empty = !initialized;
        if (initialized) {
            obs.sysid = sysid;
            obs.control_timeline = timeline;
            obs.cluster_state = cluster_state;
            obs.checkpoint_lsn = checkpoint_lsn;
            obs.checkpoint_end_lsn = checkpoint_end_lsn;
        }
        obs.postmaster_running = running;
        if (running && query_error) {
            obs.query_error = *query_error;
        } else if (running) {
            obs.accepting_connections = true;
            obs.query = status();
            obs.cluster_state = in_recovery ? "in archive recovery" : "in production";
        }
        co_return obs;
    }

    pg::Task<std::optional<core::PgQueryResult>> query_status() override {
        ++counts_[index(PgOp::QueryStatus)];
        if (!running || query_error) {
            co_return std::nullopt;
        }
        co_return status();
    }

    pg::Task<pg::Status> initdb() override {
        if (auto err = take(PgOp::Initdb)) {
            co_return err;
        }
        data_dir_exists = initialized = true;
        cluster_state = "shut down";
        co_return std::nullopt;
    }

    pg::Task<pg::Status> write_config(pg::ConfigFiles files) override {
        if (auto err = take(PgOp::WriteConfig)) {
            co_return err;
        }
        last_config = std::move(files);
        co_return std::nullopt;
    }

    pg::Task<pg::Status> start(std::chrono::seconds) override {
        if (auto err = take(PgOp::Start)) {
            co_return err;
        }
        if (!initialized) {
            co_return error(pg::ErrorKind::InvalidState, "not a PostgreSQL data directory");
        }
        if (!running) {
            running = true;
            in_recovery = last_config && last_config->recovery.has_value();
            checkpoint_end_lsn = 0;
        }
        co_return std::nullopt;
    }

    pg::Task<pg::Status> stop(pg::StopMode mode, std::chrono::seconds) override {
        if (auto err = take(PgOp::Stop)) {
            co_return err;
        }
        last_stop_mode = mode;
        if (running) {
            running = false;
            if (mode == pg::StopMode::Immediate) {
                cluster_state = in_recovery ? "in archive recovery" : "in production";
                checkpoint_end_lsn = 0;
            } else {
                cluster_state = in_recovery ? "shut down in recovery" : "shut down";
                checkpoint_lsn = wal_location;
                checkpoint_end_lsn = wal_location + 0x78;  // a checkpoint record's length
                wal_location = checkpoint_end_lsn;
            }
        }
        co_return std::nullopt;
    }

    pg::Task<pg::Status> promote(std::chrono::seconds) override {
        if (auto err = take(PgOp::Promote)) {
            co_return err;
        }
        if (!running) {
            co_return error(pg::ErrorKind::NotRunning, "not running");
        }
        if (!in_recovery) {
            co_return error(pg::ErrorKind::CommandFailed, "server is not in standby mode");
        }
        history[timeline + 1] = history[timeline];
        core::HistoryLine line;
        line.timeline = timeline;
        line.lsn = wal_location;
        line.reason = "no recovery target specified";
        history[timeline + 1].push_back(std::move(line));
        in_recovery = false;
        ++timeline;
        co_return std::nullopt;
    }

    pg::Task<pg::Status> reload() override {
        if (auto err = take(PgOp::Reload)) {
            co_return err;
        }
        if (!running) {
            co_return error(pg::ErrorKind::NotRunning, "not running");
        }
        co_return std::nullopt;
    }

    pg::Task<pg::Status> create_roles() override { co_return running_op(PgOp::CreateRoles); }

    pg::Task<pg::Status> execute(std::string sql) override {
        if (auto err = running_op(PgOp::Execute)) {
            co_return err;
        }
        executed.push_back(std::move(sql));
        co_return std::nullopt;
    }

    pg::Task<pg::Status> clone_from(std::string host, int port, std::vector<std::string>) override {
        if (auto err = take(PgOp::CloneFrom)) {
            co_return err;
        }
        if (running) {
            co_return error(pg::ErrorKind::Running, "PostgreSQL is running");
        }
        clone_source = std::make_pair(std::move(host), port);
        data_dir_exists = initialized = true;
        in_recovery = true;
        cluster_state = "in archive recovery";
        co_return std::nullopt;
    }

    pg::Task<pg::Status> rewind_from(std::string host, int port) override {
        if (auto err = take(PgOp::RewindFrom)) {
            co_return err;
        }
        if (running) {
            co_return error(pg::ErrorKind::Running, "PostgreSQL is running");
        }
        rewind_source = std::make_pair(std::move(host), port);
        in_recovery = true;
        cluster_state = "shut down in recovery";
        co_return std::nullopt;
    }

    pg::Task<pg::Status> sync_physical_slots(std::vector<std::string> names,
                                             std::vector<core::SlotMatcher> = {}) override {
        if (auto err = running_op(PgOp::SyncPhysicalSlots)) {
            co_return err;
        }
        slots = std::move(names);
        co_return std::nullopt;
    }

    pg::Task<pg::Status> advance_physical_slots(std::vector<std::string>) override {
        co_return running_op(PgOp::AdvancePhysicalSlots);
    }

    pg::Task<pg::Result<std::vector<core::HistoryLine>>> read_timeline_history(int tl) override {
        if (auto err = take(PgOp::ReadTimelineHistory)) {
            co_return pg::Result<std::vector<core::HistoryLine>>(
                boost::system::in_place_error,
                boost::system::error_code(err->sys_errno != 0 ? err->sys_errno : EIO,
                                          boost::system::generic_category()));
        }
        auto it = history.find(tl);
        co_return it == history.end() ? std::vector<core::HistoryLine>{} : it->second;
    }

    pg::Task<pg::Status> remove_data_directory() override {
        if (auto err = take(PgOp::RemoveDataDirectory)) {
            co_return err;
        }
        if (running) {
            co_return error(pg::ErrorKind::Running, "PostgreSQL is running");
        }
        initialized = false;
        cluster_state.clear();
        checkpoint_lsn = checkpoint_end_lsn = 0;
        co_return std::nullopt;
    }

private:
    static std::size_t index(PgOp op) { return static_cast<std::size_t>(op); }

    static pg::PgError error(pg::ErrorKind kind, std::string message) {
        pg::PgError e;
        e.kind = kind;
        e.message = "fake: " + std::move(message);
        return e;
    }

    // Counts the call and returns the queued failure, if any.
    pg::Status take(PgOp op) {
        ++counts_[index(op)];
        auto& queue = failures_[index(op)];
        if (queue.empty()) {
            return std::nullopt;
        }
        pg::PgError e = std::move(queue.front());
        queue.pop_front();
        return e;
    }

    // A statement on the running instance: ConnectionFailed when it is not running.
    pg::Status running_op(PgOp op) {
        if (auto err = take(op)) {
            return err;
        }
        if (!running) {
            return error(pg::ErrorKind::ConnectionFailed, "connection refused");
        }
        return std::nullopt;
    }

    core::PgQueryResult status() const {
        core::PgQueryResult q;
        q.in_recovery = in_recovery;
        q.server_version = 150000;
        q.timeline = timeline;
        q.postmaster_start_time = "2024-01-01 00:00:00.000000+00:00";
        if (in_recovery) {
            q.receive_location = q.replay_location = q.latest_end_lsn = wal_location;
            q.replication_state = "streaming";
        } else {
            q.wal_location = wal_location;
        }
        return q;
    }

    std::array<std::deque<pg::PgError>, kPgOpCount> failures_{};
    std::array<int, kPgOpCount> counts_{};
};

}  // namespace pgwarden::fakes
