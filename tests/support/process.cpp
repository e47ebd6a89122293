#include "support/process.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdexcept>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace pgwarden::testing {
namespace {

struct UserInfo {
    uid_t uid = 0;
    gid_t gid = 0;
    std::string home;
    std::vector<gid_t> groups;
};

UserInfo lookup_user(const std::string& name) {
    struct passwd pw {};
    struct passwd* found = nullptr;
    std::vector<char> buf(16384);
    if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
        throw std::runtime_error("unknown user " + name);
    }
    UserInfo info;
    info.uid = pw.pw_uid;
    info.gid = pw.pw_gid;
    info.home = pw.pw_dir ? pw.pw_dir : "/";
    int ngroups = 64;
    info.groups.resize(static_cast<std::size_t>(ngroups));
    if (getgrouplist(name.c_str(), info.gid, info.groups.data(), &ngroups) < 0) {
        info.groups.resize(static_cast<std::size_t>(ngroups));
        getgrouplist(name.c_str(), info.gid, info.groups.data(), &ngroups);
    }
    info.groups.resize(static_cast<std::size_t>(std::max(ngroups, 0)));
    return info;
}

std::string find_executable(const std::string& program, const std::string& path_env) {
    if (program.find('/') != std::string::npos) {
        return program;
    }
    std::size_t start = 0;
    while (start <= path_env.size()) {
        auto end = path_env.find(':', start);
        if (end == std::string::npos) {
            end = path_env.size();
        }
        std::string dir = path_env.substr(start, end - start);
        if (dir.empty()) {
            dir = ".";
        }
        std::string candidate = dir + "/" + program;
        if (access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
        start = end + 1;
    }
    return program;
}

// The child writes {stage, errno} here when it fails before exec.
struct ChildFailure {
    int stage;
    int error;
};

const char* stage_name(int stage) {
    switch (stage) {
        case 1:
            return "dup2";
        case 2:
            return "chdir";
        case 3:
            return "setgroups";
        case 4:
            return "setgid";
        case 5:
            return "setuid";
        case 6:
            return "execve";
        default:
            return "child setup";
    }
}

[[noreturn]] void child_fail(int fd, int stage) {
    ChildFailure f{stage, errno};
    ssize_t ignored = write(fd, &f, sizeof f);
    (void)ignored;
    _exit(127);
}

}  // namespace

Process::~Process() {
    if (pid_ > 0 && !exit_code_) {
        stop(std::chrono::seconds(5));
    }
}

Process::Process(Process&& other) noexcept : pid_(other.pid_), exit_code_(other.exit_code_) {
    other.pid_ = -1;
    other.exit_code_.reset();
}

Process& Process::operator=(Process&& other) noexcept {
    if (this != &other) {
        if (pid_ > 0 && !exit_code_) {
            stop(std::chrono::seconds(5));
        }
        pid_ = other.pid_;
        exit_code_ = other.exit_code_;
        other.pid_ = -1;
        other.exit_code_.reset();
    }
    return *this;
}

Process Process::spawn(std::vector<std::string> argv, ProcessOptions options) {
    if (argv.empty()) {
        throw std::invalid_argument("Process::spawn: empty argv");
    }
    std::map<std::string, std::string> env;
    for (char** e = environ; e && *e; ++e) {
        std::string entry(*e);
        auto eq = entry.find('=');
        if (eq != std::string::npos) {
            env[entry.substr(0, eq)] = entry.substr(eq + 1);
        }
    }
    const bool drop = !options.run_as.empty() && geteuid() == 0;
    UserInfo user;
    if (drop) {
        user = lookup_user(options.run_as);
        for (const char* var : {"HOME", "USER", "LOGNAME"}) {
            if (!options.env.count(var)) {
                env[var] = std::string(var) == "HOME" ? user.home : options.run_as;
            }
        }
    }
    for (const auto& [k, v] : options.env) {
        env[k] = v;
    }
    std::vector<std::string> env_strings;
    for (const auto& [k, v] : env) {
        env_strings.push_back(k + "=" + v);
    }
    std::vector<char*> envp;
    for (auto& s : env_strings) {
        envp.push_back(s.data());
    }
    envp.push_back(nullptr);
    std::vector<char*> args;
    for (auto& a : argv) {
        args.push_back(a.data());
    }
    args.push_back(nullptr);
    const std::string path =
        find_executable(argv[0], env.count("PATH") ? env["PATH"] : "/usr/bin:/bin");

    int log_fd = -1;
    if (!options.log_file.empty()) {
        log_fd = open(options.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log_fd < 0) {
            throw std::runtime_error("cannot open log file " + options.log_file + ": " +
                                     std::strerror(errno));
        }
        if (drop && fchown(log_fd, user.uid, user.gid) != 0) {
            // Not fatal: the child writes through the inherited descriptor anyway.
        }
    }
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0) {
        if (log_fd >= 0) {
            close(log_fd);
        }
        throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
    }
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(errpipe[0]);
        close(errpipe[1]);
        if (log_fd >= 0) {
            close(log_fd);
        }
        throw std::runtime_error(std::string("fork: ") + std::strerror(err));
    }
    if (pid == 0) {
        // Child: only async-signal-safe calls from here on.
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, nullptr);
        for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGCHLD, SIGHUP}) {
            ::signal(sig, SIG_DFL);
        }
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) {
            dup2(devnull, 0);
        }
        if (log_fd >= 0 && (dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)) {
            child_fail(errpipe[1], 1);
        }
        if (!options.cwd.empty() && chdir(options.cwd.c_str()) != 0) {
            child_fail(errpipe[1], 2);
        }
        if (drop) {
            if (setgroups(user.groups.size(), user.groups.data()) != 0) {
                child_fail(errpipe[1], 3);
            }
            if (setgid(user.gid) != 0) {
                child_fail(errpipe[1], 4);
            }
            if (setuid(user.uid) != 0) {
                child_fail(errpipe[1], 5);
            }
        }
        // After the credential change (which clears it): die with the test process.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        execve(path.c_str(), args.data(), envp.data());
        child_fail(errpipe[1], 6);
    }
    close(errpipe[1]);
    if (log_fd >= 0) {
        close(log_fd);
    }
    ChildFailure failure{};
    ssize_t n;
    do {
        n = read(errpipe[0], &failure, sizeof failure);
    } while (n < 0 && errno == EINTR);
    close(errpipe[0]);
    Process p;
    p.pid_ = pid;
    if (n == static_cast<ssize_t>(sizeof failure)) {
        p.reap(true);
        p.pid_ = -1;
        throw std::runtime_error("cannot start " + argv[0] + ": " + stage_name(failure.stage) +
                                 ": " + std::strerror(failure.error));
    }
    return p;
}

bool Process::reap(bool block) {
    if (pid_ <= 0 || exit_code_) {
        return true;
    }
    int status = 0;
    pid_t r;
    do {
        r = waitpid(pid_, &status, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
        return false;
    }
    if (r < 0) {
        exit_code_ = -1;  // not our child any more (ECHILD): nothing left to reap
        return true;
    }
    if (WIFEXITED(status)) {
        exit_code_ = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        exit_code_ = 128 + WTERMSIG(status);
    } else {
        return false;  // stopped/continued: still alive
    }
    return true;
}

bool Process::running() {
    return pid_ > 0 && !reap(false);
}

bool Process::signal(int sig) {
    return running() && ::kill(pid_, sig) == 0;
}

std::optional<int> Process::wait_exit(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        if (pid_ <= 0) {
            return exit_code_;
        }
        if (reap(false)) {
            return exit_code_;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return std::nullopt;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

std::optional<int> Process::stop(std::chrono::milliseconds grace) {
    if (pid_ <= 0) {
        return exit_code_;
    }
    if (!running()) {
        return exit_code_;
    }
    ::kill(pid_, SIGTERM);
    if (auto code = wait_exit(grace)) {
        return code;
    }
    ::kill(pid_, SIGKILL);
    reap(true);
    return exit_code_;
}

std::string unprivileged_user() {
    return geteuid() == 0 ? "postgres" : "";
}

}  // namespace pgwarden::testing
