// The HA decision: a pure function of one observed snapshot (no I/O, no clock reads).
// The runtime observes, calls decide(), executes the plan's actions in order, and publishes.
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
};

std::string_view to_string(ActionKind kind) noexcept;

struct Action {
    ActionKind kind = ActionKind::UpdateLock;
    StopKind stop = StopKind::Fast;
    bool release_lock = false;  // Demote: delete the leader key afterwards
    std::string target;         // member to clone from / follow / rewind from
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
