#include "pg/postgres.hpp"

#include "pg/config_files.hpp"
#include "pg/pq_connection.hpp"
#include "pg/process_runner.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace pgwarden::pg {

namespace net = boost::asio;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kDebianBinDir = "/usr/lib/postgresql/15/bin";
constexpr std::string_view kDefaultSocketDir = "/var/run/postgresql";
constexpr auto kQueryDeadline = std::chrono::seconds(2);
constexpr auto kCommandMargin = std::chrono::seconds(10);
constexpr auto kRetryInterval = std::chrono::milliseconds(100);
constexpr std::size_t kErrorTail = 2048;

// The status query (one round trip). Columns are read by index below; LSNs are int64 bytes.
constexpr const char* kStatusColumns = R"SQL(
SELECT pg_catalog.pg_is_in_recovery()::int,
       pg_catalog.current_setting('server_version_num')::int,
       CASE WHEN pg_catalog.pg_is_in_recovery()
            THEN COALESCE((SELECT received_tli FROM pg_catalog.pg_stat_wal_receiver
                           WHERE status = 'streaming' LIMIT 1),
                          (pg_catalog.pg_control_checkpoint()).timeline_id)
            ELSE ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name(
                      pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int
       END,
       pg_catalog.to_char(pg_catalog.pg_postmaster_start_time(),
                          'YYYY-MM-DD HH24:MI:SS.US') ||
         pg_catalog.to_char(pg_catalog.pg_postmaster_start_time(), 'TZH:TZM'),
       CASE WHEN pg_catalog.pg_is_in_recovery() THEN 0
            ELSE pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_flush_lsn(), '0/0')::bigint
       END,
       COALESCE(pg_catalog.pg_wal_lsn_diff(
                    COALESCE((SELECT written_lsn FROM pg_catalog.pg_stat_wal_receiver LIMIT 1),
                             pg_catalog.pg_last_wal_receive_lsn()), '0/0')::bigint, 0),
       COALESCE(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_replay_lsn(), '0/0')::bigint, 0),
       pg_catalog.to_char(pg_catalog.pg_last_xact_replay_timestamp(),
                          'YYYY-MM-DD HH24:MI:SS.US') ||
         pg_catalog.to_char(pg_catalog.pg_last_xact_replay_timestamp(), 'TZH:TZM'),
       CASE WHEN pg_catalog.pg_is_in_recovery()
            THEN pg_catalog.pg_is_wal_replay_paused()::int ELSE 0 END,
       CASE WHEN pg_catalog.pg_is_in_recovery()
            THEN CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_stat_wal_receiver
                                   WHERE status = 'streaming')
                      THEN 'streaming' ELSE 'in archive recovery' END
       END,
       (SELECT COALESCE(pg_catalog.json_agg(r), '[]'::json)
          FROM (SELECT usename, application_name, client_addr, state, sync_state, sync_priority
                  FROM pg_catalog.pg_stat_replication ORDER BY pid) r)::text,
       COALESCE((SELECT pg_catalog.pg_wal_lsn_diff(latest_end_lsn, '0/0')::bigint
                   FROM pg_catalog.pg_stat_wal_receiver LIMIT 1), 0),
       (pg_catalog.pg_control_system()).system_identifier::text,
       (pg_catalog.pg_control_checkpoint()).timeline_id,
)SQL";
// Column 14: parameters waiting for a restart (reads pg_file_settings, which parses the
// configuration files: not for the per-request fresh query).
constexpr const char* kPendingRestartColumn = R"SQL(
       (SELECT COALESCE(pg_catalog.json_object_agg(s.name, pg_catalog.json_build_object(
                   'old_value', s.setting, 'new_value', COALESCE(f.setting, ''))), '{}'::json)
          FROM pg_catalog.pg_settings s
          LEFT JOIN LATERAL (SELECT fs.setting FROM pg_catalog.pg_file_settings fs
                              WHERE fs.name = s.name AND fs.error IS NULL
                              ORDER BY fs.seqno DESC LIMIT 1) f ON true
         WHERE s.pending_restart)::text
)SQL";
const std::string kStatusQuery = std::string(kStatusColumns) + kPendingRestartColumn;
const std::string kFreshStatusQuery = std::string(kStatusColumns) + "       NULL::text";

std::int64_t to_i64(const std::optional<std::string>& v) {
    if (!v) {
        return 0;
    }
    std::int64_t x = 0;
    std::from_chars(v->data(), v->data() + v->size(), x);
    return x;
}

int to_int(const std::optional<std::string>& v) {
    return static_cast<int>(to_i64(v));
}

std::optional<std::string> read_small_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) {
        return std::nullopt;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool is_executable(const fs::path& p) {
    return ::access(p.c_str(), X_OK) == 0;
}

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

// ---- file operations (run on the small thread pool: they fsync) ----------------------------

struct FileOp {
    enum class Kind { Write, Remove, EnsureBaseConf, CopyIfMissing, SanitizeAutoConf };
    Kind kind = Kind::Write;
    fs::path path;    // target
    fs::path source;  // EnsureBaseConf: data dir postgresql.conf; CopyIfMissing: source
    std::string content;
    mode_t mode = 0600;
};

std::string errno_text(int e) {
    return std::strerror(e);
}

Status fsync_dir(const fs::path& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return PgError{"could not open directory " + dir.string() + ": " + errno_text(errno)};
    }
    ::fsync(fd);
    ::close(fd);
    return std::nullopt;
}

// Writes a temp file next to `path`, fsyncs it, renames it over `path` and fsyncs the directory.
Status atomic_write(const fs::path& path, const std::string& content, mode_t mode) {
    fs::path tmp = path;
    tmp += ".pgwarden-tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        return PgError{"could not write " + path.string() + ": " + errno_text(errno)};
    }
    ::fchmod(fd, mode);
    std::size_t off = 0;
    while (off < content.size()) {
        ssize_t n = ::write(fd, content.data() + off, content.size() - off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            int e = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            return PgError{"could not write " + path.string() + ": " + errno_text(e)};
        }
        off += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) {
        int e = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        return PgError{"could not fsync " + path.string() + ": " + errno_text(e)};
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return PgError{"could not rename " + tmp.string() + " to " + path.string() + ": " +
                       errno_text(e)};
    }
    return fsync_dir(path.parent_path().empty() ? fs::path(".") : path.parent_path());
}

Status apply_file_op(const FileOp& op) {
    std::error_code ec;
    switch (op.kind) {
        case FileOp::Kind::Write:
            return atomic_write(op.path, op.content, op.mode);
        case FileOp::Kind::Remove:
            if (!fs::remove(op.path, ec) && ec) {
                return PgError{"could not remove " + op.path.string() + ": " + ec.message()};
            }
            return std::nullopt;
        case FileOp::Kind::EnsureBaseConf: {
            // Patroni: the first time, initdb's postgresql.conf becomes postgresql.base.conf.
            if (fs::exists(op.path, ec)) {
                return std::nullopt;
            }
            fs::path own = op.path.parent_path() / "postgresql.conf";
            if (fs::exists(own, ec) && op.source == own) {
                if (::rename(own.c_str(), op.path.c_str()) != 0) {
                    return PgError{"could not rename " + own.string() + " to " + op.path.string() +
                                   ": " + errno_text(errno)};
                }
                return fsync_dir(op.path.parent_path());
            }
            auto text = read_small_file(op.source);
            return atomic_write(op.path, text.value_or(""), op.mode);
        }
        case FileOp::Kind::CopyIfMissing: {
            if (fs::exists(op.path, ec) || !fs::exists(op.source, ec)) {
                return std::nullopt;
            }
            auto text = read_small_file(op.source);
            if (!text) {
                return PgError{"could not read " + op.source.string()};
            }
            return atomic_write(op.path, *text, op.mode);
        }
        case FileOp::Kind::SanitizeAutoConf: {
            auto text = read_small_file(op.path);
            if (!text) {
                return std::nullopt;
            }
            auto cleaned = sanitize_auto_conf(*text);
            if (!cleaned) {
                return std::nullopt;
            }
            return atomic_write(op.path, *cleaned, op.mode);
        }
    }
    return std::nullopt;
}

net::awaitable<Status> apply_file_ops(std::vector<FileOp> ops) {
    try {
        for (const auto& op : ops) {
            if (auto err = apply_file_op(op)) {
                co_return err;
            }
        }
    } catch (const std::exception& e) {
        co_return PgError{std::string("writing configuration files failed: ") + e.what()};
    }
    co_return std::nullopt;
}

// A FIFO-ish async mutex for the cached observation connection.
class AsyncLock {
public:
    explicit AsyncLock(net::any_io_executor ex) : ex_(std::move(ex)) {}
    net::awaitable<void> lock() {
        while (locked_) {
            auto t = std::make_shared<net::steady_timer>(ex_, Clock::time_point::max());
            waiters_.push_back(t);
            co_await t->async_wait(net::as_tuple(net::use_awaitable));
        }
        locked_ = true;
    }
    void unlock() {
        locked_ = false;
        while (!waiters_.empty()) {
            auto w = waiters_.front().lock();
            waiters_.pop_front();
            if (w) {
                w->cancel();
                break;
            }
        }
    }

private:
    net::any_io_executor ex_;
    bool locked_ = false;
    std::deque<std::weak_ptr<net::steady_timer>> waiters_;
};

struct Unlocker {
    AsyncLock& lock;
    ~Unlocker() { lock.unlock(); }
};

struct TempFileRemover {
    std::string path;
    ~TempFileRemover() {
        if (!path.empty()) {
            ::unlink(path.c_str());
        }
    }
};

// ---- replication helpers (blocking; run on the file pool) -----------------------------------

constexpr auto kBasebackupTimeout = std::chrono::hours(1);          // all attempts together
constexpr auto kBasebackupRetryInterval = std::chrono::seconds(5);  // Patroni: 2 attempts, 5 s
constexpr int kBasebackupAttempts = 2;
constexpr auto kRewindTimeout = std::chrono::hours(1);
constexpr auto kCrashRecoveryTimeout = std::chrono::hours(1);
constexpr auto kSourceCheckpointWait = std::chrono::seconds(30);
constexpr auto kSourceUnreachableWait = std::chrono::seconds(3);
constexpr auto kSourcePollInterval = std::chrono::milliseconds(250);
constexpr auto kArchiveCommandTimeout = std::chrono::minutes(5);
constexpr auto kGucTimeout = std::chrono::seconds(30);

// Removes everything inside `dir` (symlinks themselves, never what they point to).
Status clear_directory(const fs::path& dir) {
    std::error_code ec;
    std::vector<fs::path> entries;  // listed first: no removal while the directory is read
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        entries.push_back(it->path());
    }
    if (ec) {
        return PgError{"could not list " + dir.string() + ": " + ec.message()};
    }
    std::string failures;
    for (const auto& entry : entries) {
        std::error_code rec;
        fs::remove_all(entry, rec);
        if (rec) {
            failures += (failures.empty() ? "" : "; ") + entry.string() + ": " + rec.message();
        }
    }
    if (!failures.empty()) {
        return PgError{"could not remove " + failures};
    }
    return std::nullopt;
}

// The contents of a data directory, including what a symlinked pg_wal and the tablespace links
// point to (this cluster's PG_<version>_* directories only); the directory itself stays, mode
// 0700. A data directory that is itself a symlink is cleaned through the link.
Status clear_data_directory(const fs::path& dd) {
    std::error_code ec;
    auto st = fs::symlink_status(dd, ec);
    if (ec || !fs::exists(st)) {
        return std::nullopt;  // nothing there
    }
    fs::path real = fs::is_symlink(st) ? fs::canonical(dd, ec) : dd;
    if (ec) {
        return PgError{"could not resolve " + dd.string() + ": " + ec.message()};
    }
    if (!fs::is_directory(real, ec)) {
        return PgError{dd.string() + " is not a directory"};
    }
    if (real == real.root_path() || !real.has_filename()) {
        return PgError{"refusing to remove the contents of " + real.string()};
    }
    const fs::path wal = real / "pg_wal";
    if (fs::is_symlink(fs::symlink_status(wal, ec))) {
        fs::path target = fs::canonical(wal, ec);
        if (!ec && fs::is_directory(target, ec) && target != target.root_path()) {
            spdlog::info("pg: removing the contents of the WAL directory {}", target.string());
            if (auto err = clear_directory(target)) {
                return err;
            }
        }
    }
    std::string version;
    if (auto v = read_small_file(real / "PG_VERSION")) {
        version = *v;
        while (!version.empty() && (version.back() == '\n' || version.back() == ' ')) {
            version.pop_back();
        }
    }
    if (!version.empty()) {
        const std::string prefix = "PG_" + version + "_";
        for (fs::directory_iterator it(real / "pg_tblspc", ec), end; !ec && it != end;
             it.increment(ec)) {
            std::error_code lec;
            if (!fs::is_symlink(it->symlink_status(lec))) {
                continue;
            }
            fs::path location = fs::canonical(it->path(), lec);
            if (lec) {
                continue;
            }
            for (fs::directory_iterator sub(location, lec), send; !lec && sub != send;
                 sub.increment(lec)) {
                if (sub->path().filename().string().rfind(prefix, 0) == 0) {
                    spdlog::info("pg: removing tablespace directory {}", sub->path().string());
                    std::error_code rec;
                    fs::remove_all(sub->path(), rec);
                }
            }
        }
    }
    if (auto err = clear_directory(real)) {
        return err;
    }
    if (::chmod(real.c_str(), 0700) != 0) {
        return PgError{"could not chmod " + real.string() + ": " + errno_text(errno)};
    }
    return fsync_dir(real);
}

// Runs a blocking function on the file pool and returns its Status (exceptions become errors).
net::awaitable<Status> call_blocking(std::function<Status()> fn) {
    try {
        co_return fn();
    } catch (const std::exception& e) {
        co_return PgError{std::string("file operation failed: ") + e.what()};
    }
}

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

// ---------------------------------------------------------------------------------------------

struct Postgres::Impl {
    Impl(net::any_io_executor e, core::Settings s, std::shared_ptr<ProcessRunner> r)
        : ex(std::move(e)),
          settings(std::move(s)),
          runner(r ? std::move(r) : std::make_shared<ProcessRunner>(ex)),
          conn(ex),
          conn_lock(ex) {}

    ~Impl() {
        if (pm_pid && pm_watched) {
            runner->unwatch(*pm_pid);
        }
    }

    net::any_io_executor ex;
    core::Settings settings;
    std::shared_ptr<ProcessRunner> runner;
    std::function<void()> on_postmaster_exit;
    std::shared_ptr<int> life = std::make_shared<int>(0);  // guards callbacks after destruction

    std::optional<int> pm_pid;  // the postmaster we track
    bool pm_watched = false;    // true: its exit arrives through SIGCHLD; false: found by polling

    std::optional<std::string> sysid;  // cached from pg_control
    PqConnection conn;                 // cached connection for observe()
    AsyncLock conn_lock;
    std::map<std::string, std::string> written_parameters;  // last postgresql.conf parameters
    net::thread_pool file_pool{1};

    // ---- paths and settings -----------------------------------------------------------------

    fs::path data_dir() const {
        std::error_code ec;
        fs::path p = fs::absolute(settings.postgresql.data_dir, ec).lexically_normal();
        if (p.has_filename() || p == p.root_path()) {
            return p;
        }
        return p.parent_path();  // trailing slash
    }

    fs::path config_dir() const {
        if (settings.postgresql.config_dir.empty()) {
            return data_dir();
        }
        std::error_code ec;
        fs::path p = fs::absolute(settings.postgresql.config_dir, ec).lexically_normal();
        return p.has_filename() ? p : p.parent_path();
    }

    std::string bin(std::string_view name) const {
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

    std::string log_file() const {
        fs::path dd = data_dir();
        fs::path parent = dd.parent_path();
        if (!parent.empty() && ::access(parent.c_str(), W_OK) == 0) {
            return (parent / (dd.filename().string() + "-postmaster.log")).string();
        }
        return (dd / "pgwarden-postmaster.log").string();
    }

    // unix_socket_directories: configured value, else Debian's /var/run/postgresql when we may
    // write there, else the data directory's parent (or the data directory itself).
    std::string socket_dir_default() const {
        if (::access(std::string(kDefaultSocketDir).c_str(), W_OK) == 0) {
            return std::string(kDefaultSocketDir);
        }
        fs::path parent = data_dir().parent_path();
        if (!parent.empty() && ::access(parent.c_str(), W_OK) == 0) {
            return parent.string();
        }
        return data_dir().string();
    }

    std::optional<std::string> configured_socket_dirs() const {
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

    std::string socket_dir() const {
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

    std::map<std::string, std::string> conn_params() const {
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

    std::vector<std::string> pg_ctl_args(const char* command) const {
        std::vector<std::string> argv;
        argv.push_back(bin("pg_ctl"));
        argv.push_back(command);
        argv.push_back("-D");
        argv.push_back(data_dir().string());
        return argv;
    }

    std::string where() const { return "data directory " + data_dir().string(); }

    PgError command_error(const std::string& what,
                          const CommandResult& r,
                          std::size_t max_tail = kErrorTail) const {
        std::string msg = what + " failed for " + where() + ": " + r.describe();
        std::string tail = output_tail(r.output, max_tail);
        if (!tail.empty()) {
            msg += ": " + tail;
        }
        return PgError{msg};
    }

    net::awaitable<CommandResult> run(std::vector<std::string> argv,
                                      std::map<std::string, std::string> env,
                                      std::chrono::milliseconds timeout) {
        std::string line;
        for (const auto& a : argv) {
            line += (line.empty() ? "" : " ") + a;
        }
        spdlog::debug("pg: running {}", line);
        co_return co_await runner->run(std::move(argv), std::move(env), timeout);
    }

    // ---- postmaster tracking ------------------------------------------------------------------

    struct PostmasterCheck {
        std::optional<int> pid;
        bool alive = false;
        bool our_child = false;
    };

    PostmasterCheck check_postmaster() const {
        PostmasterCheck pc;
        auto content = read_small_file(data_dir() / "postmaster.pid");
        if (!content) {
            return pc;
        }
        pc.pid = parse_postmaster_pid(*content);
        if (!pc.pid) {
            return pc;
        }
        auto stat = read_small_file("/proc/" + std::to_string(*pc.pid) + "/stat");
        if (!stat) {
            return pc;
        }
        auto ps = parse_proc_stat(*stat);
        if (!ps || ps->state == 'Z' || ps->state == 'X' || ps->state == 'x') {
            return pc;  // a zombie is not a running postmaster
        }
        bool tracked = runner->watching(*pc.pid);
        pc.alive = tracked || ps->comm == "postgres" || ps->comm == "postmaster";
        pc.our_child = ps->ppid == static_cast<int>(::getpid());
        return pc;
    }

    void track_postmaster(int pid, bool our_child) {
        if (pm_pid == pid && (pm_watched || !our_child)) {
            return;
        }
        if (pm_pid && pm_watched) {
            runner->unwatch(*pm_pid);
        }
        pm_pid = pid;
        pm_watched = our_child;
        if (our_child) {
            std::weak_ptr<int> alive = life;
            runner->watch(pid, [this, alive, pid](int status) {
                if (!alive.expired()) {
                    postmaster_exited(pid, status);
                }
            });
        }
        spdlog::debug("pg: tracking postmaster pid={} ({})",
                      pid,
                      our_child ? "our child, SIGCHLD" : "not our child, polled");
    }

    // `status` is the wait status when reaped through SIGCHLD, nullopt when found gone by polling.
    void postmaster_exited(int pid, std::optional<int> status) {
        if (pm_pid != pid) {
            return;
        }
        pm_pid.reset();
        pm_watched = false;
        if (!status) {
            spdlog::warn("pg: postmaster pid={} is gone", pid);
        } else if (WIFSIGNALED(*status)) {
            spdlog::warn("pg: postmaster pid={} was killed by signal {}", pid, WTERMSIG(*status));
        } else {
            spdlog::info("pg: postmaster pid={} exited with code {}", pid, WEXITSTATUS(*status));
        }
        if (on_postmaster_exit) {
            on_postmaster_exit();
        }
    }

    // Backends of a killed postmaster still attached to its shared memory keep a new postmaster
    // from starting; they exit on their own once they notice (and we reap them). Counts live
    // postgres processes whose working directory is the data directory.
    int leftover_backends() const {
        std::error_code ec;
        fs::path dd = fs::weakly_canonical(data_dir(), ec);
        int count = 0;
        for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
            const std::string name = it->path().filename().string();
            if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) {
                continue;
            }
            auto stat = read_small_file(it->path() / "stat");
            auto ps = stat ? parse_proc_stat(*stat) : std::nullopt;
            if (!ps || ps->state == 'Z' || ps->state == 'X' || ps->comm != "postgres") {
                continue;
            }
            std::error_code lec;
            fs::path cwd = fs::read_symlink(it->path() / "cwd", lec);
            if (!lec && cwd == dd) {
                ++count;
            }
        }
        return count;
    }

    net::awaitable<void> sleep_for(std::chrono::milliseconds d) {
        net::steady_timer t(ex, d);
        co_await t.async_wait(net::as_tuple(net::use_awaitable));
    }

    // ---- controldata --------------------------------------------------------------------------

    net::awaitable<std::optional<ControlData>> controldata() {
        if (!fs::exists(data_dir() / "global" / "pg_control")) {
            co_return std::nullopt;
        }
        std::vector<std::string> argv;
        argv.push_back(bin("pg_controldata"));
        argv.push_back("-D");
        argv.push_back(data_dir().string());
        std::map<std::string, std::string> env;
        env["LC_ALL"] = "C";
        env["LANG"] = "C";
        env["LANGUAGE"] = "C";
        auto r = co_await run(std::move(argv), std::move(env), std::chrono::seconds(30));
        if (!r.ok()) {
            spdlog::warn("pg: {}", command_error("pg_controldata", r).message);
            co_return std::nullopt;
        }
        co_return parse_controldata(r.output);
    }

    // ---- status query -------------------------------------------------------------------------

    net::awaitable<PqOutcome> status_query(bool with_pending_restart = true) {
        co_return co_await cached_query(with_pending_restart ? kStatusQuery : kFreshStatusQuery,
                                        {});
    }

    // One statement on the cached connection (short deadline, one reconnect attempt).
    net::awaitable<PqOutcome> cached_query(std::string sql,
                                           std::vector<std::optional<std::string>> params) {
        co_await conn_lock.lock();
        Unlocker unlock{conn_lock};
        auto deadline = Clock::now() + kQueryDeadline;
        bool reused = conn.connected();
        if (!reused) {
            if (auto err = co_await conn.connect(conn_params(), deadline)) {
                co_return PqOutcome{err, {}};
            }
        }
        auto out = co_await conn.query(sql, params, deadline);
        if (out.error && reused && !conn.connected()) {
            // The cached connection died (e.g. after a restart): one fresh attempt.
            if (auto err = co_await conn.connect(conn_params(), deadline)) {
                co_return PqOutcome{err, {}};
            }
            out = co_await conn.query(std::move(sql), std::move(params), deadline);
        }
        co_return out;
    }

    // The status query's row as a PgQueryResult (nullopt on an error or a short row); also
    // remembers the system identifier.
    std::optional<core::PgQueryResult> parse_status(const PqOutcome& out) {
        if (out.error || out.result.rows.empty() || out.result.rows[0].size() < 15) {
            return std::nullopt;
        }
        const auto& row = out.result.rows[0];
        core::PgQueryResult q;
        q.in_recovery = to_int(row[0]) != 0;
        q.server_version = to_int(row[1]);
        q.timeline = to_int(row[2]);
        q.postmaster_start_time = row[3].value_or("");
        q.wal_location = to_i64(row[4]);
        q.replay_location = to_i64(row[6]);
        q.receive_location = to_i64(row[5]);
        if (q.receive_location == 0) {
            q.receive_location = q.replay_location;
        }
        q.replayed_timestamp = row[7];
        q.replay_paused = to_int(row[8]) != 0;
        q.replication_state = row[9];
        auto json = nlohmann::ordered_json::parse(row[10].value_or("[]"), nullptr, false);
        q.replication_json = json.is_discarded() || !json.is_array() ? "[]" : json.dump();
        q.latest_end_lsn = to_i64(row[11]);
        if (row[12]) {
            sysid = *row[12];
        }
        q.pending_restart_json = row[14].value_or("{}");
        return q;
    }

    // A fresh superuser connection for commands (execute, create_roles).
    net::awaitable<std::optional<PqError>> connect_fresh(PqConnection* c,
                                                         Clock::time_point deadline) {
        co_return co_await c->connect(conn_params(), deadline);
    }

    // ---- replication helpers ------------------------------------------------------------------

    net::awaitable<Status> blocking(std::function<Status()> fn) {
        co_return co_await net::co_spawn(
            file_pool.get_executor(), call_blocking(std::move(fn)), net::use_awaitable);
    }

    // Writes the pgpass file (superuser, replication, rewind credentials; mode 0600) and returns
    // the environment for a libpq tool: PGPASSFILE when there is a password to find.
    net::awaitable<Result<std::map<std::string, std::string>>> pgpass_env() {
        const auto& pg = settings.postgresql;
        std::map<std::string, std::string> env;
        std::string content = render_pgpass(pg);
        if (content.empty() || pg.pgpass.empty()) {
            co_return env;
        }
        fs::path file(pg.pgpass);
        std::function<Status()> job = [file, content]() -> Status {
            std::error_code ec;
            if (file.has_parent_path() && !fs::is_directory(file.parent_path(), ec)) {
                return PgError{"cannot write the pgpass file " + file.string() +
                               ": its directory does not exist"};
            }
            return atomic_write(file, content, 0600);
        };
        Status err = co_await blocking(std::move(job));
        if (err) {
            spdlog::error("pg: {}", err->message);
            co_return Result<std::map<std::string, std::string>>(
                boost::system::in_place_error,
                boost::system::error_code(EIO, boost::system::generic_category()));
        }
        env["PGPASSFILE"] = pg.pgpass;
        co_return env;
    }

    // An empty standby.signal (mode as write_config gives data directory files).
    net::awaitable<Status> write_standby_signal() {
        const fs::path dd = data_dir();
        struct stat st {};
        mode_t mode = 0600;
        if (::stat(dd.c_str(), &st) == 0 && (st.st_mode & S_IRGRP) != 0) {
            mode = 0640;
        }
        std::vector<FileOp> ops;
        ops.push_back({FileOp::Kind::Write, dd / "standby.signal", {}, "", mode});
        co_return co_await net::co_spawn(
            file_pool.get_executor(), apply_file_ops(std::move(ops)), net::use_awaitable);
    }

    // `postgres -C name` against our configuration (Patroni get_guc_value); nullopt on failure.
    net::awaitable<std::optional<std::string>> guc_value(std::string name) {
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
    net::awaitable<void> archive_ready_wals() {
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
                              errno_text(errno));
            }
        }
    }

    // Patroni rewind.py ensure_clean_shutdown: single-user crash recovery so that pg_control
    // says "shut down". archive_mode=on + archive_command=false with the archive_status files
    // removed keep every WAL segment through the recovery's checkpoint (pg_rewind may need them).
    net::awaitable<Status> crash_recovery() {
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
            for (fs::directory_iterator it(status_dir, ec), end; !ec && it != end;
                 it.increment(ec)) {
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
                    return PgError{"could not remove " + (dd / name).string() + ": " +
                                   ec.message()};
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
        auto r = co_await run(
            std::move(argv), std::map<std::string, std::string>(), kCrashRecoveryTimeout);
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

    // Patroni rewind.py check_leader_has_run_checkpoint / checkpoint(): the source must be a
    // primary whose pg_control already has the new timeline, else pg_rewind would find "no
    // rewind required". With the superuser as rewind user a CHECKPOINT is issued; a dedicated
    // rewind user waits (bounded) for the checkpoint the promotion requested.
    net::awaitable<Status> wait_source_checkpoint(std::string host, int port) {
        const auto& pg = settings.postgresql;
        const auto& creds = rewind_credentials(pg);
        const bool as_superuser = creds.username == pg.superuser.username;
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
        const auto deadline = Clock::now() + kSourceCheckpointWait;
        // Waiting for the leader's checkpoint may take long; a source that cannot be reached
        // at all is given up quickly, so the HA loop can take part in a leader race meanwhile.
        const auto unreachable_deadline = Clock::now() + kSourceUnreachableWait;
        std::string last = "not accessible or not healthy";
        bool checkpoint_sent = false;
        for (;;) {
            PqConnection c(ex);
            auto attempt = std::min(deadline, Clock::now() + kQueryDeadline * 2);
            if (auto err = co_await c.connect(params, attempt)) {
                last = "not accessible or not healthy: " + err->describe();
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
                } else if (!out.result.rows.empty() && out.result.rows[0][0] == "t") {
                    co_return std::nullopt;
                } else {
                    last = "leader has not run a checkpoint yet";
                    if (as_superuser && !checkpoint_sent) {
                        spdlog::info(
                            "pg: issuing CHECKPOINT on {}:{} before pg_rewind", host, port);
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
        co_return PgError{"cannot use " + host + ":" + std::to_string(port) +
                          " as the pg_rewind source: " + last};
    }
};

// ---------------------------------------------------------------------------------------------

Postgres::Postgres(net::any_io_executor ex, core::Settings settings)
    : impl_(std::make_unique<Impl>(std::move(ex), std::move(settings), nullptr)) {}

Postgres::Postgres(net::any_io_executor ex,
                   core::Settings settings,
                   std::shared_ptr<ProcessRunner> runner)
    : impl_(std::make_unique<Impl>(std::move(ex), std::move(settings), std::move(runner))) {}

Postgres::~Postgres() = default;

std::shared_ptr<ProcessRunner> Postgres::process_runner() const {
    return impl_->runner;
}

std::string Postgres::postmaster_log_file() const {
    return impl_->log_file();
}

std::string Postgres::socket_directory() const {
    return impl_->socket_dir();
}

std::optional<int> Postgres::postmaster_pid() const {
    auto pc = impl_->check_postmaster();
    if (pc.alive) {
        return pc.pid;
    }
    return std::nullopt;
}

void Postgres::start_supervision(std::function<void()> on_postmaster_exit) {
    impl_->on_postmaster_exit = std::move(on_postmaster_exit);
    impl_->runner->become_subreaper();
    impl_->runner->start_reaping();
    auto pc = impl_->check_postmaster();
    if (pc.alive && pc.pid) {
        impl_->track_postmaster(*pc.pid, pc.our_child);
    }
}

Task<core::PgObservation> Postgres::observe() {
    Impl& d = *impl_;
    core::PgObservation obs;
    std::error_code ec;
    const fs::path dd = d.data_dir();
    obs.data_dir_exists = fs::is_directory(dd, ec);
    if (obs.data_dir_exists) {
        fs::directory_iterator it(dd, ec);
        if (ec) {
            spdlog::warn("pg: cannot read {}: {}", dd.string(), ec.message());
            obs.data_dir_empty = false;  // unreadable is not "empty": never bootstrap over it
        } else {
            obs.data_dir_empty = it == fs::directory_iterator();
        }
    }
    if (!fs::exists(dd / "global" / "pg_control", ec)) {
        d.sysid.reset();
    }

    auto pc = d.check_postmaster();
    obs.postmaster_running = pc.alive;
    if (pc.alive && pc.pid) {
        d.track_postmaster(*pc.pid, pc.our_child);
    } else if (d.pm_pid && !d.pm_watched) {
        // Not our child: its exit cannot arrive through SIGCHLD, so report it from here.
        d.postmaster_exited(*d.pm_pid, std::nullopt);
    }

    bool need_controldata = !pc.alive || !d.sysid;
    if (pc.alive) {
        auto out = co_await d.status_query();
        auto parsed = d.parse_status(out);
        if (!parsed) {
            obs.accepting_connections = false;
            obs.query_error = out.error ? out.error->describe() : "status query returned no row";
            need_controldata = true;
        } else {
            obs.cluster_state = parsed->in_recovery ? "in archive recovery" : "in production";
            obs.control_timeline = to_int(out.result.rows[0][13]);
            obs.accepting_connections = true;
            obs.query = std::move(*parsed);
            need_controldata = !d.sysid;
        }
    }
    if (need_controldata) {
        if (auto cd = co_await d.controldata()) {
            if (cd->sysid) {
                d.sysid = cd->sysid;
            }
            obs.cluster_state = cd->cluster_state;
            obs.control_timeline = cd->timeline;
            obs.checkpoint_lsn = cd->checkpoint_lsn;
        }
    }
    obs.sysid = d.sysid;
    co_return obs;
}

Task<std::optional<core::PgQueryResult>> Postgres::query_status() {
    Impl& d = *impl_;
    if (!d.check_postmaster().alive) {
        co_return std::nullopt;
    }
    auto out = co_await d.status_query(/*with_pending_restart=*/false);
    co_return d.parse_status(out);
}

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
            co_return PgError{"initdb failed for " + d.where() +
                              ": could not create the password file in " + dir.string() + ": " +
                              errno_text(errno)};
        }
        pwfile.path = tmpl;
        std::string content = pg.superuser.password + "\n";
        bool ok =
            ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
        ::close(fd);
        if (!ok) {
            co_return PgError{"initdb failed for " + d.where() +
                              ": could not write the password file"};
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
        co_return PgError{"cannot write configuration: " + d.where() + " does not exist"};
    }
    if (!fs::is_directory(cd, ec)) {
        co_return PgError{"cannot write configuration: config directory " + cd.string() +
                          " does not exist"};
    }
    // Files in the data directory follow its group access (initdb --allow-group-access).
    struct stat st {};
    mode_t mode = 0600;
    if (::stat(dd.c_str(), &st) == 0 && (st.st_mode & S_IRGRP) != 0) {
        mode = 0640;
    }

    auto params = std::move(files.parameters);
    auto la = parse_listen(pg.listen);
    if (!la) {
        co_return PgError{"cannot write configuration: postgresql.listen '" + pg.listen +
                          "' is not host[,host...]:port"};
    }
    params.try_emplace("listen_addresses", la->listen_addresses);
    params.try_emplace("port", la->port);
    if (!d.settings.scope.empty()) {
        params.try_emplace("cluster_name", d.settings.scope);
    }
    params.try_emplace("hba_file", (cd / "pg_hba.conf").string());
    params.try_emplace("ident_file", (cd / "pg_ident.conf").string());
    if (!params.contains("unix_socket_directories") &&
        ::access(std::string(kDefaultSocketDir).c_str(), W_OK) != 0) {
        params["unix_socket_directories"] = d.socket_dir_default();
    }
    for (const auto& [name, value] : params) {
        if (!valid_parameter_name(name)) {
            co_return PgError{"cannot write configuration: invalid parameter name '" + name + "'"};
        }
    }
    if (files.recovery) {
        // Patroni build_recovery_params: follow the latest timeline, and blank recovery targets
        // so an included file cannot pause, promote or stop the standby.
        files.recovery = with_standby_defaults(std::move(*files.recovery));
        for (const auto& [name, value] : *files.recovery) {
            if (!valid_parameter_name(name)) {
                co_return PgError{"cannot write configuration: invalid recovery parameter name '" +
                                  name + "'"};
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

    Status result = co_await net::co_spawn(
        d.file_pool.get_executor(), apply_file_ops(std::move(ops)), net::use_awaitable);
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
        co_return PgError{"cannot start PostgreSQL: " + d.where() +
                          " is not a PostgreSQL data directory"};
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
    std::vector<std::string> argv = d.pg_ctl_args("start");
    argv.push_back("-w");
    argv.push_back("-t");
    argv.push_back(std::to_string(secs));
    argv.push_back("-l");
    argv.push_back(log);
    if (d.config_dir() != dd) {
        argv.push_back("-o");
        argv.push_back("--config-file=" +
                       shell_quote((d.config_dir() / "postgresql.conf").string()));
    }
    spdlog::info("pg: starting PostgreSQL for {} (postmaster log {})", d.where(), log);
    auto r = co_await d.run(std::move(argv),
                            std::map<std::string, std::string>(),
                            std::chrono::seconds(secs) + kCommandMargin);
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
    co_return PgError{"PostgreSQL started for " + d.where() +
                      " but does not accept connections: " + last_error};
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
    std::vector<std::string> argv = d.pg_ctl_args("stop");
    argv.push_back("-m");
    argv.push_back(std::string(stop_mode_name(mode)));
    argv.push_back("-w");
    argv.push_back("-t");
    argv.push_back(std::to_string(secs));
    auto r = co_await d.run(std::move(argv),
                            std::map<std::string, std::string>(),
                            std::chrono::seconds(secs) + kCommandMargin);
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
    auto secs = std::max<std::int64_t>(1, timeout.count());
    spdlog::info("pg: promoting PostgreSQL for {}", d.where());
    std::vector<std::string> argv = d.pg_ctl_args("promote");
    argv.push_back("-w");
    argv.push_back("-t");
    argv.push_back(std::to_string(secs));
    auto r = co_await d.run(std::move(argv),
                            std::map<std::string, std::string>(),
                            std::chrono::seconds(secs) + kCommandMargin);
    if (!r.ok()) {
        co_return d.command_error("pg_ctl promote", r);
    }
    co_return std::nullopt;
}

Task<Status> Postgres::reload() {
    Impl& d = *impl_;
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
        co_return PgError{"could not connect to PostgreSQL for " + d.where() + ": " +
                          err->describe()};
    }
    auto out = co_await c.query(std::move(sql), {}, deadline);
    if (out.error) {
        co_return PgError{"statement failed on PostgreSQL for " + d.where() + ": " +
                          out.error->describe()};
    }
    co_return std::nullopt;
}

namespace {

// CREATE or ALTER a role like Patroni's create_or_update_role; the password is hashed on the
// client with the server's password_encryption, so neither the statement nor the wire carries
// it in plain text. Never logs the statement.
net::awaitable<Status> create_or_update_role(PqConnection* c,
                                             std::string name,
                                             std::string password,
                                             std::string options,
                                             std::string algorithm,
                                             Clock::time_point deadline) {
    std::vector<std::optional<std::string>> params;
    params.emplace_back(name);
    auto exists = co_await c->query(
        "SELECT 1 FROM pg_catalog.pg_authid WHERE rolname = $1", std::move(params), deadline);
    if (exists.error) {
        co_return PgError{"could not look up role \"" + name + "\": " + exists.error->describe()};
    }
    auto ident = c->escape_identifier(name);
    if (!ident) {
        co_return PgError{"could not quote role name \"" + name + "\""};
    }
    std::string sql =
        (exists.result.rows.empty() ? "CREATE ROLE " : "ALTER ROLE ") + *ident + " WITH " + options;
    if (!password.empty()) {
        auto verifier = c->encrypt_password(password, name, algorithm);
        auto literal = c->escape_literal(verifier ? *verifier : password);
        if (!literal) {
            co_return PgError{"could not quote the password of role \"" + name + "\""};
        }
        sql += " PASSWORD " + *literal;
    }
    auto r = co_await c->query(std::move(sql), {}, deadline);
    if (r.error) {
        co_return PgError{"could not create or update role \"" + name +
                          "\": " + r.error->describe()};
    }
    co_return std::nullopt;
}

}  // namespace

Task<Status> Postgres::create_roles() {
    Impl& d = *impl_;
    const auto& pg = d.settings.postgresql;
    auto deadline = Clock::now() + std::chrono::seconds(std::max(60, pg.pg_ctl_timeout));
    PqConnection c(d.ex);
    if (auto err = co_await d.connect_fresh(&c, deadline)) {
        co_return PgError{"create_roles: could not connect to PostgreSQL for " + d.where() + ": " +
                          err->describe()};
    }
    for (const char* set : {"SET log_statement TO none",
                            "SET log_min_duration_statement TO -1",
                            "SET log_min_error_statement TO panic",
                            "SET synchronous_commit TO local"}) {
        auto r = co_await c.query(set, {}, deadline);
        if (r.error) {
            co_return PgError{"create_roles: " + std::string(set) +
                              " failed: " + r.error->describe()};
        }
    }
    auto enc =
        co_await c.query("SELECT pg_catalog.current_setting('password_encryption')", {}, deadline);
    std::string algorithm = "scram-sha-256";
    if (!enc.error && !enc.result.rows.empty() && enc.result.rows[0][0]) {
        algorithm = *enc.result.rows[0][0];
    }

    if (!pg.superuser.username.empty() && !pg.superuser.password.empty()) {
        if (auto err = co_await create_or_update_role(&c,
                                                      pg.superuser.username,
                                                      pg.superuser.password,
                                                      "SUPERUSER LOGIN",
                                                      algorithm,
                                                      deadline)) {
            co_return PgError{"create_roles: " + err->message};
        }
    }
    if (!pg.replication.username.empty()) {
        if (auto err = co_await create_or_update_role(&c,
                                                      pg.replication.username,
                                                      pg.replication.password,
                                                      "REPLICATION LOGIN",
                                                      algorithm,
                                                      deadline)) {
            co_return PgError{"create_roles: " + err->message};
        }
    }
    if (pg.rewind && !pg.rewind->username.empty() && pg.rewind->username != pg.superuser.username) {
        if (auto err = co_await create_or_update_role(
                &c, pg.rewind->username, pg.rewind->password, "LOGIN", algorithm, deadline)) {
            co_return PgError{"create_roles: " + err->message};
        }
        auto ident = c.escape_identifier(pg.rewind->username);
        if (!ident) {
            co_return PgError{"create_roles: could not quote role name \"" + pg.rewind->username +
                              "\""};
        }
        // The functions pg_rewind needs (Patroni's bootstrap.py post_bootstrap).
        for (const char* fn : {"pg_ls_dir(text, boolean, boolean)",
                               "pg_stat_file(text, boolean)",
                               "pg_read_binary_file(text)",
                               "pg_read_binary_file(text, bigint, bigint, boolean)"}) {
            auto r = co_await c.query(
                "GRANT EXECUTE ON FUNCTION pg_catalog." + std::string(fn) + " TO " + *ident,
                {},
                deadline);
            if (r.error) {
                co_return PgError{"create_roles: could not grant EXECUTE on " + std::string(fn) +
                                  " to \"" + pg.rewind->username + "\": " + r.error->describe()};
            }
        }
    }
    spdlog::info("pg: created or updated the superuser, replication and rewind roles");
    co_return std::nullopt;
}

// ---- replication (issue 4) -------------------------------------------------------------------

Task<Status> Postgres::clone_from(std::string host, int port, std::vector<std::string> extra_args) {
    Impl& d = *impl_;
    const fs::path dd = d.data_dir();
    std::error_code ec;
    if (d.check_postmaster().alive) {
        co_return PgError{"cannot clone into " + d.where() + ": PostgreSQL is running there"};
    }
    if (fs::exists(dd / "global" / "pg_control", ec)) {
        co_return PgError{"cannot clone into " + d.where() +
                          ": it holds a PostgreSQL cluster (remove the data directory first)"};
    }
    std::vector<std::string> rejected;
    std::vector<std::string> args = filter_basebackup_args(extra_args, &rejected);
    for (const auto& a : rejected) {
        spdlog::error("pg: basebackup option {} is not allowed, ignoring it", a);
    }
    auto env = co_await d.pgpass_env();
    if (!env) {
        co_return PgError{"cannot clone into " + d.where() + ": could not write the pgpass file " +
                          d.settings.postgresql.pgpass};
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
                return clear_data_directory(dd);
            };
            if (auto err = co_await d.blocking(std::move(job))) {
                co_return PgError{"cannot clone into " + d.where() + ": " + err->message};
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
        auto r = co_await d.run(argv, *env, left);
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
            return clear_data_directory(dd);
        };
        if (auto err = co_await d.blocking(std::move(job))) {
            spdlog::error("pg: could not remove the partial clone: {}", err->message);
        }
        co_return last ? *last
                       : PgError{"pg_basebackup from " + host + ":" + std::to_string(port) +
                                 " timed out for " + d.where()};
    }
    // PostgreSQL accepts 0700, or 0750 with group access (pg_basebackup copies the source's).
    struct stat st {};
    if (::stat(dd.c_str(), &st) == 0 && (st.st_mode & 0777) != 0700 &&
        (st.st_mode & 0777) != 0750) {
        if (::chmod(dd.c_str(), 0700) != 0) {
            co_return PgError{"could not chmod " + dd.string() + ": " + errno_text(errno)};
        }
    }
    spdlog::info("pg: replica has been created using basebackup in {}", d.where());
    co_return std::nullopt;
}

Task<Status> Postgres::rewind_from(std::string host, int port) {
    Impl& d = *impl_;
    const fs::path dd = d.data_dir();
    std::error_code ec;
    if (d.check_postmaster().alive) {
        co_return PgError{"cannot run pg_rewind on " + d.where() + ": PostgreSQL is running"};
    }
    auto cd = co_await d.controldata();
    if (!cd) {
        co_return PgError{"cannot run pg_rewind on " + d.where() + ": pg_controldata failed"};
    }
    auto clean = [](const std::string& state) {
        return state == "shut down" || state == "shut down in recovery";
    };
    if (!clean(cd->cluster_state)) {
        // Patroni ha.py recover(): on PostgreSQL 15 a backup_label means a base backup that has
        // not finished recovery; a normal start completes it, single-user mode is skipped.
        if (fs::exists(dd / "backup_label", ec)) {
            co_return PgError{"cannot run pg_rewind on " + d.where() + ": cluster state is \"" +
                              cd->cluster_state +
                              "\" and backup_label exists (a base backup that has not finished "
                              "recovery; start it instead)"};
        }
        spdlog::info("pg: cluster state is \"{}\" in {}: crash recovery before pg_rewind",
                     cd->cluster_state,
                     d.where());
        if (auto err = co_await d.crash_recovery()) {
            co_return err;
        }
        cd = co_await d.controldata();
        if (!cd || !clean(cd->cluster_state)) {
            co_return PgError{"cannot run pg_rewind on " + d.where() +
                              ": after crash recovery the cluster state is \"" +
                              (cd ? cd->cluster_state : std::string("unknown")) + "\""};
        }
    }
    co_await d.archive_ready_wals();

    auto env = co_await d.pgpass_env();
    if (!env) {
        co_return PgError{"cannot run pg_rewind on " + d.where() +
                          ": could not write the pgpass file " + d.settings.postgresql.pgpass};
    }
    (*env)["LANG"] = "C";
    (*env)["LC_ALL"] = "C";
    (*env)["PGOPTIONS"] = "-c statement_timeout=0";

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
    auto r = co_await d.run(std::move(argv), std::move(*env), kRewindTimeout);
    spdlog::info("pg: pg_rewind {}: {}", r.describe(), output_tail(r.output, 1024));
    if (!r.ok()) {
        co_return d.command_error("pg_rewind from " + host + ":" + std::to_string(port), r);
    }
    std::vector<FileOp> ops;
    for (auto& f : saved) {
        ops.push_back({FileOp::Kind::Write, f.path, {}, std::move(f.content), f.mode});
    }
    Status restored = co_await net::co_spawn(
        d.file_pool.get_executor(), apply_file_ops(std::move(ops)), net::use_awaitable);
    if (restored) {
        co_return PgError{
            "pg_rewind succeeded for " + d.where() +
            " but restoring the local configuration files failed: " + restored->message};
    }
    // pg_rewind left a backup_label (it must stay: recovery starts from the divergence point).
    // Started without a signal file the node would finish recovery as a second primary on the
    // source's timeline, so it is a standby until write_config says otherwise.
    if (auto err = co_await d.write_standby_signal()) {
        co_return PgError{"pg_rewind succeeded for " + d.where() +
                          " but writing standby.signal failed: " + err->message};
    }
    spdlog::info("pg: pg_rewind from {}:{} succeeded for {}", host, port, d.where());
    co_return std::nullopt;
}

Task<Status> Postgres::advance_physical_slots(std::vector<std::string> names) {
    Impl& d = *impl_;
    std::string array = "{";
    for (std::size_t i = 0; i < names.size(); ++i) {
        array += (i ? ",\"" : "\"") + names[i] + "\"";
    }
    array += "}";
    std::vector<std::optional<std::string>> params;
    params.emplace_back(std::move(array));
    auto out = co_await d.cached_query(
        "SELECT pg_catalog.count(pg_catalog.pg_replication_slot_advance(slot_name,"
        " pg_catalog.pg_last_wal_replay_lsn()))"
        " FROM pg_catalog.pg_replication_slots"
        " WHERE slot_type = 'physical' AND NOT active AND restart_lsn IS NOT NULL"
        " AND pg_catalog.pg_is_in_recovery()"
        " AND restart_lsn < pg_catalog.pg_last_wal_replay_lsn() AND slot_name = ANY($1::text[])",
        std::move(params));
    if (out.error) {
        co_return PgError{"could not advance the replication slots: " + out.error->describe()};
    }
    co_return std::nullopt;
}

Task<Status> Postgres::sync_physical_slots(std::vector<std::string> names) {
    Impl& d = *impl_;
    auto deadline = Clock::now() + std::chrono::seconds(30);
    PqConnection c(d.ex);
    if (auto err = co_await d.connect_fresh(&c, deadline)) {
        co_return PgError{"sync_physical_slots: could not connect to PostgreSQL for " + d.where() +
                          ": " + err->describe()};
    }
    auto existing = co_await c.query(
        "SELECT slot_name, slot_type, active::int FROM pg_catalog.pg_replication_slots",
        {},
        deadline);
    if (existing.error) {
        co_return PgError{"sync_physical_slots: could not list replication slots: " +
                          existing.error->describe()};
    }
    std::map<std::string, bool> physical;  // name -> active
    for (const auto& row : existing.result.rows) {
        if (row.size() >= 3 && row[0] && row[1] == "physical") {
            physical[*row[0]] = row[2] == "1";
        }
    }
    std::string failures;
    auto fail = [&failures](const std::string& what) {
        failures += (failures.empty() ? "" : "; ") + what;
    };
    // Drop physical slots nobody wants any more (Patroni slots.py drop_replication_slot: only
    // when not active; an active one is retried next time).
    for (const auto& [name, active] : physical) {
        if (std::find(names.begin(), names.end(), name) != names.end()) {
            continue;
        }
        if (active) {
            spdlog::warn("pg: unable to drop replication slot '{}', slot is active", name);
            continue;
        }
        std::vector<std::optional<std::string>> params;
        params.emplace_back(name);
        auto out = co_await c.query(
            "WITH slots AS (SELECT slot_name, active FROM pg_catalog.pg_replication_slots"
            " WHERE slot_name = $1 AND slot_type = 'physical'),"
            " dropped AS (SELECT pg_catalog.pg_drop_replication_slot(slot_name), true AS dropped"
            " FROM slots WHERE NOT active)"
            " SELECT active::int, COALESCE(dropped, false)::int FROM slots"
            " FULL OUTER JOIN dropped ON true",
            std::move(params),
            deadline);
        if (out.error) {
            fail("could not drop replication slot '" + name + "': " + out.error->describe());
        } else if (!out.result.rows.empty() && out.result.rows[0].size() >= 2 &&
                   out.result.rows[0][1] == "1") {
            spdlog::info("pg: dropped replication slot '{}'", name);
        } else {
            spdlog::warn("pg: unable to drop replication slot '{}', slot is active", name);
        }
    }
    // Create the missing ones, reserving WAL at once (Patroni: immediately_reserve on 9.6+).
    for (const auto& name : names) {
        if (physical.contains(name)) {
            continue;
        }
        std::vector<std::optional<std::string>> params;
        params.emplace_back(name);
        auto out = co_await c.query(
            "SELECT pg_catalog.pg_create_physical_replication_slot($1, true)"
            " WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots"
            " WHERE slot_type = 'physical' AND slot_name = $1)",
            std::move(params),
            deadline);
        if (out.error) {
            fail("could not create physical replication slot '" + name +
                 "': " + out.error->describe());
        } else {
            spdlog::info("pg: created physical replication slot '{}'", name);
        }
    }
    if (!failures.empty()) {
        co_return PgError{"sync_physical_slots for " + d.where() + ": " + failures};
    }
    co_return std::nullopt;
}

Task<Result<std::vector<core::HistoryLine>>> Postgres::read_timeline_history(int timeline) {
    Impl& d = *impl_;
    char name[32];
    std::snprintf(name, sizeof name, "%08X.history", static_cast<unsigned>(timeline));
    const fs::path file = d.data_dir() / "pg_wal" / name;
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        int e = errno;
        std::error_code ec;
        if (!fs::exists(file, ec)) {
            co_return std::vector<core::HistoryLine>{};
        }
        spdlog::warn("pg: cannot read {}: {}", file.string(), errno_text(e));
        co_return Result<std::vector<core::HistoryLine>>(
            boost::system::in_place_error,
            boost::system::error_code(e != 0 ? e : EIO, boost::system::generic_category()));
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    co_return parse_timeline_history(ss.str());
}

Task<Status> Postgres::remove_data_directory() {
    Impl& d = *impl_;
    auto pc = d.check_postmaster();
    if (pc.alive) {
        co_return PgError{"refusing to remove " + d.where() + ": PostgreSQL is running (pid " +
                          std::to_string(pc.pid.value_or(0)) + ")"};
    }
    const fs::path dd = d.data_dir();
    spdlog::info("pg: removing {}", d.where());
    d.sysid.reset();
    std::function<Status()> job = [dd] {
        return clear_data_directory(dd);
    };
    if (auto err = co_await d.blocking(std::move(job))) {
        co_return PgError{"could not remove " + d.where() + ": " + err->message};
    }
    co_return std::nullopt;
}

}  // namespace pgwarden::pg
