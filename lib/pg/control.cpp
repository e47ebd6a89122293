// Control of the local PostgreSQL: initdb, the managed configuration files, pg_ctl start /
// stop / promote / reload, and one statement as the superuser.
#include "pg/postgres_impl.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdlib>
#include <unistd.h>

namespace pgwarden::pg {

namespace net = boost::asio;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using detail::errno_text;
using detail::FileOp;
using detail::kErrorTail;
using detail::kQueryDeadline;
using detail::kRetryInterval;
using detail::make_error;
using detail::read_small_file;

namespace {

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out.push_back(c);
        }
    }
    out += "'";
    return out;
}

std::string_view stop_mode_name(StopMode m) {
    switch (m) {
        case StopMode::Smart:
            return "smart";
        case StopMode::Fast:
            return "fast";
        case StopMode::Immediate:
            return "immediate";
    }
    return "fast";
}

struct TempFileRemover {
    std::string path;
    ~TempFileRemover() {
        if (!path.empty()) {
            ::unlink(path.c_str());
        }
    }
};

PgError config_error(std::string what) {
    return make_error(ErrorKind::InvalidConfig, "cannot write configuration: " + std::move(what));
}

}  // namespace

Task<Status> Postgres::initdb() {
    Impl& d = *impl_;
    const auto& pg = d.settings.postgresql;
    std::vector<std::string> argv;
    argv.push_back(d.bin("initdb"));
    argv.push_back("-D");
    argv.push_back(d.data_dir().string());
    for (const auto& a : d.settings.bootstrap.initdb_args) {
        argv.push_back(a);
    }
    if (!pg.superuser.username.empty()) {
        argv.push_back("-U");
        argv.push_back(pg.superuser.username);
    }
    TempFileRemover pwfile;
    if (!pg.superuser.password.empty()) {
        fs::path dir = fs::temp_directory_path();
        std::string tmpl = (dir / "pgwarden-pwfile-XXXXXX").string();
        int fd = ::mkstemp(tmpl.data());  // mode 0600
        if (fd < 0) {
            const int e = errno;
            co_return make_error(ErrorKind::Io,
                                 "initdb failed for " + d.where() +
                                     ": could not create the password file in " + dir.string() +
                                     ": " + errno_text(e),
                                 e);
        }
        pwfile.path = tmpl;
        std::string content = pg.superuser.password + "\n";
        bool ok =
            ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
        const int e = ok ? 0 : errno;
        ::close(fd);
        if (!ok) {
            co_return make_error(
                ErrorKind::Io,
                "initdb failed for " + d.where() + ": could not write the password file",
                e);
        }
        argv.push_back("--pwfile=" + tmpl);
    }
    spdlog::info("pg: running initdb for {}", d.where());
    auto timeout = std::chrono::seconds(std::max(300, pg.pg_ctl_timeout));
    auto r = co_await d.run(std::move(argv), std::map<std::string, std::string>(), timeout);
    d.sysid.reset();
    if (!r.ok()) {
        co_return d.command_error("initdb", r);
    }
    co_return std::nullopt;
}

Task<Status> Postgres::write_config(ConfigFiles files) {
    Impl& d = *impl_;
    const auto& pg = d.settings.postgresql;
    const fs::path dd = d.data_dir();
    const fs::path cd = d.config_dir();
    std::error_code ec;
    if (!fs::is_directory(dd, ec)) {
        co_return make_error(ErrorKind::InvalidState,
                             "cannot write configuration: " + d.where() + " does not exist");
    }
    if (!fs::is_directory(cd, ec)) {
        co_return config_error("config directory " + cd.string() + " does not exist");
    }
    // Files in the data directory follow its group access (initdb --allow-group-access).
    const mode_t mode = detail::data_file_mode(dd);

    auto params = std::move(files.parameters);
    auto la = parse_listen(pg.listen);
    if (!la) {
        co_return config_error("postgresql.listen '" + pg.listen + "' is not host[,host...]:port");
    }
    params.try_emplace("listen_addresses", la->listen_addresses);
    params.try_emplace("port", la->port);
    if (!d.settings.scope.empty()) {
        params.try_emplace("cluster_name", d.settings.scope);
    }
    params.try_emplace("hba_file", (cd / "pg_hba.conf").string());
    params.try_emplace("ident_file", (cd / "pg_ident.conf").string());
    if (!params.contains("unix_socket_directories") &&
        ::access(std::string(detail::kDefaultSocketDir).c_str(), W_OK) != 0) {
        params["unix_socket_directories"] = d.socket_dir_default();
    }
    for (const auto& [name, value] : params) {
        if (!valid_parameter_name(name)) {
            co_return config_error("invalid parameter name '" + name + "'");
        }
    }
    if (files.recovery) {
        // Patroni build_recovery_params: follow the latest timeline, and blank recovery targets
        // so an included file cannot pause, promote or stop the standby.
        files.recovery = with_standby_defaults(std::move(*files.recovery));
        for (const auto& [name, value] : *files.recovery) {
            if (!valid_parameter_name(name)) {
                co_return config_error("invalid recovery parameter name '" + name + "'");
            }
        }
    }

    std::vector<FileOp> ops;
    ops.push_back({FileOp::Kind::EnsureBaseConf,
                   cd / std::string(kBaseConfName),
                   dd / "postgresql.conf",
                   "",
                   mode});
    ops.push_back({FileOp::Kind::Write,
                   cd / "postgresql.conf",
                   {},
                   render_postgresql_conf(params, files.recovery, kBaseConfName),
                   mode});
    if (files.pg_hba.empty()) {
        ops.push_back(
            {FileOp::Kind::CopyIfMissing, cd / "pg_hba.conf", dd / "pg_hba.conf", "", mode});
    } else {
        ops.push_back(
            {FileOp::Kind::Write, cd / "pg_hba.conf", {}, render_lines_file(files.pg_hba), mode});
    }
    if (files.pg_ident.empty()) {
        ops.push_back(
            {FileOp::Kind::CopyIfMissing, cd / "pg_ident.conf", dd / "pg_ident.conf", "", mode});
    } else {
        ops.push_back({FileOp::Kind::Write,
                       cd / "pg_ident.conf",
                       {},
                       render_lines_file(files.pg_ident),
                       mode});
    }
    if (files.recovery) {
        ops.push_back({FileOp::Kind::Write, dd / "standby.signal", {}, "", mode});
    } else {
        ops.push_back({FileOp::Kind::Remove, dd / "standby.signal", {}, "", mode});
    }
    ops.push_back({FileOp::Kind::SanitizeAutoConf, dd / "postgresql.auto.conf", {}, "", mode});
    if (std::string pgpass = render_pgpass(pg); !pgpass.empty() && !pg.pgpass.empty()) {
        ops.push_back({FileOp::Kind::Write, fs::path(pg.pgpass), {}, std::move(pgpass), 0600});
    }

    Status result = co_await d.apply_file_ops(std::move(ops));
    if (!result) {
        d.written_parameters = std::move(params);
        spdlog::debug("pg: wrote configuration files in {}", cd.string());
    }
    co_return result;
}

Task<Status> Postgres::start(std::chrono::seconds timeout) {
    Impl& d = *impl_;
    const auto deadline = Clock::now() + timeout;
    const fs::path dd = d.data_dir();
    auto pc = d.check_postmaster();
    if (pc.alive && pc.pid) {
        d.track_postmaster(*pc.pid, pc.our_child);
        spdlog::info("pg: postmaster pid={} is already running for {}", *pc.pid, d.where());
        co_return std::nullopt;
    }
    std::error_code ec;
    if (!fs::exists(dd / "PG_VERSION", ec)) {
        co_return make_error(
            ErrorKind::InvalidState,
            "cannot start PostgreSQL: " + d.where() + " is not a PostgreSQL data directory");
    }
    // Wait (bounded) for backends of a previous, killed postmaster to go away.
    for (int n = d.leftover_backends(); n > 0; n = d.leftover_backends()) {
        if (Clock::now() + kRetryInterval >= deadline) {
            spdlog::warn("pg: {} processes of a previous postmaster still run in {}", n, d.where());
            break;
        }
        co_await d.sleep_for(kRetryInterval);
    }

    const std::string log = d.log_file();
    std::uintmax_t log_offset = fs::file_size(log, ec);
    if (ec) {
        log_offset = 0;
    }
    auto secs = std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::seconds>(deadline - Clock::now()).count());
    std::vector<std::string> extra;
    extra.push_back("-l");
    extra.push_back(log);
    if (d.config_dir() != dd) {
        extra.push_back("-o");
        extra.push_back("--config-file=" +
                        shell_quote((d.config_dir() / "postgresql.conf").string()));
    }
    spdlog::info("pg: starting PostgreSQL for {} (postmaster log {})", d.where(), log);
    auto r = co_await d.run_pg_ctl_waiting("start", std::move(extra), secs);
    if (!r.ok()) {
        // pg_ctl says little ("could not start server; examine the log output"): most of the
        // 2 KiB goes to the postmaster log of this attempt.
        PgError err = d.command_error("pg_ctl start", r, kErrorTail / 4);
        if (auto text = read_small_file(log); text && text->size() > log_offset) {
            err.message +=
                "; postmaster log " + log + ": " +
                output_tail(std::string_view(*text).substr(log_offset), kErrorTail * 3 / 4);
        }
        auto after = d.check_postmaster();
        if (after.alive && after.pid) {
            d.track_postmaster(*after.pid, after.our_child);
        }
        co_return err;
    }
    pc = d.check_postmaster();
    if (pc.alive && pc.pid) {
        d.track_postmaster(*pc.pid, pc.our_child);
    }
    // Success only once a connection works.
    std::string last_error;
    for (;;) {
        PqConnection c(d.ex);
        auto attempt_deadline = std::min(deadline, Clock::now() + kQueryDeadline);
        auto err = co_await d.connect_fresh(&c, attempt_deadline);
        if (!err) {
            spdlog::info("pg: PostgreSQL is accepting connections for {}", d.where());
            co_return std::nullopt;
        }
        last_error = err->describe();
        if (Clock::now() + kRetryInterval >= deadline) {
            break;
        }
        if (!d.check_postmaster().alive) {
            last_error = "the postmaster exited: " + last_error;
            break;
        }
        co_await d.sleep_for(kRetryInterval);
    }
    co_return make_error(
        ErrorKind::ConnectionFailed,
        "PostgreSQL started for " + d.where() + " but does not accept connections: " + last_error);
}

Task<Status> Postgres::stop(StopMode mode, std::chrono::seconds timeout) {
    Impl& d = *impl_;
    auto pc = d.check_postmaster();
    if (!pc.alive) {
        spdlog::debug("pg: stop: PostgreSQL is not running for {}", d.where());
        co_return std::nullopt;
    }
    auto secs = std::max<std::int64_t>(1, timeout.count());
    spdlog::info("pg: stopping PostgreSQL ({}) for {}", stop_mode_name(mode), d.where());
    std::vector<std::string> extra;
    extra.push_back("-m");
    extra.push_back(std::string(stop_mode_name(mode)));
    auto r = co_await d.run_pg_ctl_waiting("stop", std::move(extra), secs);
    if (!r.ok()) {
        if (!d.check_postmaster().alive) {
            co_return std::nullopt;  // it went away on its own meanwhile
        }
        co_return d.command_error("pg_ctl stop -m " + std::string(stop_mode_name(mode)), r);
    }
    co_return std::nullopt;
}

Task<Status> Postgres::promote(std::chrono::seconds timeout) {
    Impl& d = *impl_;
    if (!d.check_postmaster().alive) {
        co_return make_error(ErrorKind::NotRunning,
                             "cannot promote PostgreSQL for " + d.where() + ": it is not running");
    }
    auto secs = std::max<std::int64_t>(1, timeout.count());
    spdlog::info("pg: promoting PostgreSQL for {}", d.where());
    auto r = co_await d.run_pg_ctl_waiting("promote", {}, secs);
    if (!r.ok()) {
        co_return d.command_error("pg_ctl promote", r);
    }
    co_return std::nullopt;
}

Task<Status> Postgres::reload() {
    Impl& d = *impl_;
    if (!d.check_postmaster().alive) {
        co_return make_error(ErrorKind::NotRunning,
                             "cannot reload PostgreSQL for " + d.where() + ": it is not running");
    }
    auto r = co_await d.run(
        d.pg_ctl_args("reload"), std::map<std::string, std::string>(), std::chrono::seconds(30));
    if (!r.ok()) {
        co_return d.command_error("pg_ctl reload", r);
    }
    spdlog::info("pg: reloaded configuration for {}", d.where());
    co_return std::nullopt;
}

Task<Status> Postgres::execute(std::string sql) {
    Impl& d = *impl_;
    auto deadline =
        Clock::now() + std::chrono::seconds(std::max(60, d.settings.postgresql.pg_ctl_timeout));
    PqConnection c(d.ex);
    if (auto err = co_await d.connect_fresh(&c, deadline)) {
        co_return detail::pq_error("could not connect to PostgreSQL for " + d.where(), *err);
    }
    auto out = co_await c.query(std::move(sql), {}, deadline);
    if (out.error) {
        co_return detail::pq_error("statement failed on PostgreSQL for " + d.where(), *out.error);
    }
    co_return std::nullopt;
}

}  // namespace pgwarden::pg
