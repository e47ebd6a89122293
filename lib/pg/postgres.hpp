// Control of the local PostgreSQL 15: initdb, managed config files, pg_ctl start/stop/promote/
// reload, and observation through libpq without blocking the event loop.
// Only daemon/ names this concrete class; the runtime takes a PgControl& (pg_control.hpp).
//
// Errors (PgError::kind, see pg_control.hpp for the full list):
//   retryable — ConnectionFailed, Timeout, SourceUnreachable, SourceNotReady, and SqlError of
//   SQLSTATE class 08/40/53/57 (retryable(err) says so): trying again later may succeed;
//   verdicts — CommandFailed, Io, NotRunning, Running, InvalidState, InvalidConfig, other
//   SqlErrors: the same call fails again until something changes.
#pragma once

#include "core/cluster.hpp"
#include "core/pg_state.hpp"
#include "core/settings.hpp"
#include "pg/pg_control.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pgwarden::pg {

class ProcessRunner;

class Postgres final : public PgControl {
public:
    Postgres(boost::asio::any_io_executor ex, core::Settings settings);
    // Shares one ProcessRunner (it reaps every child of the process, so there must be only one;
    // the daemon hands the same runner to pg_rewind/pg_basebackup code).
    Postgres(boost::asio::any_io_executor ex,
             core::Settings settings,
             std::shared_ptr<ProcessRunner> runner);
    ~Postgres() override;
    Postgres(const Postgres&) = delete;
    Postgres& operator=(const Postgres&) = delete;

    // Becomes the child-subreaper (prctl) and installs the SIGCHLD handler that reaps every
    // child and orphan; `on_postmaster_exit` runs on the executor at once when the postmaster
    // this object started (or adopted) exits — for a crash and for a requested stop alike.
    // A postmaster that is not our child (found running at daemon start) is not signalled to
    // us: its exit is reported by the next observe() instead.
    void start_supervision(std::function<void()> on_postmaster_exit) override;

    // One observation: data directory, pg_control (sysid, state, timeline), postmaster alive
    // (postmaster.pid + /proc state, never kill(pid,0) alone), and one status query with a
    // short deadline when it runs. After a clean shutdown ("shut down", "shut down in
    // recovery") checkpoint_end_lsn is where the last checkpoint record ends, read from the
    // WAL with pg_waldump (Patroni rewind.py _get_checkpoint_end); 0 in every other state.
    Task<core::PgObservation> observe() override;
    // Only the status query on the running instance (nullopt when it is not running or the
    // query fails): fresh WAL positions for GET /patroni between two observations. Without the
    // pending-restart column (pending_restart_json stays "{}").
    Task<std::optional<core::PgQueryResult>> query_status() override;

    // initdb with the configured bootstrap.initdb arguments and the superuser name/password.
    Task<Status> initdb() override;
    // Writes postgresql.conf (pgwarden-managed include), pg_hba.conf, pg_ident.conf,
    // standby.signal / recovery parameters, and the pgpass file (mode 0600).
    Task<Status> write_config(ConfigFiles files) override;
    // pg_ctl start -w, bounded by `timeout`; success once accepting connections. An
    // instance that started but refuses connections until the deadline is ConnectionFailed.
    Task<Status> start(std::chrono::seconds timeout) override;
    // pg_ctl stop -m <mode> -w. Success also when the postmaster went away on its own; a
    // clean shutdown shows as checkpoint_end_lsn != 0 in the next observe().
    Task<Status> stop(StopMode mode, std::chrono::seconds timeout) override;
    Task<Status> promote(std::chrono::seconds timeout) override;  // pg_ctl promote -w; NotRunning
    Task<Status> reload() override;                               // pg_ctl reload; NotRunning
    // Creates/updates the replication and rewind roles (and sets the superuser password) on
    // a running primary after bootstrap.
    Task<Status> create_roles() override;
    // Runs a statement on the running instance as the superuser (e.g. CHECKPOINT).
    Task<Status> execute(std::string sql) override;

    // pid of the running postmaster, if known.
    std::optional<int> postmaster_pid() const;

    // ---- replication ----------------------------------------------------------------------

    // Clones the data directory from a running member with pg_basebackup (-X stream, as the
    // replication user; `extra_args` from postgresql.basebackup), into an empty data_dir.
    // Attempts twice, 5 s apart, as Patroni. On failure the partial data directory is removed.
    Task<Status> clone_from(std::string host,
                            int port,
                            std::vector<std::string> extra_args) override;
    // pg_rewind --source-server=<rewind user (or superuser) @ host:port> on a cleanly stopped
    // data directory. If pg_control says the instance did not shut down cleanly, first runs
    // single-user crash recovery (postgres --single ... < /dev/null) as Patroni does.
    // On success the data directory has standby.signal (pg_rewind's backup_label must not be
    // started as a primary); write_config(recovery) must follow before start().
    // Errors: Running; SourceUnreachable when the source does not accept a connection or does
    // not answer `SELECT pg_is_in_recovery()` as a primary, before pg_rewind runs or after it
    // failed (checked again then); SourceNotReady when the source has not run its
    // post-promote checkpoint within 30 s; CommandFailed when pg_rewind (or crash recovery)
    // failed while the source stayed reachable: a verdict.
    Task<Status> rewind_from(std::string host, int port) override;
    // Makes the primary's physical replication slots exactly `names` (creates missing ones,
    // drops other physical slots that are not active), as the leader does with use_slots.
    Task<Status> sync_physical_slots(std::vector<std::string> names,
                                     std::vector<core::SlotMatcher> ignore = {}) override;
    // On a replica: moves the inactive physical slots among `names` up to the replay position,
    // so slots kept for the other members (ready for a promotion) retain only the WAL they
    // would need then.
    Task<Status> advance_physical_slots(std::vector<std::string> names) override;
    // The contents of pg_wal/<timeline as %08X>.history parsed into history lines
    // ([timeline, switch lsn bytes, reason]); empty when the file is absent.
    Task<Result<std::vector<core::HistoryLine>>> read_timeline_history(int timeline) override;
    // Removes the data directory (for re-clone when rewind is impossible and the settings
    // allow it). The postmaster must be stopped.
    Task<Status> remove_data_directory() override;

    std::shared_ptr<ProcessRunner> process_runner() const;
    // Where `pg_ctl start -l` writes the postmaster's output: next to the data directory
    // (<parent>/<name>-postmaster.log) when the parent is writable, else inside it.
    std::string postmaster_log_file() const;
    // The directory of the unix socket for local connections (see write_config).
    std::string socket_directory() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace pgwarden::pg
