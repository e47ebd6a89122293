// Child processes for integration tests: fork/exec with an optional privilege drop, log file,
// extra environment; stop() = SIGTERM, wait, SIGKILL. Never leaves zombies.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pgwarden::testing {

struct ProcessOptions {
    std::map<std::string, std::string> env;  // added to (or overriding) the current environment
    std::string cwd;                         // "" = inherit
    std::string log_file;                    // stdout+stderr appended here; "" = inherit
    std::string run_as;                      // user name; "" = current user (root only)
};

class Process {
public:
    Process() = default;
    ~Process();
    Process(Process&& other) noexcept;
    Process& operator=(Process&& other) noexcept;
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    // argv[0] is looked up on PATH when it has no '/'. Throws std::runtime_error when the
    // program cannot be started (exec failure is reported back through a pipe).
    static Process spawn(std::vector<std::string> argv, ProcessOptions options = {});

    int pid() const { return pid_; }
    // true while the child has not exited (reaps it when it has).
    bool running();
    bool signal(int sig);
    // Exit code (128 + signal number when killed by a signal), or nullopt on timeout.
    std::optional<int> wait_exit(std::chrono::milliseconds timeout);
    // SIGTERM, wait up to `grace`, then SIGKILL; always reaps. Returns the exit code.
    std::optional<int> stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
    std::optional<int> exit_code() const { return exit_code_; }

private:
    bool reap(bool block);

    int pid_ = -1;
    std::optional<int> exit_code_;
};

// "postgres" when running as root (PostgreSQL refuses to run as root), else "" (= current user).
std::string unprivileged_user();

}  // namespace pgwarden::testing
