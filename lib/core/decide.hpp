// The HA decision tree: a pure function of one snapshot (no I/O, no clock reads). core::step()
// (node_state.hpp) builds the snapshot from the node's state and one observation and owns
// everything around it; the runtime never calls decide() itself.
#pragma once

#include "core/cluster.hpp"
#include "core/node_status.hpp"
#include "core/pg_state.hpp"
#include "core/settings.hpp"

#include <optional>
#include <string>
#include <vector>

namespace pgwarden::core {

enum class StopKind { Fast, Immediate };

enum class ActionKind {
    Bootstrap,        // long: race the initialize key, initdb, start, create roles, take leader
    AcquireLock,      // take the leader key if absent
    UpdateLock,       // renew the lease/session and confirm the key is ours (+ status optime)
    ReleaseLock,      // delete our leader key
    WriteInitialize,  // initialize = our system identifier
    WriteConfig,      // config key from bootstrap.dcs
    StartPrimary,     // long: managed config without standby.signal, pg_ctl start
    Promote,          // long: pg_ctl promote
    Demote,           // long: stop PostgreSQL (fast or immediate), release the key if asked
    Fatal,            // stop the daemon: the on-disk state is not ours to touch
    ProbeMembers,     // ask the other members' REST API, then decide again (always alone)
    CreateReplica,    // long: pg_basebackup from `target`, then start as its replica
    StartReplica,     // long: standby config following `target` ("" = no leader yet), start
    Follow,           // long: point primary_conninfo at `target` and reload
    Rewind,           // long: pg_rewind from `target`, then start as its replica
    Reinitialize,     // long: remove the data directory, then clone from `target`
    ClearFailover,    // empty the failover key (done, invalid or impossible)
    // Upkeep, decided by step() after the role decision:
    SyncSlots,              // make the physical slots exactly `slots` (kept: ignore_slots)
    AdvanceSlots,           // replica: move the kept member slots up to the replay position
    WriteHistory,           // leader: add our timeline switch to the history key
    Reload,                 // long: rewrite the managed files and reload postgresql
    Restart,                // long: restart postgresql (scheduled or requested)
    ClearScheduledRestart,  // drop a stale scheduled restart
    WaitForCandidate,       // long: switchover: probe until a candidate has `lsn`
};

std::string_view to_string(ActionKind kind) noexcept;

struct Action {
    ActionKind kind = ActionKind::UpdateLock;
    StopKind stop = StopKind::Fast;
    // Demote: graceful switchover: after the stop, hand the key over only to a candidate that
    // has our shutdown checkpoint (WaitForCandidate, then ReleaseLock).
    bool release_lock = false;
    std::string target;              // member to clone from / follow / rewind from / candidate
    std::vector<std::string> slots;  // SyncSlots / AdvanceSlots: members to keep a slot for
    std::vector<std::string> permanent_slots;  // ... and permanent physical slots (by name)
    std::optional<std::int64_t> lsn;  // ReleaseLock: optime to publish; WaitForCandidate: wanted
    std::uint64_t id = 0;             // long actions: assigned by step(), echoed in the result
    std::uint64_t request = 0;        // the REST request this action serves (0 = none)
    bool operator==(const Action&) const = default;
};

struct Plan {
    Role role = Role::Uninitialized;
    std::vector<Action> actions;
    std::string reason;  // one stable lower-case-led sentence (an API: tests assert it verbatim)
    // Waiting for something another member publishes soon (e.g. the new leader's checkpoint
    // after promotion): look again well before loop_wait.
    bool retry_soon = false;
};

// A plan with every action in one readable line, as logs and scenario files show it:
// "demote(immediate) release-lock", "update-lock, promote".
std::string describe(const Action& a);
std::string describe(const std::vector<Action>& actions);

// What the daemon knows about itself that is not in the DCS or PostgreSQL.
struct LocalState {
    Role role = Role::Uninitialized;  // internal role before this cycle
    bool lease_valid = false;         // a lock update succeeded less than ttl ago
    bool lock_lost = false;           // this cycle's UpdateLock said the key is not ours
    std::optional<std::string> action_in_progress;  // name of a running long action
    // The leader our primary_conninfo points at ("" = none); nullopt = unknown (e.g. after a
    // daemon restart), which makes a running replica re-point itself.
    std::optional<std::string> following;
    std::optional<std::string> rewind_failed;  // why the last pg_rewind failed
    bool replica_start_failed = false;         // the last start as a replica did not come up
    // How long a running replica has not been streaming (0 = streaming or not a replica).
    std::int64_t replica_not_streaming_ms = 0;
    // The highest timeline this replica has streamed on since PostgreSQL started (0 = none): a
    // replica whose upstream died reports only its last restartpoint's timeline.
    int streamed_timeline = 0;
    // We released the leader key (switchover, start timeout) less than ttl ago: not racing for
    // it again, so the successor is not undercut by an equal WAL position (F11).
    bool released_lock_recently = false;
    // How long we have held the lock without a running primary (0 = running); the start
    // timeout (primary_start_timeout) counts from there (F8).
    std::int64_t primary_down_ms = 0;
    // A demotion pre-empts a running long action: set when the in-progress action is one that
    // a lost lock must not wait for.
    bool in_progress_preemptible = true;
};

struct Snapshot {
    std::string name;
    DynamicSettings dynamic;
    Tags tags;
    std::optional<Cluster> cluster;  // nullopt = the DCS could not be read this cycle
    std::string dcs_error;           // why, when cluster is nullopt
    PgObservation pg;
    LocalState local;
    bool use_pg_rewind = false;  // effective: local postgresql.use_pg_rewind or dynamic
    // effective: local postgresql.* or dynamic
    bool remove_data_directory_on_rewind_failure = false;
    bool remove_data_directory_on_diverged_timelines = false;
    // Other members' answers to GET /patroni; nullopt = not asked this cycle.
    std::optional<std::vector<MemberProbe>> probes;
    // The failover key's scheduled_at as epoch ms (nullopt: not scheduled), and whether it
    // could not be parsed; `now_epoch_ms` is the wall clock, used only for that comparison.
    std::optional<std::int64_t> failover_scheduled_at_ms;
    bool failover_schedule_invalid = false;
    std::int64_t now_epoch_ms = 0;
};

Plan decide(const Snapshot& s);

}  // namespace pgwarden::core
