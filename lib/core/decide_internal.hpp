// Private to decide*.cpp: the helpers of the decision tree and its failover branches.
#pragma once

#include "core/decide.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace pgwarden::core::detail {

Action act(ActionKind kind, std::string target = {});
Action demote(StopKind stop, bool release_lock);
Plan probe(const Snapshot& s, std::string why);
// pg_control states of a data directory that was last a primary.
bool was_primary(const PgObservation& pg);
bool nofailover(const Snapshot& s);
// Our WAL position as Patroni compares it: primary flush LSN, replica max(received, replayed).
std::int64_t my_wal_position(const PgObservation& pg);
const MemberProbe* find_probe(const Snapshot& s, const std::string& name);
// A member that may take over from us: reachable, allowed, a running replica, and not lagging
// behind `my_wal` by more than maximum_lag_on_failover (Patroni's is_failover_possible).
bool healthy_candidate(const Snapshot& s, const MemberProbe& p, std::int64_t my_wal);
// The timeline the cluster has reached by its history key: the last switch + 1 (0 = unknown).
int cluster_timeline(const Cluster& c);
// A member other than us on a later timeline than ours (running: current, else pg_control's).
const Member* member_on_later_timeline(const Snapshot& s);
// A running replica that forked off before the leader's switch point: why, or nullopt.
std::optional<std::string> diverged_from(const Snapshot& s, const Member* leader);

// The failover branches (decide_failover.cpp).
// We hold the lock but PostgreSQL has not run as primary for primary_start_timeout (F8).
std::optional<Plan> decide_start_timeout(const Snapshot& s);
// A running replica in a cluster without a leader: Patroni's is_healthiest_node().
Plan decide_leader_race(const Snapshot& s);
// We hold the lock and PostgreSQL runs as primary: handle a pending switchover.
std::optional<Plan> decide_manual_failover_as_leader(const Snapshot& s);

}  // namespace pgwarden::core::detail
