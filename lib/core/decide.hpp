// The HA decision: a pure function of one observed snapshot (no I/O, no clock reads).
// The runtime observes, calls decide(), executes the plan's actions in order, and publishes.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/cluster.hpp"
#include "core/node_status.hpp"
#include "core/pg_state.hpp"
#include "core/settings.hpp"

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
};

std::string_view to_string(ActionKind kind) noexcept;

struct Action {
    ActionKind kind;
    StopKind stop = StopKind::Fast;
    bool release_lock = false;  // Demote: delete the leader key afterwards
    bool operator==(const Action&) const = default;
};

struct Plan {
    Role role = Role::Uninitialized;
    std::vector<Action> actions;
    std::string reason;  // one stable lower-case-led sentence (an API: tests assert it verbatim)
};

// What the daemon knows about itself that is not in the DCS or PostgreSQL.
struct LocalState {
    Role role = Role::Uninitialized;  // internal role before this cycle
    bool lease_valid = false;         // a lock update succeeded less than ttl ago
    bool lock_lost = false;           // this cycle's UpdateLock said the key is not ours
    std::optional<std::string> action_in_progress;  // name of a running long action
};

struct Snapshot {
    std::string name;
    DynamicSettings dynamic;
    Tags tags;
    std::optional<Cluster> cluster;  // nullopt = the DCS could not be read this cycle
    std::string dcs_error;           // why, when cluster is nullopt
    PgObservation pg;
    LocalState local;
};

Plan decide(const Snapshot& s);

}  // namespace pgwarden::core
