// Cloning a replica with pg_basebackup, and removing a data directory (for a re-clone).
#include "pg/postgres_impl.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <sys/stat.h>

namespace pgwarden::pg {

namespace net = boost::asio;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using detail::make_error;
using detail::with_prefix;

namespace {

constexpr auto kBasebackupTimeout = std::chrono::hours(1);          // all attempts together
constexpr auto kBasebackupRetryInterval = std::chrono::seconds(5);  // Patroni: 2 attempts, 5 s
constexpr int kBasebackupAttempts = 2;

}  // namespace

Task<Status> Postgres::clone_from(std::string host, int port, std::vector<std::string> extra_args) {
    Impl& d = *impl_;
    const fs::path dd = d.data_dir();
    std::error_code ec;
    if (d.check_postmaster().alive) {
        co_return make_error(ErrorKind::Running,
                             "cannot clone into " + d.where() + ": PostgreSQL is running there");
    }
    if (fs::exists(dd / "global" / "pg_control", ec)) {
        co_return make_error(
            ErrorKind::InvalidState,
            "cannot clone into " + d.where() +
                ": it holds a PostgreSQL cluster (remove the data directory first)");
    }
    std::vector<std::string> rejected;
    std::vector<std::string> args = filter_basebackup_args(extra_args, &rejected);
    for (const auto& a : rejected) {
        spdlog::error("pg: basebackup option {} is not allowed, ignoring it", a);
    }
    auto tool = co_await d.pgpass_env();
    if (tool.error) {
        co_return with_prefix("cannot clone into " + d.where() + ": ", std::move(*tool.error));
    }
    std::vector<std::string> argv;
    argv.push_back(d.bin("pg_basebackup"));
    argv.push_back("--pgdata=" + dd.string());
    argv.push_back("-X");
    argv.push_back("stream");
    argv.push_back("--dbname=" + basebackup_conninfo(d.settings, host, port));
    argv.insert(argv.end(), args.begin(), args.end());

    const auto deadline = Clock::now() + kBasebackupTimeout;
    std::optional<PgError> last;
    d.sysid.reset();
    for (int attempt = 1; attempt <= kBasebackupAttempts; ++attempt) {
        // pg_basebackup wants an empty (or missing) directory: clear leftovers of a previous
        // attempt or of an interrupted clone (Patroni removes a non-empty data directory).
        if (fs::exists(dd, ec) && !fs::is_empty(dd, ec)) {
            std::function<Status()> job = [dd] {
                return detail::clear_data_directory(dd);
            };
            if (auto err = co_await d.blocking(std::move(job))) {
                co_return with_prefix("cannot clone into " + d.where() + ": ", std::move(*err));
            }
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left <= std::chrono::milliseconds(0)) {
            break;
        }
        spdlog::info("pg: cloning {} from {}:{} with pg_basebackup (attempt {} of {})",
                     d.where(),
                     host,
                     port,
                     attempt,
                     kBasebackupAttempts);
        auto r = co_await d.run(argv, tool.env, left);
        if (r.ok()) {
            last.reset();
            break;
        }
        last = d.command_error("pg_basebackup from " + host + ":" + std::to_string(port), r);
        spdlog::error("pg: {}", last->message);
        if (attempt < kBasebackupAttempts && Clock::now() + kBasebackupRetryInterval < deadline) {
            spdlog::warn("pg: trying pg_basebackup again in {} seconds",
                         kBasebackupRetryInterval.count());
            co_await d.sleep_for(kBasebackupRetryInterval);
        }
    }
    if (last || !fs::exists(dd / "global" / "pg_control", ec)) {
        std::function<Status()> job = [dd] {
            return detail::clear_data_directory(dd);
        };
        if (auto err = co_await d.blocking(std::move(job))) {
            spdlog::error("pg: could not remove the partial clone: {}", err->message);
        }
        co_return last ? *last
                       : make_error(ErrorKind::Timeout,
                                    "pg_basebackup from " + host + ":" + std::to_string(port) +
                                        " timed out for " + d.where());
    }
    // PostgreSQL accepts 0700, or 0750 with group access (pg_basebackup copies the source's).
    struct stat st {};
    if (::stat(dd.c_str(), &st) == 0 && (st.st_mode & 0777) != 0700 &&
        (st.st_mode & 0777) != 0750) {
        if (::chmod(dd.c_str(), 0700) != 0) {
            const int e = errno;
            co_return make_error(
                ErrorKind::Io, "could not chmod " + dd.string() + ": " + detail::errno_text(e), e);
        }
    }
    spdlog::info("pg: replica has been created using basebackup in {}", d.where());
    co_return std::nullopt;
}

Task<Status> Postgres::remove_data_directory() {
    Impl& d = *impl_;
    auto pc = d.check_postmaster();
    if (pc.alive) {
        co_return make_error(ErrorKind::Running,
                             "refusing to remove " + d.where() + ": PostgreSQL is running (pid " +
                                 std::to_string(pc.pid.value_or(0)) + ")");
    }
    const fs::path dd = d.data_dir();
    spdlog::info("pg: removing {}", d.where());
    d.sysid.reset();
    std::function<Status()> job = [dd] {
        return detail::clear_data_directory(dd);
    };
    if (auto err = co_await d.blocking(std::move(job))) {
        co_return with_prefix("could not remove " + d.where() + ": ", std::move(*err));
    }
    co_return std::nullopt;
}

}  // namespace pgwarden::pg
