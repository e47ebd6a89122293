// The etcd v3 backend over the JSON gateway (spec/etcd3-gateway.md), following Patroni's
// patroni/dcs/etcd3.py: keys under /<namespace>/<scope>/, one lease (TTL = ttl) carrying the
// leader and member keys, compare-and-swap through txn, a watch on the leader key.
#pragma once

#include "core/settings.hpp"
#include "dcs/dcs.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <memory>
#include <string>

namespace pgwarden::dcs {

class Etcd3Dcs final : public Dcs {
public:
    Etcd3Dcs(boost::asio::any_io_executor executor,
             core::Etcd3Settings settings,
             std::string namespace_,
             std::string scope,
             std::string member_name);
    ~Etcd3Dcs() override;
    Etcd3Dcs(const Etcd3Dcs&) = delete;
    Etcd3Dcs& operator=(const Etcd3Dcs&) = delete;

    void start(std::function<void()> on_leader_change) override;
    void stop() override;
    void set_timing(DcsTiming timing) override;

    Task<Result<core::Cluster>> get_cluster() override;
    Task<Result<bool>> initialize(std::string sysid, bool create_new) override;
    Task<Result<void>> cancel_initialization() override;
    Task<Result<bool>> attempt_to_acquire_leader() override;
    Task<Result<bool>> update_leader(std::optional<std::int64_t> last_lsn) override;
    Task<Result<bool>> delete_leader(std::optional<std::int64_t> last_lsn) override;
    Task<Result<bool>> touch_member(std::string json) override;
    Task<Result<void>> delete_member() override;
    Task<Result<bool>> set_config(std::string json, std::optional<std::int64_t> version) override;
    Task<Result<bool>> set_failover(std::string json, std::optional<std::int64_t> version) override;
    Task<Result<bool>> set_history(std::string json) override;
    Task<Result<bool>> set_sync(std::string json, std::optional<std::int64_t> version) override;
    Task<Result<void>> close_session() override;

    // "/<namespace>/<scope>/" as used for every key.
    const std::string& prefix() const;
    // The lease id in use ("" = none yet), for diagnostics and tests.
    std::string lease_id_for_test() const;

    struct State;

private:
    std::shared_ptr<State> state_;
};

}  // namespace pgwarden::dcs
