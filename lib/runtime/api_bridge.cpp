// The REST API's way into the daemon: DCS reads and writes of the failover and config keys go
// straight to the DCS; restart, reinitialize and reload are queued into the HA loop, which
// decides (core::step) and runs them as its one long action.
#include "dcs/dcs.hpp"
#include "runtime/member_probe.hpp"
#include "runtime/runtime.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

namespace pgwarden::runtime {

using namespace std::chrono_literals;

struct ApiBridge::Pending {
    explicit Pending(net::any_io_executor ex) : done(ex) {}
    Event done;
    rest::ActionOutcome outcome{503, "restart failed"};
};

ApiBridge::ApiBridge(Runtime& rt) : rt_(rt) {}

net::awaitable<rest::ApiResult<core::Cluster>> ApiBridge::read_cluster() {
    auto r = co_await rt_.dcs.get_cluster();
    if (!r) {
        co_return r.error();
    }
    co_return std::move(*r);
}

net::awaitable<rest::ApiResult<bool>> ApiBridge::write_failover(
    std::string json, std::optional<std::int64_t> version) {
    auto r = co_await rt_.dcs.set_failover(std::move(json), version);
    if (!r) {
        co_return rest::ApiResult<bool>(boost::system::in_place_error, r.error());
    }
    co_return *r;
}

net::awaitable<rest::ApiResult<bool>> ApiBridge::write_config(std::string json,
                                                              std::optional<std::int64_t> version) {
    auto r = co_await rt_.dcs.set_config(std::move(json), version);
    if (!r) {
        co_return rest::ApiResult<bool>(boost::system::in_place_error, r.error());
    }
    co_return *r;
}

net::awaitable<core::MemberProbe> ApiBridge::probe_member(core::Member member) {
    co_return co_await runtime::probe_member(rt_.ex, std::move(member), 2s);
}

net::awaitable<std::shared_ptr<const core::NodeStatus>> ApiBridge::fresh_status() {
    co_return co_await rt_.publisher.fresh_status();
}

void ApiBridge::wakeup() {
    rt_.wakeup();
}

std::uint64_t ApiBridge::enqueue(core::RequestKind kind, std::shared_ptr<Pending> waiter) {
    const std::uint64_t id = next_id_++;
    queued_.push_back({id, kind});
    if (waiter) {
        waiting_[id] = std::move(waiter);
    }
    rt_.wakeup();
    return id;
}

void ApiBridge::reload() {
    spdlog::info("reload requested: rewriting the managed configuration and reloading postgresql");
    enqueue(core::RequestKind::Reload, nullptr);
}

net::awaitable<rest::ActionOutcome> ApiBridge::restart(rest::RestartRequest) {
    auto keep = rt_.shared_from_this();
    auto waiter = std::make_shared<Pending>(rt_.ex);
    enqueue(core::RequestKind::Restart, waiter);
    co_await waiter->done.wait();
    co_return waiter->outcome;
}

rest::ActionOutcome ApiBridge::schedule_restart(rest::RestartRequest request) {
    if (scheduled_) {
        return {409, "Another restart is already scheduled"};
    }
    scheduled_ = std::move(request);
    rt_.publisher.publish();
    rt_.wakeup();
    return {202, "Restart scheduled"};
}

rest::ActionOutcome ApiBridge::delete_scheduled_restart() {
    if (!scheduled_) {
        return {404, "no restarts are scheduled"};
    }
    scheduled_.reset();
    rt_.publisher.publish();
    return {200, "scheduled restart deleted"};
}

rest::ActionOutcome ApiBridge::reinitialize(bool, bool) {
    // The REST handler checked the leader from a fresh DCS read (as Patroni's API does); what
    // is left is Patroni's "already in progress" from its async executor. The core checks the
    // leader again when it takes the request.
    if (rt_.state.in_flight) {
        return {503, core::in_flight_label(*rt_.state.in_flight) + " already in progress"};
    }
    enqueue(core::RequestKind::Reinitialize, nullptr);
    return {200, "reinitialize started"};
}

std::vector<core::Request> ApiBridge::take_requests() {
    std::vector<core::Request> out;
    out.swap(queued_);
    return out;
}

void ApiBridge::answer(std::uint64_t id, rest::ActionOutcome outcome) {
    auto it = waiting_.find(id);
    if (it == waiting_.end()) {
        if (outcome.status >= 400) {
            spdlog::warn("request refused: {}", outcome.message);
        }
        return;
    }
    it->second->outcome = std::move(outcome);
    it->second->done.set();
    waiting_.erase(it);
}

}  // namespace pgwarden::runtime
