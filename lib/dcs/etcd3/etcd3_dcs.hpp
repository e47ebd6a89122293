// The etcd v3 backend over the JSON gateway (spec/etcd3-gateway.md), following Patroni's
// patroni/dcs/etcd3.py: keys under /<namespace>/<scope>/, one lease (TTL = ttl) carrying the
// leader and member keys, compare-and-swap through txn.
//
// After start(), a watch on the whole prefix feeds a cache of its keys (Patroni's KVCache), and
// get_cluster answers from it instead of reading etcd: an idle node sends only its lease
// keepalive (forced on every update_leader, else at most once per loop_wait). The cache is used
// only while it is filled and its stream is up, holds our own last write (read-your-writes) and
// has been confirmed recently; otherwise get_cluster reads directly. A broken stream or a failed
// request drops the cache until the watch has read the prefix again, so an unreachable etcd is
// an error as before, never an empty cluster. Changes of the leader, failover and config keys
// call `on_leader_change` (member and status changes do not).
#pragma once

#include "core/settings.hpp"
#include "dcs/dcs.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

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
    // HTTP requests sent so far to the API path `path` ("/kv/range", "/kv/txn",
    // "/lease/keepalive", "/watch", ...); all of them when `path` is empty.
    std::uint64_t requests_for_test(std::string_view path = {}) const;
    // Whether get_cluster may currently answer from the watch-fed cache.
    bool cache_valid_for_test() const;

    struct State;

private:
    std::shared_ptr<State> state_;
};

}  // namespace pgwarden::dcs
