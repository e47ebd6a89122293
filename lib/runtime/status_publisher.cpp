// The published NodeStatus (what the REST API answers from) and GET /patroni's fresh WAL
// positions: one status query at a time, shared by the requests that arrive meanwhile.
#include "pg/pg_control.hpp"
#include "runtime/runtime.hpp"

#include <nlohmann/json.hpp>

namespace pgwarden::runtime {

struct StatusPublisher::FreshQuery {
    explicit FreshQuery(net::any_io_executor ex) : done(ex) {}
    Event done;
    std::optional<core::PgQueryResult> result;
};

StatusPublisher::StatusPublisher(Runtime& rt) : rt_(rt) {
    auto st = std::make_shared<core::NodeStatus>();
    st->name = rt.settings.name;
    st->scope = rt.settings.scope;
    st->tags = rt.settings.tags;
    st->dynamic = rt.settings.bootstrap.dcs;
    status_ = st;
}

std::shared_ptr<core::NodeStatus> StatusPublisher::build() const {
    const core::NodeState& s = rt_.state;
    const Observer& obs = rt_.observer;
    const core::PgObservation& pg = obs.pg();
    auto st = std::make_shared<core::NodeStatus>();
    st->name = rt_.settings.name;
    st->scope = rt_.settings.scope;
    st->role = s.role;
    st->tags = rt_.settings.tags;
    st->dynamic = obs.dynamic();
    st->sysid = pg.sysid;
    if (shown_) {
        st->state = *shown_;
    } else if (pg.postmaster_running) {
        st->state = pg.query ? core::PgState::Running : core::PgState::Starting;
    } else {
        st->state = core::PgState::Stopped;
    }
    if (pg.postmaster_running) {
        st->pg = pg.query;
    }
    // /primary and /leader: only while the DCS confirmed the key is ours and the lease runs.
    if (s.lock_held) {
        st->leader_lease_until = s.lease_until;
    }
    if (auto at = obs.cluster_read_at()) {
        st->cluster_valid_until = *at + static_cast<core::MonoMs>(obs.dynamic().ttl) * 1000;
    }
    st->cluster = obs.last_good_cluster();
    st->dcs_last_seen = obs.dcs_last_seen();
    st->next_run = next_run_;
    st->last_outcome = last_outcome_;
    st->unsupported_settings = obs.unsupported();
    st->checkpoint_after_promote_pending = s.checkpoint_pending;
    if (pg.postmaster_running && pg.query && pg.query->pending_restart_json != "{}") {
        st->pending_restart = true;
        st->pending_restart_reason_json = pg.query->pending_restart_json;
    }
    const auto& scheduled = rt_.bridge.scheduled_restart();
    if (scheduled && scheduled->schedule) {
        nlohmann::json j = nlohmann::json::parse(scheduled->raw_json, nullptr, false);
        if (!j.is_object()) {
            j = nlohmann::json::object();
        }
        j["schedule"] = *scheduled->schedule;
        st->scheduled_restart_json = j.dump();
    }
    return st;
}

void StatusPublisher::publish() {
    status_ = build();
}

net::awaitable<std::shared_ptr<const core::NodeStatus>> StatusPublisher::fresh_status() {
    auto keep = rt_.shared_from_this();
    auto published = status_;
    if (rt_.state.in_flight || !published || published->state != core::PgState::Running ||
        !published->pg) {
        co_return published;
    }
    auto query = fresh_inflight_;
    if (query) {
        co_await query->done.wait();
    } else {
        query = std::make_shared<FreshQuery>(rt_.ex);
        fresh_inflight_ = query;
        query->result = co_await rt_.pg.query_status();
        if (fresh_inflight_ == query) {
            fresh_inflight_.reset();
        }
        query->done.set();
    }
    auto current = status_;
    if (!query->result || rt_.state.in_flight || !current ||
        current->state != core::PgState::Running || !current->pg ||
        current->pg->in_recovery != query->result->in_recovery) {
        co_return current;
    }
    auto st = std::make_shared<core::NodeStatus>(*current);
    const std::string pending = current->pg->pending_restart_json;
    st->pg = query->result;
    st->pg->pending_restart_json = pending;
    co_return st;
}

}  // namespace pgwarden::runtime
