// PgError kinds: their names, which are retryable, and how libpq failures map to them
// (by the PqError's flags and SQLSTATE, never by message text).
#include "pg/postgres_impl.hpp"

#include <cstring>

namespace pgwarden::pg {

std::string_view to_string(ErrorKind k) noexcept {
    switch (k) {
        case ErrorKind::ConnectionFailed:
            return "connection failed";
        case ErrorKind::Timeout:
            return "timeout";
        case ErrorKind::CommandFailed:
            return "command failed";
        case ErrorKind::SqlError:
            return "SQL error";
        case ErrorKind::Io:
            return "I/O error";
        case ErrorKind::NotRunning:
            return "not running";
        case ErrorKind::Running:
            return "running";
        case ErrorKind::InvalidState:
            return "invalid state";
        case ErrorKind::InvalidConfig:
            return "invalid configuration";
        case ErrorKind::SourceUnreachable:
            return "source unreachable";
        case ErrorKind::SourceNotReady:
            return "source not ready";
    }
    return "unknown";
}

bool retryable(const PgError& e) noexcept {
    switch (e.kind) {
        case ErrorKind::ConnectionFailed:
        case ErrorKind::Timeout:
        case ErrorKind::SourceUnreachable:
        case ErrorKind::SourceNotReady:
            return true;
        case ErrorKind::SqlError: {
            // SQLSTATE classes of transient conditions: 08 connection exception, 40 transaction
            // rollback (serialization, deadlock), 53 insufficient resources, 57 operator
            // intervention (shutdown, starting up, query canceled).
            const std::string_view cls = std::string_view(e.sqlstate).substr(0, 2);
            return cls == "08" || cls == "40" || cls == "53" || cls == "57";
        }
        case ErrorKind::CommandFailed:
        case ErrorKind::Io:
        case ErrorKind::NotRunning:
        case ErrorKind::Running:
        case ErrorKind::InvalidState:
        case ErrorKind::InvalidConfig:
            return false;
    }
    return false;
}

namespace detail {

PgError make_error(ErrorKind kind, std::string message, int sys_errno) {
    PgError e;
    e.message = std::move(message);
    e.kind = kind;
    e.sys_errno = sys_errno;
    return e;
}

PgError pq_error(const std::string& what, const PqError& e) {
    PgError out;
    out.message = what + ": " + e.describe();
    if (e.timed_out) {
        out.kind = ErrorKind::Timeout;
    } else if (!e.sqlstate.empty()) {
        out.kind = ErrorKind::SqlError;
        out.sqlstate = e.sqlstate;
    } else {
        out.kind = ErrorKind::ConnectionFailed;
    }
    return out;
}

PgError with_prefix(const std::string& prefix, PgError e) {
    e.message = prefix + e.message;
    return e;
}

std::string errno_text(int e) {
    return std::strerror(e);
}

}  // namespace detail

}  // namespace pgwarden::pg
