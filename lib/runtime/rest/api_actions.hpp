// What the REST API's unsafe endpoints may ask of the rest of the daemon. Implemented by the
// runtime (HA loop + DCS + member probes); a fake implements it in the handler tests.
#pragma once

#include "core/cluster.hpp"
#include "core/node_status.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace pgwarden::rest {

template <class T>
using ApiResult = boost::system::result<T>;

// POST /restart filters (Patroni api.py do_POST_restart).
struct RestartRequest {
    std::optional<std::string> schedule;  // ISO 8601 with timezone, already validated
    std::optional<std::string> role;
    std::optional<std::string> postgres_version;
    std::optional<int> timeout;    // seconds
    bool restart_pending = false;  // presence of the key
    std::string raw_json = "{}";   // the filters as received, for scheduled_restart
};

struct ActionOutcome {
    int status = 200;
    std::string message;
};

class ApiActions {
public:
    virtual ~ApiActions() = default;

    // A fresh read of the cluster from the DCS (as Patroni's dcs.get_cluster()).
    virtual boost::asio::awaitable<ApiResult<core::Cluster>> read_cluster() = 0;
    // failover key; version = nullopt: unconditional write.
    virtual boost::asio::awaitable<ApiResult<bool>> write_failover(
        std::string json, std::optional<std::int64_t> version) = 0;
    // config key; version = nullopt: unconditional write.
    virtual boost::asio::awaitable<ApiResult<bool>> write_config(
        std::string json, std::optional<std::int64_t> version) = 0;
    // GET <api_url> of another member with a 2 s deadline, no retry.
    virtual boost::asio::awaitable<core::MemberProbe> probe_member(core::Member member) = 0;

    // GET /patroni: the published status with WAL positions read from PostgreSQL just now (as
    // Patroni queries per request), so a switchover's old primary sees the candidate's position
    // after its shutdown checkpoint without waiting for the candidate's next HA cycle.
    // nullptr = answer from the published status.
    virtual boost::asio::awaitable<std::shared_ptr<const core::NodeStatus>> fresh_status() {
        co_return nullptr;
    }

    // Wake the HA loop (a request changed something it must act on).
    virtual void wakeup() = 0;
    // SIGHUP: re-read the configuration file.
    virtual void reload() = 0;
    // Restart PostgreSQL now (conditions already checked by the caller against the status);
    // completes when the restart is done or failed: 200 "restarted successfully", 503 ...
    virtual boost::asio::awaitable<ActionOutcome> restart(RestartRequest request) = 0;
    // Scheduled restart: 202 "Restart scheduled" or 409 "Another restart is already scheduled".
    virtual ActionOutcome schedule_restart(RestartRequest request) = 0;
    // DELETE /restart: 200 "scheduled restart deleted" / 404 "no restarts are scheduled".
    virtual ActionOutcome delete_scheduled_restart() = 0;
    // POST /reinitialize: 200 "reinitialize started" / 503 "... already in progress" etc.
    virtual ActionOutcome reinitialize(bool force, bool from_leader) = 0;
};

}  // namespace pgwarden::rest
