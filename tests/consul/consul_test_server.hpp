// The Consul HTTP API test server ("the double"), following /work/shared/spec/consul-api.md.
// Single node, single datacenter, single-threaded: every handler runs on one io_context.
#pragma once

#include "consul_util.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace pgwarden::consul_test {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
using OJson = nlohmann::ordered_json;

struct ServerOptions {
    std::string listen_host = "127.0.0.1";
    std::uint16_t listen_port = 8500;
    std::string port_file;
    std::string datacenter = "dc1";
    std::string node_name = "pgw-consul-test";
    Nanos session_ttl_min = std::chrono::seconds(10);
    Nanos deregister_critical_min = std::chrono::minutes(1);
    Nanos reaper_interval = std::chrono::seconds(30);
    double wait_scale = 1.0;  // multiplies the effective blocking-query timeout (tests only)
    int rpc_error_prefix_hops = 1;
    bool acl_enabled = false;
    bool acl_default_allow = true;
    std::string acl_master_token;
    std::uint64_t initial_index = 10;
    // §13.50: optional HTTPS listener (same handlers) when https_listen_host is set.
    std::string https_listen_host;
    std::uint16_t https_listen_port = 0;
    std::string https_port_file;
    std::string tls_cert;              // PEM certificate chain of the server
    std::string tls_key;               // PEM private key
    std::string tls_ca;                // PEM CA bundle for client certificates
    bool tls_verify_incoming = false;  // require a client certificate signed by tls_ca
};

// Parses the command line; returns an error text on bad usage.
std::optional<std::string> parse_options(int argc, char** argv, ServerOptions& out);

struct Reply {
    unsigned status = 200;
    std::string body;
    std::string content_type = "application/json";
    std::vector<std::pair<std::string, std::string>> headers;
};

class ConsulTestServer {
public:
    ConsulTestServer(boost::asio::io_context& ioc, ServerOptions options);

    // Binds the listener; returns the bound endpoint. Throws on failure (start-up edge).
    boost::asio::ip::tcp::endpoint bind();
    // Binds the HTTPS listener when configured (loads the certificate files); throws on failure.
    std::optional<boost::asio::ip::tcp::endpoint> bind_https();
    // Spawns the accept loop and the housekeeping tick.
    void start();

private:
    enum class CheckType { None, Http, Tcp, Ttl };
    enum class Fault { None, NoLeader };

    struct KvEntry {
        std::string key;
        std::string value;
        std::uint64_t flags = 0;
        std::string session;
        std::uint64_t lock_index = 0;
        std::uint64_t create_index = 0;
        std::uint64_t modify_index = 0;
    };

    struct Session {
        std::string id;
        std::string name;
        std::string node;
        std::string behavior = "release";
        std::string ttl_text;
        Nanos ttl{0};
        std::int64_t lock_delay_ns = 15'000'000'000;
        std::vector<std::string> checks;
        std::vector<std::string> node_checks;
        Json service_checks;  // null or array of {"ID","Namespace"}
        std::uint64_t create_index = 0;
        std::uint64_t modify_index = 0;
        Clock::time_point expires_at{};  // only when ttl > 0
    };

    struct CheckTask {
        explicit CheckTask(boost::asio::io_context& ioc) : timer(ioc) {}
        boost::asio::steady_timer timer;
        bool stopped = false;
    };

    struct Check {
        std::string id;
        std::string name;
        std::string notes;
        std::string output;
        std::string service_id;
        std::string status = "critical";
        CheckType type = CheckType::None;
        std::string http_url;
        std::string method = "GET";
        Json header;  // object name -> [values]
        std::string body;
        std::string tcp_addr;
        Nanos interval{0};
        Nanos timeout = std::chrono::seconds(10);
        Nanos ttl{0};
        Nanos deregister_after{0};
        Clock::time_point ttl_deadline{};
        std::optional<Clock::time_point> critical_since;
        std::uint64_t create_index = 0;
        std::uint64_t modify_index = 0;
        std::shared_ptr<CheckTask> task;
    };

    struct Service {
        std::string id;
        std::string name;
        std::vector<std::string> tags;
        std::string address;
        int port = 0;
        Json meta = Json::object();
        bool enable_tag_override = false;
        std::uint64_t create_index = 0;
        std::uint64_t modify_index = 0;
    };

    struct AclToken {
        std::string accessor;
        std::string secret;
        bool management = false;
        // kind ("key", "session", "service", "node", "agent") -> prefix -> read|write|deny
        std::map<std::string, std::map<std::string, std::string>> rules;
    };

    // Per-request context.
    struct Ctx {
        std::string method;
        std::string path;
        Query query;
        std::string body;
        const AclToken* token = nullptr;  // nullptr = anonymous
        bool token_supplied = false;
    };

    struct ReadMode {
        std::string consistency = "leader";
        std::uint64_t index = 0;
        Nanos wait{0};
    };

    using ReadFn = std::function<Reply(std::uint64_t& index)>;

    static boost::asio::awaitable<void> accept_loop(ConsulTestServer* self);
    static boost::asio::awaitable<void> serve_connection(ConsulTestServer* self,
                                                         boost::asio::ip::tcp::socket socket);
    static boost::asio::awaitable<void> https_accept_loop(ConsulTestServer* self);
    static boost::asio::awaitable<void> serve_tls_connection(ConsulTestServer* self,
                                                             boost::asio::ip::tcp::socket socket);
    // The HTTP request loop over a plain or TLS stream.
    template <class Stream>
    static boost::asio::awaitable<void> serve_http(ConsulTestServer* self, Stream& stream);
    static boost::asio::awaitable<void> tick_loop(ConsulTestServer* self);
    static boost::asio::awaitable<void> run_check(ConsulTestServer* self,
                                                  std::string check_id,
                                                  std::shared_ptr<CheckTask> task);
    static boost::asio::awaitable<std::pair<std::string, std::string>> probe_http(
        ConsulTestServer* self,
        std::string url,
        std::string method,
        Json header,
        std::string body,
        Nanos timeout);
    static boost::asio::awaitable<std::pair<std::string, std::string>> probe_tcp(
        ConsulTestServer* self, std::string addr, Nanos timeout);
    static boost::asio::awaitable<Reply> blocking_read(ConsulTestServer* self,
                                                       ReadMode mode,
                                                       ReadFn fn);

    boost::asio::awaitable<Reply> handle(
        boost::beast::http::request<boost::beast::http::string_body> req);

    // Endpoint groups.
    boost::asio::awaitable<Reply> handle_kv(Ctx ctx);
    boost::asio::awaitable<Reply> handle_session(Ctx ctx);
    boost::asio::awaitable<Reply> handle_health(Ctx ctx);
    std::optional<Reply> parse_read_mode(const Ctx& ctx, ReadMode& mode) const;
    Reply handle_agent(Ctx& ctx);
    Reply handle_test_control(Ctx& ctx);

    Reply kv_put(Ctx& ctx, const std::string& key);
    Reply kv_delete(Ctx& ctx, const std::string& key);
    Reply kv_read(const Ctx& ctx, const std::string& key, std::uint64_t& index);
    Reply session_create(Ctx& ctx);
    Reply agent_service_register(Ctx& ctx);
    Reply agent_check_register(Ctx& ctx);

    // Parses a check definition (case-insensitive + snake_case keys) into `out`.
    std::optional<std::string> parse_check(const Json& def, Check& out);
    void install_check(Check check);
    void remove_check(const std::string& id, std::uint64_t index);
    void remove_service(const std::string& id, std::uint64_t index);
    void set_check_status(const std::string& id, const std::string& status, std::string output);

    // State transitions.
    std::uint64_t next_index();
    void notify();
    void housekeeping();
    void invalidate_session(const std::string& id);
    void invalidate_sessions_using_check(const std::string& check_id);
    bool session_uses_check(const Session& s, const std::string& check_id) const;
    void reset_index(std::uint64_t to);

    // ACL.
    bool acl_allows(const Ctx& ctx,
                    const std::string& kind,
                    const std::string& name,
                    bool write) const;
    Reply permission_denied(const Ctx& ctx,
                            const std::string& kind,
                            const std::string& name,
                            bool write,
                            bool rpc) const;

    // Replies.
    Reply error(unsigned status, std::string text) const;
    Reply rpc_error(unsigned status, std::string text) const;  // adds the client-agent prefix
    Reply json_reply(const OJson& body, const Ctx& ctx) const;
    OJson kv_json(const KvEntry& e) const;
    OJson session_json(const Session& s) const;
    OJson check_json(const Check& c) const;
    OJson service_json(const Service& s) const;
    OJson node_json() const;
    std::string new_uuid();
    bool no_leader() const { return fault_ == Fault::NoLeader; }

    boost::asio::io_context& ioc_;
    ServerOptions opts_;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::ip::tcp::acceptor https_acceptor_;
    std::unique_ptr<boost::asio::ssl::context> tls_context_;
    std::mt19937_64 rng_;

    std::uint64_t raft_index_;
    std::uint64_t kv_index_;
    std::uint64_t sessions_index_;
    std::uint64_t catalog_index_;

    std::map<std::string, KvEntry> kv_;
    std::map<std::string, std::uint64_t> tombstones_;
    std::map<std::string, Clock::time_point> lock_delays_;
    std::map<std::string, Session> sessions_;
    std::map<std::string, Service> services_;
    std::map<std::string, Check> checks_;
    std::map<std::string, AclToken> tokens_;  // by secret
    std::string node_id_;

    Fault fault_ = Fault::None;
    Clock::time_point fault_since_{};
    Clock::time_point last_reap_{};
    std::uint64_t reset_generation_ = 0;
    std::list<boost::asio::steady_timer*> waiters_;
};

}  // namespace pgwarden::consul_test
