// Failover, hand-over and switchover of a three-node cluster under a continuous writer and a
// split-brain checker, on etcd 3.4, the Consul test server, and `consul agent -dev` when the
// binary is on PATH. Timing: ttl 20, loop_wait 2, retry_timeout 5.
//
// Every scenario prints one line with its figures, e.g.
//   E2E[etcd3] kill9-primary: outage=8.41s lost=0 ...
#include "steps.hpp"
#include "support/net.hpp"

#include <catch2/catch.hpp>

#include <csignal>

using namespace pgwarden::e2e;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

std::string names(const Cluster& c, int i) {
    return c.node(i).name;
}

std::string lost_figures(const LostWrites& l) {
    std::string s = "lost=" + std::to_string(l.lost) + " acked=" + std::to_string(l.acked);
    if (!l.sample.empty()) {
        s += " missing_ids=";
        for (std::size_t i = 0; i < l.sample.size(); ++i) {
            s += (i ? "," : "") + std::to_string(l.sample[i]);
        }
    }
    if (!l.error.empty()) {
        s += " count_error=\"" + l.error + "\"";
    }
    return s;
}

std::chrono::seconds failover_bound(const Cluster& c) {
    return std::chrono::seconds(c.options().ttl + 2 * c.options().loop_wait);
}

int current_primary(const Cluster& c) {
    auto p = c.primary();
    if (!p) {
        FAIL("no single primary:\n" << c.describe());
    }
    return *p;
}

// Waits for a single primary other than `old` (bounded); FAILs with the cluster's state.
int wait_new_primary(const Cluster& c, int old, std::chrono::milliseconds timeout) {
    std::optional<int> p;
    if (!t::wait_until(
            [&] {
                p = c.primary();
                return p && *p != old;
            },
            timeout,
            100ms)) {
        FAIL("no new primary (other than "
             << c.node(old).name << ") within "
             << std::chrono::duration_cast<std::chrono::seconds>(timeout).count() << " s:\n"
             << c.describe());
    }
    return *p;
}

// ---- a. kill -9 of the primary's pgwarden and postmaster -----------------------------------

void kill9_primary(const dt::Backend& backend, const std::string& tag) {
    Cluster c(backend, "e2e-kill9");
    bring_up(c);
    Writer w(c.writer_conninfo());
    SplitBrainChecker sb(c.endpoints());
    warm_up(w, c);

    const int old = current_primary(c);
    const auto t0 = Clock::now();
    c.kill9_node(old);
    // Writes resumed = acknowledged on a new connection to another node.
    const auto resumed =
        wait_writes_after(w, c, t0, {.new_connection = true, .not_on_port = c.node(old).pg_port});
    const auto outage = w.longest_gap(t0, resumed);
    const int now_primary = wait_new_primary(c, old, 30s);

    const auto rejoin_start = Clock::now();
    c.start(old);
    const auto lost = settle(c, w, sb);
    const auto rejoin = Clock::now() - rejoin_start;
    report(tag,
           "kill9-primary",
           "outage=" + seconds(outage) + " " + lost_figures(lost) + " killed=" + names(c, old) +
               " new_primary=" + names(c, now_primary) + " rejoin=" + seconds(rejoin) +
               " bound=" + std::to_string(failover_bound(c).count()) + "s");
    CHECK(outage <= failover_bound(c));
    // Asynchronous replication may lose the last writes, never more than the lag limit allows.
    CHECK(lost.lost <= kMaxLostRowsAsync);
}

// ---- b. SIGTERM of the primary's pgwarden --------------------------------------------------

void sigterm_primary(const dt::Backend& backend, const std::string& tag) {
    Cluster c(backend, "e2e-sigterm");
    bring_up(c);
    Writer w(c.writer_conninfo());
    SplitBrainChecker sb(c.endpoints());
    warm_up(w, c);

    const int old = current_primary(c);
    const auto t0 = Clock::now();
    const auto code = c.terminate_daemon(old, 90s);
    CHECK(code == std::optional<int>(0));
    const auto resumed =
        wait_writes_after(w, c, t0, {.new_connection = true, .not_on_port = c.node(old).pg_port});
    const auto outage = w.longest_gap(t0, resumed);
    const int now_primary = wait_new_primary(c, old, 30s);

    const auto rejoin_start = Clock::now();
    c.start(old);
    const auto lost = settle(c, w, sb);
    const auto rejoin = Clock::now() - rejoin_start;
    report(tag,
           "sigterm-primary",
           "outage=" + seconds(outage) + " " + lost_figures(lost) + " stopped=" + names(c, old) +
               " new_primary=" + names(c, now_primary) + " rejoin=" + seconds(rejoin));
    CHECK(outage < 10s);
    CHECK(lost.lost == 0);
}

// ---- c. kill -9 of the primary's postmaster alone ------------------------------------------

void kill9_postmaster(const dt::Backend& backend, const std::string& tag) {
    Cluster c(backend, "e2e-kill9-pm");
    bring_up(c);
    Writer w(c.writer_conninfo());
    SplitBrainChecker sb(c.endpoints());
    warm_up(w, c);

    const int old = current_primary(c);
    const auto t0 = Clock::now();
    REQUIRE(c.kill_postmaster(old) > 0);
    // On whichever node: the restarted postmaster or a new primary.
    const auto resumed = wait_writes_after(w, c, t0, {.new_connection = true});
    const auto outage = w.longest_gap(t0, resumed);
    CHECK(c.daemon_running(old));

    const auto lost = settle(c, w, sb);
    const auto p = c.primary();
    const std::string how = !p ? "unknown" : *p == old ? "restarted-in-place" : "failed-over";
    report(tag,
           "kill9-postmaster",
           "outage=" + seconds(outage) + " " + lost_figures(lost) + " killed=" + names(c, old) +
               " primary_now=" + (p ? names(c, *p) : std::string("?")) + " (" + how + ")");
    CHECK(outage <= failover_bound(c));
    CHECK(lost.lost <= kMaxLostRowsAsync);
}

// ---- d. switchover to a named candidate, and back ------------------------------------------

// POST /switchover on the current primary's API; returns the write outage around it.
Clock::duration switchover(Cluster& c, const Writer& w, int from, int to) {
    const auto& leader = c.node(from);
    const auto& candidate = c.node(to);
    const json body = {{"leader", leader.name}, {"candidate", candidate.name}};
    const auto t0 = Clock::now();
    // Patroni answers once the new leader is seen, polling for up to 2 x max(10, loop_wait) s.
    auto r = t::http_request("127.0.0.1",
                             leader.api_port,
                             "POST",
                             "/switchover",
                             body.dump(),
                             {{"Content-Type", "application/json"}},
                             60s);
    INFO("POST /switchover " << body.dump() << " -> " << r.status << " " << r.body);
    CHECK(r.status == 200);
    CHECK(r.body.find("Successfully switched over to \"" + candidate.name + "\"") !=
          std::string::npos);
    if (!t::wait_until([&] { return c.primary() == std::optional<int>(to); }, 60s, 100ms)) {
        FAIL(candidate.name << " did not become the primary:\n" << c.describe());
    }
    if (!c.wait_healthy(kRejoinTimeout)) {
        FAIL("not healthy after the switchover to " << candidate.name << ":\n" << c.describe());
    }
    // The old primary streams from the new one.
    std::string why;
    const bool streams = t::wait_until([&] { return c.primary_streams_to_all(&why); }, 30s, 250ms);
    INFO(why);
    CHECK(streams);
    const auto resumed =
        wait_writes_after(w, c, t0, {.new_connection = true, .on_port = candidate.pg_port}, 30s);
    return w.longest_gap(t0, resumed);
}

void switchover_and_back(const dt::Backend& backend, const std::string& tag) {
    Cluster c(backend, "e2e-switchover");
    bring_up(c);
    Writer w(c.writer_conninfo());
    SplitBrainChecker sb(c.endpoints());
    warm_up(w, c);

    const int first = current_primary(c);
    const int candidate = (first + 1) % c.size();
    {
        std::string why;
        const bool ready =
            t::wait_until([&] { return c.replicas_hold_member_slots(&why); }, 30s, 250ms);
        INFO(why);
        CHECK(ready);
    }
    const auto there = switchover(c, w, first, candidate);
    report(tag,
           "switchover",
           "outage=" + seconds(there) + " " + names(c, first) + "->" + names(c, candidate));
    const auto back = switchover(c, w, candidate, first);
    const auto lost = settle(c, w, sb);
    report(tag,
           "switchback",
           "outage=" + seconds(back) + " " + names(c, candidate) + "->" + names(c, first) + " " +
               lost_figures(lost));
    CHECK(c.primary() == std::optional<int>(first));
    CHECK(lost.lost == 0);
}

}  // namespace

// Each scenario on every backend: etcd 3.4, the Consul test server, a real agent if present.
#define PGW_E2E_SCENARIO(title, tag, fn)                                      \
    TEST_CASE("e2e (etcd3): " title, "[e2e][etcd3]" tag) {                    \
        on_backend(BackendKind::Etcd3, fn);                                   \
    }                                                                         \
    TEST_CASE("e2e (consul test server): " title, "[e2e][consul]" tag) {      \
        on_backend(BackendKind::ConsulTestServer, fn);                        \
    }                                                                         \
    TEST_CASE("e2e (consul agent -dev): " title, "[e2e][consul][real]" tag) { \
        on_backend(BackendKind::ConsulAgent, fn);                             \
    }

PGW_E2E_SCENARIO(
    "kill -9 of the primary's pgwarden and postmaster: a new primary takes writes "
    "within ttl + 2 x loop_wait, the old one rejoins as a streaming replica",
    "[kill9]",
    kill9_primary)

PGW_E2E_SCENARIO(
    "SIGTERM of the primary's pgwarden: a new primary takes writes within 10 s, "
    "nothing acknowledged is lost, the old one rejoins",
    "[sigterm]",
    sigterm_primary)

PGW_E2E_SCENARIO("kill -9 of the primary's postmaster alone: writes resume, never two primaries",
                 "[kill9-postmaster]",
                 kill9_postmaster)

PGW_E2E_SCENARIO(
    "switchover to a named candidate via POST /switchover, and back: both succeed, "
    "nothing acknowledged is lost",
    "[switchover]",
    switchover_and_back)
