// Hand-written fake of rest::ApiActions: switches for the results, counters, and the last values
// written, for the unsafe-endpoint tests. Single-threaded, like the code under test.
#pragma once

#include "runtime/rest/api_actions.hpp"

#include <boost/system/errc.hpp>

#include <deque>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pgwarden::rest::test {

class FakeApiActions : public ApiActions {
public:
    // read_cluster(): the queued results first (one per call), then `cluster`, or an error when
    // `read_fails` is set.
    std::deque<ApiResult<core::Cluster>> reads;
    core::Cluster cluster;
    bool read_fails = false;
    int read_count = 0;

    // write_failover(): `failover_write_result`, or an error when `failover_write_fails`.
    bool failover_write_result = true;
    bool failover_write_fails = false;
    int failover_writes = 0;
    std::optional<std::string> last_failover_json;
    std::optional<std::int64_t> last_failover_version;

    bool config_write_result = true;
    bool config_write_fails = false;
    int config_writes = 0;
    std::optional<std::string> last_config_json;
    std::optional<std::int64_t> last_config_version;

    // probe_member(): probes[name] (with name filled in), else an unreachable member.
    std::map<std::string, core::MemberProbe> probes;
    std::vector<std::string> probed;

    int wakeups = 0;
    int reloads = 0;

    ActionOutcome restart_outcome{200, "restarted successfully"};
    bool restart_throws = false;
    int restarts = 0;
    std::optional<RestartRequest> last_restart;

    ActionOutcome schedule_outcome{202, "Restart scheduled"};
    int schedules = 0;
    std::optional<RestartRequest> last_schedule;

    ActionOutcome delete_restart_outcome{200, "scheduled restart deleted"};
    int delete_restarts = 0;

    ActionOutcome reinitialize_outcome{200, "reinitialize started"};
    int reinitializes = 0;
    std::optional<std::pair<bool, bool>> last_reinitialize;  // (force, from_leader)

    static core::MemberProbe good(const std::string& name) {
        core::MemberProbe p;
        p.name = name;
        p.reachable = true;
        p.state = "running";
        return p;
    }

    boost::asio::awaitable<ApiResult<core::Cluster>> read_cluster() override {
        ++read_count;
        if (!reads.empty()) {
            ApiResult<core::Cluster> r = std::move(reads.front());
            reads.pop_front();
            co_return r;
        }
        if (read_fails) {
            co_return ApiResult<core::Cluster>(boost::system::in_place_error, error());
        }
        co_return cluster;
    }

    boost::asio::awaitable<ApiResult<bool>> write_failover(
        std::string json, std::optional<std::int64_t> version) override {
        ++failover_writes;
        last_failover_json = std::move(json);
        last_failover_version = version;
        if (failover_write_fails) {
            co_return ApiResult<bool>(boost::system::in_place_error, error());
        }
        co_return failover_write_result;
    }

    boost::asio::awaitable<ApiResult<bool>> write_config(
        std::string json, std::optional<std::int64_t> version) override {
        ++config_writes;
        last_config_json = std::move(json);
        last_config_version = version;
        if (config_write_fails) {
            co_return ApiResult<bool>(boost::system::in_place_error, error());
        }
        co_return config_write_result;
    }

    boost::asio::awaitable<core::MemberProbe> probe_member(core::Member member) override {
        probed.push_back(member.name);
        const auto it = probes.find(member.name);
        if (it != probes.end()) {
            core::MemberProbe p = it->second;
            p.name = member.name;
            co_return p;
        }
        core::MemberProbe p;
        p.name = member.name;
        co_return p;
    }

    void wakeup() override { ++wakeups; }
    void reload() override { ++reloads; }

    boost::asio::awaitable<ActionOutcome> restart(RestartRequest request) override {
        ++restarts;
        last_restart = std::move(request);
        if (restart_throws) {
            throw std::runtime_error("restart blew up");
        }
        co_return restart_outcome;
    }

    ActionOutcome schedule_restart(RestartRequest request) override {
        ++schedules;
        last_schedule = std::move(request);
        return schedule_outcome;
    }

    ActionOutcome delete_scheduled_restart() override {
        ++delete_restarts;
        return delete_restart_outcome;
    }

    ActionOutcome reinitialize(bool force, bool from_leader) override {
        ++reinitializes;
        last_reinitialize = std::make_pair(force, from_leader);
        return reinitialize_outcome;
    }

    static boost::system::error_code error() {
        return make_error_code(boost::system::errc::connection_refused);
    }
};

}  // namespace pgwarden::rest::test
