// The failover branches of the decision tree: the leader race (Patroni's is_healthiest_node),
// a switchover or failover seen by the leader, and giving up after primary_start_timeout.
#include "core/decide_internal.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace pgwarden::core::detail {

std::optional<Plan> decide_start_timeout(const Snapshot& s) {
    const std::int64_t limit = static_cast<std::int64_t>(s.dynamic.primary_start_timeout) * 1000;
    if (s.local.primary_down_ms < limit || (limit > 0 && s.local.primary_down_ms == 0)) {
        return std::nullopt;
    }
    if (!s.probes) {
        return probe(s, "primary_start_timeout expired: looking for a member to fail over to");
    }
    const std::int64_t lsn = s.cluster->last_lsn.value_or(0);
    for (const auto& p : *s.probes) {
        if (p.name != s.name && healthy_candidate(s, p, lsn)) {
            std::vector<Action> actions;
            if (s.pg.postmaster_running) {
                actions.push_back(demote(StopKind::Immediate, false));
            }
            actions.push_back(act(ActionKind::ReleaseLock));
            return Plan{Role::Demoted,
                        actions,
                        "postgresql did not start as primary within primary_start_timeout (" +
                            std::to_string(s.dynamic.primary_start_timeout) + " s) and member " +
                            p.name + " can take over: releasing the leader lock"};
        }
    }
    return std::nullopt;
}

// A running replica in a cluster without a leader: Patroni's is_healthiest_node().
Plan decide_leader_race(const Snapshot& s) {
    const auto& c = *s.cluster;
    const bool named_me = c.failover && c.failover->member && *c.failover->member == s.name;
    if (s.dynamic.pause && !(named_me && !c.failover->scheduled_at)) {
        // In pause only the named candidate of a switchover takes the lock (Patroni §4 step 2).
        return {Role::Replica, {}, "cluster is paused and has no leader: not racing for the lock"};
    }
    // Settings this version refuses at start may still arrive through the DCS (edit-config):
    // without them implemented, the safe side is no automatic promotion at all (F2, F5).
    if (s.dynamic.standby_cluster_present) {
        return {Role::Replica,
                {},
                "not racing for the leader lock: standby_cluster is set in the DCS "
                "configuration and not supported by this pgwarden version"};
    }
    if (s.dynamic.synchronous_mode != "off") {
        return {Role::Replica,
                {},
                "not racing for the leader lock: synchronous_mode " + s.dynamic.synchronous_mode +
                    " is set in the DCS configuration and not supported by this pgwarden version"};
    }
    if ((s.local.released_lock_recently && !named_me) ||
        (c.failover && c.failover->leader && *c.failover->leader == s.name && c.failover->member &&
         *c.failover->member != s.name)) {
        return {
            Role::Replica, {}, "not racing for the leader lock: I released it for a switchover"};
    }
    std::vector<Action> take{act(ActionKind::AcquireLock)};
    if (c.failover && !c.failover->empty()) {
        take.push_back(act(ActionKind::ClearFailover));
    }
    take.push_back(act(ActionKind::Promote));

    if (c.failover && c.failover->member && !c.failover->member->empty()) {
        const std::string& candidate = *c.failover->member;
        if (candidate == s.name) {
            return {Role::Promoted,
                    take,
                    "manual failover: acquiring the leader lock as the candidate"};
        }
        if (c.member(candidate) != nullptr) {
            if (!s.probes) {
                return probe(s, "manual failover to " + candidate + ": checking the candidate");
            }
            const MemberProbe* p = find_probe(s, candidate);
            if (p != nullptr && p->reachable && !p->nofailover) {
                return {Role::Replica,
                        {},
                        "manual failover to " + candidate + " in progress: not racing"};
            }
        }
        // The candidate is gone or unhealthy: the normal race decides.
    }
    if (nofailover(s)) {
        return {Role::Replica, {}, "not racing for the leader lock: tagged nofailover"};
    }
    // check_timeline (Patroni §4 step 9): a replica behind the cluster's timeline never races.
    const int my_timeline = s.pg.query ? std::max(s.pg.query->timeline, s.local.streamed_timeline)
                                       : s.pg.control_timeline;
    if (s.dynamic.check_timeline && cluster_timeline(c) > my_timeline) {
        return {Role::Replica,
                {},
                "not healthy enough for leader race: timeline " + std::to_string(my_timeline) +
                    " is behind the cluster's " + std::to_string(cluster_timeline(c)) +
                    " (check_timeline)"};
    }
    const std::int64_t mine = my_wal_position(s.pg);
    if (c.last_lsn && *c.last_lsn - mine > s.dynamic.maximum_lag_on_failover) {
        return {Role::Replica,
                {},
                "not healthy enough for leader race: lag " + std::to_string(*c.last_lsn - mine) +
                    " bytes is above maximum_lag_on_failover " +
                    std::to_string(s.dynamic.maximum_lag_on_failover)};
    }
    if (!s.probes) {
        return probe(s, "the cluster has no leader: probing members before the leader race");
    }
    for (const auto& p : *s.probes) {
        if (p.name != s.name && p.reachable && p.is_primary) {
            // It is probably releasing the key right now (stopping): look again soon.
            return {Role::Replica,
                    {},
                    "not racing for the leader lock: primary " + p.name + " is still alive",
                    /*retry_soon=*/true};
        }
    }
    for (const auto& p : *s.probes) {
        if (p.name == s.name || !p.reachable || p.nofailover || p.watchdog_failed) {
            continue;
        }
        if (p.wal_position > mine) {
            return {Role::Replica,
                    {},
                    "not racing for the leader lock: member " + p.name + " is ahead (wal " +
                        std::to_string(p.wal_position) + " > " + std::to_string(mine) + ")"};
        }
        if (p.wal_position == mine && p.failover_priority > s.tags.failover_priority) {
            return {Role::Replica,
                    {},
                    "not racing for the leader lock: member " + p.name +
                        " has the same wal position and a higher failover_priority"};
        }
    }
    return {Role::Promoted, take, "acquiring the leader lock: I am the healthiest member"};
}

// We hold the lock and PostgreSQL runs as primary: handle a pending switchover.
std::optional<Plan> decide_manual_failover_as_leader(const Snapshot& s) {
    const auto& c = *s.cluster;
    if (!c.failover || c.failover->empty()) {
        return std::nullopt;
    }
    const FailoverKey& f = *c.failover;
    std::vector<Action> clear{act(ActionKind::UpdateLock), act(ActionKind::ClearFailover)};
    if (f.leader && !f.leader->empty() && *f.leader != s.name) {
        return Plan{Role::Primary,
                    clear,
                    "manual failover: leader name does not match, clearing the request"};
    }
    if (s.failover_schedule_invalid) {
        return Plan{
            Role::Primary, clear, "manual failover: unparsable scheduled_at, clearing the request"};
    }
    if (s.failover_scheduled_at_ms) {
        const std::int64_t at = *s.failover_scheduled_at_ms;
        const std::int64_t loop_ms = static_cast<std::int64_t>(s.dynamic.loop_wait) * 1000;
        if (s.now_epoch_ms < at) {
            return Plan{Role::Primary,
                        {act(ActionKind::UpdateLock)},
                        "no action. I am (" + s.name +
                            "), the leader with the lock; a switchover is "
                            "scheduled at " +
                            *f.scheduled_at};
        }
        if (s.now_epoch_ms > at + loop_ms * 3 / 2) {
            return Plan{Role::Primary,
                        clear,
                        "manual failover: the scheduled switchover is stale, clearing it"};
        }
    }
    const bool has_candidate = f.member && !f.member->empty();
    if (has_candidate && *f.member == s.name) {
        return Plan{
            Role::Primary, clear, "manual failover: I am already the leader, no need to failover"};
    }
    if (has_candidate && c.member(*f.member) == nullptr) {
        return Plan{
            Role::Primary, clear, "manual failover: candidate " + *f.member + " is not a member"};
    }
    if (s.dynamic.pause && !has_candidate) {
        return Plan{Role::Primary,
                    clear,
                    "manual failover: the cluster is paused, a switchover needs a candidate"};
    }
    if (!s.probes) {
        return probe(s, "manual failover: checking the candidates");
    }
    bool possible = false;
    const std::int64_t mine = my_wal_position(s.pg);
    for (const auto& p : *s.probes) {
        if (p.name != s.name && (!has_candidate || p.name == *f.member) &&
            healthy_candidate(s, p, mine)) {
            possible = true;
        }
    }
    if (!possible) {
        return Plan{Role::Primary,
                    clear,
                    has_candidate
                        ? "manual failover: candidate " + *f.member +
                              " is not healthy, failover is not possible"
                        : "manual failover: no healthy members found, failover is not possible"};
    }
    return Plan{Role::Demoted,
                {act(ActionKind::UpdateLock), demote(StopKind::Fast, true)},
                "manual failover: demoting myself"};
}

}  // namespace pgwarden::core::detail
