// A pgwarden cluster on loopback for end-to-end tests: N nodes (pgwarden + PostgreSQL 15 each)
// on one DCS backend, with fault injection by PID and a cleanup that leaves no process behind
// (daemons, their postmasters, and the orphaned backends of killed postmasters).
#pragma once

#include "harness.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pgwarden::e2e {

namespace dt = pgwarden::daemon_test;
namespace t = pgwarden::testing;
using Clock = std::chrono::steady_clock;

// Every DCS the scenarios run on. ConsulAgent needs a `consul` binary on PATH.
enum class BackendKind { Etcd3, ConsulTestServer, ConsulAgent };

// Short tag for report lines: "etcd3", "consul-test", "consul-agent".
std::string backend_tag(BackendKind kind);
// nullptr when the backend is not available here (only ConsulAgent without a binary).
std::unique_ptr<dt::Backend> make_backend(BackendKind kind);

// Runs `body` against a fresh backend of `kind`; when that backend is not available here (no
// `consul` binary for ConsulAgent) it WARNs "SKIPPED: ..." and returns, and ctest reports the
// test as skipped (SKIP_REGULAR_EXPRESSION in tests/e2e/CMakeLists.txt, as for the DCS
// contract tests), never as passed.
void on_backend(BackendKind kind,
                const std::function<void(const dt::Backend&, const std::string& tag)>& body);

// The timing every scenario runs with (bootstrap.dcs): ttl 20, loop_wait 2, retry_timeout 5.
dt::NodeOptions e2e_node_options();

// A process identity that survives PID reuse: pid + start time (field 22 of /proc/<pid>/stat).
struct ProcId {
    int pid = 0;
    unsigned long long start_time = 0;
};
// nullopt when the process is gone, or is a zombie (a zombie does not run: DESIGN.md).
std::optional<ProcId> live_proc(int pid);
bool still_alive(const ProcId& p);
std::vector<ProcId> children_of(int pid);  // live direct children

// What a node's REST API and PostgreSQL say, for failure messages.
struct NodeEndpoint {
    std::string name;
    unsigned short api_port = 0;
    unsigned short pg_port = 0;
};

// The test process adopts orphans (PR_SET_CHILD_SUBREAPER) and reaps those it did not spawn
// itself, as systemd would: a killed pgwarden's postmaster then never lingers as a zombie that
// `kill(pid, 0)` (and PostgreSQL's own lock-file check) would take for a running server.
class OrphanReaper {
public:
    OrphanReaper();
    ~OrphanReaper();
    OrphanReaper(const OrphanReaper&) = delete;
    OrphanReaper& operator=(const OrphanReaper&) = delete;
    void reap_now();  // reaps zombie children whose command is not one we spawn ourselves

private:
    struct State;
    std::unique_ptr<State> state_;
};

class Cluster {
public:
    Cluster(const dt::Backend& backend,
            const std::string& scope,
            int size = 3,
            dt::NodeOptions options = e2e_node_options());
    ~Cluster();  // cleanup()
    Cluster(const Cluster&) = delete;
    Cluster& operator=(const Cluster&) = delete;

    int size() const { return static_cast<int>(nodes_.size()); }
    const dt::Node& node(int i) const { return nodes_.at(static_cast<std::size_t>(i)); }
    const dt::NodeOptions& options() const { return options_; }
    const std::string& root() const { return root_.path(); }
    int daemon_pid(int i) const { return daemons_.at(static_cast<std::size_t>(i)).pid(); }
    std::vector<NodeEndpoint> endpoints() const;
    int index_of(const std::string& name) const;  // -1 when unknown

    // pgwarden processes (main thread only: children die with the spawning thread).
    void start_all();
    void start(int i);  // (re)start node i's pgwarden; the previous one must have exited
    bool daemon_running(int i);
    // SIGTERM; waits (bounded) for the exit code. nullopt on timeout (then it is SIGKILLed).
    std::optional<int> terminate_daemon(int i, std::chrono::milliseconds timeout);
    void kill_daemon(int i);  // SIGKILL + reap

    // PostgreSQL of node i: the postmaster in postmaster.pid, if it runs this node's data dir.
    std::optional<ProcId> postmaster(int i) const;
    // SIGKILL of the postmaster; its children are remembered and stopped by PID in cleanup()
    // if they outlive it. Returns the killed postmaster's pid (0 if none ran).
    int kill_postmaster(int i);
    // kill -9 of pgwarden and its postmaster together (as a crashed machine would).
    void kill9_node(int i);

    // Probes (bounded; no Catch macros, callable from any thread).
    std::vector<int> primaries() const;  // nodes whose /primary answers 200
    std::optional<int> primary() const;  // the only one, or nullopt
    // Exactly one node 200 on /primary; every other 200 on /replica and "streaming".
    bool healthy() const;
    bool wait_healthy(std::chrono::milliseconds timeout) const;
    bool wait_primary(std::chrono::milliseconds timeout) const;  // exactly one /primary 200
    // On the primary: a walsender in state streaming for each other node (application_name =
    // member name, as Patroni sets it). *why says what is missing.
    bool primary_streams_to_all(std::string* why = nullptr) const;
    // On every replica: a physical slot with reserved WAL for each other member (kept ready for a
    // promotion, so followers never re-point at a leader that lacks their slot).
    bool replicas_hold_member_slots(std::string* why = nullptr) const;
    // GET /cluster on the primary (what patronictl list shows, read from the DCS) lists every
    // node, with the primary as the only "leader". *why says what differs.
    bool dcs_lists_all_members(std::string* why = nullptr) const;

    // libpq conninfo strings.
    std::string writer_conninfo() const;  // all nodes, target_session_attrs=read-write
    std::string conninfo(int i) const;    // one node

    // One line per node: daemon, /primary, /replica, role/state/replication_state, last log line.
    std::string describe() const;

    // Stops every daemon (SIGTERM, then SIGKILL), every postmaster still running one of the data
    // dirs and every remembered child of a killed postmaster, by PID. Idempotent.
    void cleanup();

private:
    OrphanReaper reaper_;  // first: it outlives cleanup()
    dt::NodeOptions options_;
    t::TempDir root_;
    std::vector<dt::Node> nodes_;
    std::vector<t::Process> daemons_;
    std::vector<ProcId> leftovers_;  // children of killed postmasters
};

// Prints one report line, `E2E[<tag>] <scenario>: <figures>`, to stdout (flushed).
void report(const std::string& tag, const std::string& scenario, const std::string& figures);

}  // namespace pgwarden::e2e
