// Control of the local PostgreSQL 15: initdb, managed config files, pg_ctl start/stop/promote/
// reload, and observation through libpq without blocking the event loop.
// Only daemon/ and runtime/ name this concrete class; tests use it against a real PostgreSQL.
#pragma once

#include "core/cluster.hpp"
#include "core/pg_state.hpp"
#include "core/settings.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pgwarden::pg {

class ProcessRunner;

template <class T>
using Task = boost::asio::awaitable<T>;
template <class T>
using Result = boost::system::result<T>;

// A failed PostgreSQL operation: what failed, in a sentence that names the command or file,
// with the tail of the command's output. Passwords never appear in it.
struct PgError {
    std::string message;
};

using Status = std::optional<PgError>;  // nullopt = success

enum class StopMode { Smart, Fast, Immediate };

// What the config files must say (rendered by the runtime from settings + dynamic config).
struct ConfigFiles {
    std::map<std::string, std::string> parameters;  // postgresql.conf (managed by pgwarden)
    std::vector<std::string> pg_hba;                // empty = leave pg_hba.conf alone
    std::vector<std::string> pg_ident;              // empty = leave pg_ident.conf alone
    // Standby: primary_conninfo etc. written into postgresql.conf and standby.signal created;
    // nullopt = no standby.signal (primary).
    std::optional<std::map<std::string, std::string>> recovery;
};

class Postgres {
public:
    Postgres(boost::asio::any_io_executor ex, core::Settings settings);
    // Shares one ProcessRunner (it reaps every child of the process, so there must be only one;
    // the daemon hands the same runner to pg_rewind/pg_basebackup code).
    Postgres(boost::asio::any_io_executor ex,
             core::Settings settings,
             std::shared_ptr<ProcessRunner> runner);
    ~Postgres();
    Postgres(const Postgres&) = delete;
    Postgres& operator=(const Postgres&) = delete;

    // Becomes the child-subreaper (prctl) and installs the SIGCHLD handler that reaps every
    // child and orphan; `on_postmaster_exit` runs on the executor at once when the postmaster
    // this object started (or adopted) exits — for a crash and for a requested stop alike.
    // A postmaster that is not our child (found running at daemon start) is not signalled to
    // us: its exit is reported by the next observe() instead.
    void start_supervision(std::function<void()> on_postmaster_exit);

    // One observation: data directory, pg_control (sysid, state, timeline), postmaster alive
    // (postmaster.pid + /proc state, never kill(pid,0) alone), and one status query with a
    // short deadline when it runs.
    Task<core::PgObservation> observe();
    // Only the status query on the running instance (nullopt when it is not running or the
    // query fails): fresh WAL positions for GET /patroni between two observations. Without the
    // pending-restart column (pending_restart_json stays "{}").
    Task<std::optional<core::PgQueryResult>> query_status();

    // initdb with the configured bootstrap.initdb arguments and the superuser name/password.
    Task<Status> initdb();
    // Writes postgresql.conf (pgwarden-managed include), pg_hba.conf, pg_ident.conf,
    // standby.signal / recovery parameters, and the pgpass file (mode 0600).
    Task<Status> write_config(ConfigFiles files);
    // pg_ctl start -w, bounded by `timeout`; success once accepting connections.
    Task<Status> start(std::chrono::seconds timeout);
    Task<Status> stop(StopMode mode, std::chrono::seconds timeout);
    Task<Status> promote(std::chrono::seconds timeout);  // pg_ctl promote -w
    Task<Status> reload();
    // Creates/updates the replication and rewind roles (and sets the superuser password) on
    // a running primary after bootstrap.
    Task<Status> create_roles();
    // Runs a statement on the running instance as the superuser (e.g. CHECKPOINT).
    Task<Status> execute(std::string sql);

    // pid of the running postmaster, if known.
    std::optional<int> postmaster_pid() const;

    // ---- replication (issue 4) -------------------------------------------------------------

    // Clones the data directory from a running member with pg_basebackup (-X stream, as the
    // replication user; `extra_args` from postgresql.basebackup), into an empty data_dir.
    // Attempts twice, 5 s apart, as Patroni. On failure the partial data directory is removed.
    Task<Status> clone_from(std::string host, int port, std::vector<std::string> extra_args);
    // pg_rewind --source-server=<rewind user (or superuser) @ host:port> on a cleanly stopped
    // data directory. If pg_control says the instance did not shut down cleanly, first runs
    // single-user crash recovery (postgres --single ... < /dev/null) as Patroni does.
    // On success the data directory has standby.signal (pg_rewind's backup_label must not be
    // started as a primary); write_config(recovery) must follow before start().
    Task<Status> rewind_from(std::string host, int port);
    // Makes the primary's physical replication slots exactly `names` (creates missing ones,
    // drops other physical slots that are not active), as the leader does with use_slots.
    Task<Status> sync_physical_slots(std::vector<std::string> names);
    // On a replica: moves the inactive physical slots among `names` up to the replay position,
    // so slots kept for the other members (ready for a promotion) retain only the WAL they
    // would need then.
    Task<Status> advance_physical_slots(std::vector<std::string> names);
    // The contents of pg_wal/<timeline as %08X>.history parsed into history lines
    // ([timeline, switch lsn bytes, reason]); empty when the file is absent.
    Task<Result<std::vector<core::HistoryLine>>> read_timeline_history(int timeline);
    // Removes the data directory (for re-clone when rewind is impossible and the settings
    // allow it). The postmaster must be stopped.
    Task<Status> remove_data_directory();

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
