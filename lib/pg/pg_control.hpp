// What the runtime may do to its local PostgreSQL, as an interface: pg::Postgres is the real
// one, tests/fakes/fake_postgres.hpp the fake. Also the typed errors every operation returns.
#pragma once

#include "core/cluster.hpp"
#include "core/pg_state.hpp"
#include "core/settings.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgwarden::pg {

template <class T>
using Task = boost::asio::awaitable<T>;
template <class T>
using Result = boost::system::result<T>;

// Why an operation failed. The caller decides by kind (and sqlstate), never by the message.
// Retryable (retryable() is true): the same call may succeed later without any change here.
enum class ErrorKind {
    ConnectionFailed,   // retryable: the server is not reachable, refused, or rejected the login
    Timeout,            // retryable: a deadline or a command's timeout expired
    CommandFailed,      // verdict: pg_ctl/initdb/pg_basebackup/pg_rewind/postgres exited non-zero
    SqlError,           // a statement failed: see sqlstate; retryable for classes 08 40 53 57
    Io,                 // verdict: a file system operation failed (see sys_errno)
    NotRunning,         // verdict: the operation needs a running postmaster and there is none
    Running,            // verdict: the operation needs a stopped postmaster and one runs
    InvalidState,       // verdict: the data directory is not in a state the operation accepts
    InvalidConfig,      // verdict: the settings or the ConfigFiles cannot be used
    SourceUnreachable,  // retryable: the rewind source does not accept a connection or
                        // does not answer as a primary
    SourceNotReady,     // retryable: the rewind source has not run its post-promote checkpoint
};

std::string_view to_string(ErrorKind k) noexcept;

// A failed PostgreSQL operation: what failed, in a sentence that names the command or file,
// with the tail of the command's output. Passwords never appear in it.
struct PgError {
    std::string message;
    ErrorKind kind = ErrorKind::CommandFailed;
    std::string sqlstate;  // PG_DIAG_SQLSTATE when a statement failed (kind SqlError), else ""
    int sys_errno = 0;     // errno when a system call failed (kind Io), else 0
};

// True for the kinds marked retryable above (SqlError: by SQLSTATE class).
bool retryable(const PgError& e) noexcept;

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

// Every operation the runtime performs on the local PostgreSQL. The documentation of each is
// on pg::Postgres (postgres.hpp).
class PgControl {
public:
    virtual ~PgControl() = default;

    virtual void start_supervision(std::function<void()> on_postmaster_exit) = 0;

    virtual Task<core::PgObservation> observe() = 0;
    virtual Task<std::optional<core::PgQueryResult>> query_status() = 0;

    virtual Task<Status> initdb() = 0;
    virtual Task<Status> write_config(ConfigFiles files) = 0;
    virtual Task<Status> start(std::chrono::seconds timeout) = 0;
    virtual Task<Status> stop(StopMode mode, std::chrono::seconds timeout) = 0;
    virtual Task<Status> promote(std::chrono::seconds timeout) = 0;
    virtual Task<Status> reload() = 0;
    virtual Task<Status> create_roles() = 0;
    virtual Task<Status> execute(std::string sql) = 0;

    virtual Task<Status> clone_from(std::string host,
                                    int port,
                                    std::vector<std::string> extra_args) = 0;
    virtual Task<Status> rewind_from(std::string host, int port) = 0;
    // Makes the physical slots exactly `names`: creates the missing ones, drops inactive ones
    // not named, except those matching `ignore` (ignore_slots).
    virtual Task<Status> sync_physical_slots(std::vector<std::string> names,
                                             std::vector<core::SlotMatcher> ignore = {}) = 0;
    virtual Task<Status> advance_physical_slots(std::vector<std::string> names) = 0;
    virtual Task<Result<std::vector<core::HistoryLine>>> read_timeline_history(int timeline) = 0;
    virtual Task<Status> remove_data_directory() = 0;

protected:
    PgControl() = default;
    PgControl(const PgControl&) = default;
    PgControl& operator=(const PgControl&) = default;
};

}  // namespace pgwarden::pg
