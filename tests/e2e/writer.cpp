#include "writer.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <unordered_set>

namespace pgwarden::e2e {

using namespace std::chrono_literals;

namespace {

using PgConn = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using PgResult = std::unique_ptr<PGresult, decltype(&PQclear)>;

// Bound every statement and notice a dead peer: the thread must never hang on one query.
std::string with_timeouts(const std::string& conninfo) {
    return conninfo +
           " options='-c statement_timeout=5000' keepalives=1 keepalives_idle=2"
           " keepalives_interval=1 keepalives_count=2 tcp_user_timeout=5000";
}

std::string one_line(std::string s) {
    std::replace(s.begin(), s.end(), '\n', ' ');
    while (!s.empty() && s.back() == ' ') {
        s.pop_back();
    }
    return s;
}

}  // namespace

std::string seconds(std::chrono::steady_clock::duration d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2fs", std::chrono::duration<double>(d).count());
    return buf;
}

Writer::Writer(std::string conninfo, std::chrono::milliseconds pacing)
    : conninfo_(with_timeouts(conninfo)), pacing_(pacing) {
    thread_ = std::thread([this] { run(); });
}

Writer::~Writer() {
    stop();
}

void Writer::stop() {
    stop_ = true;
    if (thread_.joinable()) {
        thread_.join();
    }
}

void Writer::note_failure(const std::string& error) {
    std::lock_guard lock(mu_);
    last_error_ = error;
    if (outages_.empty() || outages_.back().end) {
        outages_.push_back({Clock::now(), std::nullopt, error});
    }
}

void Writer::run() {
    PgConn conn(nullptr, &PQfinish);
    std::int64_t next_id = 1;
    auto next_connect = Clock::now();
    auto next_write = Clock::now();
    auto opened = Clock::now();
    unsigned short port = 0;
    while (!stop_) {
        if (!conn) {
            // At most one connection attempt per 200 ms (each tries every host in turn).
            std::this_thread::sleep_until(next_connect);
            if (stop_) {
                break;
            }
            next_connect = Clock::now() + 200ms;
            PgConn c(PQconnectdb(conninfo_.c_str()), &PQfinish);
            if (PQstatus(c.get()) != CONNECTION_OK) {
                note_failure("connect: " + one_line(PQerrorMessage(c.get())));
                continue;
            }
            PQsetNoticeProcessor(
                c.get(), [](void*, const char*) {}, nullptr);  // "exists, skipping"
            PgResult r(PQexec(c.get(),
                              "CREATE TABLE IF NOT EXISTS pgw_e2e_writes (id bigint PRIMARY KEY, "
                              "at timestamptz NOT NULL DEFAULT clock_timestamp())"),
                       &PQclear);
            if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
                note_failure("create table: " + one_line(PQerrorMessage(c.get())));
                continue;
            }
            conn = std::move(c);
            opened = Clock::now();
            port = static_cast<unsigned short>(std::atoi(PQport(conn.get())));
            next_write = Clock::now();
        }
        std::this_thread::sleep_until(next_write);
        next_write = std::max(next_write + pacing_, Clock::now());
        // A fresh id for every attempt: an attempt whose outcome is unknown is never retried.
        const std::string id = std::to_string(next_id++);
        const char* params[] = {id.c_str()};
        PgResult r(PQexecParams(conn.get(),
                                "INSERT INTO pgw_e2e_writes (id) VALUES ($1::bigint)",
                                1,
                                nullptr,
                                params,
                                nullptr,
                                nullptr,
                                0),
                   &PQclear);
        if (PQresultStatus(r.get()) == PGRES_COMMAND_OK) {
            const auto now = Clock::now();
            std::lock_guard lock(mu_);
            acks_.push_back({std::stoll(id), now, port, opened});
            if (!outages_.empty() && !outages_.back().end) {
                outages_.back().end = now;
            }
        } else {
            // Whatever it was (server gone, read-only after a demotion, timeout): reconnect to
            // whichever node is writable now.
            note_failure("insert: " + one_line(PQerrorMessage(conn.get())));
            conn.reset();
        }
    }
}

std::size_t Writer::acked() const {
    std::lock_guard lock(mu_);
    return acks_.size();
}

std::optional<Writer::Clock::time_point> Writer::first_ack_after(Clock::time_point t,
                                                                 AckFilter filter) const {
    std::lock_guard lock(mu_);
    auto it = std::upper_bound(
        acks_.begin(), acks_.end(), t, [](Clock::time_point v, const Ack& a) { return v < a.at; });
    for (; it != acks_.end(); ++it) {
        if (filter.new_connection && it->connection_opened <= t) {
            continue;
        }
        if (filter.on_port != 0 && it->port != filter.on_port) {
            continue;
        }
        if (filter.not_on_port != 0 && it->port == filter.not_on_port) {
            continue;
        }
        return it->at;
    }
    return std::nullopt;
}

Writer::Clock::duration Writer::longest_gap(Clock::time_point from, Clock::time_point to) const {
    std::lock_guard lock(mu_);
    Clock::duration longest{0};
    for (std::size_t i = 0; i + 1 < acks_.size(); ++i) {
        const auto a = acks_[i].at;
        const auto b = acks_[i + 1].at;
        if (b >= from && a <= to) {
            longest = std::max(longest, b - a);
        }
    }
    // The interval still open at `to` (no acknowledged write since the last one).
    if (acks_.empty()) {
        longest = std::max(longest, to - from);
    } else if (acks_.back().at <= to) {
        longest = std::max(longest, to - acks_.back().at);
    }
    return longest;
}

std::vector<Writer::Ack> Writer::acks() const {
    std::lock_guard lock(mu_);
    return acks_;
}

std::vector<Writer::Outage> Writer::outages() const {
    std::lock_guard lock(mu_);
    return outages_;
}

std::string Writer::last_error() const {
    std::lock_guard lock(mu_);
    return last_error_;
}

LostWrites count_lost(const Writer& writer, const std::string& conninfo) {
    LostWrites out;
    const auto acks = writer.acks();
    out.acked = acks.size();
    PgConn conn(PQconnectdb(conninfo.c_str()), &PQfinish);
    if (PQstatus(conn.get()) != CONNECTION_OK) {
        out.error = "connect: " + one_line(PQerrorMessage(conn.get()));
        return out;
    }
    PgResult r(PQexec(conn.get(), "SELECT id FROM pgw_e2e_writes"), &PQclear);
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
        out.error = "select: " + one_line(PQerrorMessage(conn.get()));
        return out;
    }
    std::unordered_set<std::int64_t> present;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        present.insert(std::stoll(PQgetvalue(r.get(), i, 0)));
    }
    for (const auto& a : acks) {
        if (!present.count(a.id)) {
            ++out.lost;
            if (out.sample.size() < 20) {
                out.sample.push_back(a.id);
            }
        }
    }
    return out;
}

}  // namespace pgwarden::e2e
