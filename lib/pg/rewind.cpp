// pg_rewind from the leader (Patroni rewind.py): clean shutdown first (single-user crash
// recovery), archive the ready WAL, check the source is a reachable primary that ran its
// post-promote checkpoint, run pg_rewind, keep our configuration files.
#include "pg/postgres_impl.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <sys/stat.h>

namespace pgwarden::pg {

namespace net = boost::asio;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using detail::FileOp;
using detail::kQueryDeadline;
using detail::kRetryInterval;
using detail::make_error;
using detail::read_small_file;
using detail::with_prefix;

namespace {

constexpr auto kRewindTimeout = std::chrono::hours(1);
constexpr auto kCrashRecoveryTimeout = std::chrono::hours(1);
constexpr auto kSourceCheckpointWait = std::chrono::seconds(30);
constexpr auto kSourceUnreachableWait = std::chrono::seconds(3);
constexpr auto kSourcePollInterval = std::chrono::milliseconds(250);
constexpr auto kArchiveCommandTimeout = std::chrono::minutes(5);
constexpr auto kGucTimeout = std::chrono::seconds(30);

bool is_wal_ready_file(const std::string& name) {
    // ^[0-9A-F]{24}(\.partial)?\.ready$
    std::string_view n(name);
    if (n.size() < 24 + 6 || n.substr(n.size() - 6) != ".ready") {
        return false;
    }
    n.remove_suffix(6);
    if (n.size() == 24 + 8 && n.substr(24) == ".partial") {
        n.remove_suffix(8);
    }
    return n.size() == 24 && std::all_of(n.begin(), n.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
           });
}

}  // namespace

// `postgres -C name` against our configuration (Patroni get_guc_value); nullopt on failure.
net::awaitable<std::optional<std::string>> Postgres::Impl::guc_value(std::string name) {
    std::vector<std::string> argv;
    argv.push_back(bin("postgres"));
    argv.push_back("-D");
    argv.push_back(data_dir().string());
    argv.push_back("-C");
    argv.push_back(name);
    argv.push_back("--config-file=" + (config_dir() / "postgresql.conf").string());
    std::map<std::string, std::string> env;
    env["LC_ALL"] = "C";
    env["LANG"] = "C";
    auto r = co_await run(std::move(argv), std::move(env), kGucTimeout);
    if (!r.ok()) {
        spdlog::warn("pg: {}", command_error("postgres -C " + name, r).message);
        co_return std::nullopt;
    }
    std::string v = r.output;
    while (!v.empty() && (v.back() == '\n' || v.back() == '\r' || v.back() == ' ')) {
        v.pop_back();
    }
    co_return v;
}

// Patroni rewind.py _archive_ready_wals: with archiving on, run archive_command for every
// pg_wal/archive_status/*.ready whose segment still exists, and mark it .done on success, so
// WAL the promoted replica recycled is not lost. Failures are logged, not returned.
net::awaitable<void> Postgres::Impl::archive_ready_wals() {
    auto mode = co_await guc_value("archive_mode");
    if (!mode || (*mode != "on" && *mode != "always")) {
        co_return;
    }
    auto command = co_await guc_value("archive_command");
    if (!command || command->empty()) {
        co_return;
    }
    const fs::path wal_dir = data_dir() / "pg_wal";
    const fs::path status_dir = wal_dir / "archive_status";
    std::vector<std::string> ready;
    std::error_code ec;
    for (fs::directory_iterator it(status_dir, ec), end; !ec && it != end; it.increment(ec)) {
        std::string name = it->path().filename().string();
        if (is_wal_ready_file(name)) {
            ready.push_back(name.substr(0, name.size() - 6));
        }
    }
    if (ec) {
        spdlog::error("pg: unable to list {}: {}", status_dir.string(), ec.message());
        co_return;
    }
    std::sort(ready.begin(), ready.end());
    for (const auto& wal : ready) {
        const fs::path ready_file = status_dir / (wal + ".ready");
        if (!fs::is_regular_file(ready_file, ec) || !fs::is_regular_file(wal_dir / wal, ec)) {
            continue;
        }
        std::string cmd = build_archiver_command(*command, wal_dir.string(), wal);
        spdlog::info("pg: trying to archive {}: {}", wal, cmd);
        std::vector<std::string> sh;
        sh.push_back("/bin/sh");
        sh.push_back("-c");
        sh.push_back(cmd);
        auto r = co_await run(
            std::move(sh), std::map<std::string, std::string>(), kArchiveCommandTimeout);
        if (!r.ok()) {
            spdlog::info("pg: failed to archive WAL segment {}: {}", wal, r.describe());
            continue;
        }
        const fs::path done_file = status_dir / (wal + ".done");
        if (::rename(ready_file.c_str(), done_file.c_str()) != 0) {
            spdlog::error("pg: unable to rename {} to {}: {}",
                          ready_file.string(),
                          done_file.string(),
                          detail::errno_text(errno));
        }
    }
}

// Patroni rewind.py ensure_clean_shutdown: single-user crash recovery so that pg_control
// says "shut down". archive_mode=on + archive_command=false with the archive_status files
// removed keep every WAL segment through the recovery's checkpoint (pg_rewind may need them).
net::awaitable<Status> Postgres::Impl::crash_recovery() {
    const fs::path dd = data_dir();
    // Backends of a killed postmaster keep the old shared memory busy: wait (bounded).
    const auto wait_until = Clock::now() + std::chrono::seconds(10);
    while (leftover_backends() > 0 && Clock::now() < wait_until) {
        co_await sleep_for(kRetryInterval);
    }
    co_await archive_ready_wals();
    const fs::path status_dir = dd / "pg_wal" / "archive_status";
    std::function<Status()> clean_status = [status_dir]() -> Status {
        std::error_code ec;
        for (fs::directory_iterator it(status_dir, ec), end; !ec && it != end; it.increment(ec)) {
            std::error_code rec;
            auto st = it->symlink_status(rec);
            if (fs::is_symlink(st) || fs::is_regular_file(st)) {
                fs::remove(it->path(), rec);
                if (rec) {
                    spdlog::error(
                        "pg: unable to remove {}: {}", it->path().string(), rec.message());
                }
            }
        }
        return std::nullopt;
    };
    co_await blocking(std::move(clean_status));

    auto opts = parse_postmaster_opts(read_small_file(dd / "postmaster.opts").value_or(""));
    opts["archive_mode"] = "on";
    opts["archive_command"] = "false";
    if (config_dir() != dd) {
        opts.erase("config-file");
        opts["config_file"] = (config_dir() / "postgresql.conf").string();
    }
    // Single-user mode refuses standby.signal; it is put back afterwards (a replica must
    // not start as a primary if the rewind then fails), write_config manages it later.
    std::error_code sec;
    const bool had_standby_signal = fs::exists(dd / "standby.signal", sec);
    std::function<Status()> remove_signals = [dd]() -> Status {
        for (const char* name : {"standby.signal", "recovery.signal"}) {
            std::error_code ec;
            fs::remove(dd / name, ec);
            if (ec) {
                return make_error(ErrorKind::Io,
                                  "could not remove " + (dd / name).string() + ": " + ec.message(),
                                  ec.value());
            }
        }
        return std::nullopt;
    };
    Status removed = co_await blocking(std::move(remove_signals));
    if (removed) {
        co_return removed;
    }
    std::vector<std::string> argv;
    argv.push_back(bin("postgres"));
    argv.push_back("--single");
    argv.push_back("-D");
    argv.push_back(dd.string());
    for (const auto& [name, value] : opts) {  // sorted, as Patroni
        argv.push_back("-c");
        argv.push_back(name + "=" + value);
    }
    argv.push_back("template1");
    spdlog::info("pg: doing crash recovery in a single user mode for {}", where());
    auto r =
        co_await run(std::move(argv), std::map<std::string, std::string>(), kCrashRecoveryTimeout);
    if (had_standby_signal) {
        if (auto err = co_await write_standby_signal()) {
            spdlog::error("pg: could not restore standby.signal: {}", err->message);
        }
    }
    if (!r.ok()) {
        co_return command_error("single-user crash recovery (postgres --single)", r);
    }
    co_return std::nullopt;
}

std::map<std::string, std::string> Postgres::Impl::source_params(const std::string& host,
                                                                 int port) const {
    const auto& pg = settings.postgresql;
    const auto& creds = rewind_credentials(pg);
    std::map<std::string, std::string> params;
    params["host"] = host;
    params["port"] = std::to_string(port);
    if (!creds.username.empty()) {
        params["user"] = creds.username;
    }
    if (!creds.password.empty()) {
        params["password"] = creds.password;
    }
    params["dbname"] = pg.database.empty() ? "postgres" : pg.database;
    params["target_session_attrs"] = "read-write";
    params["application_name"] = "pgwarden";
    return params;
}

// Patroni rewind.py check_leader_is_not_in_recovery: the source accepts a connection (as the
// rewind user, read-write) and answers pg_is_in_recovery() with false. Else SourceUnreachable.
net::awaitable<Status> Postgres::Impl::probe_source(std::string host, int port) {
    const std::string what =
        "cannot use " + host + ":" + std::to_string(port) + " as the pg_rewind source";
    const auto deadline = Clock::now() + kQueryDeadline * 2;
    PqConnection c(ex);
    std::optional<PqError> failed = co_await c.connect(source_params(host, port), deadline);
    if (!failed) {
        auto out = co_await c.query("SELECT pg_catalog.pg_is_in_recovery()", {}, deadline);
        if (!out.error && !out.result.rows.empty() && out.result.rows[0][0] == "f") {
            co_return std::nullopt;
        }
        failed = out.error ? *out.error : PqError{"", "it is in recovery (not a primary)"};
    }
    co_return make_error(ErrorKind::SourceUnreachable,
                         what + ": not accessible or not healthy: " + failed->describe());
}

// Patroni rewind.py check_leader_has_run_checkpoint / checkpoint(): the source must be a
// primary whose pg_control already has the new timeline, else pg_rewind would find "no
// rewind required". With the superuser as rewind user a CHECKPOINT is issued; a dedicated
// rewind user waits (bounded) for the checkpoint the promotion requested. SourceUnreachable
// when the source cannot be used at all, SourceNotReady when the checkpoint did not come.
net::awaitable<Status> Postgres::Impl::wait_source_checkpoint(std::string host, int port) {
    const auto& pg = settings.postgresql;
    const bool as_superuser = rewind_credentials(pg).username == pg.superuser.username;
    const auto params = source_params(host, port);
    const auto deadline = Clock::now() + kSourceCheckpointWait;
    // Waiting for the leader's checkpoint may take long; a source that cannot be reached
    // at all is given up quickly, so the HA loop can take part in a leader race meanwhile.
    const auto unreachable_deadline = Clock::now() + kSourceUnreachableWait;
    std::string last = "not accessible or not healthy";
    ErrorKind kind = ErrorKind::SourceUnreachable;
    bool checkpoint_sent = false;
    for (;;) {
        PqConnection c(ex);
        auto attempt = std::min(deadline, Clock::now() + kQueryDeadline * 2);
        if (auto err = co_await c.connect(params, attempt)) {
            last = "not accessible or not healthy: " + err->describe();
            kind = ErrorKind::SourceUnreachable;
            if (Clock::now() >= unreachable_deadline) {
                break;
            }
        } else {
            auto out = co_await c.query(
                "SELECT NOT pg_catalog.pg_is_in_recovery() AND ('x' || pg_catalog.substr("
                "pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))"
                "::bit(32)::int = timeline_id FROM pg_catalog.pg_control_checkpoint()",
                {},
                attempt);
            if (out.error) {
                last = "not accessible or not healthy: " + out.error->describe();
                kind = ErrorKind::SourceUnreachable;
            } else if (!out.result.rows.empty() && out.result.rows[0][0] == "t") {
                co_return std::nullopt;
            } else {
                last = "leader has not run a checkpoint yet";
                kind = ErrorKind::SourceNotReady;
                if (as_superuser && !checkpoint_sent) {
                    spdlog::info("pg: issuing CHECKPOINT on {}:{} before pg_rewind", host, port);
                    checkpoint_sent = true;
                    auto cp = co_await c.query("CHECKPOINT", {}, deadline);
                    if (!cp.error) {
                        continue;  // check again at once
                    }
                    last = "CHECKPOINT failed: " + cp.error->describe();
                }
            }
        }
        if (Clock::now() + kSourcePollInterval >= deadline) {
            break;
        }
        co_await sleep_for(kSourcePollInterval);
    }
    co_return make_error(
        kind,
        "cannot use " + host + ":" + std::to_string(port) + " as the pg_rewind source: " + last);
}

Task<Status> Postgres::rewind_from(std::string host, int port) {
    Impl& d = *impl_;
    const fs::path dd = d.data_dir();
    std::error_code ec;
    if (d.check_postmaster().alive) {
        co_return make_error(ErrorKind::Running,
                             "cannot run pg_rewind on " + d.where() + ": PostgreSQL is running");
    }
    // A source that is not a reachable primary now is a reason to try again later, not a
    // verdict on this data directory (spec §8: "leader unreachable => retry later").
    if (auto err = co_await d.probe_source(host, port)) {
        co_return err;
    }
    auto cd = co_await d.controldata();
    if (!cd) {
        co_return make_error(ErrorKind::InvalidState,
                             "cannot run pg_rewind on " + d.where() + ": pg_controldata failed");
    }
    auto clean = [](const std::string& state) {
        return state == "shut down" || state == "shut down in recovery";
    };
    if (!clean(cd->cluster_state)) {
        // Patroni ha.py recover(): on PostgreSQL 15 a backup_label means a base backup that has
        // not finished recovery; a normal start completes it, single-user mode is skipped.
        if (fs::exists(dd / "backup_label", ec)) {
            co_return make_error(ErrorKind::InvalidState,
                                 "cannot run pg_rewind on " + d.where() + ": cluster state is \"" +
                                     cd->cluster_state +
                                     "\" and backup_label exists (a base backup that has not "
                                     "finished recovery; start it instead)");
        }
        spdlog::info("pg: cluster state is \"{}\" in {}: crash recovery before pg_rewind",
                     cd->cluster_state,
                     d.where());
        if (auto err = co_await d.crash_recovery()) {
            co_return err;
        }
        cd = co_await d.controldata();
        if (!cd || !clean(cd->cluster_state)) {
            co_return make_error(ErrorKind::InvalidState,
                                 "cannot run pg_rewind on " + d.where() +
                                     ": after crash recovery the cluster state is \"" +
                                     (cd ? cd->cluster_state : std::string("unknown")) + "\"");
        }
    }
    co_await d.archive_ready_wals();

    auto tool = co_await d.pgpass_env();
    if (tool.error) {
        co_return with_prefix("cannot run pg_rewind on " + d.where() + ": ",
                              std::move(*tool.error));
    }
    tool.env["LANG"] = "C";
    tool.env["LC_ALL"] = "C";
    tool.env["PGOPTIONS"] = "-c statement_timeout=0";

    if (auto err = co_await d.wait_source_checkpoint(host, port)) {
        co_return err;
    }

    std::vector<std::string> argv;
    argv.push_back(d.bin("pg_rewind"));
    // PostgreSQL 15 pg_rewind fetches missing target WAL itself with restore_command, so
    // Patroni's "could not find WAL" → restore_command → retry loop is not needed here.
    auto restore_command = co_await d.guc_value("restore_command");
    if (restore_command && !restore_command->empty()) {
        argv.push_back("--restore-target-wal");
        if (d.config_dir() != dd) {
            argv.push_back("--config-file=" + (d.config_dir() / "postgresql.conf").string());
        }
    }
    argv.push_back("-D");
    argv.push_back(dd.string());
    argv.push_back("--source-server=" + rewind_conninfo(d.settings, host, port));

    // pg_rewind copies the source's configuration files; ours stay (they name our port etc.).
    struct SavedFile {
        fs::path path;
        std::string content;
        mode_t mode;
    };
    std::vector<SavedFile> saved;
    for (const char* name :
         {"postgresql.conf", kBaseConfName.data(), "pg_hba.conf", "pg_ident.conf"}) {
        fs::path p = dd / name;
        struct stat st {};
        if (::lstat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
            if (auto text = read_small_file(p)) {
                saved.push_back({p, std::move(*text), static_cast<mode_t>(st.st_mode & 0777)});
            }
        }
    }

    spdlog::info("pg: running pg_rewind from {}", rewind_conninfo(d.settings, host, port));
    auto r = co_await d.run(std::move(argv), std::move(tool.env), kRewindTimeout);
    spdlog::info("pg: pg_rewind {}: {}", r.describe(), output_tail(r.output, 1024));
    if (!r.ok()) {
        PgError failed = d.command_error("pg_rewind from " + host + ":" + std::to_string(port), r);
        // Patroni rewind.py execute(): a failure while the source became unreachable is
        // retried later; from a healthy primary it is a verdict.
        if (auto gone = co_await d.probe_source(host, port)) {
            spdlog::warn("pg: pg_rewind failed while the source became unreachable: {}",
                         gone->message);
            failed.kind = ErrorKind::SourceUnreachable;
        } else {
            failed.kind = ErrorKind::CommandFailed;
        }
        co_return failed;
    }
    std::vector<FileOp> ops;
    for (auto& f : saved) {
        ops.push_back({FileOp::Kind::Write, f.path, {}, std::move(f.content), f.mode});
    }
    if (auto err = co_await d.apply_file_ops(std::move(ops))) {
        co_return with_prefix("pg_rewind succeeded for " + d.where() +
                                  " but restoring the local configuration files failed: ",
                              std::move(*err));
    }
    // pg_rewind left a backup_label (it must stay: recovery starts from the divergence point).
    // Started without a signal file the node would finish recovery as a second primary on the
    // source's timeline, so it is a standby until write_config says otherwise.
    if (auto err = co_await d.write_standby_signal()) {
        co_return with_prefix(
            "pg_rewind succeeded for " + d.where() + " but writing standby.signal failed: ",
            std::move(*err));
    }
    spdlog::info("pg: pg_rewind from {}:{} succeeded for {}", host, port, d.where());
    co_return std::nullopt;
}

}  // namespace pgwarden::pg
