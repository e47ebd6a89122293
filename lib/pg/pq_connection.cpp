#include "pg/pq_connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <libpq-fe.h>

#include <utility>

namespace pgwarden::pg {

namespace net = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

namespace {

struct ResultDeleter {
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

struct FreeMem {
    void operator()(char* p) const noexcept { PQfreemem(p); }
};

std::string one_line(const char* msg) {
    std::string s = msg != nullptr ? msg : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
        s.pop_back();
    }
    for (char& c : s) {
        if (c == '\n') {
            c = ' ';
        }
    }
    return s;
}

PqError conn_error(PGconn* conn, const std::string& fallback) {
    std::string msg = conn != nullptr ? one_line(PQerrorMessage(conn)) : std::string();
    return PqError{"", msg.empty() ? fallback : msg};
}

enum class WaitFor { Read, Write, ReadOrWrite };
enum class Ready { Readable, Writable, Timeout, Error };

// Keeps Asio from closing libpq's socket: the descriptor is released, never closed.
struct Releaser {
    net::posix::stream_descriptor& sd;
    ~Releaser() { sd.release(); }
};

net::awaitable<Ready> wait_socket(int fd, WaitFor what, Clock::time_point deadline) {
    if (fd < 0) {
        co_return Ready::Error;
    }
    if (Clock::now() >= deadline) {
        co_return Ready::Timeout;
    }
    auto ex = co_await net::this_coro::executor;
    boost::system::error_code ec;
    net::posix::stream_descriptor sd(ex);
    sd.assign(fd, ec);
    if (ec) {
        co_return Ready::Error;
    }
    Releaser releaser{sd};
    net::steady_timer timer(ex, deadline);
    using Sd = net::posix::stream_descriptor;
    if (what == WaitFor::ReadOrWrite) {
        auto r = co_await ((sd.async_wait(Sd::wait_read, net::as_tuple(net::use_awaitable)) ||
                            sd.async_wait(Sd::wait_write, net::as_tuple(net::use_awaitable))) ||
                           timer.async_wait(net::as_tuple(net::use_awaitable)));
        if (r.index() == 2) {
            co_return Ready::Timeout;
        }
        co_return r.index() == 0 ? Ready::Readable : Ready::Writable;
    }
    auto w = what == WaitFor::Read ? Sd::wait_read : Sd::wait_write;
    auto r = co_await (sd.async_wait(w, net::as_tuple(net::use_awaitable)) ||
                       timer.async_wait(net::as_tuple(net::use_awaitable)));
    if (r.index() == 1) {
        co_return Ready::Timeout;
    }
    auto [wait_ec] = std::get<0>(r);
    if (wait_ec) {
        co_return Ready::Error;
    }
    co_return what == WaitFor::Read ? Ready::Readable : Ready::Writable;
}

}  // namespace

std::string PqError::describe() const {
    if (sqlstate.empty()) {
        return message;
    }
    return sqlstate + ": " + message;
}

void PqConnection::ConnDeleter::operator()(pg_conn* c) const noexcept {
    PQfinish(c);
}

PqConnection::PqConnection(net::any_io_executor ex) : ex_(std::move(ex)) {}

PqConnection::~PqConnection() = default;

bool PqConnection::connected() const {
    return conn_ && PQstatus(conn_.get()) == CONNECTION_OK;
}

void PqConnection::close() {
    conn_.reset();
}

net::awaitable<std::optional<PqError>> PqConnection::connect(
    std::map<std::string, std::string> params, Clock::time_point deadline) {
    conn_.reset();
    std::vector<const char*> keys;
    std::vector<const char*> values;
    for (const auto& [k, v] : params) {
        keys.push_back(k.c_str());
        values.push_back(v.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    conn_.reset(PQconnectStartParams(keys.data(), values.data(), 0));
    if (!conn_) {
        co_return PqError{"", "out of memory allocating a libpq connection"};
    }
    if (PQstatus(conn_.get()) == CONNECTION_BAD) {
        auto err = conn_error(conn_.get(), "connection failed");
        conn_.reset();
        co_return err;
    }
    PostgresPollingStatusType poll = PGRES_POLLING_WRITING;
    for (;;) {
        if (poll == PGRES_POLLING_OK) {
            break;
        }
        if (poll == PGRES_POLLING_FAILED) {
            auto err = conn_error(conn_.get(), "connection failed");
            conn_.reset();
            co_return err;
        }
        // The socket may change between polls (several hosts/addresses): re-read it each time.
        Ready ready =
            co_await wait_socket(PQsocket(conn_.get()),
                                 poll == PGRES_POLLING_READING ? WaitFor::Read : WaitFor::Write,
                                 deadline);
        if (ready == Ready::Timeout) {
            conn_.reset();
            co_return PqError{"", "timeout expired while connecting", true};
        }
        if (ready == Ready::Error) {
            auto err = conn_error(conn_.get(), "connection failed");
            conn_.reset();
            co_return err;
        }
        poll = PQconnectPoll(conn_.get());
    }
    if (PQsetnonblocking(conn_.get(), 1) != 0) {
        auto err = conn_error(conn_.get(), "could not set the connection non-blocking");
        conn_.reset();
        co_return err;
    }
    co_return std::nullopt;
}

net::awaitable<PqOutcome> PqConnection::query(std::string sql,
                                              std::vector<std::optional<std::string>> params,
                                              Clock::time_point deadline) {
    PqOutcome out;
    if (!connected()) {
        out.error = PqError{"", "not connected"};
        co_return out;
    }
    PGconn* conn = conn_.get();
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) {
        values.push_back(p ? p->c_str() : nullptr);
    }
    if (PQsendQueryParams(conn,
                          sql.c_str(),
                          static_cast<int>(values.size()),
                          nullptr,
                          values.empty() ? nullptr : values.data(),
                          nullptr,
                          nullptr,
                          0) == 0) {
        out.error = conn_error(conn, "could not send the query");
        conn_.reset();
        co_return out;
    }
    // Flush the whole query; while the server's answer may be pending, also consume input.
    for (;;) {
        int f = PQflush(conn);
        if (f == 0) {
            break;
        }
        if (f < 0) {
            out.error = conn_error(conn, "could not send the query");
            conn_.reset();
            co_return out;
        }
        Ready ready = co_await wait_socket(PQsocket(conn), WaitFor::ReadOrWrite, deadline);
        if (ready == Ready::Timeout || ready == Ready::Error) {
            out.error = PqError{"",
                                ready == Ready::Timeout ? "timeout expired sending the query"
                                                        : "socket error sending the query",
                                ready == Ready::Timeout};
            conn_.reset();
            co_return out;
        }
        if (ready == Ready::Readable && PQconsumeInput(conn) == 0) {
            out.error = conn_error(conn, "connection lost");
            conn_.reset();
            co_return out;
        }
    }
    // Collect results until PQgetResult returns null; keep the first error.
    for (;;) {
        while (PQisBusy(conn) == 0) {
            ResultPtr res(PQgetResult(conn));
            if (!res) {
                if (!out.error && PQstatus(conn) != CONNECTION_OK) {
                    out.error = conn_error(conn, "connection lost");
                }
                if (PQstatus(conn) != CONNECTION_OK) {
                    conn_.reset();
                }
                co_return out;
            }
            ExecStatusType st = PQresultStatus(res.get());
            if (st == PGRES_TUPLES_OK) {
                out.result.rows.clear();
                int nrows = PQntuples(res.get());
                int ncols = PQnfields(res.get());
                for (int r = 0; r < nrows; ++r) {
                    std::vector<std::optional<std::string>> row;
                    row.reserve(static_cast<std::size_t>(ncols));
                    for (int c = 0; c < ncols; ++c) {
                        if (PQgetisnull(res.get(), r, c) != 0) {
                            row.emplace_back(std::nullopt);
                        } else {
                            row.emplace_back(std::string(PQgetvalue(res.get(), r, c),
                                                         PQgetlength(res.get(), r, c)));
                        }
                    }
                    out.result.rows.push_back(std::move(row));
                }
            } else if (st != PGRES_COMMAND_OK && st != PGRES_EMPTY_QUERY && !out.error) {
                const char* state = PQresultErrorField(res.get(), PG_DIAG_SQLSTATE);
                const char* primary = PQresultErrorField(res.get(), PG_DIAG_MESSAGE_PRIMARY);
                std::string msg = primary != nullptr ? one_line(primary)
                                                     : one_line(PQresultErrorMessage(res.get()));
                if (msg.empty()) {
                    msg = one_line(PQerrorMessage(conn));
                }
                out.error = PqError{state != nullptr ? state : "", msg};
            }
        }
        Ready ready = co_await wait_socket(PQsocket(conn), WaitFor::Read, deadline);
        if (ready == Ready::Timeout || ready == Ready::Error) {
            out.error = PqError{"",
                                ready == Ready::Timeout ? "timeout expired waiting for the result"
                                                        : "socket error waiting for the result",
                                ready == Ready::Timeout};
            conn_.reset();
            co_return out;
        }
        if (PQconsumeInput(conn) == 0) {
            out.error = conn_error(conn, "connection lost");
            conn_.reset();
            co_return out;
        }
    }
}

std::optional<std::string> PqConnection::escape_literal(const std::string& s) const {
    if (!conn_) {
        return std::nullopt;
    }
    std::unique_ptr<char, FreeMem> p(PQescapeLiteral(conn_.get(), s.data(), s.size()));
    if (!p) {
        return std::nullopt;
    }
    return std::string(p.get());
}

std::optional<std::string> PqConnection::escape_identifier(const std::string& s) const {
    if (!conn_) {
        return std::nullopt;
    }
    std::unique_ptr<char, FreeMem> p(PQescapeIdentifier(conn_.get(), s.data(), s.size()));
    if (!p) {
        return std::nullopt;
    }
    return std::string(p.get());
}

std::optional<std::string> PqConnection::encrypt_password(const std::string& password,
                                                          const std::string& user,
                                                          const std::string& algorithm) const {
    if (!conn_ || algorithm.empty()) {
        return std::nullopt;
    }
    std::unique_ptr<char, FreeMem> p(
        PQencryptPasswordConn(conn_.get(), password.c_str(), user.c_str(), algorithm.c_str()));
    if (!p) {
        return std::nullopt;
    }
    return std::string(p.get());
}

}  // namespace pgwarden::pg
