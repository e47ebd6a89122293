// A libpq connection driven without blocking the event loop (STYLE.md point 13): PQconnectStart +
// PQconnectPoll, PQsetnonblocking, PQsendQueryParams, PQconsumeInput/PQisBusy, PQflush; waits on
// the socket with posix::stream_descriptor::async_wait and release() (libpq owns the fd). Every
// operation has a deadline; on expiry the connection is closed (PQcancel would block).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct pg_conn;
struct pg_result;

namespace pgwarden::pg {

struct PqError {
    std::string sqlstate;    // empty for connection-level errors
    std::string message;     // libpq/server message, one line; never contains a password
    bool timed_out = false;  // the operation's deadline expired (the connection was closed)
    std::string describe() const;
};

struct PqRows {
    std::vector<std::vector<std::optional<std::string>>> rows;  // text format, NULL = nullopt
};

struct PqOutcome {
    std::optional<PqError> error;  // nullopt = success
    PqRows result;                 // rows of the last result that returned tuples
};

class PqConnection {
public:
    using Clock = std::chrono::steady_clock;

    explicit PqConnection(boost::asio::any_io_executor ex);
    ~PqConnection();
    PqConnection(const PqConnection&) = delete;
    PqConnection& operator=(const PqConnection&) = delete;

    // Connects with the given libpq keywords (expand_dbname off). Replaces any open connection.
    boost::asio::awaitable<std::optional<PqError>> connect(
        std::map<std::string, std::string> params, Clock::time_point deadline);

    // One statement with text parameters ($1...). On a timeout or a broken connection the
    // connection is closed; a server error (SQLSTATE) keeps it open.
    boost::asio::awaitable<PqOutcome> query(std::string sql,
                                            std::vector<std::optional<std::string>> params,
                                            Clock::time_point deadline);

    bool connected() const;
    void close();
    // Escaping that needs the connection's encoding (nullopt if not connected or on error).
    std::optional<std::string> escape_literal(const std::string& s) const;
    std::optional<std::string> escape_identifier(const std::string& s) const;
    // Client-side password hashing (PQencryptPasswordConn with an explicit algorithm, so no
    // blocking round trip): the plaintext never goes over the wire.
    std::optional<std::string> encrypt_password(const std::string& password,
                                                const std::string& user,
                                                const std::string& algorithm) const;

private:
    struct ConnDeleter {
        void operator()(pg_conn* c) const noexcept;
    };
    boost::asio::any_io_executor ex_;
    std::unique_ptr<pg_conn, ConnDeleter> conn_;
};

}  // namespace pgwarden::pg
