// The node's decision state as a value, and the two pure functions that own every decision:
// step(state, observation) -> (state', plan) and apply(state, action result) -> state'.
#pragma once

#include "core/cluster.hpp"
#include "core/decide.hpp"
#include "core/node_status.hpp"
#include "core/pg_state.hpp"
#include "core/settings.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgwarden::core {

// The long action the executor runs (one at a time), tracked by id: a result whose id is not
// the one in flight is stale (its action was pre-empted) and changes nothing.
struct InFlight {
    std::uint64_t id = 0;
    ActionKind kind = ActionKind::Bootstrap;
    std::string target;
    bool release_lock = false;  // Demote: graceful switchover
    bool operator==(const InFlight&) const = default;
};

// "promote", "demote (graceful)", "pg_rewind", ...: the action in words, for logs and answers.
std::string in_flight_label(const InFlight& f);

// pg_rewind failed with a verdict (not a passing fault) against this leader.
struct RewindFailure {
    std::string leader;
    std::string message;
    bool operator==(const RewindFailure&) const = default;
};

// A switchover after the old primary's clean stop: the key goes only to a candidate holding
// WAL up to the end of our shutdown checkpoint.
struct Handover {
    std::int64_t checkpoint_end_lsn = 0;
    bool operator==(const Handover&) const = default;
};

// Everything a decision depends on that is neither in the DCS nor in PostgreSQL.
struct NodeState {
    Role role = Role::Uninitialized;
    // The leader our primary_conninfo points at ("" = none); nullopt = unknown (after a daemon
    // restart), which makes a running replica re-point itself.
    std::optional<std::string> following;
    std::optional<RewindFailure> rewind_failure;
    int rewind_retries = 0;  // passing faults in a row (source unreachable or not ready)
    bool replica_start_failed = false;
    std::optional<MonoMs> not_streaming_since;
    int streamed_timeline = 0;      // highest timeline streamed on since the postmaster started
    std::string streamed_pm_start;  // ... whose start time this is
    // The leader lease: the DCS keeps our key at least until here (start of the last request it
    // confirmed as renewing it + ttl). The fence fires a margin before.
    std::optional<MonoMs> lease_until;
    std::optional<InFlight> in_flight;
    std::uint64_t next_action_id = 1;
    bool checkpoint_pending = false;  // promoted, post-promote CHECKPOINT not done yet
    std::optional<Handover> handover;
    std::optional<MonoMs> released_lock_at;    // we deleted our own key (hand-over, timeout)
    std::optional<MonoMs> primary_down_since;  // holding the lock without a running primary
    // Slot upkeep: members last seen (epoch ms) for member_slots_ttl, and what was applied.
    std::map<std::string, std::int64_t> member_seen_ms;
    std::vector<std::string> applied_slots;
    bool slots_applied = false;
    std::string slots_pm_start;
    std::int64_t slots_advanced_to = 0;
    int history_timeline = 0;    // the timeline whose history we last wrote
    std::string written_config;  // signature of the managed files we last wrote
    bool config_written = false;
    // The DCS confirmed the key is ours (acquire/update) and we have not lost or released it.
    bool lock_held = false;
    // A switchover could not hand over (unclean stop, no candidate): clear the request and run
    // as primary again.
    std::optional<std::string> abort_switchover;
    std::optional<std::string> handover_to;  // candidate that has our shutdown checkpoint
    MonoMs ttl_ms = 30000;  // the dynamic ttl as of the last step (lease arithmetic in apply)
    bool operator==(const NodeState&) const = default;
};

// A request from the REST API, queued into the loop (never run on an HTTP coroutine).
enum class RequestKind { Restart, Reinitialize, Reload };
struct Request {
    std::uint64_t id = 0;
    RequestKind kind = RequestKind::Restart;
    bool operator==(const Request&) const = default;
};

// One cycle's view of the world, gathered by the runtime's observer.
struct Observation {
    MonoMs now = 0;
    std::int64_t now_epoch_ms = 0;  // wall clock: scheduled switchovers and restarts only
    std::string name;
    DynamicSettings dynamic;
    Tags tags;
    bool use_pg_rewind = false;  // effective (local postgresql.use_pg_rewind or dynamic)
    bool remove_data_directory_on_rewind_failure = false;
    bool remove_data_directory_on_diverged_timelines = false;
    std::optional<Cluster> cluster;  // nullopt = the DCS could not be read this cycle
    PgObservation pg;
    // Other members' GET /patroni answers; nullopt = not asked this cycle.
    std::optional<std::vector<MemberProbe>> probes;
    // The failover key's scheduled_at (epoch ms) and whether it did not parse.
    std::optional<std::int64_t> failover_scheduled_at_ms;
    bool failover_schedule_invalid = false;
    // A scheduled restart (POST /restart with schedule) and its time; invalid = unparsable.
    bool restart_scheduled = false;
    std::optional<std::int64_t> restart_scheduled_at_ms;
    std::vector<Request> requests;
    // What the managed configuration files must say now (parameters, pg_hba, pg_ident,
    // primary_conninfo): a change is reloaded.
    std::string desired_config;
    // This cycle's UpdateLock said the key is not ours (a re-step after a lock update).
    bool lock_lost = false;
};

// What the executor reports back for one action. Failures are typed: the core decides on
// the kind, never on the message (which is for logs and reason sentences only).
enum class Failure {
    None,
    Dcs,                // the DCS did not answer or refused (unknown outcome)
    LockLost,           // UpdateLock: the key belongs to someone else
    NotAcquired,        // AcquireLock: another member holds it
    SourceUnreachable,  // rewind/clone: the source does not accept connections (retry)
    SourceNotReady,     // rewind: the source has not checkpointed after promotion (retry)
    NotClean,           // demote: PostgreSQL did not shut down cleanly (no checkpoint to hand)
    NoCandidate,        // WaitForCandidate: nobody received the checkpoint in time
    Failed,             // anything else: a verdict
};

struct ActionResult {
    ActionKind kind = ActionKind::UpdateLock;
    std::uint64_t id = 0;  // long actions
    std::string target;
    Failure failure = Failure::None;
    std::string message;  // what failed, for the log
    // UpdateLock / AcquireLock: when the request was sent (the lease counts from here).
    MonoMs sent_at = 0;
    // Demote: where the shutdown checkpoint ends (valid when the stop was clean).
    std::int64_t checkpoint_end_lsn = 0;
    // A long action's intermediate step: promote done, checkpoint still running.
    bool progress = false;
    int timeline = 0;                // WriteHistory: the timeline written
    std::vector<std::string> slots;  // SyncSlots: applied (members, then permanent)
    std::string pm_start;            // SyncSlots: postmaster start time they were checked at
    std::int64_t advanced_to = 0;    // AdvanceSlots
    std::string written_config;      // Reload, Start*, Follow, Restart: signature written
    bool ok() const { return failure == Failure::None; }
};

// The answer to a REST request the core refused (busy, not possible); accepted requests are
// answered by their action's result.
struct RequestAnswer {
    std::uint64_t id = 0;
    bool accepted = false;
    std::string message;
};

struct StepResult {
    NodeState next;
    Plan plan;
    std::vector<RequestAnswer> answers;
    // The plan changes the role: the transition table row it took (nullopt = no change).
    std::optional<std::string> transition;
};

StepResult step(const NodeState& state, const Observation& obs) noexcept;
NodeState apply(const NodeState& state, const ActionResult& result, MonoMs now) noexcept;

// The self-fencing deadline: when PostgreSQL must stop taking writes if the lease was not
// renewed (lease_until - margin); nullopt = nothing to fence (not leader, or paused).
std::optional<MonoMs> fence_deadline(const NodeState& state,
                                     const DynamicSettings& dynamic) noexcept;
// The fence timer fired: if the deadline has passed and PostgreSQL may still take writes, the
// plan is an immediate stop (pre-empting any action); otherwise nothing.
StepResult fence(const NodeState& state,
                 MonoMs now,
                 const DynamicSettings& dynamic,
                 const PgObservation& pg) noexcept;
// The margin the fence keeps before the lease ends: max(1 s, ttl / 10).
MonoMs fence_margin(const DynamicSettings& dynamic) noexcept;

// What SIGTERM does: stop PostgreSQL and hand the key over, unless paused (then PostgreSQL is
// left running and the key kept, as Patroni does).
struct ShutdownPlan {
    bool stop_postgres = true;
    bool release_lock = true;
    std::string reason;
};
ShutdownPlan shutdown_plan(const NodeState& state, const DynamicSettings& dynamic) noexcept;

// Members whose slots a node keeps: current members and members seen within member_slots_ttl
// (never ourselves); and the permanent physical slots of the dynamic configuration.
std::vector<std::string> wanted_slots(const NodeState& state, const Observation& obs);
std::vector<std::string> permanent_physical_slots(const DynamicSettings& dynamic);

// Patroni's ignore_slots: a slot matching every non-empty field of one matcher is left alone
// (never dropped). Physical slots have no database or plugin.
bool slot_ignored(const std::vector<SlotMatcher>& ignore,
                  std::string_view name,
                  std::string_view type,
                  std::string_view database = {},
                  std::string_view plugin = {}) noexcept;

// A switchover candidate the old primary may hand the key to: reachable, allowed, a replica,
// holding WAL up to `lsn` (the end of our shutdown checkpoint record).
bool candidate_has(const MemberProbe& probe, std::int64_t lsn) noexcept;

// ---- the role transition table -----------------------------------------------------------

struct Transition {
    Role from;
    Role to;
    std::string_view when;  // the condition, in words
};

// Every role change step() may make; a plan outside it is refused (the role stays).
const std::vector<Transition>& transitions() noexcept;
const Transition* find_transition(Role from, Role to) noexcept;
// The table as text, one row a line (pgwarden --print-transitions, the README).
std::string print_transitions();

}  // namespace pgwarden::core
