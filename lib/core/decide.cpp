// The HA decision tree: the branches by situation (DCS unknown, no data, PostgreSQL stopped,
// not answering, leader me / other / none) and its helpers; the failover branches are in
// decide_failover.cpp.
#include "core/decide.hpp"

#include "core/decide_internal.hpp"

#include <algorithm>
#include <cstdint>
#include <string>

namespace pgwarden::core {
namespace detail {

constexpr std::int64_t kDivergenceCheckAfterMs = 15000;

Action act(ActionKind kind, std::string target) {
    Action a;
    a.kind = kind;
    a.target = std::move(target);
    return a;
}

Action demote(StopKind stop, bool release_lock) {
    Action a;
    a.kind = ActionKind::Demote;
    a.stop = stop;
    a.release_lock = release_lock;
    return a;
}

Plan probe(const Snapshot& s, std::string why) {
    return {s.local.role, {act(ActionKind::ProbeMembers)}, std::move(why)};
}

// pg_control states of a data directory that was last a primary.
bool was_primary(const PgObservation& pg) {
    return pg.cluster_state == "in production" || pg.cluster_state == "shut down" ||
           pg.cluster_state == "in crash recovery";
}

bool nofailover(const Snapshot& s) {
    return s.tags.nofailover || s.tags.failover_priority <= 0;
}

// Our WAL position as Patroni compares it: primary flush LSN, replica max(received, replayed).
std::int64_t my_wal_position(const PgObservation& pg) {
    if (!pg.query) {
        return 0;
    }
    if (!pg.query->in_recovery) {
        return pg.query->wal_location;
    }
    return std::max(pg.query->receive_location, pg.query->replay_location);
}

const MemberProbe* find_probe(const Snapshot& s, const std::string& name) {
    if (!s.probes) {
        return nullptr;
    }
    for (const auto& p : *s.probes) {
        if (p.name == name) {
            return &p;
        }
    }
    return nullptr;
}

// A member that may take over from us: reachable, allowed, a running replica, and not lagging
// behind `my_wal` by more than maximum_lag_on_failover (Patroni's is_failover_possible).
bool healthy_candidate(const Snapshot& s, const MemberProbe& p, std::int64_t my_wal) {
    return p.reachable && !p.nofailover && !p.watchdog_failed && !p.is_primary &&
           p.state == "running" && my_wal - p.wal_position <= s.dynamic.maximum_lag_on_failover;
}

// The timeline the cluster has reached by its history key: the last switch + 1 (0 = unknown).
int cluster_timeline(const Cluster& c) {
    int tl = 0;
    for (const auto& h : c.history) {
        tl = std::max(tl, h.timeline + 1);
    }
    return tl;
}

// A member other than us that reports a later timeline than our data directory's.
// A running instance is judged by its current timeline, a stopped one by pg_control's.
const Member* member_on_later_timeline(const Snapshot& s) {
    const int mine =
        s.pg.query ? std::max(s.pg.query->timeline, s.pg.control_timeline) : s.pg.control_timeline;
    for (const auto& m : s.cluster->members) {
        if (m.name != s.name && m.timeline && *m.timeline > mine) {
            return &m;
        }
    }
    return nullptr;
}

// A running replica that cannot stream because its timeline forked off before the leader's
// history switch point (for example a former primary that wrote its shutdown checkpoint after
// the new leader's promotion point). Patroni's rewind check on a running replica.
std::optional<std::string> diverged_from(const Snapshot& s, const Member* leader) {
    // A replica between two connection attempts (wal_retrieve_retry_interval is 5 s) or still
    // reporting the timeline of its last restartpoint is not diverged: only one that has not
    // streamed for a while is checked.
    if (s.local.replica_not_streaming_ms < kDivergenceCheckAfterMs) {
        return std::nullopt;
    }
    if (!s.use_pg_rewind || leader == nullptr || !leader->timeline || !s.pg.query ||
        !s.pg.query->in_recovery ||
        s.pg.query->replication_state == std::optional<std::string>("streaming") ||
        leader->state != "running" || leader->role != "primary" ||
        leader->checkpoint_after_promote_pending) {
        return std::nullopt;
    }
    const int mine = std::max(s.pg.query->timeline, s.local.streamed_timeline);
    if (mine <= 0 || *leader->timeline <= mine) {
        return std::nullopt;
    }
    for (const auto& h : s.cluster->history) {
        if (h.timeline == mine && s.pg.query->replay_location > h.lsn) {
            return "diverged from leader " + leader->name + ": replayed past the end of timeline " +
                   std::to_string(mine) + " (" + std::to_string(s.pg.query->replay_location) +
                   " > " + std::to_string(h.lsn) + "); running pg_rewind";
        }
    }
    return std::nullopt;
}

}  // namespace detail

namespace {

using namespace detail;

Plan decide_without_dcs(const Snapshot& s, bool running_as_primary) {
    if (s.dynamic.pause) {
        if (running_as_primary) {
            return {s.local.role,
                    {},
                    "DCS is not accessible; cluster is paused, leaving postgresql running"};
        }
        return {s.local.role, {}, "DCS is not accessible"};
    }
    if (running_as_primary) {
        if (s.local.action_in_progress && !s.local.in_progress_preemptible) {
            return {s.local.role,
                    {},
                    "DCS is not accessible; " + *s.local.action_in_progress + " in progress"};
        }
        return {Role::Demoted,
                {demote(StopKind::Fast, false)},
                "demoting self because DCS is not accessible and I was a leader"};
    }
    if (!s.local.action_in_progress && !s.pg.postmaster_running && !s.pg.data_dir_empty &&
        s.pg.sysid) {
        // Patroni's demote('offline') → follow(None): stay available read-only.
        return {Role::Replica,
                {act(ActionKind::StartReplica, "")},
                "DCS is not accessible: starting postgresql read-only"};
    }
    return {s.local.role, {}, "DCS is not accessible"};
}

// Where a new replica clones from: a running member tagged clonefrom, else the leader.
const Member* clone_source(const Snapshot& s) {
    const auto& c = *s.cluster;
    for (const auto& m : c.members) {
        if (m.name != s.name && m.clonefrom && m.state == "running" && !m.conn_url.empty()) {
            return &m;
        }
    }
    return c.member(c.leader->name);
}

Plan decide_without_data(const Snapshot& s) {
    const auto& c = *s.cluster;
    if (!c.initialize && !c.is_locked()) {
        if (nofailover(s)) {
            return {Role::Uninitialized,
                    {},
                    "waiting for leader to bootstrap: tagged nofailover, so not bootstrapping"};
        }
        return {
            Role::Uninitialized, {act(ActionKind::Bootstrap)}, "trying to bootstrap a new cluster"};
    }
    if (!c.is_locked()) {
        return {Role::Uninitialized, {}, "waiting for leader to bootstrap"};
    }
    const Member* src = clone_source(s);
    if (src == nullptr || src->conn_url.empty()) {
        return {Role::Uninitialized,
                {},
                "waiting for the member key of leader " + c.leader->name + " to clone from it"};
    }
    const bool from_leader = src->name == c.leader->name;
    return {Role::Uninitialized,
            {act(ActionKind::CreateReplica, src->name)},
            std::string("trying to bootstrap from ") + (from_leader ? "leader '" : "replica '") +
                src->name + "'"};
}

Plan decide_stopped_with_other_leader(const Snapshot& s) {
    const auto& c = *s.cluster;
    const std::string& leader = c.leader->name;
    const Member* lm = c.member(leader);
    if (lm == nullptr || lm->conn_url.empty()) {
        return {Role::Replica,
                {},
                "postgresql is not running; waiting for the member key of leader " + leader};
    }
    if (s.local.rewind_failed) {
        if (s.remove_data_directory_on_rewind_failure) {
            return {Role::Replica,
                    {act(ActionKind::Reinitialize, leader)},
                    "pg_rewind failed (" + *s.local.rewind_failed +
                        "): removing the data directory and cloning from leader " + leader};
        }
        return {Role::Replica,
                {},
                "pg_rewind failed (" + *s.local.rewind_failed +
                    "); not starting postgresql: reinitialize this member or set "
                    "remove_data_directory_on_rewind_failure"};
    }
    const bool leader_ready =
        lm->state == "running" && lm->role == "primary" && !lm->checkpoint_after_promote_pending;
    if (!was_primary(s.pg) && s.local.replica_start_failed && s.use_pg_rewind && leader_ready &&
        lm->timeline && *lm->timeline > s.pg.control_timeline) {
        // PostgreSQL refuses to follow a timeline that forked off before our last checkpoint.
        return {Role::Replica,
                {act(ActionKind::Rewind, leader)},
                "starting as a replica of " + leader + " failed and it is on a later timeline (" +
                    std::to_string(*lm->timeline) + " > " + std::to_string(s.pg.control_timeline) +
                    "): running pg_rewind"};
    }
    if (s.dynamic.pause) {
        return {Role::Replica, {}, "postgresql is not running; cluster is paused, not starting it"};
    }
    if (was_primary(s.pg)) {
        // Patroni's _check_timeline_and_lsn: a former primary has diverged unless its shutdown
        // checkpoint ends exactly where the leader's history switched away from its timeline.
        const std::int64_t mine =
            s.pg.checkpoint_end_lsn > 0 ? s.pg.checkpoint_end_lsn : s.pg.checkpoint_lsn;
        std::optional<std::int64_t> switch_point;
        for (const auto& h : c.history) {
            if (h.timeline == s.pg.control_timeline) {
                switch_point = h.lsn;
            }
        }
        const bool same_timeline = lm->timeline && *lm->timeline == s.pg.control_timeline;
        if (same_timeline ||
            (switch_point && s.pg.checkpoint_end_lsn > 0 && mine <= *switch_point)) {
            return {Role::Replica,
                    {act(ActionKind::StartReplica, leader)},
                    "the former primary has not diverged from leader " + leader +
                        ": starting as its replica without pg_rewind"};
        }
        if (!s.use_pg_rewind) {
            if (s.remove_data_directory_on_diverged_timelines && switch_point) {
                return {Role::Replica,
                        {act(ActionKind::Reinitialize, leader)},
                        "the former primary has diverged from leader " + leader + " (" +
                            std::to_string(mine) + " > " + std::to_string(*switch_point) +
                            ") and use_pg_rewind is off: removing the data directory "
                            "(remove_data_directory_on_diverged_timelines)"};
            }
            return {Role::Replica,
                    {act(ActionKind::StartReplica, leader)},
                    "starting the former primary as a replica of " + leader +
                        " without pg_rewind (use_pg_rewind is off)"};
        }
        if (!leader_ready) {
            return {Role::Replica,
                    {},
                    "waiting for leader " + leader + " to finish its promotion before pg_rewind",
                    /*retry_soon=*/true};
        }
        return {Role::Replica,
                {act(ActionKind::Rewind, leader)},
                "running pg_rewind from leader " + leader};
    }
    return {Role::Replica,
            {act(ActionKind::StartReplica, leader)},
            "starting as a secondary, following leader " + leader};
}

}  // namespace

using namespace detail;

std::string_view to_string(ActionKind kind) noexcept {
    switch (kind) {
        case ActionKind::Bootstrap:
            return "bootstrap";
        case ActionKind::AcquireLock:
            return "acquire lock";
        case ActionKind::UpdateLock:
            return "update lock";
        case ActionKind::ReleaseLock:
            return "release lock";
        case ActionKind::WriteInitialize:
            return "write initialize";
        case ActionKind::WriteConfig:
            return "write config";
        case ActionKind::StartPrimary:
            return "start primary";
        case ActionKind::Promote:
            return "promote";
        case ActionKind::Demote:
            return "demote";
        case ActionKind::Fatal:
            return "fatal";
        case ActionKind::ProbeMembers:
            return "probe members";
        case ActionKind::CreateReplica:
            return "create replica";
        case ActionKind::StartReplica:
            return "start replica";
        case ActionKind::Follow:
            return "follow";
        case ActionKind::Rewind:
            return "rewind";
        case ActionKind::Reinitialize:
            return "reinitialize";
        case ActionKind::ClearFailover:
            return "clear failover";
        case ActionKind::SyncSlots:
            return "sync slots";
        case ActionKind::AdvanceSlots:
            return "advance slots";
        case ActionKind::WriteHistory:
            return "write history";
        case ActionKind::Reload:
            return "reload";
        case ActionKind::Restart:
            return "restart";
        case ActionKind::ClearScheduledRestart:
            return "clear scheduled restart";
        case ActionKind::WaitForCandidate:
            return "wait for candidate";
    }
    return "unknown";
}

std::string describe(const Action& a) {
    std::string out(to_string(a.kind));
    for (auto& c : out) {
        if (c == ' ') {
            c = '-';
        }
    }
    if (a.kind == ActionKind::Demote) {
        out += a.stop == StopKind::Immediate ? "(immediate)" : "(fast)";
        if (a.release_lock) {
            out += " handover";
        }
    }
    if (!a.target.empty()) {
        out += " " + a.target;
    }
    if (a.lsn) {
        out += " lsn=" + std::to_string(*a.lsn);
    }
    if (!a.slots.empty()) {
        out += " [";
        for (std::size_t i = 0; i < a.slots.size(); ++i) {
            out += (i ? "," : "") + a.slots[i];
        }
        out += "]";
    }
    if (!a.permanent_slots.empty()) {
        out += " +[";
        for (std::size_t i = 0; i < a.permanent_slots.size(); ++i) {
            out += (i ? "," : "") + a.permanent_slots[i];
        }
        out += "]";
    }
    return out;
}

std::string describe(const std::vector<Action>& actions) {
    std::string out;
    for (const auto& a : actions) {
        out += (out.empty() ? "" : ", ") + describe(a);
    }
    return out.empty() ? "none" : out;
}

static Plan decide_leader_lost_while_busy(const Snapshot& s) {
    return {Role::Demoted,
            {demote(StopKind::Immediate, false)},
            "demoting self because I do not have the lock and I was a leader (pre-empting " +
                *s.local.action_in_progress + ")"};
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
            return {
                s.local.role, {act(ActionKind::UpdateLock)}, busy + "; keeping the leader lock"};
        }
        // A lost lock does not wait for a running action (F12): the demotion pre-empts it.
        if (leader_is_other && maybe_primary && s.local.in_progress_preemptible &&
            !s.dynamic.pause) {
            return decide_leader_lost_while_busy(s);
        }
        return {s.local.role, {}, busy};
    }

    if (pg.data_dir_empty && !pg.postmaster_running) {
        return decide_without_data(s);
    }

    if (c.sysid_valid() && pg.sysid && *c.initialize != *pg.sysid) {
        if (s.dynamic.pause) {
            // Patroni in pause warns, gives a held key back and keeps running (§3 step 9).
            return {s.local.role,
                    leader_is_me ? std::vector<Action>{act(ActionKind::ReleaseLock)}
                                 : std::vector<Action>{},
                    "the data directory belongs to another cluster (system identifier " +
                        *pg.sysid + ", the cluster's is " + *c.initialize +
                        "); cluster is paused, not touching it"};
        }
        return {s.local.role,
                {act(ActionKind::Fatal)},
                "refusing to run: the data directory belongs to another cluster (system "
                "identifier " +
                    *pg.sysid + ", the cluster's is " + *c.initialize + ")"};
    }

    if (!pg.postmaster_running) {
        if (leader_is_me) {
            if (s.dynamic.pause) {
                return {s.local.role,
                        {act(ActionKind::ReleaseLock)},
                        "cluster is paused and postgresql is not running: releasing the leader "
                        "lock"};
            }
            if (auto give_up = decide_start_timeout(s)) {
                return *give_up;
            }
            return {Role::Primary,
                    {act(ActionKind::UpdateLock), act(ActionKind::StartPrimary)},
                    "starting primary after failure"};
        }
        if (leader_is_other) {
            return decide_stopped_with_other_leader(s);
        }
        if (s.dynamic.pause) {
            return {
                s.local.role, {}, "postgresql is not running; cluster is paused, not starting it"};
        }
        if (const Member* m = member_on_later_timeline(s)) {
            return {s.local.role,
                    {},
                    "postgresql is not running and the cluster has no leader; member " + m->name +
                        " is on a later timeline: waiting for a leader"};
        }
        // As Patroni: start read-only; the leader race decides who becomes primary.
        return {Role::Replica, {act(ActionKind::StartReplica, "")}, "starting as a secondary"};
    }

    if (!answering) {
        if (leader_is_me) {
            if (!s.dynamic.pause) {
                if (auto give_up = decide_start_timeout(s)) {
                    return *give_up;
                }
            }
            return {s.local.role,
                    {act(ActionKind::UpdateLock)},
                    "postgresql is not accepting connections yet; keeping the leader lock"};
        }
        if (leader_is_other && maybe_primary && !s.dynamic.pause) {
            return {Role::Demoted,
                    {demote(StopKind::Immediate, false)},
                    "demoting self because I do not have the lock and I was a leader"};
        }
        return {s.local.role, {}, "postgresql is running but not accepting connections"};
    }

    if (leader_is_me) {
        if (pg_primary) {
            if (auto manual = decide_manual_failover_as_leader(s)) {
                return *manual;
            }
        }
        std::vector<Action> actions{act(ActionKind::UpdateLock)};
        if (!c.sysid_valid() && pg.sysid) {
            actions.push_back(act(ActionKind::WriteInitialize));
        }
        if (!c.config_json) {
            actions.push_back(act(ActionKind::WriteConfig));
        }
        if (pg_replica) {
            if (s.dynamic.pause) {
                return {s.local.role,
                        {act(ActionKind::ReleaseLock)},
                        "cluster is paused and postgresql is in recovery: releasing the leader "
                        "lock"};
            }
            actions.push_back(act(ActionKind::Promote));
            return {Role::Promoted,
                    actions,
                    "promoting self: I hold the leader lock but postgresql is in recovery"};
        }
        return {
            Role::Primary, actions, "no action. I am (" + s.name + "), the leader with the lock"};
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
        const std::string& leader = c.leader->name;
        const Member* lm = c.member(leader);
        if (auto why = diverged_from(s, lm); why && !s.dynamic.pause) {
            return {Role::Replica, {act(ActionKind::Rewind, leader)}, *why};
        }
        std::vector<Action> actions;
        if (s.local.following != leader && lm != nullptr && !lm->conn_url.empty()) {
            actions.push_back(act(ActionKind::Follow, leader));
        }
        return {Role::Replica,
                actions,
                "no action. I am (" + s.name + "), a secondary, and following a leader (" + leader +
                    ")"};
    }

    // The cluster has no leader.
    if (pg_primary) {
        const int history_tl = cluster_timeline(c);
        if (history_tl > 0 && pg.query->timeline < history_tl) {
            if (s.dynamic.pause) {
                return {s.local.role,
                        {},
                        "cluster is paused: not taking the leader lock on timeline " +
                            std::to_string(pg.query->timeline) + " behind the cluster's " +
                            std::to_string(history_tl)};
            }
            return {Role::Demoted,
                    {demote(StopKind::Immediate, false)},
                    "demoting self: postgresql runs as primary on timeline " +
                        std::to_string(pg.query->timeline) + " but the cluster history is at " +
                        std::to_string(history_tl) + " and the cluster has no leader"};
        }
        if (const Member* m = member_on_later_timeline(s)) {
            if (s.dynamic.pause) {
                return {s.local.role,
                        {},
                        "cluster is paused: member " + m->name +
                            " is on a later timeline, not taking the leader lock"};
            }
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
    return decide_leader_race(s);
}

}  // namespace pgwarden::core