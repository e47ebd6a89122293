// File operations of Postgres: atomic writes with fsync, the managed-file operations of
// write_config, emptying a data directory, and running them on the small blocking pool.
#include "pg/postgres_impl.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace pgwarden::pg {

namespace net = boost::asio;

namespace detail {

namespace {

PgError io_error(const std::string& what, int e) {
    return make_error(ErrorKind::Io, what + ": " + errno_text(e), e);
}

PgError io_error(const std::string& what, const std::error_code& ec) {
    return make_error(ErrorKind::Io, what + ": " + ec.message(), ec.value());
}

Status fsync_dir(const fs::path& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return io_error("could not open directory " + dir.string(), errno);
    }
    ::fsync(fd);
    ::close(fd);
    return std::nullopt;
}

Status apply_file_op(const FileOp& op) {
    std::error_code ec;
    switch (op.kind) {
        case FileOp::Kind::Write:
            return atomic_write(op.path, op.content, op.mode);
        case FileOp::Kind::Remove:
            if (!fs::remove(op.path, ec) && ec) {
                return io_error("could not remove " + op.path.string(), ec);
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
                    return io_error("could not rename " + own.string() + " to " + op.path.string(),
                                    errno);
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
                return make_error(ErrorKind::Io, "could not read " + op.source.string());
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

net::awaitable<Status> run_file_ops(std::vector<FileOp> ops) {
    try {
        for (const auto& op : ops) {
            if (auto err = apply_file_op(op)) {
                co_return err;
            }
        }
    } catch (const std::exception& e) {
        co_return make_error(ErrorKind::Io,
                             std::string("writing configuration files failed: ") + e.what());
    }
    co_return std::nullopt;
}

// Removes everything inside `dir` (symlinks themselves, never what they point to).
Status clear_directory(const fs::path& dir) {
    std::error_code ec;
    std::vector<fs::path> entries;  // listed first: no removal while the directory is read
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        entries.push_back(it->path());
    }
    if (ec) {
        return io_error("could not list " + dir.string(), ec);
    }
    std::string failures;
    int first_errno = 0;
    for (const auto& entry : entries) {
        std::error_code rec;
        fs::remove_all(entry, rec);
        if (rec) {
            failures += (failures.empty() ? "" : "; ") + entry.string() + ": " + rec.message();
            first_errno = first_errno != 0 ? first_errno : rec.value();
        }
    }
    if (!failures.empty()) {
        return make_error(ErrorKind::Io, "could not remove " + failures, first_errno);
    }
    return std::nullopt;
}

// Runs a blocking function (on the file pool) and returns its Status; exceptions become errors.
net::awaitable<Status> call_blocking(std::function<Status()> fn) {
    try {
        co_return fn();
    } catch (const std::exception& e) {
        co_return make_error(ErrorKind::Io, std::string("file operation failed: ") + e.what());
    }
}

}  // namespace

std::optional<std::string> read_small_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) {
        return std::nullopt;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

Status atomic_write(const fs::path& path, const std::string& content, mode_t mode) {
    fs::path tmp = path;
    tmp += ".pgwarden-tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        return io_error("could not write " + path.string(), errno);
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
            return io_error("could not write " + path.string(), e);
        }
        off += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) {
        int e = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        return io_error("could not fsync " + path.string(), e);
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return io_error("could not rename " + tmp.string() + " to " + path.string(), e);
    }
    return fsync_dir(path.parent_path().empty() ? fs::path(".") : path.parent_path());
}

Status clear_data_directory(const fs::path& dd) {
    std::error_code ec;
    auto st = fs::symlink_status(dd, ec);
    if (ec || !fs::exists(st)) {
        return std::nullopt;  // nothing there
    }
    fs::path real = fs::is_symlink(st) ? fs::canonical(dd, ec) : dd;
    if (ec) {
        return io_error("could not resolve " + dd.string(), ec);
    }
    if (!fs::is_directory(real, ec)) {
        return make_error(ErrorKind::InvalidState, dd.string() + " is not a directory");
    }
    if (real == real.root_path() || !real.has_filename()) {
        return make_error(ErrorKind::InvalidConfig,
                          "refusing to remove the contents of " + real.string());
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
        return io_error("could not chmod " + real.string(), errno);
    }
    return fsync_dir(real);
}

mode_t data_file_mode(const fs::path& dd) {
    struct stat st {};
    if (::stat(dd.c_str(), &st) == 0 && (st.st_mode & S_IRGRP) != 0) {
        return 0640;
    }
    return 0600;
}

}  // namespace detail

using detail::FileOp;
namespace fs = std::filesystem;

net::awaitable<Status> Postgres::Impl::blocking(std::function<Status()> fn) {
    co_return co_await net::co_spawn(
        file_pool.get_executor(), detail::call_blocking(std::move(fn)), net::use_awaitable);
}

net::awaitable<Status> Postgres::Impl::apply_file_ops(std::vector<FileOp> ops) {
    co_return co_await net::co_spawn(
        file_pool.get_executor(), detail::run_file_ops(std::move(ops)), net::use_awaitable);
}

net::awaitable<ToolEnv> Postgres::Impl::pgpass_env() {
    const auto& pg = settings.postgresql;
    ToolEnv out;
    std::string content = render_pgpass(pg);
    if (content.empty() || pg.pgpass.empty()) {
        co_return out;
    }
    fs::path file(pg.pgpass);
    std::function<Status()> job = [file, content]() -> Status {
        std::error_code ec;
        if (file.has_parent_path() && !fs::is_directory(file.parent_path(), ec)) {
            return detail::make_error(
                ErrorKind::InvalidConfig,
                "cannot write the pgpass file " + file.string() + ": its directory does not exist");
        }
        return detail::atomic_write(file, content, 0600);
    };
    out.error = co_await blocking(std::move(job));
    if (out.error) {
        spdlog::error("pg: {}", out.error->message);
        co_return out;
    }
    out.env["PGPASSFILE"] = pg.pgpass;
    co_return out;
}

net::awaitable<Status> Postgres::Impl::write_standby_signal() {
    const fs::path dd = data_dir();
    std::vector<FileOp> ops;
    ops.push_back({FileOp::Kind::Write, dd / "standby.signal", {}, "", detail::data_file_mode(dd)});
    co_return co_await apply_file_ops(std::move(ops));
}

}  // namespace pgwarden::pg
