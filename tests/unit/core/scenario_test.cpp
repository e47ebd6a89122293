// Runs every scenario file in tests/scenarios/ against core::step() and core::apply(): a
// sequence of observation edits and action results, each followed by the expected plan (role,
// actions, reason) and state. The format is described in tests/scenarios/README.md.
#include "core/iso8601.hpp"
#include "core/node_state.hpp"

#include <catch2/catch.hpp>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace pgwarden::core;

namespace {

Role role_of(const std::string& s) {
    static const std::map<std::string, Role> kRoles = {{"uninitialized", Role::Uninitialized},
                                                       {"primary", Role::Primary},
                                                       {"replica", Role::Replica},
                                                       {"standby_leader", Role::StandbyLeader},
                                                       {"demoted", Role::Demoted},
                                                       {"promoted", Role::Promoted}};
    auto it = kRoles.find(s);
    if (it == kRoles.end()) {
        throw std::runtime_error("unknown role: " + s);
    }
    return it->second;
}

ActionKind kind_of(std::string s) {
    std::replace(s.begin(), s.end(), '-', ' ');
    for (int k = 0; k <= static_cast<int>(ActionKind::WaitForCandidate); ++k) {
        if (to_string(static_cast<ActionKind>(k)) == s) {
            return static_cast<ActionKind>(k);
        }
    }
    throw std::runtime_error("unknown action kind: " + s);
}

Failure failure_of(const std::string& s) {
    static const std::map<std::string, Failure> kFailures = {
        {"none", Failure::None},
        {"dcs", Failure::Dcs},
        {"lock-lost", Failure::LockLost},
        {"not-acquired", Failure::NotAcquired},
        {"source-unreachable", Failure::SourceUnreachable},
        {"source-not-ready", Failure::SourceNotReady},
        {"not-clean", Failure::NotClean},
        {"no-candidate", Failure::NoCandidate},
        {"failed", Failure::Failed}};
    auto it = kFailures.find(s);
    if (it == kFailures.end()) {
        throw std::runtime_error("unknown failure: " + s);
    }
    return it->second;
}

RequestKind request_of(const std::string& s) {
    if (s == "restart") {
        return RequestKind::Restart;
    }
    if (s == "reinitialize") {
        return RequestKind::Reinitialize;
    }
    if (s == "reload") {
        return RequestKind::Reload;
    }
    throw std::runtime_error("unknown request: " + s);
}

template <class T>
void set_if(const YAML::Node& n, const char* key, T& out) {
    if (n[key]) {
        out = n[key].as<T>();
    }
}

Member member_of(const YAML::Node& n) {
    Member m;
    m.name = n["name"].as<std::string>();
    m.role = n["role"] ? n["role"].as<std::string>() : "replica";
    m.state = n["state"] ? n["state"].as<std::string>() : "running";
    m.conn_url =
        n["conn_url"] ? n["conn_url"].as<std::string>() : "postgres://127.0.0.1:5432/postgres";
    m.api_url = n["api_url"] ? n["api_url"].as<std::string>() : "http://127.0.0.1:8008/patroni";
    if (n["timeline"]) {
        m.timeline = n["timeline"].as<int>();
    }
    if (n["wal"]) {
        m.xlog_location = n["wal"].as<std::int64_t>();
    }
    set_if(n, "nofailover", m.nofailover);
    set_if(n, "clonefrom", m.clonefrom);
    set_if(n, "checkpoint_after_promote_pending", m.checkpoint_after_promote_pending);
    return m;
}

// The failover key's scheduled_at as the runtime's observer reads it.
void schedule_of(Observation& o) {
    o.failover_scheduled_at_ms.reset();
    o.failover_schedule_invalid = false;
    if (o.cluster && o.cluster->failover && o.cluster->failover->scheduled_at) {
        o.failover_scheduled_at_ms = parse_iso8601_ms(*o.cluster->failover->scheduled_at);
        o.failover_schedule_invalid = !o.failover_scheduled_at_ms;
    }
}

void edit_cluster(std::optional<Cluster>& c, const YAML::Node& n) {
    if (!c) {
        c = Cluster{};
        c->initialize = "7000000000000000001";
        c->config_json = "{}";
    }
    if (n["initialize"]) {
        if (n["initialize"].IsNull()) {
            c->initialize.reset();
        } else {
            c->initialize = n["initialize"].as<std::string>();
        }
    }
    if (n["leader"]) {
        if (n["leader"].IsNull()) {
            c->leader.reset();
        } else {
            c->leader = LeaderKey{n["leader"].as<std::string>(), 1, "owner"};
        }
    }
    if (n["members"]) {
        c->members.clear();
        for (const auto& m : n["members"]) {
            c->members.push_back(member_of(m));
        }
        std::sort(c->members.begin(), c->members.end(), [](const Member& a, const Member& b) {
            return a.name < b.name;
        });
    }
    if (n["failover"]) {
        if (n["failover"].IsNull()) {
            c->failover.reset();
        } else {
            FailoverKey f;
            if (n["failover"]["leader"]) {
                f.leader = n["failover"]["leader"].as<std::string>();
            }
            if (n["failover"]["member"]) {
                f.member = n["failover"]["member"].as<std::string>();
            }
            if (n["failover"]["scheduled_at"]) {
                f.scheduled_at = n["failover"]["scheduled_at"].as<std::string>();
            }
            c->failover = f;
        }
    }
    if (n["history"]) {
        c->history.clear();
        for (const auto& h : n["history"]) {
            HistoryLine line;
            line.timeline = h[0].as<int>();
            line.lsn = h[1].as<std::int64_t>();
            line.reason = h[2].as<std::string>();
            c->history.push_back(line);
        }
    }
    if (n["last_lsn"]) {
        c->last_lsn = n["last_lsn"].as<std::int64_t>();
    }
}

void edit_pg(PgObservation& pg, const YAML::Node& n) {
    if (n["empty"] && n["empty"].as<bool>()) {
        pg = PgObservation{};
        return;
    }
    pg.data_dir_exists = true;
    pg.data_dir_empty = false;
    if (!pg.sysid) {
        pg.sysid = "7000000000000000001";
    }
    set_if(n, "state", pg.cluster_state);
    set_if(n, "control_timeline", pg.control_timeline);
    set_if(n, "checkpoint_lsn", pg.checkpoint_lsn);
    set_if(n, "checkpoint_end_lsn", pg.checkpoint_end_lsn);
    if (n["sysid"]) {
        pg.sysid = n["sysid"].as<std::string>();
    }
    if (n["running"]) {
        pg.postmaster_running = n["running"].as<bool>();
        if (!pg.postmaster_running) {
            pg.query.reset();
        } else if (!pg.query) {
            pg.query = PgQueryResult{};
            pg.query->postmaster_start_time = "2026-01-01 00:00:00+00";
            pg.query->timeline = std::max(1, pg.control_timeline);
        }
    }
    if (n["answering"] && !n["answering"].as<bool>()) {
        pg.query.reset();
    }
    if (pg.query) {
        auto& q = *pg.query;
        if (n["primary"]) {
            q.in_recovery = !n["primary"].as<bool>();
        }
        set_if(n, "timeline", q.timeline);
        set_if(n, "wal", q.wal_location);
        set_if(n, "receive", q.receive_location);
        set_if(n, "replay", q.replay_location);
        set_if(n, "pm_start", q.postmaster_start_time);
        if (n["streaming"]) {
            q.replication_state = n["streaming"].as<bool>()
                                      ? std::optional<std::string>("streaming")
                                      : std::optional<std::string>("in archive recovery");
        }
    }
}

void edit_observation(Observation& o, const YAML::Node& n) {
    set_if(n, "now", o.now);
    set_if(n, "epoch", o.now_epoch_ms);
    if (n["dcs"] && n["dcs"].as<std::string>() == "down") {
        o.cluster.reset();
    }
    if (n["cluster"]) {
        edit_cluster(o.cluster, n["cluster"]);
    }
    schedule_of(o);
    if (n["pg"]) {
        edit_pg(o.pg, n["pg"]);
    }
    if (n["probes"]) {
        if (n["probes"].IsNull()) {
            o.probes.reset();
        } else {
            o.probes.emplace();
            for (const auto& p : n["probes"]) {
                MemberProbe m;
                m.name = p["name"].as<std::string>();
                m.reachable = p["reachable"] ? p["reachable"].as<bool>() : true;
                set_if(p, "primary", m.is_primary);
                set_if(p, "wal", m.wal_position);
                set_if(p, "timeline", m.timeline);
                set_if(p, "nofailover", m.nofailover);
                set_if(p, "failover_priority", m.failover_priority);
                m.state = p["state"] ? p["state"].as<std::string>() : "running";
                o.probes->push_back(m);
            }
        }
    } else {
        o.probes.reset();  // probes answer one step only
    }
    if (n["dynamic"]) {
        const auto& d = n["dynamic"];
        set_if(d, "pause", o.dynamic.pause);
        set_if(d, "ttl", o.dynamic.ttl);
        set_if(d, "loop_wait", o.dynamic.loop_wait);
        set_if(d, "primary_start_timeout", o.dynamic.primary_start_timeout);
        set_if(d, "maximum_lag_on_failover", o.dynamic.maximum_lag_on_failover);
        set_if(d, "member_slots_ttl", o.dynamic.member_slots_ttl);
        set_if(d, "use_slots", o.dynamic.postgresql.use_slots);
        set_if(d, "standby_cluster", o.dynamic.standby_cluster_present);
        set_if(d, "check_timeline", o.dynamic.check_timeline);
        set_if(d, "synchronous_mode", o.dynamic.synchronous_mode);
        if (d["slots"]) {
            o.dynamic.slots.clear();
            for (const auto& it : d["slots"]) {
                PermanentSlot p;
                p.name = it.first.as<std::string>();
                if (it.second["type"]) {
                    p.type = it.second["type"].as<std::string>();
                }
                o.dynamic.slots.push_back(p);
            }
        }
    }
    if (n["tags"]) {
        set_if(n["tags"], "nofailover", o.tags.nofailover);
        set_if(n["tags"], "failover_priority", o.tags.failover_priority);
    }
    set_if(n, "use_pg_rewind", o.use_pg_rewind);
    set_if(n, "remove_data_directory_on_rewind_failure", o.remove_data_directory_on_rewind_failure);
    set_if(n,
           "remove_data_directory_on_diverged_timelines",
           o.remove_data_directory_on_diverged_timelines);
    set_if(n, "desired_config", o.desired_config);
    o.lock_lost = n["lock_lost"] && n["lock_lost"].as<bool>();
    o.requests.clear();
    if (n["requests"]) {
        for (const auto& r : n["requests"]) {
            o.requests.push_back(
                {r["id"].as<std::uint64_t>(), request_of(r["kind"].as<std::string>())});
        }
    }
    if (n["restart_at"]) {
        o.restart_scheduled = !n["restart_at"].IsNull();
        o.restart_scheduled_at_ms.reset();
        if (o.restart_scheduled && n["restart_at"].as<std::string>() != "invalid") {
            o.restart_scheduled_at_ms = n["restart_at"].as<std::int64_t>();
        }
    }
}

void apply_state(NodeState& s, const YAML::Node& n) {
    if (n["role"]) {
        s.role = role_of(n["role"].as<std::string>());
    }
    if (n["following"]) {
        s.following = n["following"].as<std::string>();
    }
    set_if(n, "lock_held", s.lock_held);
    if (n["lease_until"]) {
        s.lease_until = n["lease_until"].as<MonoMs>();
    }
}

std::string in_flight_text(const NodeState& s) {
    if (!s.in_flight) {
        return "none";
    }
    std::string k(to_string(s.in_flight->kind));
    std::replace(k.begin(), k.end(), ' ', '-');
    return k;
}

// Checks the expected state keys; returns what differs.
std::vector<std::string> check_state(const NodeState& s, const YAML::Node& n) {
    std::vector<std::string> diffs;
    auto expect = [&](const char* key, const std::string& actual) {
        if (n[key] && n[key].as<std::string>() != actual) {
            diffs.push_back(std::string(key) + ": expected " + n[key].as<std::string>() + ", got " +
                            actual);
        }
    };
    expect("role", std::string(to_string(s.role)));
    expect("lock_held", s.lock_held ? "true" : "false");
    expect("lease_until", s.lease_until ? std::to_string(*s.lease_until) : "none");
    expect("in_flight", in_flight_text(s));
    expect("following", s.following ? *s.following : "unknown");
    expect("handover", s.handover ? std::to_string(s.handover->checkpoint_end_lsn) : "none");
    expect("handover_to", s.handover_to.value_or("none"));
    expect("released", s.released_lock_at ? "true" : "false");
    expect("rewind_failure", s.rewind_failure ? s.rewind_failure->leader : "none");
    expect("rewind_retries", std::to_string(s.rewind_retries));
    expect("checkpoint_pending", s.checkpoint_pending ? "true" : "false");
    expect("abort_switchover", s.abort_switchover ? "true" : "false");
    return diffs;
}

struct Outcome {
    std::vector<std::string> failures;
    std::set<std::string> reasons;
};

// Checks one step's result (step() or fence()) against its `expect:` and moves the state on.
void check_step(Outcome& out,
                const std::string& where,
                NodeState& state,
                const StepResult& r,
                const YAML::Node& expect) {
    const YAML::Node e = expect ? expect : YAML::Node(YAML::NodeType::Map);
    const std::string actions = describe(r.plan.actions);
    out.reasons.insert(r.plan.reason);
    if (e["actions"] && e["actions"].as<std::string>() != actions) {
        out.failures.push_back(where + ": actions: expected \"" + e["actions"].as<std::string>() +
                               "\", got \"" + actions + "\"");
    }
    if (e["reason"] && e["reason"].as<std::string>() != r.plan.reason) {
        out.failures.push_back(where + ": reason: expected \"" + e["reason"].as<std::string>() +
                               "\", got \"" + r.plan.reason + "\"");
    }
    if (e["role"] && role_of(e["role"].as<std::string>()) != r.plan.role) {
        out.failures.push_back(where + ": role: expected " + e["role"].as<std::string>() +
                               ", got " + std::string(to_string(r.plan.role)));
    }
    if (e["retry_soon"] && e["retry_soon"].as<bool>() != r.plan.retry_soon) {
        out.failures.push_back(where + ": retry_soon differs");
    }
    if (e["answers"]) {
        std::string got;
        for (const auto& a : r.answers) {
            got += (got.empty() ? "" : "; ") + std::to_string(a.id) + ": " + a.message;
        }
        if (e["answers"].as<std::string>() != got) {
            out.failures.push_back(where + ": answers: expected \"" +
                                   e["answers"].as<std::string>() + "\", got \"" + got + "\"");
        }
    }
    // Every role change a plan makes is a row of the transition table.
    if (r.plan.role != state.role && !r.plan.actions.empty() &&
        find_transition(state.role, r.plan.role) == nullptr) {
        out.failures.push_back(where + ": no transition row from " +
                               std::string(to_string(state.role)) + " to " +
                               std::string(to_string(r.plan.role)));
    }
    state = r.next;
    if (e["state"]) {
        for (auto& d : check_state(state, e["state"])) {
            out.failures.push_back(where + ": state " + d);
        }
    }
}

Outcome run_scenario(const std::filesystem::path& file) {
    Outcome out;
    const YAML::Node doc = YAML::LoadFile(file.string());
    Observation o;
    o.name = doc["node"] ? doc["node"].as<std::string>() : "node1";
    o.now = 1000;
    o.now_epoch_ms = 1767225600000;          // 2026-01-01T00:00:00Z
    o.dynamic.postgresql.use_slots = false;  // scenarios about slots turn them on
    NodeState state;
    if (doc["state"]) {
        apply_state(state, doc["state"]);
    }
    int index = 0;
    for (const auto& st : doc["steps"]) {
        ++index;
        const std::string where = file.filename().string() + " step " + std::to_string(index);
        if (st["observe"]) {
            edit_observation(o, st["observe"]);
            check_step(out, where, state, step(state, o), st["expect"]);
        } else if (st["result"]) {
            const YAML::Node n = st["result"];
            ActionResult res;
            res.kind = kind_of(n["kind"].as<std::string>());
            res.id =
                n["id"] ? n["id"].as<std::uint64_t>() : (state.in_flight ? state.in_flight->id : 0);
            if (n["failure"]) {
                res.failure = failure_of(n["failure"].as<std::string>());
            }
            set_if(n, "target", res.target);
            set_if(n, "message", res.message);
            set_if(n, "sent_at", res.sent_at);
            set_if(n, "checkpoint_end_lsn", res.checkpoint_end_lsn);
            set_if(n, "progress", res.progress);
            set_if(n, "timeline", res.timeline);
            if (n["slots"]) {
                res.slots = n["slots"].as<std::vector<std::string>>();
            }
            set_if(n, "pm_start", res.pm_start);
            set_if(n, "written_config", res.written_config);
            const MonoMs at = n["now"] ? n["now"].as<MonoMs>() : o.now;
            state = apply(state, res, at);
            if (st["expect"] && st["expect"]["state"]) {
                for (auto& d : check_state(state, st["expect"]["state"])) {
                    out.failures.push_back(where + ": state " + d);
                }
            }
        } else if (st["shutdown"]) {
            const ShutdownPlan sp = shutdown_plan(state, o.dynamic);
            std::string got = std::string(sp.stop_postgres ? "stop" : "leave-running") +
                              (sp.release_lock ? " release" : " keep-key");
            if (st["shutdown"].as<std::string>() != got) {
                out.failures.push_back(where + ": shutdown: expected " +
                                       st["shutdown"].as<std::string>() + ", got " + got);
            }
            out.reasons.insert(sp.reason);
            const YAML::Node e = st["expect"];
            if (e && e["reason"] && e["reason"].as<std::string>() != sp.reason) {
                out.failures.push_back(where + ": shutdown reason: expected \"" +
                                       e["reason"].as<std::string>() + "\", got \"" + sp.reason +
                                       "\"");
            }
        } else if (st["fence"]) {
            const YAML::Node e = st["fence"];
            const auto deadline = fence_deadline(state, o.dynamic);
            const std::string got = deadline ? std::to_string(*deadline) : "none";
            if (e.as<std::string>() != got) {
                out.failures.push_back(where + ": fence deadline: expected " + e.as<std::string>() +
                                       ", got " + got);
            }
        } else if (st["fence_step"]) {
            // core::fence(): the fence timer fired at `now` with this step's observation.
            const YAML::Node n = st["fence_step"];
            const MonoMs at = n["now"] ? n["now"].as<MonoMs>() : o.now;
            check_step(out, where, state, fence(state, at, o.dynamic, o.pg), st["expect"]);
        }
    }
    return out;
}

std::vector<std::filesystem::path> scenario_files() {
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(PGW_SCENARIO_DIR)) {
        if (e.path().extension() == ".yaml") {
            files.push_back(e.path());
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

// A file whose first line is "# BUG: ..." describes the correct behaviour of a known bug: its
// failures are reported as warnings, and once it passes it must lose the marker.
std::optional<std::string> bug_marker(const std::filesystem::path& file) {
    std::ifstream in(file);
    std::string first;
    std::getline(in, first);
    if (first.rfind("# BUG:", 0) == 0) {
        return first;
    }
    return std::nullopt;
}

}  // namespace

TEST_CASE("scenarios: every file in tests/scenarios", "[core][scenario]") {
    const auto files = scenario_files();
    REQUIRE(files.size() >= 10);
    for (const auto& f : files) {
        DYNAMIC_SECTION(f.filename().string()) {
            Outcome out;
            REQUIRE_NOTHROW(out = run_scenario(f));
            if (const auto bug = bug_marker(f)) {
                for (const auto& failure : out.failures) {
                    WARN(*bug << "\n  " << failure);
                }
                if (out.failures.empty()) {
                    FAIL_CHECK(f.filename().string() +
                               " passes: the bug is fixed, remove its # BUG: line");
                }
                continue;
            }
            for (const auto& failure : out.failures) {
                FAIL_CHECK(failure);
            }
        }
    }
}

TEST_CASE("transitions: the table has one row per pair and prints every row", "[core][fsm]") {
    std::set<std::pair<Role, Role>> seen;
    for (const auto& t : transitions()) {
        CHECK(t.from != t.to);
        CHECK(seen.insert({t.from, t.to}).second);
        CHECK_FALSE(t.when.empty());
    }
    const std::string text = print_transitions();
    std::istringstream lines(text);
    std::string line;
    std::size_t rows = 0;
    while (std::getline(lines, line)) {
        ++rows;
    }
    CHECK(rows == transitions().size() + 2);  // + header and rule
}
