// Where things are for Postgres: data and config directories, binaries, the postmaster log,
// the unix socket, local connection parameters; and how commands run and fail (pg_ctl).
#include "pg/postgres_impl.hpp"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <unistd.h>

namespace pgwarden::pg {

namespace net = boost::asio;
namespace fs = std::filesystem;
using detail::kDebianBinDir;
using detail::kDefaultSocketDir;

namespace {

bool is_executable(const fs::path& p) {
    return ::access(p.c_str(), X_OK) == 0;
}

}  // namespace

fs::path Postgres::Impl::data_dir() const {
    std::error_code ec;
    fs::path p = fs::absolute(settings.postgresql.data_dir, ec).lexically_normal();
    if (p.has_filename() || p == p.root_path()) {
        return p;
    }
    return p.parent_path();  // trailing slash
}

fs::path Postgres::Impl::config_dir() const {
    if (settings.postgresql.config_dir.empty()) {
        return data_dir();
    }
    std::error_code ec;
    fs::path p = fs::absolute(settings.postgresql.config_dir, ec).lexically_normal();
    return p.has_filename() ? p : p.parent_path();
}

std::string Postgres::Impl::bin(std::string_view name) const {
    if (!settings.postgresql.bin_dir.empty()) {
        return (fs::path(settings.postgresql.bin_dir) / name).string();
    }
    fs::path debian = fs::path(kDebianBinDir) / name;
    if (is_executable(debian)) {
        return debian.string();
    }
    if (const char* path = std::getenv("PATH")) {
        std::string_view rest(path);
        while (!rest.empty()) {
            auto colon = rest.find(':');
            std::string_view dir = rest.substr(0, colon);
            if (!dir.empty() && is_executable(fs::path(dir) / name)) {
                return (fs::path(dir) / name).string();
            }
            if (colon == std::string_view::npos) {
                break;
            }
            rest.remove_prefix(colon + 1);
        }
    }
    return (fs::path(kDebianBinDir) / name).string();  // run() reports it missing
}

std::string Postgres::Impl::log_file() const {
    fs::path dd = data_dir();
    fs::path parent = dd.parent_path();
    if (!parent.empty() && ::access(parent.c_str(), W_OK) == 0) {
        return (parent / (dd.filename().string() + "-postmaster.log")).string();
    }
    return (dd / "pgwarden-postmaster.log").string();
}

std::string Postgres::Impl::socket_dir_default() const {
    if (::access(std::string(kDefaultSocketDir).c_str(), W_OK) == 0) {
        return std::string(kDefaultSocketDir);
    }
    fs::path parent = data_dir().parent_path();
    if (!parent.empty() && ::access(parent.c_str(), W_OK) == 0) {
        return parent.string();
    }
    return data_dir().string();
}

std::optional<std::string> Postgres::Impl::configured_socket_dirs() const {
    if (auto it = written_parameters.find("unix_socket_directories");
        it != written_parameters.end()) {
        return it->second;
    }
    if (auto it = settings.postgresql.parameters.find("unix_socket_directories");
        it != settings.postgresql.parameters.end()) {
        return it->second;
    }
    return std::nullopt;
}

std::string Postgres::Impl::socket_dir() const {
    if (auto dirs = configured_socket_dirs()) {
        std::string first = dirs->substr(0, dirs->find(','));
        while (!first.empty() && first.front() == ' ') {
            first.erase(0, 1);
        }
        while (!first.empty() && first.back() == ' ') {
            first.pop_back();
        }
        if (!first.empty()) {
            return first;
        }
    }
    return socket_dir_default();
}

std::map<std::string, std::string> Postgres::Impl::conn_params() const {
    const auto& pg = settings.postgresql;
    auto la = parse_listen(pg.listen);
    std::map<std::string, std::string> p;
    std::string port = la ? la->port : "5432";
    if (auto it = written_parameters.find("port"); it != written_parameters.end()) {
        port = it->second;
    }
    p["host"] = pg.use_unix_socket ? socket_dir() : (la ? la->local_host : "127.0.0.1");
    p["port"] = port;
    if (!pg.superuser.username.empty()) {
        p["user"] = pg.superuser.username;
    }
    if (!pg.superuser.password.empty()) {
        p["password"] = pg.superuser.password;
    }
    p["dbname"] = pg.database.empty() ? "postgres" : pg.database;
    p["application_name"] = "pgwarden";
    return p;
}

std::vector<std::string> Postgres::Impl::pg_ctl_args(const char* command) const {
    std::vector<std::string> argv;
    argv.push_back(bin("pg_ctl"));
    argv.push_back(command);
    argv.push_back("-D");
    argv.push_back(data_dir().string());
    return argv;
}

std::string Postgres::Impl::where() const {
    return "data directory " + data_dir().string();
}

PgError Postgres::Impl::command_error(const std::string& what,
                                      const CommandResult& r,
                                      std::size_t max_tail) const {
    std::string msg = what + " failed for " + where() + ": " + r.describe();
    std::string tail = output_tail(r.output, max_tail);
    if (!tail.empty()) {
        msg += ": " + tail;
    }
    return detail::make_error(r.timed_out ? ErrorKind::Timeout : ErrorKind::CommandFailed, msg);
}

net::awaitable<CommandResult> Postgres::Impl::run(std::vector<std::string> argv,
                                                  std::map<std::string, std::string> env,
                                                  std::chrono::milliseconds timeout) {
    std::string line;
    for (const auto& a : argv) {
        line += (line.empty() ? "" : " ") + a;
    }
    spdlog::debug("pg: running {}", line);
    co_return co_await runner->run(std::move(argv), std::move(env), timeout);
}

net::awaitable<CommandResult> Postgres::Impl::run_pg_ctl_waiting(std::string command,
                                                                 std::vector<std::string> extra,
                                                                 std::int64_t secs) {
    std::vector<std::string> argv = pg_ctl_args(command.c_str());
    argv.push_back("-w");
    argv.push_back("-t");
    argv.push_back(std::to_string(secs));
    argv.insert(argv.end(), extra.begin(), extra.end());
    co_return co_await run(std::move(argv),
                           std::map<std::string, std::string>(),
                           std::chrono::seconds(secs) + detail::kCommandMargin);
}

net::awaitable<std::optional<PqError>> Postgres::Impl::connect_fresh(PqConnection* c,
                                                                     Clock::time_point deadline) {
    co_return co_await c->connect(conn_params(), deadline);
}

}  // namespace pgwarden::pg
