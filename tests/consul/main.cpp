// pgw-consul-test-server: the in-repo Consul HTTP API test double (see README.md).
#include "consul_test_server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>

namespace {

constexpr const char* kUsage =
    "usage: pgw-consul-test-server [--listen HOST:PORT] [--port-file PATH]\n"
    "         [--datacenter NAME] [--node-name NAME]\n"
    "         [--session-ttl-min DUR] [--deregister-critical-min DUR] [--reaper-interval DUR]\n"
    "         [--wait-scale FACTOR] [--rpc-error-prefix-hops N] [--initial-index N]\n"
    "         [--acl-default-policy allow|deny] [--acl-master-token TOKEN]\n"
    "         [--https-listen HOST:PORT] [--https-port-file PATH]\n"
    "         [--tls-cert PEM] [--tls-key PEM] [--tls-ca PEM] [--tls-verify-incoming]\n"
    "Test-only control endpoints (not Consul): see tests/consul/README.md.\n";

bool write_port_file(const std::string& path, unsigned short port) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        if (!out) {
            return false;
        }
        out << port << "\n";
        if (!out.flush()) {
            return false;
        }
    }
    return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
    using pgwarden::consul_test::ConsulTestServer;
    using pgwarden::consul_test::ServerOptions;
    ServerOptions options;
    if (auto err = pgwarden::consul_test::parse_options(argc, argv, options)) {
        if (*err == "help") {
            std::fputs(kUsage, stdout);
            return 0;
        }
        std::fprintf(stderr, "pgw-consul-test-server: %s\n%s", err->c_str(), kUsage);
        return 2;
    }
    try {
        boost::asio::io_context ioc{1};
        ConsulTestServer server(ioc, options);
        auto ep = server.bind();
        auto https_ep = server.bind_https();
        server.start();
        boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
        signals.async_wait([&ioc](const boost::system::error_code&, int) { ioc.stop(); });
        // The HTTPS port file first: whoever sees the HTTP one finds it there.
        if (https_ep && !options.https_port_file.empty() &&
            !write_port_file(options.https_port_file, https_ep->port())) {
            std::fprintf(stderr,
                         "pgw-consul-test-server: cannot write %s\n",
                         options.https_port_file.c_str());
            return 1;
        }
        if (!options.port_file.empty() && !write_port_file(options.port_file, ep.port())) {
            std::fprintf(
                stderr, "pgw-consul-test-server: cannot write %s\n", options.port_file.c_str());
            return 1;
        }
        std::printf("listening %s:%u\n", ep.address().to_string().c_str(), ep.port());
        if (https_ep) {
            std::printf("listening-https %s:%u\n",
                        https_ep->address().to_string().c_str(),
                        https_ep->port());
        }
        std::fflush(stdout);
        ioc.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "pgw-consul-test-server: %s\n", e.what());
        return 1;
    }
    std::fflush(stdout);
    std::fflush(stderr);
    // Coroutine frames (blocking queries, check probes) still reference the server; skip their
    // teardown on shutdown: the process is done.
    std::_Exit(0);
}
