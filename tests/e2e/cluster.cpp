#include "cluster.hpp"

#include "support/consul.hpp"
#include "support/net.hpp"

#include <catch2/catch.hpp>
#include <libpq-fe.h>

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <deque>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace pgwarden::e2e {

using namespace std::chrono_literals;

namespace {

struct ProcStat {
    int pid = 0;
    std::string comm;
    char state = '?';
    int ppid = 0;
    unsigned long long start_time = 0;
};

std::optional<ProcStat> read_stat(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!in || !std::getline(in, line)) {
        return std::nullopt;
    }
    const auto open = line.find('(');
    const auto close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close < open) {
        return std::nullopt;
    }
    ProcStat s;
    s.pid = pid;
    s.comm = line.substr(open + 1, close - open - 1);
    std::istringstream rest(line.substr(close + 2));
    // Fields 3.. : state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
    // utime stime cutime cstime priority nice num_threads itrealvalue starttime(22)
    std::string skip;
    rest >> s.state >> s.ppid;
    for (int field = 5; field <= 21; ++field) {
        rest >> skip;
    }
    rest >> s.start_time;
    if (!rest) {
        return std::nullopt;
    }
    return s;
}

std::string read_cmdline(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::replace(s.begin(), s.end(), '\0', ' ');
    return s;
}

std::vector<ProcStat> all_procs() {
    std::vector<ProcStat> out;
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        const std::string name = e.path().filename().string();
        if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) {
            continue;
        }
        if (auto s = read_stat(std::stoi(name))) {
            out.push_back(*s);
        }
    }
    return out;
}

// Commands this test process starts itself (t::Process); everything else that becomes our
// child was adopted as an orphan. /proc comm is cut at 15 characters.
bool spawned_by_us(const std::string& comm) {
    static const std::set<std::string> kOurs = {"pgwarden", "etcd", "consul", "pgw-consul-test"};
    return kOurs.count(comm) > 0;
}

// SIGKILL by PID (only if it is still the same process), then wait until it is gone.
void kill_and_wait(const ProcId& p, std::chrono::milliseconds timeout) {
    if (!still_alive(p)) {
        return;
    }
    ::kill(p.pid, SIGKILL);
    t::wait_until([&] { return !still_alive(p); }, timeout, 20ms);
}

std::string last_log_line(const std::filesystem::path& log) {
    const std::string text = dt::read_file(log);
    auto end = text.find_last_not_of('\n');
    if (end == std::string::npos) {
        return "";
    }
    auto start = text.rfind('\n', end);
    return text.substr(start == std::string::npos ? 0 : start + 1, end - (start + 1) + 1);
}

using PgConn = std::unique_ptr<PGconn, decltype(&PQfinish)>;

// Sets *why (when given) and returns false: the "not yet, because ..." of the probes below.
bool not_yet(std::string* why, const std::string& reason) {
    if (why) {
        *why = reason;
    }
    return false;
}

// The rows of `sql` (text, every column) on one server; nullopt and *error on failure.
std::optional<std::vector<std::vector<std::string>>> query_rows(const std::string& conninfo,
                                                                const char* sql,
                                                                std::string* error) {
    PgConn conn(PQconnectdb(conninfo.c_str()), &PQfinish);
    if (PQstatus(conn.get()) != CONNECTION_OK) {
        *error = std::string("cannot connect: ") + PQerrorMessage(conn.get());
        return std::nullopt;
    }
    std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(conn.get(), sql), &PQclear);
    if (PQresultStatus(res.get()) != PGRES_TUPLES_OK) {
        *error = PQerrorMessage(conn.get());
        return std::nullopt;
    }
    std::vector<std::vector<std::string>> rows;
    for (int r = 0; r < PQntuples(res.get()); ++r) {
        auto& row = rows.emplace_back();
        for (int f = 0; f < PQnfields(res.get()); ++f) {
            row.emplace_back(PQgetvalue(res.get(), r, f));
        }
    }
    return rows;
}

}  // namespace

// ---- backends ------------------------------------------------------------------------------

std::string backend_tag(BackendKind kind) {
    switch (kind) {
        case BackendKind::Etcd3:
            return "etcd3";
        case BackendKind::ConsulTestServer:
            return "consul-test";
        case BackendKind::ConsulAgent:
            return "consul-agent";
    }
    return "?";
}

std::unique_ptr<dt::Backend> make_backend(BackendKind kind) {
    switch (kind) {
        case BackendKind::Etcd3:
            return std::make_unique<dt::EtcdBackend>();
        case BackendKind::ConsulTestServer:
            return std::make_unique<dt::ConsulBackend>();
        case BackendKind::ConsulAgent: {
            if (!t::ConsulServer::real_consul_available()) {
                return nullptr;
            }
            t::ConsulOptions o;
            o.kind = t::ConsulKind::RealAgent;
            return std::make_unique<dt::ConsulBackend>(o);
        }
    }
    return nullptr;
}

void on_backend(BackendKind kind,
                const std::function<void(const dt::Backend&, const std::string& tag)>& body) {
    auto backend = make_backend(kind);
    if (!backend) {
        // The "SKIPPED:" prefix makes ctest report a skip (tests/e2e/CMakeLists.txt).
        WARN("SKIPPED: no `consul` binary on PATH; the real-agent tier did not run");
        return;
    }
    body(*backend, backend_tag(kind));
}

dt::NodeOptions e2e_node_options() {
    dt::NodeOptions o;
    o.ttl = 20;
    o.loop_wait = 2;
    o.retry_timeout = 5;
    return o;
}

// ---- processes -----------------------------------------------------------------------------

std::optional<ProcId> live_proc(int pid) {
    if (pid <= 0) {
        return std::nullopt;
    }
    auto s = read_stat(pid);
    if (!s || s->state == 'Z' || s->state == 'X') {
        return std::nullopt;
    }
    return ProcId{pid, s->start_time};
}

bool still_alive(const ProcId& p) {
    auto now = live_proc(p.pid);
    return now && now->start_time == p.start_time;
}

std::vector<ProcId> children_of(int pid) {
    std::vector<ProcId> out;
    for (const auto& s : all_procs()) {
        if (s.ppid == pid && s.state != 'Z' && s.state != 'X') {
            out.push_back({s.pid, s.start_time});
        }
    }
    return out;
}

struct OrphanReaper::State {
    std::mutex mu;
    std::condition_variable cv;
    bool stop = false;
    std::thread thread;
};

OrphanReaper::OrphanReaper() : state_(std::make_unique<State>()) {
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    state_->thread = std::thread([s = state_.get(), this] {
        std::unique_lock lock(s->mu);
        while (!s->stop) {
            lock.unlock();
            reap_now();
            lock.lock();
            s->cv.wait_for(lock, 100ms, [s] { return s->stop; });
        }
    });
}

OrphanReaper::~OrphanReaper() {
    {
        std::lock_guard lock(state_->mu);
        state_->stop = true;
    }
    state_->cv.notify_all();
    state_->thread.join();
    reap_now();
}

void OrphanReaper::reap_now() {
    const int me = ::getpid();
    for (const auto& s : all_procs()) {
        if (s.ppid == me && s.state == 'Z' && !spawned_by_us(s.comm)) {
            ::waitpid(s.pid, nullptr, WNOHANG);
        }
    }
}

void report(const std::string& tag, const std::string& scenario, const std::string& figures) {
    std::printf("E2E[%s] %s: %s\n", tag.c_str(), scenario.c_str(), figures.c_str());
    std::fflush(stdout);
}

// ---- the cluster ---------------------------------------------------------------------------

Cluster::Cluster(const dt::Backend& backend,
                 const std::string& scope,
                 int size,
                 dt::NodeOptions options)
    : options_(std::move(options)), root_("pgw-e2e") {
    for (int i = 1; i <= size; ++i) {
        nodes_.push_back(
            dt::make_node(root_, "node" + std::to_string(i), scope, backend, options_));
    }
    daemons_.resize(nodes_.size());
}

Cluster::~Cluster() {
    cleanup();
}

std::vector<NodeEndpoint> Cluster::endpoints() const {
    std::vector<NodeEndpoint> out;
    for (const auto& n : nodes_) {
        out.push_back({n.name, n.api_port, n.pg_port});
    }
    return out;
}

int Cluster::index_of(const std::string& name) const {
    for (int i = 0; i < size(); ++i) {
        if (node(i).name == name) {
            return i;
        }
    }
    return -1;
}

void Cluster::start_all() {
    for (int i = 0; i < size(); ++i) {
        start(i);
    }
}

void Cluster::start(int i) {
    auto& d = daemons_.at(static_cast<std::size_t>(i));
    REQUIRE_FALSE(d.running());
    d = dt::start_pgwarden(node(i));
}

bool Cluster::daemon_running(int i) {
    return daemons_.at(static_cast<std::size_t>(i)).running();
}

std::optional<int> Cluster::terminate_daemon(int i, std::chrono::milliseconds timeout) {
    auto& d = daemons_.at(static_cast<std::size_t>(i));
    if (!d.running()) {
        return d.exit_code();
    }
    d.signal(SIGTERM);
    auto code = d.wait_exit(timeout);
    if (!code) {
        d.signal(SIGKILL);
        d.wait_exit(10s);
    }
    return code;
}

void Cluster::kill_daemon(int i) {
    auto& d = daemons_.at(static_cast<std::size_t>(i));
    if (d.running()) {
        d.signal(SIGKILL);
        d.wait_exit(10s);
    }
}

std::optional<ProcId> Cluster::postmaster(int i) const {
    const int pid = dt::postmaster_pid(node(i));
    auto p = live_proc(pid);
    if (!p) {
        return std::nullopt;
    }
    // postmaster.pid can be stale and its pid reused: it must be a postgres running our data dir.
    if (read_cmdline(pid).find(node(i).data_dir().string()) == std::string::npos) {
        return std::nullopt;
    }
    return p;
}

int Cluster::kill_postmaster(int i) {
    auto pm = postmaster(i);
    if (!pm) {
        return 0;
    }
    auto children = children_of(pm->pid);
    ::kill(pm->pid, SIGKILL);
    leftovers_.insert(leftovers_.end(), children.begin(), children.end());
    t::wait_until([&] { return !still_alive(*pm); }, 10s, 10ms);
    return pm->pid;
}

void Cluster::kill9_node(int i) {
    auto pm = postmaster(i);
    std::vector<ProcId> children;
    if (pm) {
        children = children_of(pm->pid);
    }
    auto& d = daemons_.at(static_cast<std::size_t>(i));
    if (d.running()) {
        d.signal(SIGKILL);
    }
    if (pm) {
        ::kill(pm->pid, SIGKILL);
    }
    d.wait_exit(10s);
    leftovers_.insert(leftovers_.end(), children.begin(), children.end());
    if (pm) {
        t::wait_until([&] { return !still_alive(*pm); }, 10s, 10ms);
    }
}

std::vector<int> Cluster::primaries() const {
    std::vector<int> out;
    for (int i = 0; i < size(); ++i) {
        if (t::http_request("127.0.0.1", node(i).api_port, "GET", "/primary", "", {}, 2s).status ==
            200) {
            out.push_back(i);
        }
    }
    return out;
}

std::optional<int> Cluster::primary() const {
    auto p = primaries();
    if (p.size() != 1) {
        return std::nullopt;
    }
    return p.front();
}

bool Cluster::healthy() const {
    auto p = primary();
    if (!p) {
        return false;
    }
    for (int i = 0; i < size(); ++i) {
        if (i == *p) {
            continue;
        }
        if (t::http_request("127.0.0.1", node(i).api_port, "GET", "/replica", "", {}, 2s).status !=
            200) {
            return false;
        }
        auto st = dt::patroni(node(i));
        if (!st.is_object() || st.value("replication_state", "") != "streaming") {
            return false;
        }
    }
    // Still exactly the same primary after looking at the replicas.
    return primary() == p;
}

bool Cluster::wait_healthy(std::chrono::milliseconds timeout) const {
    return t::wait_until([&] { return healthy(); }, timeout, 250ms);
}

bool Cluster::wait_primary(std::chrono::milliseconds timeout) const {
    return t::wait_until([&] { return primary().has_value(); }, timeout, 250ms);
}

bool Cluster::replicas_hold_member_slots(std::string* why) const {
    auto p = primary();
    if (!p) {
        return not_yet(why, "no single primary");
    }
    for (int i = 0; i < size(); ++i) {
        if (i == *p) {
            continue;
        }
        std::string error;
        auto rows = query_rows(conninfo(i),
                               "SELECT slot_name FROM pg_replication_slots"
                               " WHERE slot_type = 'physical' AND restart_lsn IS NOT NULL",
                               &error);
        if (!rows) {
            return not_yet(why, node(i).name + ": " + error);
        }
        std::set<std::string> slots;
        for (const auto& row : *rows) {
            slots.insert(row.at(0));
        }
        for (int j = 0; j < size(); ++j) {
            if (j != i && !slots.count(node(j).name)) {
                return not_yet(why,
                               "replica " + node(i).name + " holds no slot with reserved WAL for " +
                                   node(j).name);
            }
        }
    }
    return true;
}

bool Cluster::primary_streams_to_all(std::string* why) const {
    auto p = primary();
    if (!p) {
        return not_yet(why, "no single primary");
    }
    std::string error;
    auto rows =
        query_rows(conninfo(*p), "SELECT application_name, state FROM pg_stat_replication", &error);
    if (!rows) {
        return not_yet(why, "the primary " + node(*p).name + ": " + error);
    }
    std::set<std::string> streaming;
    std::string seen;
    for (const auto& row : *rows) {
        seen += " " + row.at(0) + "=" + row.at(1);
        if (row.at(1) == "streaming") {
            streaming.insert(row.at(0));
        }
    }
    for (int i = 0; i < size(); ++i) {
        if (i != *p && !streaming.count(node(i).name)) {
            return not_yet(why,
                           "primary " + node(*p).name + " has no streaming walsender for " +
                               node(i).name +
                               "; pg_stat_replication:" + (seen.empty() ? " empty" : seen));
        }
    }
    return true;
}

bool Cluster::dcs_lists_all_members(std::string* why) const {
    auto p = primary();
    if (!p) {
        return not_yet(why, "no single primary");
    }
    auto r = t::http_request("127.0.0.1", node(*p).api_port, "GET", "/cluster", "", {}, 2s);
    auto body = dt::json::parse(r.body, nullptr, false);
    if (r.status != 200 || !body.is_object() || !body["members"].is_array()) {
        return not_yet(
            why,
            "GET /cluster on " + node(*p).name + ": " + std::to_string(r.status) + " " + r.body);
    }
    std::set<std::string> listed;
    std::vector<std::string> leaders;
    for (const auto& m : body["members"]) {
        listed.insert(m.value("name", ""));
        if (m.value("role", "") == "leader") {
            leaders.push_back(m.value("name", ""));
        }
    }
    for (const auto& n : nodes_) {
        if (!listed.count(n.name)) {
            return not_yet(why,
                           "GET /cluster on " + node(*p).name + " does not list " + n.name +
                               " (its member key is missing from the DCS): " + r.body);
        }
    }
    if (leaders != std::vector<std::string>{node(*p).name}) {
        return not_yet(
            why,
            "GET /cluster on " + node(*p).name + " does not name it the only leader: " + r.body);
    }
    return true;
}

std::string Cluster::writer_conninfo() const {
    std::string hosts;
    std::string ports;
    for (const auto& n : nodes_) {
        hosts += (hosts.empty() ? "" : ",") + std::string("127.0.0.1");
        ports += (ports.empty() ? "" : ",") + std::to_string(n.pg_port);
    }
    return "host=" + hosts + " port=" + ports +
           " dbname=postgres user=postgres password=su-secret target_session_attrs=read-write"
           " connect_timeout=2";
}

std::string Cluster::conninfo(int i) const {
    return "host=127.0.0.1 port=" + std::to_string(node(i).pg_port) +
           " dbname=postgres user=postgres password=su-secret connect_timeout=2";
}

std::string Cluster::describe() const {
    std::ostringstream out;
    for (int i = 0; i < size(); ++i) {
        const auto& n = node(i);
        const auto& d = daemons_.at(static_cast<std::size_t>(i));
        const bool up = d.pid() > 0 && !d.exit_code() && live_proc(d.pid());
        auto st = dt::patroni(n);
        out << n.name << ": pgwarden " << (up ? "running" : "not running")
            << ", /primary=" << dt::http_status(n, "/primary")
            << " /replica=" << dt::http_status(n, "/replica");
        if (st.is_object()) {
            out << ", role=" << st.value("role", "?") << " state=" << st.value("state", "?")
                << " replication_state=" << st.value("replication_state", "-");
        }
        out << ", postmaster " << (postmaster(i) ? "running" : "not running") << "\n    log "
            << n.log.string() << ": " << last_log_line(n.log) << "\n";
        // A node that is not a healthy primary or streaming replica: what PostgreSQL said last.
        const bool healthy_node =
            st.is_object() &&
            (st.value("role", "") == "primary" || st.value("replication_state", "") == "streaming");
        if (!healthy_node) {
            std::ifstream pm_log(n.dir / "data-postmaster.log");
            std::deque<std::string> tail;
            for (std::string line; std::getline(pm_log, line);) {
                tail.push_back(line.substr(0, 240));
                if (tail.size() > 8) {
                    tail.pop_front();
                }
            }
            for (const auto& line : tail) {
                out << "      | " << line << "\n";
            }
        }
    }
    return out.str();
}

void Cluster::cleanup() {
    // Daemons first: each stops its own PostgreSQL (fast mode) on SIGTERM.
    for (auto& d : daemons_) {
        if (d.running()) {
            d.stop(60s);
        }
    }
    // Postmasters that outlived their daemon (killed pgwarden): immediate shutdown by PID.
    for (int i = 0; i < size(); ++i) {
        if (auto pm = postmaster(i)) {
            auto children = children_of(pm->pid);
            leftovers_.insert(leftovers_.end(), children.begin(), children.end());
            ::kill(pm->pid, SIGQUIT);
            if (!t::wait_until([&] { return !still_alive(*pm); }, 20s, 20ms)) {
                kill_and_wait(*pm, 10s);
            }
        }
    }
    // Children of killed postmasters (backends normally exit with their postmaster).
    for (const auto& p : leftovers_) {
        kill_and_wait(p, 10s);
    }
    leftovers_.clear();
    // Anything else adopted by this (subreaper) process: orphans of our daemons.
    for (const auto& p : children_of(::getpid())) {
        auto s = read_stat(p.pid);
        if (s && !spawned_by_us(s->comm)) {
            kill_and_wait(p, 10s);
        }
    }
}

}  // namespace pgwarden::e2e
