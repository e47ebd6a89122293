// Shared helpers for the DCS integration tests: running coroutines on a local io_context with
// a bound, and one `Backend` per DCS server kind so that the contract scenarios
// (dcs_contract_test.cpp) are written once and run against every backend:
//
//   Etcd3            a real etcd 3.4 (tests/support/etcd.hpp)
//   ConsulTestServer the in-repo Consul API test server, session_ttl_min 1s (tests/consul)
//   ConsulAgentDev   `consul agent -dev`, only when a `consul` binary is on PATH; otherwise every
//                    scenario prints "SKIPPED: ..." (ctest reports those tests as skipped)
//
// A Backend starts its server, makes a `Dcs` for a member, reads a key directly over the
// server's own HTTP API (to verify side effects without trusting the backend under test),
// revokes a lease/session behind the backend's back, and stops the server by PID.
#pragma once

#include "dcs/base64.hpp"
#include "dcs/consul/consul_dcs.hpp"
#include "dcs/dcs.hpp"
#include "dcs/etcd3/etcd3_dcs.hpp"
#include "support/consul.hpp"
#include "support/etcd.hpp"
#include "support/net.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unistd.h>
#include <utility>

namespace pgwarden::dcs_test {

namespace net = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using dcs::DcsTiming;

// ---------------------------------------------------------------------------------------------
// Running coroutines (every wait bounded).

// Runs one coroutine to completion on the local io_context; fails the test after `limit`.
template <class T>
T run(net::io_context& io, net::awaitable<T> task, std::chrono::milliseconds limit = 30s) {
    std::optional<T> out;
    std::exception_ptr error;
    net::co_spawn(io, std::move(task), [&out, &error](std::exception_ptr e, T value) {
        error = e;
        out.emplace(std::move(value));
    });
    const auto deadline = Clock::now() + limit;
    while (!out && Clock::now() < deadline) {
        if (io.stopped()) {
            io.restart();
        }
        io.run_one_for(50ms);
    }
    if (error) {
        std::rethrow_exception(error);
    }
    REQUIRE(out.has_value());
    return std::move(*out);
}

// Runs two coroutines concurrently; returns both results.
template <class T>
std::pair<T, T> run_both(net::io_context& io, net::awaitable<T> a, net::awaitable<T> b) {
    std::optional<T> ra;
    std::optional<T> rb;
    net::co_spawn(io, std::move(a), [&ra](std::exception_ptr, T v) { ra.emplace(std::move(v)); });
    net::co_spawn(io, std::move(b), [&rb](std::exception_ptr, T v) { rb.emplace(std::move(v)); });
    const auto deadline = Clock::now() + 30s;
    while ((!ra || !rb) && Clock::now() < deadline) {
        if (io.stopped()) {
            io.restart();
        }
        io.run_one_for(50ms);
    }
    REQUIRE(ra.has_value());
    REQUIRE(rb.has_value());
    return {std::move(*ra), std::move(*rb)};
}

// Keeps the io_context running (background watch) until pred() or timeout.
inline bool pump_until(net::io_context& io,
                       const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!pred()) {
        if (Clock::now() >= deadline) {
            return false;
        }
        if (io.stopped()) {
            io.restart();
        }
        io.run_one_for(20ms);
    }
    return true;
}

// Runs the io_context for a fixed time: only where time passing IS the behaviour under test
// (a lease must survive, a watch must stay quiet).
inline void pump_for(net::io_context& io, std::chrono::milliseconds d) {
    pump_until(
        io, [] { return false; }, d);
}

inline std::string unique_scope(const std::string& name) {
    static int counter = 0;
    return name + "-" + std::to_string(getpid()) + "-" + std::to_string(++counter);
}

inline core::Cluster cluster_of(net::io_context& io, dcs::Dcs& d) {
    auto c = run(io, d.get_cluster());
    REQUIRE(c.has_value());
    return *c;
}

inline std::string leader_name(net::io_context& io, dcs::Dcs& d) {
    auto c = cluster_of(io, d);
    return c.leader ? c.leader->name : std::string();
}

// Base64 for the raw reads (etcd keys and values, Consul values): the library's own codec.
using dcs::base64_decode;
using dcs::base64_encode;

// ---------------------------------------------------------------------------------------------
// Backends.

// A key as the server itself reports it.
struct StoredKey {
    std::string value;
    std::string owner;  // etcd lease id (decimal) / Consul session id; "" when not ephemeral
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    // Short timings the server can honour (etcd: 1 s minimum lease; Consul: 2 x SessionTTLMin).
    virtual DcsTiming fast_timing() const = 0;
    virtual std::unique_ptr<dcs::Dcs> make_dcs(net::io_context& io,
                                               const std::string& scope,
                                               const std::string& member,
                                               DcsTiming timing) = 0;
    std::unique_ptr<dcs::Dcs> make_dcs(net::io_context& io,
                                       const std::string& scope,
                                       const std::string& member) {
        return make_dcs(io, scope, member, fast_timing());
    }
    // The lease / session a Dcs made by this backend currently holds ("" = none).
    virtual std::string owner_of(const dcs::Dcs& d) const = 0;
    // Reads <prefix>/<scope>/<key> over the server's HTTP API; nullopt when absent.
    virtual std::optional<StoredKey> read_key(const std::string& scope, const std::string& key) = 0;
    // Revokes a lease / destroys a session behind the backend's back.
    virtual bool revoke_owner(const std::string& owner) = 0;
    // Deletes <prefix>/<scope>/<key> behind the backend's back (an operator, `consul leave`).
    virtual bool delete_key(const std::string& scope, const std::string& key) = 0;
    // Seconds the server says a lease has left; nullopt where the server does not tell (Consul).
    virtual std::optional<std::int64_t> owner_ttl_left(const std::string& owner) = 0;
    // The server's client port (the DCS connections go there).
    virtual unsigned short port() const = 0;
    virtual void stop() = 0;
    // Stops the server and starts it again on the same port (etcd keeps its data; the Consul
    // servers start empty).
    virtual void restart() = 0;
};

class Etcd3Backend final : public Backend {
public:
    Etcd3Backend() = default;
    std::string name() const override { return "etcd 3.4"; }
    DcsTiming fast_timing() const override { return DcsTiming{2, 1, 3}; }
    std::unique_ptr<dcs::Dcs> make_dcs(net::io_context& io,
                                       const std::string& scope,
                                       const std::string& member,
                                       DcsTiming timing) override {
        auto d = std::make_unique<dcs::Etcd3Dcs>(
            io.get_executor(), settings(), "/service/", scope, member);
        d->set_timing(timing);
        return d;
    }
    using Backend::make_dcs;
    std::string owner_of(const dcs::Dcs& d) const override {
        return static_cast<const dcs::Etcd3Dcs&>(d).lease_id_for_test();
    }
    std::optional<StoredKey> read_key(const std::string& scope, const std::string& key) override {
        const nlohmann::json req = {{"key", base64_encode("/service/" + scope + "/" + key)}};
        auto r = testing::http_request(
            "127.0.0.1", server_.client_port(), "POST", "/v3/kv/range", req.dump());
        INFO("etcd range " << key << ": " << r.status << " " << r.body);
        REQUIRE(r.status == 200);
        auto body = nlohmann::json::parse(r.body);
        if (!body.contains("kvs") || body["kvs"].empty()) {
            return std::nullopt;
        }
        const auto& kv = body["kvs"][0];
        StoredKey k;
        k.value = base64_decode(kv.value("value", "")).value();
        k.owner = kv.value("lease", "");
        if (k.owner == "0") {
            k.owner.clear();
        }
        return k;
    }
    bool revoke_owner(const std::string& owner) override {
        auto r = testing::http_request("127.0.0.1",
                                       server_.client_port(),
                                       "POST",
                                       "/v3/lease/revoke",
                                       "{\"ID\":\"" + owner + "\"}");
        return r.status == 200;
    }
    bool delete_key(const std::string& scope, const std::string& key) override {
        const nlohmann::json req = {{"key", base64_encode("/service/" + scope + "/" + key)}};
        auto r = testing::http_request(
            "127.0.0.1", server_.client_port(), "POST", "/v3/kv/deleterange", req.dump());
        return r.status == 200;
    }
    std::optional<std::int64_t> owner_ttl_left(const std::string& owner) override {
        auto r = testing::http_request("127.0.0.1",
                                       server_.client_port(),
                                       "POST",
                                       "/v3/lease/timetolive",
                                       "{\"ID\":\"" + owner + "\"}");
        INFO("etcd lease/timetolive: " << r.status << " " << r.body);
        REQUIRE(r.status == 200);
        auto body = nlohmann::json::parse(r.body);
        if (!body.contains("TTL")) {
            return 0;  // zero values are left out
        }
        const auto& ttl = body["TTL"];
        return ttl.is_string() ? std::stoll(ttl.get<std::string>()) : ttl.get<std::int64_t>();
    }
    unsigned short port() const override { return server_.client_port(); }
    void stop() override { server_.stop(); }
    void restart() override { server_.restart(); }

    core::Etcd3Settings settings() const {
        core::Etcd3Settings s;
        s.hosts = {server_.endpoint()};
        return s;
    }
    testing::EtcdServer& server() { return server_; }

private:
    testing::EtcdServer server_;
};

class ConsulBackend : public Backend {
public:
    explicit ConsulBackend(testing::ConsulOptions options) : server_(std::move(options)) {}
    std::string name() const override {
        return server_.kind() == testing::ConsulKind::RealAgent ? "consul agent -dev"
                                                                : "consul test server";
    }
    DcsTiming fast_timing() const override {
        // Session TTL = ttl/2 must reach SessionTTLMin: 1 s on our test server, 10 s on a
        // real agent.
        return server_.kind() == testing::ConsulKind::RealAgent ? DcsTiming{20, 1, 3}
                                                                : DcsTiming{2, 1, 3};
    }
    std::unique_ptr<dcs::Dcs> make_dcs(net::io_context& io,
                                       const std::string& scope,
                                       const std::string& member,
                                       DcsTiming timing) override {
        return make_consul(io, scope, member, timing, settings());
    }
    using Backend::make_dcs;
    std::unique_ptr<dcs::ConsulDcs> make_consul(net::io_context& io,
                                                const std::string& scope,
                                                const std::string& member,
                                                DcsTiming timing,
                                                core::ConsulSettings s) {
        auto d = std::make_unique<dcs::ConsulDcs>(
            io.get_executor(), std::move(s), "/service/", scope, member);
        d->set_timing(timing);
        return d;
    }
    std::string owner_of(const dcs::Dcs& d) const override {
        return static_cast<const dcs::ConsulDcs&>(d).session_for_test();
    }
    std::optional<StoredKey> read_key(const std::string& scope, const std::string& key) override {
        auto r = http("GET", "/v1/kv/service/" + scope + "/" + key + "?consistent");
        INFO("consul GET " << key << ": " << r.status << " " << r.body);
        if (r.status == 404) {
            return std::nullopt;
        }
        REQUIRE(r.status == 200);
        auto body = nlohmann::json::parse(r.body);
        REQUIRE((body.is_array() && body.size() == 1));
        StoredKey k;
        if (body[0].contains("Value") && body[0]["Value"].is_string()) {
            k.value = base64_decode(body[0]["Value"].get<std::string>()).value();
        }
        if (body[0].contains("Session") && body[0]["Session"].is_string()) {
            k.owner = body[0]["Session"].get<std::string>();
        }
        return k;
    }
    bool revoke_owner(const std::string& owner) override {
        return http("PUT", "/v1/session/destroy/" + owner).status == 200;
    }
    bool delete_key(const std::string& scope, const std::string& key) override {
        return http("DELETE", "/v1/kv/service/" + scope + "/" + key).status == 200;
    }
    std::optional<std::int64_t> owner_ttl_left(const std::string&) override { return std::nullopt; }
    unsigned short port() const override { return server_.port(); }
    void stop() override { server_.stop(); }
    void restart() override { server_.restart(); }

    // One request to the server, with the management token when ACLs are on.
    testing::HttpResult http(const std::string& method,
                             const std::string& target,
                             const std::string& body = "") const {
        std::vector<std::pair<std::string, std::string>> headers;
        if (!master_token_.empty()) {
            headers.emplace_back("X-Consul-Token", master_token_);
        }
        return testing::http_request("127.0.0.1", server_.port(), method, target, body, headers);
    }
    core::ConsulSettings settings() const {
        core::ConsulSettings s;
        s.host = "127.0.0.1";
        s.port = server_.port();
        s.token = master_token_;
        return s;
    }
    testing::ConsulServer& server() { return server_; }
    void set_master_token(std::string token) { master_token_ = std::move(token); }

private:
    testing::ConsulServer server_;
    std::string master_token_;
};

inline testing::ConsulOptions consul_test_server_options(std::string session_ttl_min = "1s") {
    testing::ConsulOptions o;
    o.kind = testing::ConsulKind::TestServer;
    o.session_ttl_min = std::move(session_ttl_min);
    return o;
}

// Backend kinds for TEMPLATE_TEST_CASE; the type name shows in every test name and failure.
struct Etcd3 {
    static std::optional<std::string> unavailable() { return std::nullopt; }
    static std::unique_ptr<Backend> start() { return std::make_unique<Etcd3Backend>(); }
};

struct ConsulTestServer {
    static std::optional<std::string> unavailable() { return std::nullopt; }
    static std::unique_ptr<Backend> start() {
        return std::make_unique<ConsulBackend>(consul_test_server_options());
    }
};

struct ConsulAgentDev {
    static std::optional<std::string> unavailable() {
        if (testing::ConsulServer::real_consul_available()) {
            return std::nullopt;
        }
        return std::string(
            "no `consul` binary on PATH, so this scenario did not run against a "
            "real `consul agent -dev` (it ran against etcd and the consul test "
            "server)");
    }
    static std::unique_ptr<Backend> start() {
        testing::ConsulOptions o;
        o.kind = testing::ConsulKind::RealAgent;
        return std::make_unique<ConsulBackend>(o);
    }
};

// The process-wide server of a kind, started on first use; nullptr (after a "SKIPPED:" warning
// that ctest turns into a skipped test) when the kind is not available here.
template <class Kind>
Backend* shared_backend() {
    if (auto why = Kind::unavailable()) {
        WARN("SKIPPED: " << *why);
        return nullptr;
    }
    static std::unique_ptr<Backend> backend = Kind::start();
    return backend.get();
}

// A server of its own for scenarios that stop (or restart) it.
template <class Kind>
std::unique_ptr<Backend> own_backend() {
    if (auto why = Kind::unavailable()) {
        WARN("SKIPPED: " << *why);
        return nullptr;
    }
    return Kind::start();
}

}  // namespace pgwarden::dcs_test
