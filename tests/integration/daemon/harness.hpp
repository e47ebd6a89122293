// Shared by the daemon integration tests: a DCS backend (real etcd 3.4, the Consul test
// server, or a real `consul agent -dev`), pgwarden nodes with real PostgreSQL 15, and probes.
#pragma once

#include "support/consul.hpp"
#include "support/etcd.hpp"
#include "support/net.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace pgwarden::daemon_test {

namespace fs = std::filesystem;
namespace t = pgwarden::testing;
using nlohmann::json;

// A DCS as the tests see it: how pgwarden's YAML names it, and how to read a key directly.
class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    virtual std::string yaml() const = 0;  // the DCS section of patroni.yml
    // A key under /service/<scope>/; nullopt if absent. *owner = lease / session ("" if none).
    virtual std::optional<std::string> get(const std::string& scope,
                                           const std::string& key,
                                           std::string* owner = nullptr) const = 0;
    // Writes a key under /service/<scope>/ directly, as a foreign writer would (no session).
    virtual void put(const std::string& scope,
                     const std::string& key,
                     const std::string& value) const = 0;
};

class EtcdBackend final : public Backend {
public:
    EtcdBackend();
    std::string name() const override { return "etcd3"; }
    std::string yaml() const override;
    std::optional<std::string> get(const std::string& scope,
                                   const std::string& key,
                                   std::string* owner = nullptr) const override;
    void put(const std::string& scope,
             const std::string& key,
             const std::string& value) const override;

private:
    std::unique_ptr<t::EtcdServer> etcd_;
};

class ConsulBackend final : public Backend {
public:
    explicit ConsulBackend(t::ConsulOptions options = {}, std::string token = "");
    std::string name() const override;
    std::string yaml() const override;
    std::optional<std::string> get(const std::string& scope,
                                   const std::string& key,
                                   std::string* owner = nullptr) const override;
    void put(const std::string& scope,
             const std::string& key,
             const std::string& value) const override;
    const t::ConsulServer& server() const { return *consul_; }
    // GET on the Consul HTTP API (with the management token when ACLs are on).
    t::HttpResult http(const std::string& target) const;

private:
    std::unique_ptr<t::ConsulServer> consul_;
    std::string token_;       // what pgwarden is configured with
    std::string management_;  // what the tests read with
};

struct NodeOptions {
    int ttl = 20;
    int loop_wait = 2;
    int retry_timeout = 5;
    std::string extra_yaml;  // appended at top level
};

struct Node {
    std::string name;
    std::string scope;
    unsigned short api_port = 0;
    unsigned short pg_port = 0;
    fs::path dir;
    fs::path config;
    fs::path log;
    fs::path data_dir() const { return dir / "data"; }
};

std::string base64(const std::string& in);
std::string unbase64(const std::string& in);
std::string read_file(const fs::path& p);
// Servers run as the unprivileged user when the tests run as root: hand it the node's files.
void chown_to_unprivileged(const fs::path& dir);

Node make_node(const t::TempDir& root,
               const std::string& name,
               const std::string& scope,
               const Backend& backend,
               const NodeOptions& options = {});
t::Process start_pgwarden(const Node& n);
int http_status(const Node& n, const std::string& path);
json patroni(const Node& n);  // null when the API does not answer 200
int postmaster_pid(const Node& n);

// One node's whole life on `backend` (shared by every DCS): bootstrap, REST answers, DCS keys,
// killed postmaster, a second empty node that must not bootstrap, SIGTERM hand-over.
void single_node_lifecycle(const Backend& backend, const std::string& scope);

}  // namespace pgwarden::daemon_test
