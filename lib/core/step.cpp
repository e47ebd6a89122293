// step() and apply(): the node's state machine around the decision tree of decide.cpp — lease,
// hand-over, pre-emption, slot and history upkeep, reloads, scheduled restarts, REST requests.
#include "core/node_state.hpp"

#include <algorithm>
#include <string>

namespace pgwarden::core {
namespace {

bool is_long(ActionKind k) noexcept {
    switch (k) {
        case ActionKind::Bootstrap:
        case ActionKind::StartPrimary:
        case ActionKind::Promote:
        case ActionKind::Demote:
        case ActionKind::CreateReplica:
        case ActionKind::StartReplica:
        case ActionKind::Follow:
        case ActionKind::Rewind:
        case ActionKind::Reinitialize:
        case ActionKind::Reload:
        case ActionKind::Restart:
        case ActionKind::WaitForCandidate:
            return true;
        default:
            return false;
    }
}

}  // namespace

std::string in_flight_label(const InFlight& f) {
    switch (f.kind) {
        case ActionKind::Bootstrap:
            return "bootstrap";
        case ActionKind::StartPrimary:
            return "starting primary";
        case ActionKind::Promote:
            return "promote";
        case ActionKind::Demote:
            return f.release_lock ? "demote (graceful)" : "demote";
        case ActionKind::CreateReplica:
            return "creating replica";
        case ActionKind::StartReplica:
            return "starting replica";
        case ActionKind::Follow:
            return "following " + f.target;
        case ActionKind::Rewind:
            return "pg_rewind";
        case ActionKind::Reinitialize:
            return "reinitialize";
        case ActionKind::Reload:
            return "reload";
        case ActionKind::Restart:
            return "restart";
        case ActionKind::WaitForCandidate:
            return "switchover hand-over";
        default:
            return std::string(to_string(f.kind));
    }
}

namespace {

std::string label(const InFlight& f) {
    return in_flight_label(f);
}

Action act(ActionKind kind, std::string target = {}) {
    Action a;
    a.kind = kind;
    a.target = std::move(target);
    return a;
}

bool has_long(const Plan& p) {
    return std::any_of(
        p.actions.begin(), p.actions.end(), [](const Action& a) { return is_long(a.kind); });
}

bool running_primary(const PgObservation& pg) {
    return pg.postmaster_running && pg.query && !pg.query->in_recovery;
}

// Tracks what a decision needs from earlier cycles: streaming, timelines, members seen,
// how long the leader has been without a running primary.
void track(NodeState& n, const Observation& o, bool leader_is_me) {
    const auto& pg = o.pg;
    const bool streaming = pg.query && pg.query->in_recovery &&
                           pg.query->replication_state == std::optional<std::string>("streaming");
    if (pg.query && pg.query->in_recovery && !streaming) {
        if (!n.not_streaming_since) {
            n.not_streaming_since = o.now;
        }
    } else {
        n.not_streaming_since.reset();
    }
    // Once the walreceiver is gone the status query reports only the last restartpoint's
    // timeline: remember the highest one streamed on since this postmaster started.
    const std::string pm_start = pg.query ? pg.query->postmaster_start_time : "";
    if (!pg.query || pm_start != n.streamed_pm_start) {
        n.streamed_timeline = 0;
        n.streamed_pm_start = pm_start;
    }
    if (streaming) {
        n.streamed_timeline = std::max(n.streamed_timeline, pg.query->timeline);
    }
    if (pg.query && !n.in_flight) {
        // What PostgreSQL says wins over what we believed, except mid-promotion.
        if (!pg.query->in_recovery) {
            n.role = Role::Primary;
        } else if (n.role != Role::Promoted) {
            n.role = Role::Replica;
        }
    }
    // PostgreSQL observed stopped or in recovery: nothing left to fence.
    if (!n.lock_held && (!pg.postmaster_running || (pg.query && pg.query->in_recovery))) {
        n.lease_until.reset();
    }
    if (leader_is_me && !running_primary(pg)) {
        if (!n.in_flight && !n.primary_down_since) {
            n.primary_down_since = o.now;
        }
    } else if (!leader_is_me || running_primary(pg)) {
        n.primary_down_since.reset();
    }
    // Another member took the lock we released: the hand-over is over, and so is the guard
    // that kept us out of the race meanwhile.
    if (o.cluster && o.cluster->is_locked() && o.cluster->leader->name != o.name) {
        n.released_lock_at.reset();
    }
    if (o.cluster) {
        for (const auto& m : o.cluster->members) {
            n.member_seen_ms[m.name] = o.now_epoch_ms;
        }
        const std::int64_t keep_ms = static_cast<std::int64_t>(o.dynamic.member_slots_ttl) * 1000;
        for (auto it = n.member_seen_ms.begin(); it != n.member_seen_ms.end();) {
            if (o.now_epoch_ms - it->second > keep_ms) {
                it = n.member_seen_ms.erase(it);
            } else {
                ++it;
            }
        }
    }
}

Snapshot snapshot_of(const NodeState& n, const Observation& o, bool lock_lost) {
    Snapshot s;
    s.name = o.name;
    s.dynamic = o.dynamic;
    s.tags = o.tags;
    s.cluster = o.cluster;
    s.pg = o.pg;
    s.probes = o.probes;
    s.use_pg_rewind = o.use_pg_rewind;
    s.remove_data_directory_on_rewind_failure =
        o.remove_data_directory_on_rewind_failure ||
        o.dynamic.postgresql.remove_data_directory_on_rewind_failure;
    s.remove_data_directory_on_diverged_timelines =
        o.remove_data_directory_on_diverged_timelines ||
        o.dynamic.postgresql.remove_data_directory_on_diverged_timelines;
    s.failover_scheduled_at_ms = o.failover_scheduled_at_ms;
    s.failover_schedule_invalid = o.failover_schedule_invalid;
    s.now_epoch_ms = o.now_epoch_ms;
    LocalState& l = s.local;
    l.role = n.role;
    l.lease_valid = n.lease_until && o.now < *n.lease_until;
    l.lock_lost = lock_lost;
    if (n.in_flight) {
        l.action_in_progress = label(*n.in_flight);
        l.in_progress_preemptible =
            n.in_flight->kind != ActionKind::Bootstrap && n.in_flight->kind != ActionKind::Demote;
    }
    l.following = n.following;
    // A rewind failure counts against the leader it was tried from only.
    if (n.rewind_failure && o.cluster && o.cluster->is_locked() &&
        o.cluster->leader->name == n.rewind_failure->leader) {
        l.rewind_failed = n.rewind_failure->message;
    }
    l.replica_start_failed = n.replica_start_failed;
    l.replica_not_streaming_ms = n.not_streaming_since ? o.now - *n.not_streaming_since : 0;
    l.streamed_timeline = n.streamed_timeline;
    l.released_lock_recently = n.released_lock_at && o.now - *n.released_lock_at < n.ttl_ms;
    l.primary_down_ms = n.primary_down_since ? o.now - *n.primary_down_since : 0;
    return s;
}

// The switchover after our clean stop: wait for a candidate, then hand the key over.
std::optional<Plan> handover_plan(const NodeState& n, const Observation& o, bool leader_is_me) {
    if (n.abort_switchover && leader_is_me) {
        std::vector<Action> actions{act(ActionKind::UpdateLock), act(ActionKind::ClearFailover)};
        if (o.pg.postmaster_running) {
            return Plan{Role::Primary,
                        std::move(actions),
                        "switchover: " + *n.abort_switchover +
                            "; keeping the leader lock and the running primary, clearing the "
                            "request"};
        }
        actions.push_back(act(ActionKind::StartPrimary));
        return Plan{Role::Primary,
                    std::move(actions),
                    "switchover: " + *n.abort_switchover +
                        "; keeping the leader lock, clearing the request and starting as primary "
                        "again"};
    }
    if (!n.handover || !leader_is_me || o.pg.postmaster_running) {
        return std::nullopt;
    }
    if (n.handover_to) {
        Action release = act(ActionKind::ReleaseLock);
        release.lsn = n.handover->checkpoint_end_lsn;
        return Plan{Role::Demoted,
                    {release},
                    "switchover: " + *n.handover_to +
                        " has received the shutdown checkpoint; releasing the leader lock"};
    }
    Action wait = act(ActionKind::WaitForCandidate);
    wait.lsn = n.handover->checkpoint_end_lsn;
    if (o.cluster && o.cluster->failover && o.cluster->failover->member) {
        wait.target = *o.cluster->failover->member;
    }
    return Plan{Role::Demoted,
                {act(ActionKind::UpdateLock), wait},
                "switchover: waiting for a candidate to receive the shutdown checkpoint " +
                    std::to_string(n.handover->checkpoint_end_lsn)};
}

void add_upkeep(NodeState& n, const Observation& o, bool leader_is_me, Plan& plan) {
    if (!o.cluster || n.in_flight || has_long(plan)) {
        return;
    }
    const auto& pg = o.pg;
    const bool use_slots = o.dynamic.postgresql.use_slots;
    const std::string pm_start = pg.query ? pg.query->postmaster_start_time : "";
    const bool primary =
        leader_is_me && n.lock_held && n.role == Role::Primary && running_primary(pg);
    const bool replica = n.role == Role::Replica && n.following && pg.query &&
                         pg.query->in_recovery && pg.postmaster_running;
    if (use_slots && (primary || replica)) {
        auto wanted = wanted_slots(n, o);
        auto permanent = permanent_physical_slots(o.dynamic);
        std::vector<std::string> all = wanted;
        all.insert(all.end(), permanent.begin(), permanent.end());
        if (!n.slots_applied || all != n.applied_slots || pm_start != n.slots_pm_start) {
            Action a = act(ActionKind::SyncSlots);
            a.slots = std::move(wanted);
            a.permanent_slots = std::move(permanent);
            plan.actions.push_back(std::move(a));
        } else if (replica && !n.applied_slots.empty() &&
                   pg.query->replay_location > n.slots_advanced_to) {
            Action a = act(ActionKind::AdvanceSlots);
            a.slots = wanted;
            a.permanent_slots = std::move(permanent);
            plan.actions.push_back(std::move(a));
        }
    }
    if (primary && !n.checkpoint_pending && pg.query->timeline > 1 &&
        pg.query->timeline != n.history_timeline) {
        plan.actions.push_back(act(ActionKind::WriteHistory));
    }
    // The dynamic configuration changed (PATCH /config, edit-config): rewrite the managed files
    // and reload; after a daemon restart nothing is known about the files, so they are written
    // once. A replica waits until it knows whom it follows, so primary_conninfo is never dropped.
    if (pg.postmaster_running && pg.query && (n.role == Role::Primary || n.following) &&
        !o.desired_config.empty() && (!n.config_written || o.desired_config != n.written_config)) {
        plan.actions.push_back(act(ActionKind::Reload));
    }
}

void add_scheduled_restart(const NodeState& n, const Observation& o, Plan& plan) {
    if (!o.restart_scheduled || n.in_flight || has_long(plan)) {
        return;
    }
    const std::int64_t loop_ms = static_cast<std::int64_t>(o.dynamic.loop_wait) * 1000;
    if (!o.restart_scheduled_at_ms ||
        o.now_epoch_ms > *o.restart_scheduled_at_ms + loop_ms * 3 / 2) {
        plan.actions.push_back(act(ActionKind::ClearScheduledRestart));
        plan.reason += "; dropping a stale or invalid scheduled restart";
        return;
    }
    if (o.dynamic.pause) {
        return;
    }
    if (*o.restart_scheduled_at_ms - o.now_epoch_ms <= loop_ms) {
        plan.actions.push_back(act(ActionKind::ClearScheduledRestart));
        plan.actions.push_back(act(ActionKind::Restart));
        plan.reason += "; running the scheduled restart";
    }
}

void answer_requests(const NodeState& n,
                     const Observation& o,
                     bool leader_is_me,
                     Plan& plan,
                     std::vector<RequestAnswer>& answers) {
    for (const auto& r : o.requests) {
        std::optional<InFlight> running = n.in_flight;
        for (const auto& a : plan.actions) {
            if (!running && is_long(a.kind)) {
                running = InFlight{0, a.kind, a.target, a.release_lock};
            }
        }
        const bool busy = running.has_value();
        const std::string busy_text = busy ? label(*running) + " already in progress" : "";
        switch (r.kind) {
            case RequestKind::Reload:
            case RequestKind::Restart: {
                if (busy) {
                    answers.push_back({r.id, false, busy_text});
                    break;
                }
                Action a =
                    act(r.kind == RequestKind::Reload ? ActionKind::Reload : ActionKind::Restart);
                a.request = r.id;
                plan.actions.push_back(a);
                break;
            }
            case RequestKind::Reinitialize: {
                if (!o.cluster || !o.cluster->is_locked()) {
                    answers.push_back({r.id, false, "Cluster has no leader, can not reinitialize"});
                } else if (leader_is_me || o.cluster->leader->name == o.name) {
                    answers.push_back({r.id, false, "I am the leader, can not reinitialize"});
                } else if (busy) {
                    answers.push_back({r.id, false, busy_text});
                } else {
                    Action a = act(ActionKind::Reinitialize, o.cluster->leader->name);
                    a.request = r.id;
                    plan.actions.push_back(a);
                }
                break;
            }
        }
    }
}

}  // namespace

MonoMs fence_margin(const DynamicSettings& dynamic) noexcept {
    const MonoMs ttl = static_cast<MonoMs>(dynamic.ttl) * 1000;
    return std::max<MonoMs>(1000, ttl / 10);
}

std::optional<MonoMs> fence_deadline(const NodeState& state,
                                     const DynamicSettings& dynamic) noexcept {
    if (!state.lease_until || dynamic.pause) {
        return std::nullopt;
    }
    return *state.lease_until - fence_margin(dynamic);
}

StepResult fence(const NodeState& state,
                 MonoMs now,
                 const DynamicSettings& dynamic,
                 const PgObservation& pg) noexcept {
    StepResult out;
    out.next = state;
    out.plan.role = state.role;
    const auto deadline = fence_deadline(state, dynamic);
    const bool maybe_primary =
        pg.postmaster_running &&
        (pg.query ? !pg.query->in_recovery
                  : state.role == Role::Primary || state.role == Role::Promoted);
    if (!deadline || now < *deadline || !maybe_primary ||
        (state.in_flight && state.in_flight->kind == ActionKind::Demote &&
         !state.in_flight->release_lock)) {
        out.plan.reason = "fence: nothing to do";
        return out;
    }
    Action d;
    d.kind = ActionKind::Demote;
    d.stop = StopKind::Immediate;
    d.id = out.next.next_action_id++;
    out.next.in_flight = InFlight{d.id, d.kind, "", false};
    out.plan = {Role::Demoted,
                {d},
                "demoting self: the leader lease ends within the safety margin and was not "
                "renewed"};
    return out;
}

ShutdownPlan shutdown_plan(const NodeState& state, const DynamicSettings& dynamic) noexcept {
    if (dynamic.pause) {
        return {false, false, "cluster is paused: leaving postgresql running and the leader key"};
    }
    return {true,
            state.lock_held,
            state.lock_held ? "stopping postgresql, then releasing the leader lock"
                            : "stopping postgresql"};
}

bool slot_ignored(const std::vector<SlotMatcher>& ignore,
                  std::string_view name,
                  std::string_view type,
                  std::string_view database,
                  std::string_view plugin) noexcept {
    for (const auto& m : ignore) {
        if ((m.name.empty() || m.name == name) && (m.type.empty() || m.type == type) &&
            (m.database.empty() || m.database == database) &&
            (m.plugin.empty() || m.plugin == plugin)) {
            return true;
        }
    }
    return false;
}

bool candidate_has(const MemberProbe& p, std::int64_t lsn) noexcept {
    return p.reachable && !p.nofailover && !p.watchdog_failed && !p.is_primary &&
           p.wal_position >= lsn;
}

std::vector<std::string> wanted_slots(const NodeState& state, const Observation& obs) {
    std::vector<std::string> names;
    for (const auto& [member, seen] : state.member_seen_ms) {
        (void)seen;
        if (member != obs.name) {
            names.push_back(member);
        }
    }
    return names;  // sorted: the map's order
}

std::vector<std::string> permanent_physical_slots(const DynamicSettings& dynamic) {
    std::vector<std::string> names;
    for (const auto& p : dynamic.slots) {
        if (p.type == "physical") {
            names.push_back(p.name);
        }
    }
    std::sort(names.begin(), names.end());
    return names;
}

StepResult step(const NodeState& state, const Observation& o) noexcept {
    StepResult out;
    NodeState& n = out.next;
    n = state;
    n.ttl_ms = static_cast<MonoMs>(o.dynamic.ttl) * 1000;
    const Cluster* c = o.cluster ? &*o.cluster : nullptr;
    const bool view_names_me = c && c->is_locked() && c->leader->name == o.name;
    const bool released_recently = n.released_lock_at && o.now - *n.released_lock_at < n.ttl_ms;
    const bool leader_is_me = view_names_me && !o.lock_lost && !released_recently;
    track(n, o, leader_is_me);

    if (view_names_me && released_recently && !o.lock_lost) {
        // Our own delete may not be visible yet: never renew (and so re-create) a key we gave up.
        out.plan = {n.role, {}, "waiting for the released leader key to leave the DCS view"};
        return out;
    }
    if (auto h = handover_plan(n, o, leader_is_me)) {
        out.plan = std::move(*h);
        if (n.in_flight && out.plan.actions.back().kind == ActionKind::WaitForCandidate) {
            out.plan.actions.pop_back();
            out.plan.reason = label(*n.in_flight) + " in progress; keeping the leader lock";
        }
    } else {
        out.plan = decide(snapshot_of(n, o, o.lock_lost));
    }
    Plan& plan = out.plan;
    if (plan.actions.size() == 1 && plan.actions[0].kind == ActionKind::ProbeMembers) {
        return out;  // the runtime probes and steps again: nothing else happens in between
    }

    // Fence: the lease ran out before it was renewed and PostgreSQL still takes writes.
    if (auto deadline = fence_deadline(n, o.dynamic);
        deadline && o.now >= *deadline && running_primary(o.pg) && !leader_is_me) {
        Action d;
        d.kind = ActionKind::Demote;
        d.stop = StopKind::Immediate;
        plan = {Role::Demoted,
                {d},
                "demoting self: the leader lease ends within the safety margin and was not "
                "renewed"};
    }

    const bool preempting =
        n.in_flight && std::any_of(plan.actions.begin(), plan.actions.end(), [](const Action& a) {
            return a.kind == ActionKind::Demote;
        });
    if (!n.in_flight || preempting) {
        if (n.abort_switchover &&
            std::any_of(plan.actions.begin(), plan.actions.end(), [](const Action& a) {
                return a.kind == ActionKind::ClearFailover;
            })) {
            n.abort_switchover.reset();
            n.handover.reset();
            n.handover_to.reset();
        }
        add_upkeep(n, o, leader_is_me, plan);
        add_scheduled_restart(n, o, plan);
    }
    answer_requests(n, o, leader_is_me, plan, out.answers);

    // One long action at a time: the first one is tracked by id, anything after it waits.
    bool seen_long = false;
    std::vector<Action> kept;
    for (auto& a : plan.actions) {
        if (is_long(a.kind)) {
            if (seen_long || (n.in_flight && !preempting)) {
                continue;
            }
            seen_long = true;
            a.id = n.next_action_id++;
            n.in_flight = InFlight{a.id, a.kind, a.target, a.release_lock};
            if (a.kind == ActionKind::Promote) {
                n.role = Role::Promoted;
                n.checkpoint_pending = true;
                // Slots first: the other replicas re-point at us as soon as they see our lock.
                if (o.dynamic.postgresql.use_slots) {
                    a.slots = wanted_slots(n, o);
                    a.permanent_slots = permanent_physical_slots(o.dynamic);
                }
            }
        }
        kept.push_back(a);
    }
    plan.actions = std::move(kept);
    if (plan.role != state.role && !plan.actions.empty()) {
        if (const Transition* t = find_transition(state.role, plan.role)) {
            out.transition = std::string(t->when);
        }
    }
    return out;
}

// PostgreSQL runs as a replica of `leader` now (started, rewound or re-cloned).
static void became_replica_of(NodeState& n, const std::string& leader) {
    n.role = Role::Replica;
    n.following = leader;
    n.replica_start_failed = false;
}

NodeState apply(const NodeState& state, const ActionResult& r, MonoMs now) noexcept {
    NodeState n = state;
    if (is_long(r.kind)) {
        if (!n.in_flight || n.in_flight->id != r.id) {
            return n;  // pre-empted: a stale result changes nothing
        }
        if (r.progress) {
            if (r.kind == ActionKind::Promote) {
                n.role = Role::Primary;
                n.following = "";
            }
            return n;
        }
        n.in_flight.reset();
        if (!r.written_config.empty()) {
            n.written_config = r.written_config;
            n.config_written = true;
        }
    }
    switch (r.kind) {
        case ActionKind::UpdateLock:
            if (r.ok()) {
                n.lock_held = true;
                n.lease_until = r.sent_at + n.ttl_ms;
            } else if (r.failure == Failure::LockLost) {
                // The fence stays armed until PostgreSQL is seen stopped or in recovery.
                n.lock_held = false;
            }
            break;
        case ActionKind::AcquireLock:
            if (r.ok()) {
                n.lock_held = true;
                n.lease_until = r.sent_at + n.ttl_ms;
                n.released_lock_at.reset();
                n.primary_down_since.reset();
            }
            break;
        case ActionKind::ReleaseLock:
            if (r.ok()) {
                n.lock_held = false;
                n.lease_until.reset();
                n.released_lock_at = now;
                n.handover.reset();
                n.handover_to.reset();
                n.primary_down_since.reset();
            }
            break;
        case ActionKind::Bootstrap:
            if (r.ok()) {
                n.role = Role::Primary;
                n.following = "";
                n.lock_held = true;
                n.lease_until = r.sent_at + n.ttl_ms;
            }
            break;
        case ActionKind::StartPrimary:
            if (r.ok()) {
                n.role = Role::Primary;
                n.following = "";
                n.abort_switchover.reset();
            }
            break;
        case ActionKind::Promote:
            n.checkpoint_pending = false;
            if (r.ok()) {
                n.role = Role::Primary;
                n.following = "";
            } else if (n.role == Role::Promoted) {
                n.role = Role::Replica;  // the next observation says what PostgreSQL became
            }
            break;
        case ActionKind::Demote:
            if (r.ok()) {
                n.role = Role::Demoted;
                n.following.reset();
                if (state.in_flight && state.in_flight->release_lock) {
                    if (r.checkpoint_end_lsn > 0) {
                        n.handover = Handover{r.checkpoint_end_lsn};
                    } else {
                        n.abort_switchover =
                            "postgresql did not shut down cleanly, so there is no shutdown "
                            "checkpoint to hand over";
                    }
                } else {
                    n.lock_held = false;
                    n.lease_until.reset();
                }
            } else if (state.in_flight && state.in_flight->release_lock) {
                n.abort_switchover = "stopping postgresql failed (" + r.message + ")";
            }
            break;
        case ActionKind::WaitForCandidate:
            if (r.ok()) {
                n.handover_to = r.target;
            } else {
                n.handover.reset();
                n.abort_switchover = "no candidate received the shutdown checkpoint in time";
            }
            break;
        case ActionKind::StartReplica:
            if (r.ok()) {
                became_replica_of(n, r.target);
            } else {
                n.replica_start_failed = true;
            }
            break;
        case ActionKind::Follow:
            if (r.ok()) {
                n.following = r.target;
            }
            break;
        case ActionKind::Rewind:
            if (r.ok()) {
                n.rewind_failure.reset();
                n.rewind_retries = 0;
                became_replica_of(n, r.target);
            } else if (r.failure == Failure::SourceUnreachable ||
                       r.failure == Failure::SourceNotReady) {
                ++n.rewind_retries;  // a passing fault: the next cycle tries again
            } else {
                n.rewind_failure = RewindFailure{r.target, r.message.substr(0, 300)};
            }
            break;
        case ActionKind::CreateReplica:
        case ActionKind::Reinitialize:
            if (r.ok()) {
                n.rewind_failure.reset();
                n.rewind_retries = 0;
                became_replica_of(n, r.target);
                n.slots_applied = false;
            } else if (r.kind == ActionKind::Reinitialize) {
                n.role = Role::Uninitialized;
            }
            break;
        case ActionKind::SyncSlots:
            if (r.ok()) {
                n.applied_slots = r.slots;
                n.slots_applied = true;
                n.slots_pm_start = r.pm_start;
                n.slots_advanced_to = 0;
            }
            break;
        case ActionKind::AdvanceSlots:
            if (r.ok()) {
                n.slots_advanced_to = r.advanced_to;
            }
            break;
        case ActionKind::WriteHistory:
            if (r.ok()) {
                n.history_timeline = r.timeline;
            }
            break;
        default:
            break;
    }
    return n;
}

}  // namespace pgwarden::core
