// Steps shared by the e2e scenarios (main thread only: they use Catch assertions).
#pragma once

#include "cluster.hpp"
#include "split_brain.hpp"
#include "writer.hpp"

#include <chrono>
#include <string>

namespace pgwarden::e2e {

inline constexpr std::chrono::seconds kBootstrapTimeout{240};  // 3 nodes: initdb + 2 clones
inline constexpr std::chrono::seconds kRejoinTimeout{240};     // rewind or re-clone
inline constexpr std::chrono::seconds kResumeTimeout{120};     // waiting for writes to resume

// Acknowledged ids that may be lost when the primary dies (asynchronous replication): what
// maximum_lag_on_failover (1 MiB by default) lets a promoted replica miss. One INSERT + COMMIT
// of this table writes well over 100 bytes of WAL, so 1 MiB holds fewer than this many rows.
inline constexpr std::size_t kMaxLostRowsAsync = 1048576 / 100;

// start_all() and wait until healthy (one primary, two streaming replicas); FAILs with the
// cluster's state when it does not get there.
void bring_up(Cluster& c);
// Waits until the writer has `n` acknowledged writes.
void warm_up(const Writer& w, const Cluster& c, std::size_t n = 25);
// Waits for the first acknowledged write after `t` that passes `filter`; FAILs (with the writer's
// last error and the cluster's state) after `timeout`.
Clock::time_point wait_writes_after(const Writer& w,
                                    const Cluster& c,
                                    Clock::time_point t,
                                    AckFilter filter = {},
                                    std::chrono::milliseconds timeout = kResumeTimeout);
// The end of every scenario: healthy again (FAIL otherwise), the primary streaming to every
// other node and /cluster listing every member (CHECKs), one more acknowledged write, then the
// writer and checker stopped. Returns the lost writes counted on the primary; CHECKs that the
// checker saw no split brain.
LostWrites settle(Cluster& c, Writer& w, SplitBrainChecker& sb);

}  // namespace pgwarden::e2e
