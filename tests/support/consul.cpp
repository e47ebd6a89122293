#include "support/consul.hpp"

#include "support/net.hpp"

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <unistd.h>

namespace pgwarden::testing {
namespace {

// Waits until 127.0.0.1:<port> has a Raft leader (GET /v1/status/leader).
bool answers_status_leader(unsigned short port, std::chrono::milliseconds timeout) {
    return wait_until(
        [port] {
            auto r = http_request("127.0.0.1",
                                  port,
                                  "GET",
                                  "/v1/status/leader",
                                  "",
                                  {},
                                  std::chrono::milliseconds(500));
            return r.status == 200 && r.body.size() > 2;
        },
        timeout);
}

}  // namespace

bool ConsulServer::real_consul_available() {
    const char* path = std::getenv("PATH");
    if (path == nullptr) {
        return false;
    }
    std::string p = path;
    std::size_t start = 0;
    while (start <= p.size()) {
        const auto end = p.find(':', start);
        const std::string dir =
            p.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (!dir.empty() && ::access((dir + "/consul").c_str(), X_OK) == 0) {
            return true;
        }
        if (end == std::string::npos) {
            break;
        }
        start = end + 1;
    }
    return false;
}

std::string ConsulServer::test_server_path() {
    return PGW_CONSUL_SERVER_PATH;
}

ConsulServer::ConsulServer(ConsulOptions options)
    : options_(std::move(options)), dir_("pgw-consul") {
    log_file_ = dir_.file("consul.log");
    ProcessOptions popts;
    popts.log_file = log_file_;
    if (options_.kind == ConsulKind::TestServer) {
        const std::string port_file = dir_.file("port");
        std::vector<std::string> argv{test_server_path(),
                                      "--listen",
                                      "127.0.0.1:0",
                                      "--port-file",
                                      port_file,
                                      "--session-ttl-min",
                                      options_.session_ttl_min};
        if (!options_.acl_master_token.empty()) {
            argv.insert(
                argv.end(),
                {"--acl-default-policy", "deny", "--acl-master-token", options_.acl_master_token});
        }
        const std::string https_port_file = dir_.file("https-port");
        if (!options_.tls_cert.empty()) {
            argv.insert(argv.end(),
                        {"--https-listen",
                         "127.0.0.1:0",
                         "--https-port-file",
                         https_port_file,
                         "--tls-cert",
                         options_.tls_cert,
                         "--tls-key",
                         options_.tls_key});
            if (!options_.tls_ca.empty()) {
                argv.insert(argv.end(), {"--tls-ca", options_.tls_ca});
            }
            if (options_.tls_verify_incoming) {
                argv.emplace_back("--tls-verify-incoming");
            }
        }
        argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
        argv_ = argv;
        process_ = Process::spawn(argv, popts);
        if (!wait_until(
                [&] {
                    std::ifstream in(port_file);
                    unsigned p = 0;
                    if (in >> p && p > 0) {
                        port_ = static_cast<unsigned short>(p);
                        return true;
                    }
                    return false;
                },
                options_.start_timeout)) {
            process_.stop();
            throw std::runtime_error("consul test server did not start; see " + log_file_);
        }
        if (!options_.tls_cert.empty()) {
            // The server writes it before the HTTP port file.
            const bool https_up = wait_until(
                [&] {
                    std::ifstream in(https_port_file);
                    unsigned p = 0;
                    if (in >> p && p > 0) {
                        https_port_ = static_cast<unsigned short>(p);
                        return true;
                    }
                    return false;
                },
                options_.start_timeout);
            if (!https_up) {
                process_.stop();
                throw std::runtime_error("consul test server has no HTTPS port; see " + log_file_);
            }
        }
    } else {
        port_ = free_port();
        std::vector<std::string> argv{"consul",
                                      "agent",
                                      "-dev",
                                      "-bind",
                                      "127.0.0.1",
                                      "-client",
                                      "127.0.0.1",
                                      "-http-port",
                                      std::to_string(port_),
                                      "-dns-port",
                                      "-1",
                                      "-grpc-port",
                                      "-1",
                                      "-serf-lan-port",
                                      std::to_string(free_port()),
                                      "-serf-wan-port",
                                      std::to_string(free_port()),
                                      "-server-port",
                                      std::to_string(free_port())};
        if (!options_.acl_master_token.empty()) {
            const std::string hcl = dir_.file("acl.hcl");
            std::ofstream(hcl) << "acl { enabled = true\n default_policy = \"deny\"\n tokens { "
                                  "initial_management = \""
                               << options_.acl_master_token << "\" } }\n";
            argv.insert(argv.end(), {"-config-file", hcl});
        }
        argv_ = argv;
        process_ = Process::spawn(argv, popts);
    }
    const bool up = answers_status_leader(port_, options_.start_timeout);
    if (!up) {
        process_.stop();
        throw std::runtime_error("consul did not answer /v1/status/leader; see " + log_file_);
    }
}

ConsulServer::~ConsulServer() {
    stop();
}

void ConsulServer::restart() {
    stop();
    // The test server picked its ports (":0"): listen on the same ones again.
    for (std::size_t i = 0; i + 1 < argv_.size(); ++i) {
        if (argv_[i] == "--listen") {
            argv_[i + 1] = endpoint();
        } else if (argv_[i] == "--https-listen") {
            argv_[i + 1] = "127.0.0.1:" + std::to_string(https_port_);
        }
    }
    ProcessOptions popts;
    popts.log_file = log_file_;
    process_ = Process::spawn(argv_, popts);
    const bool up = answers_status_leader(port_, options_.start_timeout);
    if (!up) {
        throw std::runtime_error("consul did not answer after a restart; see " + log_file_);
    }
}

void ConsulServer::stop() {
    if (process_.pid() > 0 && process_.running()) {
        process_.stop(std::chrono::seconds(10));
    }
}

}  // namespace pgwarden::testing
