#include "pg/process_runner.hpp"

#include "asio/event.hpp"
#include "asio/spawn.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <deque>
#include <exception>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <unordered_map>
#include <utility>

extern char** environ;

namespace pgwarden::pg {

namespace net = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kMaxOutput = 64 * 1024;
constexpr std::size_t kRecentlyReaped = 128;
constexpr auto kGraceAfterKill = std::chrono::seconds(5);
constexpr auto kDrainAfterExit = std::chrono::milliseconds(500);

using async::Event;

struct ExitWaiter {
    explicit ExitWaiter(net::any_io_executor ex) : exited(std::move(ex)) {}
    Event exited;
    int status = 0;
};

struct PipeReader {
    PipeReader(net::any_io_executor ex, int fd) : pipe(ex, fd), done(ex) {}
    net::posix::stream_descriptor pipe;
    std::string output;
    Event done;
};

void append_capped(std::string& out, const char* data, std::size_t n) {
    out.append(data, n);
    if (out.size() > kMaxOutput) {
        out.erase(0, out.size() - kMaxOutput);
    }
}

// Reads the pipe until EOF or error; never throws.
net::awaitable<void> read_pipe(std::shared_ptr<PipeReader> reader) {
    char buf[4096];
    for (;;) {
        auto [ec, n] = co_await reader->pipe.async_read_some(net::buffer(buf),
                                                             net::as_tuple(net::use_awaitable));
        if (n > 0) {
            append_capped(reader->output, buf, n);
        }
        if (ec) {
            break;
        }
    }
    reader->done.set();
}

std::vector<std::string> build_env(const std::map<std::string, std::string>& overrides) {
    std::vector<std::string> env;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        std::string entry(*e);
        auto eq = entry.find('=');
        std::string key = entry.substr(0, eq);
        if (!overrides.contains(key)) {
            env.push_back(std::move(entry));
        }
    }
    for (const auto& [k, v] : overrides) {
        env.push_back(k + "=" + v);
    }
    return env;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
    std::vector<char*> out;
    out.reserve(v.size() + 1);
    for (auto& s : v) {
        out.push_back(s.data());
    }
    out.push_back(nullptr);
    return out;
}

}  // namespace

std::string CommandResult::describe() const {
    if (!started) {
        return "could not be started";
    }
    if (timed_out) {
        return "timed out and was killed";
    }
    if (term_signal != 0) {
        return "was killed by signal " + std::to_string(term_signal);
    }
    return "exited with code " + std::to_string(exit_code);
}

struct ProcessRunner::State : std::enable_shared_from_this<ProcessRunner::State> {
    explicit State(net::any_io_executor e) : ex(std::move(e)), signals(ex) {}

    net::any_io_executor ex;
    net::signal_set signals;
    bool reaping = false;
    std::unordered_map<int, std::shared_ptr<ExitWaiter>> waiters;  // run() children
    std::unordered_map<int, std::function<void(int)>> watches;     // postmasters
    std::deque<std::pair<int, int>> recently_reaped;               // unknown pids

    void dispatch(int pid, int status) {
        if (auto it = waiters.find(pid); it != waiters.end()) {
            it->second->status = status;
            it->second->exited.set();
            waiters.erase(it);
            return;
        }
        if (auto it = watches.find(pid); it != watches.end()) {
            auto callback = std::move(it->second);
            watches.erase(it);
            net::post(ex, [callback = std::move(callback), status] { callback(status); });
            return;
        }
        // An adopted orphan (e.g. a backend of a killed postmaster) or a pid watched later.
        spdlog::debug("process runner: reaped unknown pid={} status={}", pid, status);
        recently_reaped.emplace_back(pid, status);
        if (recently_reaped.size() > kRecentlyReaped) {
            recently_reaped.pop_front();
        }
    }

    void reap_all() {
        for (;;) {
            int status = 0;
            pid_t pid = ::waitpid(-1, &status, WNOHANG);
            if (pid > 0) {
                dispatch(pid, status);
                continue;
            }
            if (pid < 0 && errno == EINTR) {
                continue;
            }
            break;  // 0: children remain but none exited; -1/ECHILD: no children
        }
    }
};

net::awaitable<void> ProcessRunner::reap_loop(std::shared_ptr<State> st) {
    for (;;) {
        auto [ec, sig] = co_await st->signals.async_wait(net::as_tuple(net::use_awaitable));
        if (ec == net::error::operation_aborted) {
            co_return;
        }
        (void)sig;
        st->reap_all();
    }
}

ProcessRunner::ProcessRunner(net::any_io_executor ex)
    : state_(std::make_shared<State>(std::move(ex))) {}

ProcessRunner::~ProcessRunner() {
    boost::system::error_code ec;
    state_->signals.cancel(ec);
    state_->signals.clear(ec);
}

bool ProcessRunner::become_subreaper() {
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
        spdlog::warn("process runner: prctl(PR_SET_CHILD_SUBREAPER) failed: {}",
                     std::strerror(errno));
        return false;
    }
    return true;
}

void ProcessRunner::start_reaping() {
    if (state_->reaping) {
        return;
    }
    state_->signals.add(SIGCHLD);
    state_->reaping = true;
    async::spawn_logged(state_->ex, reap_loop(state_), "process runner: SIGCHLD handler");
    // Children that exited before the handler existed would otherwise wait for the next signal.
    state_->reap_all();
}

void ProcessRunner::watch(int pid, std::function<void(int)> on_exit) {
    start_reaping();
    auto& recent = state_->recently_reaped;
    for (auto it = recent.begin(); it != recent.end(); ++it) {
        if (it->first == pid) {
            int status = it->second;
            recent.erase(it);
            // A live process with this pid is a newer one (pid reuse): the record is stale.
            if (::access(("/proc/" + std::to_string(pid)).c_str(), F_OK) != 0) {
                net::post(state_->ex, [cb = std::move(on_exit), status] { cb(status); });
                return;
            }
            break;
        }
    }
    state_->watches[pid] = std::move(on_exit);
}

void ProcessRunner::unwatch(int pid) {
    state_->watches.erase(pid);
}

bool ProcessRunner::watching(int pid) const {
    return state_->watches.contains(pid);
}

net::awaitable<CommandResult> ProcessRunner::run(std::vector<std::string> argv,
                                                 std::map<std::string, std::string> env,
                                                 std::chrono::milliseconds timeout) {
    CommandResult result;
    if (argv.empty()) {
        result.output = "empty command";
        co_return result;
    }
    if (::access(argv[0].c_str(), X_OK) != 0) {
        result.output = argv[0] + ": " + std::strerror(errno);
        co_return result;
    }
    start_reaping();
    auto ex = co_await net::this_coro::executor;

    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        result.output = std::string("pipe: ") + std::strerror(errno);
        co_return result;
    }
    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    std::vector<std::string> env_strings = build_env(env);
    std::vector<char*> c_argv = c_strings(argv);
    std::vector<char*> c_env = c_strings(env_strings);

    pid_t pid = ::fork();
    if (pid == 0) {
        // Child: only async-signal-safe calls from here on.
        ::setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        ::sigaction(SIGPIPE, &dfl, nullptr);
        ::sigaction(SIGCHLD, &dfl, nullptr);
        if (devnull >= 0) {
            ::dup2(devnull, 0);
        }
        ::dup2(fds[1], 1);
        ::dup2(fds[1], 2);
        ::close_range(3, ~0U, 0);
        ::execve(c_argv[0], c_argv.data(), c_env.data());
        const char msg[] = "exec failed\n";
        [[maybe_unused]] auto w = ::write(2, msg, sizeof msg - 1);
        ::_exit(127);
    }
    int fork_errno = errno;
    ::close(fds[1]);
    if (devnull >= 0) {
        ::close(devnull);
    }
    if (pid < 0) {
        ::close(fds[0]);
        result.output = std::string("fork: ") + std::strerror(fork_errno);
        co_return result;
    }
    ::setpgid(pid, pid);  // also in the parent, so kill(-pid) works from the start
    result.started = true;

    auto waiter = std::make_shared<ExitWaiter>(ex);
    state_->waiters[pid] = waiter;
    auto reader = std::make_shared<PipeReader>(ex, fds[0]);
    async::spawn_logged(ex, read_pipe(reader), "process runner: output reader");

    const auto deadline = Clock::now() + timeout;
    if (!co_await waiter->exited.wait_until(deadline)) {
        result.timed_out = true;
        spdlog::warn("process runner: {} (pid={}) timed out after {} ms, killing it",
                     argv[0],
                     pid,
                     timeout.count());
        ::kill(-pid, SIGKILL);
        ::kill(pid, SIGKILL);
        if (!co_await waiter->exited.wait_until(Clock::now() + kGraceAfterKill)) {
            state_->waiters.erase(pid);  // reaped later as an unknown pid
        }
    }
    // Grandchildren may hold the pipe open (they should not: pg_ctl -l redirects the postmaster);
    // give the reader a short grace period, then stop reading.
    co_await reader->done.wait_until(Clock::now() + kDrainAfterExit);
    if (!reader->done.is_set()) {
        boost::system::error_code ec;
        reader->pipe.cancel(ec);
        co_await reader->done.wait_until(Clock::now() + kDrainAfterExit);
    }
    result.output = reader->output;

    if (waiter->exited.is_set()) {
        int st = waiter->status;
        if (WIFEXITED(st)) {
            result.exit_code = WEXITSTATUS(st);
        } else if (WIFSIGNALED(st)) {
            result.term_signal = WTERMSIG(st);
        }
    }
    co_return result;
}

}  // namespace pgwarden::pg
