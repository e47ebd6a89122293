// Private to lib/pg: the one state struct behind pg::Postgres (Postgres::Impl) and the helpers
// the lib/pg/*.cpp files of Postgres share. Each Impl method says in which file it is defined.
#pragma once

#include "pg/config_files.hpp"
#include "pg/postgres.hpp"
#include "pg/pq_connection.hpp"
#include "pg/process_runner.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <utility>
#include <vector>

namespace pgwarden::pg {

namespace detail {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

inline constexpr std::string_view kDebianBinDir = "/usr/lib/postgresql/15/bin";
inline constexpr std::string_view kDefaultSocketDir = "/var/run/postgresql";
inline constexpr auto kQueryDeadline = std::chrono::seconds(2);
inline constexpr auto kCommandMargin = std::chrono::seconds(10);
inline constexpr auto kRetryInterval = std::chrono::milliseconds(100);
inline constexpr std::size_t kErrorTail = 2048;

// ---- errors (errors.cpp) ---------------------------------------------------------------------

PgError make_error(ErrorKind kind, std::string message, int sys_errno = 0);
// "<what>: <libpq/server message>" with the kind from the PqError: Timeout when its deadline
// expired, SqlError (with the SQLSTATE) for a server error, else ConnectionFailed.
PgError pq_error(const std::string& what, const PqError& e);
std::string errno_text(int e);
// `e` with `prefix` put before its message (kind and codes kept).
PgError with_prefix(const std::string& prefix, PgError e);

// ---- small file helpers (file_ops.cpp) -------------------------------------------------------

std::optional<std::string> read_small_file(const fs::path& p);

struct FileOp {
    enum class Kind { Write, Remove, EnsureBaseConf, CopyIfMissing, SanitizeAutoConf };
    Kind kind = Kind::Write;
    fs::path path;    // target
    fs::path source;  // EnsureBaseConf: data dir postgresql.conf; CopyIfMissing: source
    std::string content;
    mode_t mode = 0600;
};

// Writes a temp file next to `path`, fsyncs it, renames it over `path` and fsyncs the directory.
Status atomic_write(const fs::path& path, const std::string& content, mode_t mode);
// The contents of a data directory, including what a symlinked pg_wal and the tablespace links
// point to (this cluster's PG_<version>_* directories only); the directory itself stays, mode
// 0700. A data directory that is itself a symlink is cleaned through the link.
Status clear_data_directory(const fs::path& dd);

// The mode data directory files get: 0640 with group access (initdb --allow-group-access).
mode_t data_file_mode(const fs::path& dd);

// ---- the cached observation connection's lock ------------------------------------------------

// A FIFO-ish async mutex (timers used as events).
class AsyncLock {
public:
    explicit AsyncLock(boost::asio::any_io_executor ex) : ex_(std::move(ex)) {}
    boost::asio::awaitable<void> lock();
    void unlock();

private:
    boost::asio::any_io_executor ex_;
    bool locked_ = false;
    std::deque<std::weak_ptr<boost::asio::steady_timer>> waiters_;
};

struct Unlocker {
    AsyncLock& lock;
    ~Unlocker() { lock.unlock(); }
};

}  // namespace detail

// An environment for a libpq tool, or why it could not be prepared.
struct ToolEnv {
    Status error;
    std::map<std::string, std::string> env;
};

struct Postgres::Impl {
    using Clock = detail::Clock;
    using fs_path = std::filesystem::path;

    Impl(boost::asio::any_io_executor e, core::Settings s, std::shared_ptr<ProcessRunner> r);
    ~Impl();

    boost::asio::any_io_executor ex;
    core::Settings settings;
    std::shared_ptr<ProcessRunner> runner;
    std::function<void()> on_postmaster_exit;
    std::shared_ptr<int> life = std::make_shared<int>(0);  // guards callbacks after destruction

    std::optional<int> pm_pid;  // the postmaster we track
    bool pm_watched = false;    // true: its exit arrives through SIGCHLD; false: found by polling

    std::optional<std::string> sysid;  // cached from pg_control
    PqConnection conn;                 // cached connection for observe()
    detail::AsyncLock conn_lock;
    std::map<std::string, std::string> written_parameters;  // last postgresql.conf parameters
    // The end of the last checkpoint record, keyed by (timeline, checkpoint location): pg_control
    // does not change while the instance is stopped, so pg_waldump runs once per shutdown.
    std::optional<std::pair<std::pair<int, std::int64_t>, std::int64_t>> checkpoint_end_cache;
    boost::asio::thread_pool file_pool{1};

    // ---- paths, settings, commands (layout.cpp) ------------------------------------
    fs_path data_dir() const;
    fs_path config_dir() const;
    std::string bin(std::string_view name) const;
    std::string log_file() const;
    // unix_socket_directories: configured value, else Debian's /var/run/postgresql when we may
    // write there, else the data directory's parent (or the data directory itself).
    std::string socket_dir_default() const;
    std::optional<std::string> configured_socket_dirs() const;
    std::string socket_dir() const;
    std::map<std::string, std::string> conn_params() const;
    std::vector<std::string> pg_ctl_args(const char* command) const;
    std::string where() const;
    // "<what> failed for data directory ...: <how>: <output tail>"; Timeout or CommandFailed.
    PgError command_error(const std::string& what,
                          const CommandResult& r,
                          std::size_t max_tail = detail::kErrorTail) const;
    boost::asio::awaitable<CommandResult> run(std::vector<std::string> argv,
                                              std::map<std::string, std::string> env,
                                              std::chrono::milliseconds timeout);
    // pg_ctl <command> -D <data> -w -t <secs> <extra...>, given secs + a margin to finish.
    boost::asio::awaitable<CommandResult> run_pg_ctl_waiting(std::string command,
                                                             std::vector<std::string> extra,
                                                             std::int64_t secs);
    // A fresh superuser connection for commands (execute, create_roles, slots).
    boost::asio::awaitable<std::optional<PqError>> connect_fresh(PqConnection* c,
                                                                 Clock::time_point deadline);

    // ---- postmaster supervision (postmaster.cpp) -----------------------------------
    struct PostmasterCheck {
        std::optional<int> pid;
        bool alive = false;
        bool our_child = false;
    };
    PostmasterCheck check_postmaster() const;
    void track_postmaster(int pid, bool our_child);
    // `status` is the wait status when reaped through SIGCHLD, nullopt when found gone by
    // polling.
    void postmaster_exited(int pid, std::optional<int> status);
    // Backends of a killed postmaster still attached to its shared memory keep a new
    // postmaster from starting; counts live postgres processes whose cwd is the data directory.
    int leftover_backends() const;
    boost::asio::awaitable<void> sleep_for(std::chrono::milliseconds d);

    // ---- observation (probe.cpp) ---------------------------------------------------
    boost::asio::awaitable<std::optional<ControlData>> controldata();
    boost::asio::awaitable<std::int64_t> checkpoint_end(ControlData cd);
    boost::asio::awaitable<PqOutcome> status_query(bool with_pending_restart);
    boost::asio::awaitable<PqOutcome> cached_query(std::string sql,
                                                   std::vector<std::optional<std::string>> params);
    std::optional<core::PgQueryResult> parse_status(const PqOutcome& out);

    // ---- files (file_ops.cpp) ------------------------------------------------------
    boost::asio::awaitable<Status> blocking(std::function<Status()> fn);
    boost::asio::awaitable<Status> apply_file_ops(std::vector<detail::FileOp> ops);
    // Writes the pgpass file (mode 0600) and returns the environment for a libpq tool:
    // PGPASSFILE when there is a password to find.
    boost::asio::awaitable<ToolEnv> pgpass_env();
    boost::asio::awaitable<Status> write_standby_signal();

    // ---- rewind (rewind.cpp) -------------------------------------------------------
    boost::asio::awaitable<std::optional<std::string>> guc_value(std::string name);
    boost::asio::awaitable<void> archive_ready_wals();
    boost::asio::awaitable<Status> crash_recovery();
    std::map<std::string, std::string> source_params(const std::string& host, int port) const;
    boost::asio::awaitable<Status> probe_source(std::string host, int port);
    boost::asio::awaitable<Status> wait_source_checkpoint(std::string host, int port);
};

}  // namespace pgwarden::pg
