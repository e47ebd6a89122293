// The e2e fixture itself, on what a cluster can do without replicas: three nodes start, exactly
// one becomes primary, the writer's acknowledged rows are all on it (also across a killed and
// restarted postmaster), the split-brain checker sees exactly one writable node, and cleanup
// stops every process by PID, including a postmaster orphaned by a killed pgwarden.
#include "steps.hpp"
#include "support/net.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

using namespace pgwarden::e2e;
using namespace std::chrono_literals;

namespace {

// Live processes whose command line names `dir` (postmasters run with -D <dir>/nodeN/data).
std::vector<int> processes_naming(const std::string& dir) {
    std::vector<int> out;
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        const std::string name = e.path().filename().string();
        if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) {
            continue;
        }
        std::ifstream in(e.path() / "cmdline");
        std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (cmd.find(dir) != std::string::npos && live_proc(std::stoi(name))) {
            out.push_back(std::stoi(name));
        }
    }
    return out;
}

}  // namespace

TEST_CASE(
    "e2e harness (etcd3): three nodes start with one primary, the writer and the split-brain "
    "checker work, and cleanup leaves no process behind",
    "[e2e][harness]") {
    auto backend = make_backend(BackendKind::Etcd3);
    std::vector<ProcId> watched;  // every process the cluster ran: none may survive cleanup
    std::string root;
    {
        Cluster c(*backend, "e2e-harness");
        root = c.root();
        c.start_all();
        for (int i = 0; i < c.size(); ++i) {
            auto d = live_proc(c.daemon_pid(i));
            REQUIRE(d);
            watched.push_back(*d);
        }
        if (!c.wait_primary(120s)) {
            FAIL("no single primary:\n" << c.describe());
        }
        const int p = *c.primary();
        const std::string primary = c.node(p).name;
        INFO("primary: " << primary);

        Writer w(c.writer_conninfo());
        SplitBrainChecker sb(c.endpoints());
        warm_up(w, c, 50);
        REQUIRE(t::wait_until([&] { return sb.polls_with_one_writable() >= 10; }, 30s));
        CHECK(sb.last_writable() == std::vector<std::string>{primary});
        CHECK(sb.last_api_primaries() == std::vector<std::string>{primary});
        // 20 ms pacing on a healthy primary: no long gap.
        CHECK(w.longest_gap(Clock::now() - 1s, Clock::now()) < 1s);

        // A killed postmaster: pgwarden restarts it as primary (single-node behaviour); the
        // writer reconnects, the outage is measured, no acknowledged write is lost.
        auto pm = c.postmaster(p);
        REQUIRE(pm);
        auto backends = children_of(pm->pid);
        CHECK_FALSE(backends.empty());
        const auto t0 = Clock::now();
        REQUIRE(c.kill_postmaster(p) == pm->pid);
        const auto resumed = wait_writes_after(w, c, t0, {.new_connection = true});
        const auto outage = w.longest_gap(t0, resumed);
        CHECK(outage > 0s);
        CHECK(outage < 60s);
        CHECK_FALSE(w.outages().empty());
        // The killed postmaster's backends do not outlive it (or cleanup stops them by PID).
        CHECK(t::wait_until(
            [&] {
                return std::none_of(backends.begin(), backends.end(), [](const ProcId& b) {
                    return still_alive(b);
                });
            },
            30s));
        REQUIRE(c.wait_primary(60s));
        CHECK(c.primary() == std::optional<int>(p));
        wait_writes_after(w, c, Clock::now(), {}, 30s);
        w.stop();
        const auto lost = count_lost(w, c.conninfo(p));
        CHECK(lost.error.empty());
        CHECK(lost.lost == 0);
        CHECK(lost.acked >= 50);
        sb.stop();
        INFO(sb.summary());
        CHECK(sb.violations().empty());
        CHECK(sb.polls() > 10);

        // The checker can fail: the primary listed under two names is two writable nodes.
        auto twice = c.endpoints();
        const int alias = (p + 1) % c.size();
        twice[static_cast<std::size_t>(alias)] = twice[static_cast<std::size_t>(p)];
        twice[static_cast<std::size_t>(alias)].name = primary + "-alias";
        SplitBrainChecker dup(twice);
        REQUIRE(t::wait_until([&] { return dup.polls() >= 3; }, 30s));
        dup.stop();
        const auto seen = dup.violations();
        INFO(dup.summary());
        CHECK(std::count_if(seen.begin(), seen.end(), [](const auto& v) {
                  return v.kind == "/primary";
              }) >= 3);
        CHECK(std::count_if(seen.begin(), seen.end(), [](const auto& v) {
                  return v.kind == "pg_is_in_recovery";
              }) >= 3);
        CHECK(dup.summary().find(primary + "-alias") != std::string::npos);
        report("etcd3",
               "harness kill-postmaster (single primary, no replicas needed)",
               "outage=" + seconds(outage) + " lost=" + std::to_string(lost.lost) +
                   " acked=" + std::to_string(lost.acked) + " polls=" + std::to_string(sb.polls()));

        // kill -9 of the primary's pgwarden alone orphans its postmaster: cleanup must stop it.
        auto pm2 = c.postmaster(p);
        REQUIRE(pm2);
        watched.push_back(*pm2);
        for (const auto& child : children_of(pm2->pid)) {
            watched.push_back(child);
        }
        for (int i = 0; i < c.size(); ++i) {
            if (auto other = c.postmaster(i)) {
                watched.push_back(*other);
            }
        }
        c.kill_daemon(p);
        CHECK_FALSE(c.daemon_running(p));
    }  // ~Cluster: cleanup()

    for (const auto& proc : watched) {
        INFO("pid " << proc.pid);
        CHECK_FALSE(still_alive(proc));
    }
    CHECK(processes_naming(root).empty());
    CHECK_FALSE(std::filesystem::exists(root));
}
