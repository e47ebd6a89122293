#include "split_brain.hpp"

#include "support/net.hpp"

#include <libpq-fe.h>

#include <cstdio>
#include <ctime>
#include <memory>
#include <sstream>

namespace pgwarden::e2e {

using namespace std::chrono_literals;

namespace {

using PgConn = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using PgResult = std::unique_ptr<PGresult, decltype(&PQclear)>;

std::string wall_clock(std::chrono::system_clock::time_point tp) {
    const auto t = std::chrono::system_clock::to_time_t(tp);
    std::tm tm{};
    localtime_r(&t, &tm);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch()).count() % 1000;
    char buf[32];
    std::snprintf(buf,
                  sizeof buf,
                  "%02d:%02d:%02d.%03lld",
                  tm.tm_hour,
                  tm.tm_min,
                  tm.tm_sec,
                  static_cast<long long>(ms));
    return buf;
}

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) {
        out += (out.empty() ? "" : ", ") + s;
    }
    return out;
}

}  // namespace

SplitBrainChecker::SplitBrainChecker(std::vector<NodeEndpoint> nodes,
                                     std::string password,
                                     std::chrono::milliseconds interval)
    : nodes_(std::move(nodes)),
      password_(std::move(password)),
      interval_(interval),
      started_(Clock::now()) {
    thread_ = std::thread([this] { run(); });
}

SplitBrainChecker::~SplitBrainChecker() {
    stop();
}

void SplitBrainChecker::stop() {
    stop_ = true;
    if (thread_.joinable()) {
        thread_.join();
    }
}

void SplitBrainChecker::run() {
    // One connection per node, kept between polls and re-opened after any error.
    std::vector<PgConn> conns;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        conns.emplace_back(nullptr, &PQfinish);
    }
    auto next = Clock::now();
    while (!stop_) {
        std::this_thread::sleep_until(next);
        next = std::max(next + interval_, Clock::now());
        if (stop_) {
            break;
        }
        std::vector<std::string> api;
        std::vector<std::string> writable;
        // REST first for every node, then SQL for every node: each pass takes milliseconds on
        // loopback, so the answers of one pass are close to simultaneous.
        for (const auto& n : nodes_) {
            if (t::http_request("127.0.0.1", n.api_port, "GET", "/primary", "", {}, 1s).status ==
                200) {
                api.push_back(n.name);
            }
        }
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
            auto& c = conns[i];
            if (!c) {
                const std::string ci = "host=127.0.0.1 port=" + std::to_string(nodes_[i].pg_port) +
                                       " dbname=postgres user=postgres password=" + password_ +
                                       " connect_timeout=2 options='-c statement_timeout=1000'"
                                       " tcp_user_timeout=2000 application_name=pgw_e2e_checker";
                PgConn fresh(PQconnectdb(ci.c_str()), &PQfinish);
                if (PQstatus(fresh.get()) != CONNECTION_OK) {
                    continue;  // not answering: not writable
                }
                c = std::move(fresh);
            }
            PgResult r(PQexec(c.get(), "SELECT pg_is_in_recovery()"), &PQclear);
            if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1) {
                c.reset();
                continue;
            }
            if (std::string(PQgetvalue(r.get(), 0, 0)) == "f") {
                writable.push_back(nodes_[i].name);
            }
        }
        const auto now = Clock::now();
        const auto wall = std::chrono::system_clock::now();
        std::lock_guard lock(mu_);
        ++polls_;
        if (writable.size() == 1) {
            ++one_writable_;
        }
        if (api.size() >= 2) {
            violations_.push_back({now, wall, "/primary", api});
        }
        if (writable.size() >= 2) {
            violations_.push_back({now, wall, "pg_is_in_recovery", writable});
        }
        last_api_ = std::move(api);
        last_writable_ = std::move(writable);
    }
}

std::size_t SplitBrainChecker::polls() const {
    std::lock_guard lock(mu_);
    return polls_;
}

std::vector<SplitBrainChecker::Violation> SplitBrainChecker::violations() const {
    std::lock_guard lock(mu_);
    return violations_;
}

std::vector<std::string> SplitBrainChecker::last_api_primaries() const {
    std::lock_guard lock(mu_);
    return last_api_;
}

std::vector<std::string> SplitBrainChecker::last_writable() const {
    std::lock_guard lock(mu_);
    return last_writable_;
}

std::size_t SplitBrainChecker::polls_with_one_writable() const {
    std::lock_guard lock(mu_);
    return one_writable_;
}

std::string SplitBrainChecker::summary() const {
    std::lock_guard lock(mu_);
    std::ostringstream out;
    if (violations_.empty()) {
        out << "no split brain in " << polls_ << " polls";
        return out.str();
    }
    out << violations_.size() << " split-brain observations in " << polls_ << " polls:";
    for (const auto& v : violations_) {
        char rel[32];
        std::snprintf(
            rel, sizeof rel, "+%.2fs", std::chrono::duration<double>(v.at - started_).count());
        out << "\n  " << rel << " " << wall_clock(v.wall) << " " << v.kind
            << " says writable: " << join(v.nodes);
    }
    return out.str();
}

}  // namespace pgwarden::e2e
