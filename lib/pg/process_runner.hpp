// Child processes for lib/pg (initdb, pg_ctl, pg_controldata, later pg_rewind/pg_basebackup):
// fork/exec with stdout+stderr captured through a pipe read asynchronously, a timeout on every
// command, and ONE SIGCHLD handler that reaps every child of this process (waitpid(-1)), including
// orphans adopted as child-subreaper (a daemonized postmaster, backends of a killed postmaster).
//
// Ownership rule: the ProcessRunner reaps ALL children of the process, so nobody else in the
// process may call waitpid() (or system()/popen()). Create exactly one per process and share it
// (Postgres accepts a shared runner) — two runners would steal each other's children.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace pgwarden::pg {

struct CommandResult {
    bool started = false;    // false: the program could not be started (reason in `output`)
    bool timed_out = false;  // killed (SIGKILL to its process group) after the timeout
    int exit_code = -1;      // exit status if it exited normally, else -1
    int term_signal = 0;     // signal that terminated it, if any
    std::string output;      // stdout and stderr interleaved (the last 64 KiB)

    bool ok() const noexcept { return started && !timed_out && term_signal == 0 && exit_code == 0; }
    // "exited with code 1", "killed by signal 9", "timed out after 5 s", "could not be started".
    std::string describe() const;
};

class ProcessRunner {
public:
    explicit ProcessRunner(boost::asio::any_io_executor ex);
    ~ProcessRunner();
    ProcessRunner(const ProcessRunner&) = delete;
    ProcessRunner& operator=(const ProcessRunner&) = delete;

    // prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants (the postmaster that pg_ctl daemonizes)
    // become our children, so their exit arrives as SIGCHLD. Returns false (and logs) on failure.
    bool become_subreaper();

    // Installs the SIGCHLD handler if not yet done. run() and watch() call it themselves.
    void start_reaping();

    // Runs argv (argv[0] an absolute path) with the current environment plus `env` (overrides),
    // stdin from /dev/null, in its own process group. Never throws for a failing command.
    boost::asio::awaitable<CommandResult> run(std::vector<std::string> argv,
                                              std::map<std::string, std::string> env,
                                              std::chrono::milliseconds timeout);

    // Calls `on_exit(wait_status)` on the executor once `pid` (a child or adopted orphan) has
    // been reaped — at once (posted) if it was already reaped as an unknown pid recently.
    void watch(int pid, std::function<void(int)> on_exit);
    void unwatch(int pid);
    // True while `pid` is watched and has not been reaped yet.
    bool watching(int pid) const;

private:
    struct State;
    static boost::asio::awaitable<void> reap_loop(std::shared_ptr<State> st);
    std::shared_ptr<State> state_;
};

}  // namespace pgwarden::pg
