#include "support/etcd.hpp"

#include "support/net.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace pgwarden::testing {
namespace {

std::string read_tail(const std::string& path, std::size_t max_bytes = 4000) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    auto s = ss.str();
    return s.size() > max_bytes ? s.substr(s.size() - max_bytes) : s;
}

}  // namespace

EtcdServer::EtcdServer(EtcdOptions options) : options_(std::move(options)), dir_("pgw-etcd") {
    log_file_ = dir_.file("etcd.log");
    // A port taken between free_port() and etcd's bind makes etcd exit at once: try again.
    for (int attempt = 0; attempt < 3; ++attempt) {
        client_port_ = free_port();
        do {
            peer_port_ = free_port();
        } while (peer_port_ == client_port_);
        const std::string client_url = "http://127.0.0.1:" + std::to_string(client_port_);
        const std::string peer_url = "http://127.0.0.1:" + std::to_string(peer_port_);
        const std::string data_dir = dir_.file("data" + std::to_string(attempt));
        argv_ = {options_.binary,
                 "--name",
                 "t1",
                 "--data-dir",
                 data_dir,
                 "--listen-client-urls",
                 client_url,
                 "--advertise-client-urls",
                 client_url,
                 "--listen-peer-urls",
                 peer_url,
                 "--initial-advertise-peer-urls",
                 peer_url,
                 "--initial-cluster",
                 "t1=" + peer_url,
                 "--initial-cluster-state",
                 "new",
                 "--heartbeat-interval",
                 std::to_string(options_.heartbeat_interval_ms),
                 "--election-timeout",
                 std::to_string(options_.election_timeout_ms)};
        process_ = Process::spawn(argv_, ProcessOptions{{}, dir_.path(), log_file_, ""});
        bool exited = false;
        const bool ok = wait_until(
            [this, &exited] {
                if (!process_.running()) {
                    exited = true;
                    return true;
                }
                return healthy();
            },
            options_.start_timeout);
        if (ok && !exited) {
            return;
        }
        if (!exited) {
            process_.stop(std::chrono::seconds(5));
            throw std::runtime_error("etcd did not become healthy; log:\n" + read_tail(log_file_));
        }
    }
    throw std::runtime_error("etcd exited at start-up; log:\n" + read_tail(log_file_));
}

EtcdServer::~EtcdServer() {
    stop();
}

std::string EtcdServer::endpoint() const {
    return "127.0.0.1:" + std::to_string(client_port_);
}

bool EtcdServer::healthy() const {
    auto r =
        http_request("127.0.0.1", client_port_, "GET", "/health", "", {}, std::chrono::seconds(2));
    return r.status == 200 && r.body.find("\"health\":\"true\"") != std::string::npos;
}

void EtcdServer::stop() {
    process_.stop(std::chrono::seconds(10));
}

void EtcdServer::restart() {
    stop();
    process_ = Process::spawn(argv_, ProcessOptions{{}, dir_.path(), log_file_, ""});
    if (!wait_until([this] { return healthy(); }, options_.start_timeout)) {
        throw std::runtime_error("etcd did not become healthy after a restart; log:\n" +
                                 read_tail(log_file_));
    }
}

}  // namespace pgwarden::testing
