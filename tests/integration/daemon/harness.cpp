#include "harness.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <cstring>
#include <fstream>
#include <pwd.h>
#include <sstream>
#include <unistd.h>

namespace pgwarden::daemon_test {

using namespace std::chrono_literals;

namespace {
constexpr const char* kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64(const std::string& in) {
    std::string out;
    int val = 0;
    int bits = -6;
    for (unsigned char c : in) {
        val = (val << 8) + c;
        bits += 8;
        while (bits >= 0) {
            out.push_back(kAlphabet[(val >> bits) & 0x3F]);
            bits -= 6;
        }
    }
    if (bits > -6) {
        out.push_back(kAlphabet[((val << 8) >> (bits + 8)) & 0x3F]);
    }
    while (out.size() % 4) {
        out.push_back('=');
    }
    return out;
}

std::string unbase64(const std::string& in) {
    std::string out;
    int val = 0;
    int bits = -8;
    for (char c : in) {
        const char* p = std::strchr(kAlphabet, c);
        if (c == '=' || c == '\0' || p == nullptr) {
            break;
        }
        val = (val << 6) + static_cast<int>(p - kAlphabet);
        bits += 6;
        if (bits >= 0) {
            out.push_back(static_cast<char>((val >> bits) & 0xFF));
            bits -= 8;
        }
    }
    return out;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void chown_to_unprivileged(const fs::path& dir) {
    const std::string user = t::unprivileged_user();
    if (user.empty()) {
        return;
    }
    const passwd* pw = ::getpwnam(user.c_str());
    REQUIRE(pw != nullptr);
    REQUIRE(::chown(dir.c_str(), pw->pw_uid, pw->pw_gid) == 0);
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        REQUIRE(::chown(e.path().c_str(), pw->pw_uid, pw->pw_gid) == 0);
    }
}

// ---- backends ------------------------------------------------------------------------------

EtcdBackend::EtcdBackend() : etcd_(std::make_unique<t::EtcdServer>()) {}

std::string EtcdBackend::yaml() const {
    return "etcd3:\n  hosts: " + etcd_->endpoint() + "\n";
}

std::optional<std::string> EtcdBackend::get(const std::string& scope,
                                            const std::string& key,
                                            std::string* owner) const {
    json req = {{"key", base64("/service/" + scope + "/" + key)}};
    auto r = t::http_request("127.0.0.1", etcd_->client_port(), "POST", "/v3/kv/range", req.dump());
    REQUIRE(r.status == 200);
    auto body = json::parse(r.body);
    if (!body.contains("kvs")) {
        return std::nullopt;
    }
    const auto& kv = body["kvs"][0];
    if (owner) {
        *owner = kv.value("lease", "");
    }
    return unbase64(kv.value("value", ""));
}

void EtcdBackend::put(const std::string& scope,
                      const std::string& key,
                      const std::string& value) const {
    json req = {{"key", base64("/service/" + scope + "/" + key)}, {"value", base64(value)}};
    auto r = t::http_request("127.0.0.1", etcd_->client_port(), "POST", "/v3/kv/put", req.dump());
    REQUIRE(r.status == 200);
}

ConsulBackend::ConsulBackend(t::ConsulOptions options, std::string token)
    : token_(std::move(token)), management_(options.acl_master_token) {
    consul_ = std::make_unique<t::ConsulServer>(std::move(options));
}

std::string ConsulBackend::name() const {
    return consul_->kind() == t::ConsulKind::RealAgent ? "consul agent -dev" : "consul test server";
}

std::string ConsulBackend::yaml() const {
    std::string y = "consul:\n  host: " + consul_->endpoint() +
                    "\n  register_service: true\n  service_check_interval: 1s\n";
    if (!token_.empty()) {
        y += "  token: " + token_ + "\n";
    }
    return y;
}

t::HttpResult ConsulBackend::http(const std::string& target) const {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!management_.empty()) {
        headers.emplace_back("X-Consul-Token", management_);
    }
    return t::http_request("127.0.0.1", consul_->port(), "GET", target, "", headers);
}

std::optional<std::string> ConsulBackend::get(const std::string& scope,
                                              const std::string& key,
                                              std::string* owner) const {
    auto r = http("/v1/kv/service/" + scope + "/" + key + "?consistent");
    if (r.status == 404) {
        return std::nullopt;
    }
    REQUIRE(r.status == 200);
    auto body = json::parse(r.body);
    const auto& e = body.at(0);
    if (owner) {
        *owner = e.contains("Session") ? e["Session"].get<std::string>() : "";
    }
    return e["Value"].is_string() ? unbase64(e["Value"].get<std::string>()) : std::string();
}

void ConsulBackend::put(const std::string& scope,
                        const std::string& key,
                        const std::string& value) const {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!management_.empty()) {
        headers.emplace_back("X-Consul-Token", management_);
    }
    auto r = t::http_request(
        "127.0.0.1", consul_->port(), "PUT", "/v1/kv/service/" + scope + "/" + key, value, headers);
    REQUIRE(r.status == 200);
}

// ---- nodes ---------------------------------------------------------------------------------

Node make_node(const t::TempDir& root,
               const std::string& name,
               const std::string& scope,
               const Backend& backend,
               const NodeOptions& o) {
    Node n;
    n.name = name;
    n.scope = scope;
    n.api_port = t::free_port();
    n.pg_port = t::free_port();
    n.dir = fs::path(root.path()) / name;
    fs::create_directories(n.dir);
    n.config = n.dir / "pgwarden.yml";
    n.log = n.dir / "pgwarden.log";
    std::ofstream out(n.config);
    out << "scope: " << scope << "\n"
        << "name: " << name << "\n"
        << backend.yaml() << "restapi:\n  listen: 127.0.0.1:" << n.api_port
        << "\n  connect_address: 127.0.0.1:" << n.api_port << "\n"
        << "bootstrap:\n  dcs:\n    ttl: " << o.ttl << "\n    loop_wait: " << o.loop_wait
        << "\n    retry_timeout: " << o.retry_timeout << "\n"
        << "    postgresql:\n      use_pg_rewind: true\n      parameters:\n        wal_level: "
           "replica\n"
        << "        max_wal_senders: 5\n      pg_hba:\n        - local all all trust\n"
        << "        - host all all 127.0.0.1/32 scram-sha-256\n"
        << "        - host replication replicator 127.0.0.1/32 scram-sha-256\n"
        << "  initdb:\n    - encoding: UTF8\n    - data-checksums\n"
        << "postgresql:\n  listen: 127.0.0.1:" << n.pg_port
        << "\n  connect_address: 127.0.0.1:" << n.pg_port
        << "\n  data_dir: " << n.data_dir().string()
        << "\n  bin_dir: /usr/lib/postgresql/15/bin\n  pgpass: " << (n.dir / "pgpass").string()
        << "\n  authentication:\n    superuser:\n      username: postgres\n"
        << "      password: su-secret\n"
        << "    replication:\n      username: replicator\n      password: repl-secret\n"
        << "    rewind:\n      username: rewinder\n      password: rewind-secret\n"
        << "  parameters:\n    unix_socket_directories: " << n.dir.string() << "\n"
        << o.extra_yaml;
    out.close();
    chown_to_unprivileged(n.dir);
    return n;
}

t::Process start_pgwarden(const Node& n) {
    t::ProcessOptions opts;
    opts.run_as = t::unprivileged_user();
    opts.log_file = n.log.string();
    return t::Process::spawn({PGW_DAEMON_PATH, n.config.string()}, opts);
}

int http_status(const Node& n, const std::string& path) {
    return t::http_request("127.0.0.1", n.api_port, "GET", path).status;
}

json patroni(const Node& n) {
    auto r = t::http_request("127.0.0.1", n.api_port, "GET", "/patroni");
    if (r.status != 200) {
        return json();
    }
    return json::parse(r.body, nullptr, false);
}

int postmaster_pid(const Node& n) {
    std::ifstream in(n.data_dir() / "postmaster.pid");
    int pid = 0;
    in >> pid;
    return pid;
}

// ---- the shared scenario -------------------------------------------------------------------

void single_node_lifecycle(const Backend& dcs, const std::string& scope) {
    t::TempDir root;
    Node n1 = make_node(root, "node1", scope, dcs);
    auto d1 = start_pgwarden(n1);
    INFO("backend: " << dcs.name() << "; node1 log: " << n1.log.string());

    // Bootstrap: a running primary behind the REST API.
    REQUIRE(t::wait_until([&] { return http_status(n1, "/primary") == 200; }, 90s));
    CHECK(http_status(n1, "/replica") == 503);
    CHECK(http_status(n1, "/health") == 200);
    CHECK(http_status(n1, "/read-write") == 200);

    json st = patroni(n1);
    REQUIRE(st.is_object());
    CHECK(st["state"] == "running");
    CHECK(st["role"] == "primary");
    CHECK(st["patroni"]["scope"] == scope);
    CHECK(st["patroni"]["name"] == "node1");
    CHECK(st["server_version"].get<int>() >= 150000);
    CHECK(st["timeline"].get<int>() == 1);
    CHECK(st["xlog"]["location"].get<std::int64_t>() > 0);
    CHECK(st.contains("dcs_last_seen"));
    CHECK(st.contains("postmaster_start_time"));
    REQUIRE(st.contains("database_system_identifier"));
    const std::string sysid = st["database_system_identifier"];

    // DCS keys: the leader key names us and is bound to a lease/session; initialize = sysid.
    std::string owner;
    auto leader = dcs.get(scope, "leader", &owner);
    REQUIRE(leader);
    CHECK(*leader == "node1");
    CHECK_FALSE(owner.empty());
    CHECK(dcs.get(scope, "initialize") == sysid);
    // The member key is rewritten at the end of the cycle that finished the bootstrap.
    REQUIRE(t::wait_until(
        [&] {
            auto m = dcs.get(scope, "members/node1");
            return m && json::parse(*m, nullptr, false).value("role", "") == "primary";
        },
        30s));
    auto member = json::parse(*dcs.get(scope, "members/node1"));
    CHECK(member["role"] == "primary");
    CHECK(member["state"] == "running");
    CHECK(member["conn_url"] == "postgres://127.0.0.1:" + std::to_string(n1.pg_port) + "/postgres");
    CHECK(member["api_url"] == "http://127.0.0.1:" + std::to_string(n1.api_port) + "/patroni");
    auto config = dcs.get(scope, "config");
    REQUIRE(config);
    CHECK(json::parse(*config)["loop_wait"] == 2);

    // No password in the log or the API.
    CHECK(read_file(n1.log).find("su-secret") == std::string::npos);
    CHECK(st.dump().find("secret") == std::string::npos);

    // PATCH /config with a parameter that needs a restart: written, reloaded, reported as
    // pending_restart; POST /restart applies it.
    auto patched = t::http_request("127.0.0.1",
                                   n1.api_port,
                                   "PATCH",
                                   "/config",
                                   R"({"postgresql":{"parameters":{"max_connections":123}}})",
                                   {{"Content-Type", "application/json"}});
    REQUIRE(patched.status == 200);
    REQUIRE(t::wait_until(
        [&] {
            json s = patroni(n1);
            return s.is_object() && s.value("pending_restart", false) &&
                   s["pending_restart_reason"].contains("max_connections");
        },
        30s));
    auto restarted = t::http_request("127.0.0.1", n1.api_port, "POST", "/restart", "{}", {}, 60s);
    CHECK(restarted.status == 200);
    CHECK(restarted.body == "restarted successfully");
    REQUIRE(t::wait_until(
        [&] {
            json s = patroni(n1);
            return s.is_object() && s.value("state", "") == "running" &&
                   !s.contains("pending_restart");
        },
        60s));
    st = patroni(n1);

    // kill -9 of the postmaster: noticed at once and restarted as primary.
    const int pm = postmaster_pid(n1);
    REQUIRE(pm > 0);
    const std::string started_before = st["postmaster_start_time"];
    REQUIRE(::kill(pm, SIGKILL) == 0);
    REQUIRE(t::wait_until(
        [&] {
            json s = patroni(n1);
            return s.is_object() && s.value("state", "") == "running" &&
                   s.value("postmaster_start_time", "") != started_before &&
                   s.value("role", "") == "primary";
        },
        60s));
    CHECK(postmaster_pid(n1) != pm);
    CHECK(http_status(n1, "/primary") == 200);
    CHECK(dcs.get(scope, "leader") == std::string("node1"));

    // A second node with an empty data directory never bootstraps a second cluster: it clones
    // the leader and streams from it, with the same system identifier.
    Node n2 = make_node(root, "node2", scope, dcs);
    auto d2 = start_pgwarden(n2);
    INFO("node2 log: " << n2.log.string());
    REQUIRE(t::wait_until(
        [&] {
            json s2 = patroni(n2);
            return s2.is_object() && s2.value("role", "") == "replica" &&
                   s2.value("replication_state", "") == "streaming";
        },
        90s));
    CHECK(patroni(n2)["database_system_identifier"] == sysid);
    CHECK(http_status(n2, "/replica") == 200);
    CHECK(http_status(n2, "/primary") == 503);
    CHECK(read_file(n2.log).find("trying to bootstrap a new cluster") == std::string::npos);
    CHECK(read_file(n2.log).find("trying to bootstrap from leader 'node1'") != std::string::npos);
    CHECK(dcs.get(scope, "initialize") == sysid);
    CHECK(d2.stop(60s) == 0);  // SIGTERM: a clean exit

    // SIGTERM: PostgreSQL stopped, the leader key deleted at once (no waiting for the lease).
    d1.signal(SIGTERM);
    auto code = d1.wait_exit(90s);
    REQUIRE(code);
    CHECK(*code == 0);
    CHECK_FALSE(dcs.get(scope, "leader").has_value());
    CHECK_FALSE(dcs.get(scope, "members/node1").has_value());
    CHECK_FALSE(fs::exists(n1.data_dir() / "postmaster.pid"));
}

}  // namespace pgwarden::daemon_test
