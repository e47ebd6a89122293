#include "core/decide.hpp"

#include <string>

namespace pgwarden::core {
namespace {

Action act(ActionKind kind) { return Action{kind}; }

Action demote(StopKind stop, bool release_lock) {
    Action a{ActionKind::Demote};
    a.stop = stop;
    a.release_lock = release_lock;
    return a;
}

// pg_control states of a data directory that was last a primary.
bool was_primary(const PgObservation& pg) {
    return pg.cluster_state == "in production" || pg.cluster_state == "shut down" ||
           pg.cluster_state == "in crash recovery";
}

// A member other than us that reports more WAL than we have, or a later timeline.
const Member* member_ahead_of_us(const Snapshot& s) {
    const auto& c = *s.cluster;
    for (const auto& m : c.members) {
        if (m.name == s.name) {
            continue;
        }
        if (m.timeline && *m.timeline > s.pg.control_timeline) {
            return &m;
        }
    }
    return nullptr;
}

Plan decide_without_dcs(const Snapshot& s, bool running_as_primary) {
    if (running_as_primary) {
        if (s.dynamic.pause) {
            return {s.local.role, {}, "DCS is not accessible; cluster is paused, leaving postgresql running"};
        }
        return {Role::Demoted,
                {demote(StopKind::Fast, false)},
                "demoting self because DCS is not accessible and I was a leader"};
    }
    return {s.local.role, {}, "DCS is not accessible"};
}

Plan decide_without_data(const Snapshot& s) {
    const auto& c = *s.cluster;
    if (!c.initialize && !c.is_locked()) {
        if (s.tags.nofailover || s.tags.failover_priority <= 0) {
            return {Role::Uninitialized,
                    {},
                    "waiting for leader to bootstrap: tagged nofailover, so not bootstrapping"};
        }
        return {Role::Uninitialized, {act(ActionKind::Bootstrap)}, "trying to bootstrap a new cluster"};
    }
    if (!c.is_locked()) {
        return {Role::Uninitialized, {}, "waiting for leader to bootstrap"};
    }
    return {Role::Uninitialized,
            {},
            "waiting to create a replica of leader " + c.leader->name +
                ": replica creation is not available in this version"};
}

Plan decide_not_running(const Snapshot& s, bool leader_is_me) {
    const auto& c = *s.cluster;
    if (leader_is_me) {
        return {Role::Primary,
                {act(ActionKind::UpdateLock), act(ActionKind::StartPrimary)},
                "starting primary after failure"};
    }
    if (c.is_locked()) {
        return {Role::Replica,
                {},
                "postgresql is not running and " + c.leader->name +
                    " holds the leader lock: starting as a replica is not available in this version"};
    }
    if (s.dynamic.pause) {
        return {s.local.role, {}, "postgresql is not running; cluster is paused, not starting it"};
    }
    if (s.tags.nofailover || s.tags.failover_priority <= 0) {
        return {s.local.role,
                {},
                "postgresql is not running and the cluster has no leader; not taking the lock "
                "because of the nofailover tag"};
    }
    if (!was_primary(s.pg)) {
        return {s.local.role,
                {},
                "postgresql is not running, the cluster has no leader and this data directory is "
                "a replica's (" +
                    s.pg.cluster_state + "): waiting for a leader"};
    }
    if (const Member* m = member_ahead_of_us(s)) {
        return {s.local.role,
                {},
                "not taking the leader lock: member " + m->name + " is on a later timeline"};
    }
    return {Role::Primary,
            {act(ActionKind::AcquireLock), act(ActionKind::StartPrimary)},
            "acquiring the leader lock to start the former primary"};
}

}  // namespace

std::string_view to_string(ActionKind kind) noexcept {
    switch (kind) {
        case ActionKind::Bootstrap: return "bootstrap";
        case ActionKind::AcquireLock: return "acquire lock";
        case ActionKind::UpdateLock: return "update lock";
        case ActionKind::ReleaseLock: return "release lock";
        case ActionKind::WriteInitialize: return "write initialize";
        case ActionKind::WriteConfig: return "write config";
        case ActionKind::StartPrimary: return "start primary";
        case ActionKind::Promote: return "promote";
        case ActionKind::Demote: return "demote";
        case ActionKind::Fatal: return "fatal";
    }
    return "unknown";
}

Plan decide(const Snapshot& s) {
    const PgObservation& pg = s.pg;
    const bool answering = pg.postmaster_running && pg.query.has_value();
    const bool pg_primary = answering && !pg.query->in_recovery;
    const bool pg_replica = answering && pg.query->in_recovery;
    // Without an answer from PostgreSQL, a running postmaster that we last knew as primary
    // counts as a primary: it may be accepting writes.
    const bool maybe_primary =
        pg_primary || (pg.postmaster_running && !answering &&
                       (s.local.role == Role::Primary || s.local.role == Role::Promoted));

    if (!s.cluster) {
        return decide_without_dcs(s, maybe_primary);
    }
    const Cluster& c = *s.cluster;
    const bool locked = c.is_locked();
    const bool leader_is_me = locked && c.leader->name == s.name && !s.local.lock_lost;
    const bool leader_is_other = locked && !leader_is_me;

    if (s.local.action_in_progress) {
        const std::string busy = *s.local.action_in_progress + " in progress";
        if (leader_is_me) {
            return {s.local.role, {act(ActionKind::UpdateLock)}, busy + "; keeping the leader lock"};
        }
        return {s.local.role, {}, busy};
    }

    if (pg.data_dir_empty && !pg.postmaster_running) {
        return decide_without_data(s);
    }

    if (c.sysid_valid() && pg.sysid && *c.initialize != *pg.sysid) {
        return {s.local.role,
                {act(ActionKind::Fatal)},
                "refusing to run: the data directory belongs to another cluster (system "
                "identifier " +
                    *pg.sysid + ", the cluster's is " + *c.initialize + ")"};
    }

    if (!pg.postmaster_running) {
        return decide_not_running(s, leader_is_me);
    }

    if (!answering) {
        if (leader_is_me) {
            return {s.local.role,
                    {act(ActionKind::UpdateLock)},
                    "postgresql is not accepting connections yet; keeping the leader lock"};
        }
        if (leader_is_other && maybe_primary) {
            return {Role::Demoted,
                    {demote(StopKind::Immediate, false)},
                    "demoting self because I do not have the lock and I was a leader"};
        }
        return {s.local.role, {}, "postgresql is running but not accepting connections"};
    }

    if (leader_is_me) {
        std::vector<Action> actions{act(ActionKind::UpdateLock)};
        if (!c.sysid_valid() && pg.sysid) {
            actions.push_back(act(ActionKind::WriteInitialize));
        }
        if (!c.config_json) {
            actions.push_back(act(ActionKind::WriteConfig));
        }
        if (pg_replica) {
            actions.push_back(act(ActionKind::Promote));
            return {Role::Promoted,
                    actions,
                    "promoting self: I hold the leader lock but postgresql is in recovery"};
        }
        return {Role::Primary, actions, "no action. I am (" + s.name + "), the leader with the lock"};
    }

    if (leader_is_other) {
        if (pg_primary) {
            if (s.dynamic.pause) {
                return {Role::Primary,
                        {},
                        "cluster is paused: continuing to run as primary without the lock"};
            }
            return {Role::Demoted,
                    {demote(StopKind::Immediate, false)},
                    "demoting self because I do not have the lock and I was a leader"};
        }
        return {Role::Replica,
                {},
                "no action. I am (" + s.name + "), a secondary, and following a leader (" +
                    c.leader->name + ")"};
    }

    // The cluster has no leader.
    if (pg_primary) {
        if (const Member* m = member_ahead_of_us(s)) {
            return {Role::Demoted,
                    {demote(StopKind::Immediate, false)},
                    "demoting self: member " + m->name +
                        " is on a later timeline and the cluster has no leader"};
        }
        return {Role::Primary,
                {act(ActionKind::AcquireLock)},
                "acquiring the leader lock: postgresql is running as primary and the cluster has "
                "no leader"};
    }
    return {Role::Replica,
            {},
            "the cluster has no leader: leader race for replicas is not available in this version"};
}

}  // namespace pgwarden::core
