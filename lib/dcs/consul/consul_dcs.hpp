// The Consul backend (spec/consul-api.md §11, §14), following Patroni's patroni/dcs/consul.py:
// keys under service/<scope>/, one session (TTL = ttl/2, LockDelay 1 ms, Behavior delete, no
// serfHealth) holding the leader and member keys, `?acquire` for the lock, `?cas` for
// create-only and compare-and-swap, a blocking query on the leader key, and the optional
// service registration that makes Consul DNS point at the current primary.
#pragma once

#include "core/settings.hpp"
#include "dcs/dcs.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <memory>
#include <string>

namespace pgwarden::dcs {

class ConsulDcs final : public Dcs {
public:
    ConsulDcs(boost::asio::any_io_executor executor,
              core::ConsulSettings settings,
              std::string namespace_,
              std::string scope,
              std::string member_name);
    ~ConsulDcs() override;
    ConsulDcs(const ConsulDcs&) = delete;
    ConsulDcs& operator=(const ConsulDcs&) = delete;

    // Asks the agent for its SessionTTLMin and refuses a ttl it cannot honour (ttl/2 below the
    // minimum). The error message names the setting and both values. Call before start().
    Task<Result<void>> check_ttl(int ttl, std::string* message);

    void start(std::function<void()> on_leader_change) override;
    void stop() override;
    void set_timing(DcsTiming timing) override;

    Task<Result<core::Cluster>> get_cluster() override;
    Task<Result<bool>> initialize(std::string sysid, bool create_new) override;
    Task<Result<void>> cancel_initialization() override;
    Task<Result<bool>> attempt_to_acquire_leader() override;
    Task<Result<bool>> update_leader(std::optional<std::int64_t> last_lsn) override;
    Task<Result<bool>> delete_leader(std::optional<std::int64_t> last_lsn) override;
    // Also registers/deregisters the Consul service from the member data when
    // register_service is on (as Patroni does from touch_member).
    Task<Result<bool>> touch_member(std::string json) override;
    Task<Result<void>> delete_member() override;
    Task<Result<bool>> set_config(std::string json, std::optional<std::int64_t> version) override;
    Task<Result<bool>> set_failover(std::string json, std::optional<std::int64_t> version) override;
    Task<Result<bool>> set_history(std::string json) override;
    Task<Result<bool>> set_sync(std::string json, std::optional<std::int64_t> version) override;
    // Deregisters the service, deletes the member key and destroys the session.
    Task<Result<void>> close_session() override;

    // "service/<scope>/" as used for every key.
    const std::string& prefix() const;
    std::string session_for_test() const;

    struct State;

private:
    std::shared_ptr<State> state_;
};

// Patroni's service name sanitising: lower case, '.', ' ', '_' -> '-', other characters
// outside [a-z0-9-] -> "u%04d", at most 230 characters.
std::string consul_service_name(const std::string& scope);

}  // namespace pgwarden::dcs
