// Throw-away TLS material for tests, made with the `openssl` CLI at test time (no network):
// a CA, a server certificate for 127.0.0.1 / localhost and a client certificate signed by it,
// plus an unrelated second CA ("wrong CA"). Header-only so every test binary can use it.
// Also run_command(): fork/exec with a deadline, capturing stdout+stderr (used for curl).
#pragma once

#include <chrono>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <signal.h>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace pgwarden::testing {

struct CommandResult {
    int exit_code = -1;  // 128 + signal when killed (also on timeout)
    std::string output;  // stdout and stderr
};

// Runs argv[0] (looked up on PATH) with stdin from /dev/null; kills it after `timeout`.
inline CommandResult run_command(const std::vector<std::string>& argv,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        throw std::runtime_error("pipe2 failed");
    }
    const pid_t pid = ::fork();
    if (pid < 0) {
        throw std::runtime_error("fork failed");
    }
    if (pid == 0) {
        const int devnull = ::open("/dev/null", O_RDONLY);
        ::dup2(devnull, 0);
        ::dup2(fds[1], 1);
        ::dup2(fds[1], 2);
        std::vector<char*> args;
        for (const auto& a : argv) {
            args.push_back(const_cast<char*>(a.c_str()));
        }
        args.push_back(nullptr);
        ::execvp(args[0], args.data());
        ::_exit(127);
    }
    ::close(fds[1]);
    CommandResult out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    bool killed = false;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            ::kill(pid, SIGKILL);
            killed = true;
            break;
        }
        pollfd p{fds[0], POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
            continue;
        }
        char buf[4096];
        const auto n = ::read(fds[0], buf, sizeof buf);
        if (n <= 0) {
            break;
        }
        out.output.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFEXITED(status) && !killed) {
        out.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        out.exit_code = 128 + WTERMSIG(status);
    }
    return out;
}

struct TestCerts {
    std::string ca;           // CA certificate (PEM)
    std::string server_cert;  // CN 127.0.0.1, SAN IP:127.0.0.1, DNS:localhost
    std::string server_key;
    std::string client_cert;  // signed by `ca`, clientAuth
    std::string client_key;
    std::string wrong_ca;  // an unrelated CA
};

// Writes the certificates into `dir` (an existing directory); throws when openssl fails.
inline TestCerts make_test_certs(const std::string& dir) {
    const std::string openssl = "/usr/bin/openssl";
    auto run = [&](std::vector<std::string> args) {
        args.insert(args.begin(), openssl);
        auto r = run_command(args);
        if (r.exit_code != 0) {
            throw std::runtime_error("openssl failed: " + r.output);
        }
    };
    auto f = [&](const std::string& name) {
        return dir + "/" + name;
    };
    auto new_ca = [&](const std::string& name) {
        run({"req",
             "-x509",
             "-newkey",
             "ec",
             "-pkeyopt",
             "ec_paramgen_curve:prime256v1",
             "-nodes",
             "-keyout",
             f(name + ".key"),
             "-out",
             f(name + ".pem"),
             "-days",
             "2",
             "-subj",
             "/CN=pgw-test-" + name});
    };
    auto new_leaf = [&](const std::string& name, const std::string& cn, const std::string& ext) {
        std::ofstream(f(name + ".ext")) << ext;
        run({"req",
             "-newkey",
             "ec",
             "-pkeyopt",
             "ec_paramgen_curve:prime256v1",
             "-nodes",
             "-keyout",
             f(name + ".key"),
             "-out",
             f(name + ".csr"),
             "-subj",
             "/CN=" + cn});
        run({"x509",
             "-req",
             "-in",
             f(name + ".csr"),
             "-CA",
             f("ca.pem"),
             "-CAkey",
             f("ca.key"),
             "-CAcreateserial",
             "-out",
             f(name + ".pem"),
             "-days",
             "2",
             "-extfile",
             f(name + ".ext")});
    };
    new_ca("ca");
    new_ca("wrong-ca");
    new_leaf("server",
             "127.0.0.1",
             "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
             "extendedKeyUsage=serverAuth\n");
    new_leaf(
        "client", "pgw-test-client", "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n");
    return TestCerts{f("ca.pem"),
                     f("server.pem"),
                     f("server.key"),
                     f("client.pem"),
                     f("client.key"),
                     f("wrong-ca.pem")};
}

}  // namespace pgwarden::testing
