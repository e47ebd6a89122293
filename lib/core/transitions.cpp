// The role transition table: every role change the core may make, with the condition in words
// (pg_auto_failover's KeeperFSM[] as data). `pgwarden --print-transitions` prints it.
#include "core/node_state.hpp"

#include <string>

namespace pgwarden::core {

const std::vector<Transition>& transitions() noexcept {
    static const std::vector<Transition> kTable = {
        {Role::Uninitialized,
         Role::Primary,
         "bootstrap won the initialize race (initdb, start, leader lock), or the daemon restarted "
         "holding the lock and starts postgresql as primary"},
        {Role::Uninitialized,
         Role::Replica,
         "cloned from a member with pg_basebackup, or an existing data directory started as a "
         "replica"},
        {Role::Uninitialized,
         Role::Demoted,
         "the daemon restarted holding the lock, and postgresql did not start within "
         "primary_start_timeout while a healthy replica can take over"},
        {Role::Replica,
         Role::Promoted,
         "took the leader lock (healthiest member, manual failover candidate, or holding the lock "
         "while in recovery): pg_ctl promote"},
        {Role::Replica,
         Role::Primary,
         "holds the leader lock and postgresql is stopped: started as primary"},
        {Role::Replica,
         Role::Demoted,
         "holds the lock, but postgresql did not start within primary_start_timeout while a "
         "healthy replica can take over"},
        {Role::Promoted, Role::Primary, "the promotion finished"},
        {Role::Promoted,
         Role::Demoted,
         "lost the leader lock or the DCS during the promotion: stopped (pre-empting it)"},
        {Role::Primary,
         Role::Demoted,
         "lost the leader lock, the DCS, or the lease before renewing it; a switchover; a stale "
         "timeline; or postgresql did not start within primary_start_timeout"},
        {Role::Primary,
         Role::Replica,
         "postgresql stopped while another member holds the lock: rejoining it as a replica"},
        {Role::Demoted,
         Role::Replica,
         "rejoining the new leader as a replica (start, pg_rewind or re-clone)"},
        {Role::Demoted,
         Role::Primary,
         "a switchover could not hand over (no candidate, unclean stop), or the lock is ours "
         "again: "
         "started as primary"},
        {Role::Demoted, Role::Promoted, "took the leader lock again while in recovery: promoting"},
    };
    return kTable;
}

const Transition* find_transition(Role from, Role to) noexcept {
    for (const auto& t : transitions()) {
        if (t.from == from && t.to == to) {
            return &t;
        }
    }
    return nullptr;
}

std::string print_transitions() {
    // A Markdown table: readable in a terminal and pasted as is into the README.
    std::string out = "| from | to | when |\n|---|---|---|\n";
    for (const auto& t : transitions()) {
        out += "| " + std::string(to_string(t.from)) + " | " + std::string(to_string(t.to)) +
               " | " + std::string(t.when) + " |\n";
    }
    return out;
}

}  // namespace pgwarden::core
