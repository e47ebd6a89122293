// The DCS interface: Patroni's key layout (spec/patroni-ha-behaviour.md §1) over etcd v3 or
// Consul. Every method has a deadline (retry_timeout) and returns an error value on failure:
// a failed read is never "no leader" (DESIGN.md invariant 2).
#pragma once

#include "core/cluster.hpp"
#include "dcs/errc.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace pgwarden::dcs {

template <class T>
using Task = boost::asio::awaitable<T>;

// Timing the backend needs; updated when the dynamic config changes.
struct DcsTiming {
    int ttl = 30;
    int loop_wait = 10;
    int retry_timeout = 10;
};

class Dcs {
public:
    virtual ~Dcs() = default;

    // Starts background work (the leader-key watch). `on_leader_change` runs on the executor
    // when the leader key is deleted (by anyone: release, lease/session expiry, an operator),
    // created, or gets another value or owner (lease/session); the HA loop uses it to wake up
    // at once, the leader included. It does NOT run for the holder's own lease keepalives,
    // session renewals or rewrites of an unchanged key (so waking up and renewing never loops),
    // nor for the state as found when the watch starts. A backend may also run it for other
    // control keys (etcd: failover, config). The watch outlives server outages and restarts:
    // it is retried with backoff (a failure is logged at warn), and a change made while it was
    // down is reported once it is back.
    virtual void start(std::function<void()> on_leader_change) = 0;
    // Cancels background work; revokes nothing.
    virtual void stop() = 0;
    virtual void set_timing(DcsTiming timing) = 0;

    // One read of everything under /<namespace>/<scope>/.
    virtual Task<Result<core::Cluster>> get_cluster() = 0;

    // initialize key: create_new = true means "only if absent" (the bootstrap race).
    // Returns false when the compare failed.
    virtual Task<Result<bool>> initialize(std::string sysid, bool create_new) = 0;
    virtual Task<Result<void>> cancel_initialization() = 0;

    // Leader race: takes the leader key only if absent, bound to our lease/session.
    // Lease contract (the fence relies on it): `true` guarantees that the lease/session holding
    // the key was renewed (or created) by a request sent after this call started, so the key
    // lives at least until (time the call started) + ttl unless revoked. The caller may arm
    // its deadline as that start time + ttl.
    virtual Task<Result<bool>> attempt_to_acquire_leader() = 0;
    // Renews our lease/session and makes sure the leader key is ours; also writes /status
    // (optime) when given. false = the key belongs to someone else (we lost it).
    // Lease contract: as for attempt_to_acquire_leader, `true` guarantees a renewal (or a new
    // lease/session) by a request sent after this call started.
    virtual Task<Result<bool>> update_leader(std::optional<std::int64_t> last_lsn) = 0;
    // Voluntary release: deletes the leader key only if it holds our name.
    virtual Task<Result<bool>> delete_leader(std::optional<std::int64_t> last_lsn) = 0;

    // members/<name>, tied to the lease/session so it disappears with the node.
    virtual Task<Result<bool>> touch_member(std::string json) = 0;
    virtual Task<Result<void>> delete_member() = 0;

    // version = nullopt: unconditional write; otherwise compare-and-swap on that version.
    virtual Task<Result<bool>> set_config(std::string json,
                                          std::optional<std::int64_t> version) = 0;
    virtual Task<Result<bool>> set_failover(std::string json,
                                            std::optional<std::int64_t> version) = 0;
    virtual Task<Result<bool>> set_history(std::string json) = 0;
    virtual Task<Result<bool>> set_sync(std::string json, std::optional<std::int64_t> version) = 0;

    // Releases the lease/session (deletes every ephemeral key of ours). Used on shutdown.
    virtual Task<Result<void>> close_session() = 0;
};

}  // namespace pgwarden::dcs
