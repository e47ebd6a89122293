// lib/pg against a real PostgreSQL 15. Every wait is bounded; every postmaster a test starts is
// stopped by pid in the fixture's destructor. When run as root the process drops to the
// `postgres` OS user first (PostgreSQL refuses to run as root).
#define CATCH_CONFIG_RUNNER
#include "pg/config_files.hpp"
#include "pg/postgres.hpp"
#include "pg/process_runner.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <libpq-fe.h>

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace {

namespace net = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using pgwarden::pg::ConfigFiles;
using pgwarden::pg::ErrorKind;
using pgwarden::pg::Postgres;
using pgwarden::pg::Status;
using pgwarden::pg::StopMode;

// ---- tiny private helpers --------------------------------------------------------------------

unsigned short free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    ::close(fd);
    return ntohs(addr.sin_port);
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool process_alive(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto ps = pgwarden::pg::parse_proc_stat(text);
    return ps && ps->state != 'Z' && ps->state != 'X';
}

// Runs the io_context until `task` completes (bounded); rethrows its exception.
template <class T>
T run_task(net::io_context& io, net::awaitable<T> task, std::chrono::seconds limit = 120s) {
    std::optional<T> result;
    std::exception_ptr error;
    bool done = false;
    net::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
        error = e;
        if (!e) {
            result = std::move(value);
        }
        done = true;
    });
    const auto deadline = Clock::now() + limit;
    io.restart();
    while (!done && Clock::now() < deadline) {
        io.run_one_until(deadline);
    }
    REQUIRE(done);
    if (error) {
        std::rethrow_exception(error);
    }
    return std::move(*result);
}

// Runs the io_context until `pred` holds or the deadline passes.
template <class Pred>
bool run_until(net::io_context& io, Pred pred, std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    io.restart();
    while (!pred() && Clock::now() < deadline) {
        io.run_one_until(std::min(deadline, Clock::now() + 50ms));
    }
    return pred();
}

void require_ok(const Status& s) {
    if (s) {
        FAIL(s->message);
    }
}

// A temporary cluster directory; the destructor stops any postmaster left by pid and removes it.
struct TestCluster {
    fs::path root;
    unsigned short port = 0;
    pgwarden::core::Settings settings;

    TestCluster() {
        std::string tmpl = "/tmp/pgw-pg-test-XXXXXX";
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        root = tmpl;
        port = free_port();
        settings.name = "pg-test";
        settings.scope = "pgw-test";
        auto& pg = settings.postgresql;
        pg.data_dir = (root / "data").string();
        pg.listen = "127.0.0.1:" + std::to_string(port);
        pg.connect_address = pg.listen;
        pg.superuser = {"postgres", "su-'secret\\pw"};
        pg.replication = {"replicator", "rep:secret'pw"};
        pg.rewind = pgwarden::core::Credentials{"rewinder", "rw-secret"};
        pg.pgpass = (root / "pgpass").string();
        pg.pg_ctl_timeout = 60;
        settings.bootstrap.initdb_args = {"--no-sync", "--encoding=UTF8", "--locale=C"};
    }

    ~TestCluster() {
        auto pid = pgwarden::pg::parse_postmaster_pid(read_file(data_dir() / "postmaster.pid"));
        if (pid && process_alive(*pid)) {
            ::kill(*pid, SIGQUIT);  // immediate shutdown; its children follow
            auto deadline = Clock::now() + 10s;
            while (process_alive(*pid) && Clock::now() < deadline) {
                std::this_thread::sleep_for(20ms);
            }
            if (process_alive(*pid)) {
                ::kill(*pid, SIGKILL);
            }
        }
        std::error_code ec;
        fs::remove_all(root, ec);
    }

    fs::path data_dir() const { return settings.postgresql.data_dir; }

    ConfigFiles files() const {
        ConfigFiles f;
        f.parameters = {{"fsync", "off"},
                        {"max_connections", "20"},
                        {"shared_buffers", "16MB"},
                        {"wal_level", "replica"},
                        {"max_wal_senders", "5"},
                        {"hot_standby", "on"}};
        f.pg_hba = {"local all all trust",
                    "host all postgres 127.0.0.1/32 trust",
                    "host replication replicator 127.0.0.1/32 scram-sha-256",
                    "host all all 127.0.0.1/32 scram-sha-256"};
        return f;
    }

    std::string conninfo(const std::string& user,
                         const std::string& password,
                         bool replication = false) const {
        std::string s = "host=127.0.0.1 port=" + std::to_string(port) + " user=" + user +
                        " dbname=postgres connect_timeout=5";
        if (!password.empty()) {
            s += " password='";
            for (char ch : password) {
                if (ch == '\'' || ch == '\\') {
                    s += '\\';
                }
                s += ch;
            }
            s += "'";
        }
        if (replication) {
            s += " replication=true";
        }
        return s;
    }
};

// initdb + write_config + start, the common start of most tests.
void bootstrap(net::io_context& io, Postgres& pg, TestCluster& c) {
    require_ok(run_task(io, pg.initdb()));
    require_ok(run_task(io, pg.write_config(c.files())));
    require_ok(run_task(io, pg.start(60s)));
}

// Blocking libpq is fine here: the test thread is between io_context runs.
std::optional<std::string> query_one(const std::string& conninfo, const std::string& sql) {
    PGconn* conn = PQconnectdb(conninfo.c_str());
    std::optional<std::string> out;
    if (PQstatus(conn) == CONNECTION_OK) {
        PGresult* r = PQexec(conn, sql.c_str());
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
            out = PQgetvalue(r, 0, 0);
        }
        PQclear(r);
    }
    PQfinish(conn);
    return out;
}

// ---- replication helpers ---------------------------------------------------------------------

// Parameters replication tests need on top of TestCluster::files(): pg_rewind wants
// wal_log_hints and the target's WAL back to the last common checkpoint (without an archive,
// wal_keep_size keeps it: else "could not find previous WAL record" when a checkpoint recycled
// it), a logical slot (which sync_physical_slots must leave alone) wants wal_level=logical.
ConfigFiles replication_files(const TestCluster& c) {
    auto f = c.files();
    f.parameters["wal_level"] = "logical";
    f.parameters["wal_log_hints"] = "on";
    f.parameters["wal_keep_size"] = "256MB";
    f.parameters["max_replication_slots"] = "10";
    return f;
}

// `self` as a standby of `primary`, with the recovery parameters the runtime writes.
ConfigFiles standby_files(const TestCluster& self, const TestCluster& primary) {
    auto f = replication_files(self);
    f.recovery = std::map<std::string, std::string>{
        {"primary_conninfo",
         pgwarden::pg::primary_conninfo(self.settings, "127.0.0.1", primary.port)},
        {"primary_slot_name", pgwarden::pg::slot_name_from_member_name(self.settings.name)}};
    return f;
}

// observe() until `pred` holds or `limit` passes; returns the last observation.
template <class Pred>
pgwarden::core::PgObservation observe_until(net::io_context& io,
                                            Postgres& pg,
                                            Pred pred,
                                            std::chrono::seconds limit) {
    const auto deadline = Clock::now() + limit;
    for (;;) {
        auto obs = run_task(io, pg.observe());
        if (pred(obs) || Clock::now() >= deadline) {
            return obs;
        }
        run_until(
            io, [] { return false; }, 100ms);
    }
}

auto streaming_on(int timeline) {
    return [timeline](const pgwarden::core::PgObservation& o) {
        return o.query && o.query->in_recovery && o.query->replication_state == "streaming" &&
               o.query->timeline == timeline;
    };
}

auto primary_on(int timeline) {
    return [timeline](const pgwarden::core::PgObservation& o) {
        return o.query && !o.query->in_recovery && o.query->timeline == timeline;
    };
}

auto lists_standby(const std::string& name) {
    return [name](const pgwarden::core::PgObservation& o) {
        return o.query && o.query->replication_json.find("\"application_name\":\"" + name + "\"") !=
                              std::string::npos;
    };
}

std::optional<std::string> slot_names(const TestCluster& c) {
    return query_one(c.conninfo("postgres", ""),
                     "SELECT COALESCE(string_agg(slot_name, ',' ORDER BY slot_name), '') "
                     "FROM pg_replication_slots");
}

// Node A (primary) and node B (its clone), sharing one process runner as the daemon does.
struct ReplicationPair {
    net::io_context io;
    std::shared_ptr<pgwarden::pg::ProcessRunner> runner;
    TestCluster a;
    TestCluster b;
    std::unique_ptr<Postgres> pa;
    std::unique_ptr<Postgres> pb;

    ReplicationPair() {
        runner = std::make_shared<pgwarden::pg::ProcessRunner>(io.get_executor());
        a.settings.name = "node-a";
        b.settings.name = "node-b";
        pa = std::make_unique<Postgres>(io.get_executor(), a.settings, runner);
        pb = std::make_unique<Postgres>(io.get_executor(), b.settings, runner);
        // Reap what we start (a killed postmaster must not linger as a zombie).
        pa->start_supervision([] {});
    }

    void start_primary() {
        require_ok(run_task(io, pa->initdb()));
        require_ok(run_task(io, pa->write_config(replication_files(a))));
        require_ok(run_task(io, pa->start(60s)));
        require_ok(run_task(io, pa->create_roles()));
    }

    // B: slot on A, pg_basebackup, standby configuration, start, streaming on timeline 1.
    void clone_b_and_stream() {
        require_ok(run_task(io, pa->sync_physical_slots({"node_b"})));
        // --no-sync: like initdb --no-sync here, it keeps the test fast (fsynced files are slow
        // to write and to delete on a busy machine); production runs pg_basebackup with sync.
        require_ok(
            run_task(io, pb->clone_from("127.0.0.1", a.port, {"--checkpoint=fast", "--no-sync"})));
        require_ok(run_task(io, pb->write_config(standby_files(b, a))));
        require_ok(run_task(io, pb->start(60s)));
        auto obs = observe_until(io, *pb, streaming_on(1), 30s);
        INFO(obs.query_error);
        REQUIRE(streaming_on(1)(obs));
    }

    void promote_b() {
        require_ok(run_task(io, pb->promote(60s)));
        auto obs = observe_until(io, *pb, primary_on(2), 30s);
        REQUIRE(primary_on(2)(obs));
    }

    // A (rewound) follows B: slot on B, standby configuration, start, streaming on timeline 2.
    void a_follows_b() {
        require_ok(run_task(io, pb->sync_physical_slots({"node_a"})));
        require_ok(run_task(io, pa->write_config(standby_files(a, b))));
        require_ok(run_task(io, pa->start(60s)));
        auto obs = observe_until(io, *pa, streaming_on(2), 30s);
        INFO(obs.query_error);
        REQUIRE(streaming_on(2)(obs));
        auto ob = observe_until(io, *pb, lists_standby("node-a"), 10s);
        CHECK(lists_standby("node-a")(ob));
        // A has B's writes after the promotion and not its own diverged ones.
        std::optional<std::string> replayed;
        const auto deadline = Clock::now() + 10s;
        while (replayed != "t" && Clock::now() < deadline) {
            replayed = query_one(a.conninfo("postgres", ""),
                                 "SELECT to_regclass('after_promote') IS NOT NULL");
            run_until(
                io, [] { return false; }, 50ms);
        }
        CHECK(replayed == "t");
        CHECK(query_one(a.conninfo("postgres", ""), "SELECT to_regclass('diverged') IS NULL") ==
              "t");
    }
};

}  // namespace

// ---- pure helpers --------------------------------------------------------------------------

TEST_CASE("config: values are quoted for postgresql.conf", "[pg][unit]") {
    using pgwarden::pg::quote_conf_value;
    CHECK(quote_conf_value("on") == "'on'");
    CHECK(quote_conf_value("it's") == "'it''s'");
    CHECK(quote_conf_value("a\\b") == "'a\\\\b'");
    auto conf = pgwarden::pg::render_postgresql_conf(
        {{"port", "5433"}, {"primary_conninfo", "x"}},
        std::map<std::string, std::string>{{"primary_conninfo", "host=a user='u'"}},
        "postgresql.base.conf");
    CHECK(conf.find("include 'postgresql.base.conf'\n") != std::string::npos);
    CHECK(conf.find("port = '5433'\n") != std::string::npos);
    CHECK(conf.find("primary_conninfo = 'host=a user=''u'''\n") != std::string::npos);
    CHECK(conf.find("primary_conninfo = 'x'") == std::string::npos);
    CHECK(pgwarden::pg::valid_parameter_name("pg_stat_statements.track"));
    CHECK_FALSE(pgwarden::pg::valid_parameter_name("a = 'b'\nc"));
}

TEST_CASE("config: pgpass escapes colon and backslash", "[pg][unit]") {
    CHECK(pgwarden::pg::pgpass_line("u:1", "p\\w:d") == "*:*:*:u\\:1:p\\\\w\\:d\n");
    pgwarden::core::PostgresqlSettings pg;
    pg.superuser = {"postgres", "a"};
    pg.replication = {"rep", ""};
    pg.rewind = pgwarden::core::Credentials{"rw", "b"};
    CHECK(pgwarden::pg::render_pgpass(pg) == "*:*:*:postgres:a\n*:*:*:rw:b\n");
}

TEST_CASE("config: pg_controldata output, listen and proc stat are parsed", "[pg][unit]") {
    auto cd = pgwarden::pg::parse_controldata(
        "pg_control version number:            1300\n"
        "Database system identifier:           7312345678901234567\n"
        "Database cluster state:               shut down in recovery\n"
        "Latest checkpoint's TimeLineID:       3\n"
        "Latest checkpoint's PrevTimeLineID:   2\n");
    CHECK(cd.sysid == "7312345678901234567");
    CHECK(cd.cluster_state == "shut down in recovery");
    CHECK(cd.timeline == 3);
    auto la = pgwarden::pg::parse_listen("0.0.0.0, ::1:5433");
    REQUIRE(la);
    CHECK(la->listen_addresses == "0.0.0.0,::1");
    CHECK(la->port == "5433");
    CHECK(la->local_host == "127.0.0.1");
    CHECK_FALSE(pgwarden::pg::parse_listen("host:notaport"));
    auto ps = pgwarden::pg::parse_proc_stat("123 (post (gres)) Z 1 2 3");
    REQUIRE(ps);
    CHECK(ps->comm == "post (gres)");
    CHECK(ps->state == 'Z');
    CHECK(ps->ppid == 1);
    auto cleaned = pgwarden::pg::sanitize_auto_conf(
        "# comment\nwork_mem = '4MB'\nprimary_conninfo = 'host=x'\n");
    REQUIRE(cleaned);
    CHECK(*cleaned == "# comment\nwork_mem = '4MB'\n");
    CHECK_FALSE(pgwarden::pg::sanitize_auto_conf("work_mem = '4MB'\n"));
}

TEST_CASE("replication: primary_conninfo matches Patroni's format_dsn on PostgreSQL 15",
          "[pg][unit]") {
    pgwarden::core::Settings s;
    s.name = "node-b";
    s.postgresql.database = "postgres";
    s.postgresql.pgpass = "/var/lib/pgw/pgpass";
    s.postgresql.replication = {"replicator", "secret"};
    CHECK(pgwarden::pg::primary_conninfo(s, "10.0.0.1", 5433) ==
          "dbname=postgres user=replicator passfile=/var/lib/pgw/pgpass host=10.0.0.1 port=5433 "
          "sslmode=prefer application_name=node-b gssencmode=prefer channel_binding=prefer");
    // No password: no passfile; ' \ and space are escaped with a backslash (libpq syntax).
    s.postgresql.replication = {"rep user", ""};
    s.name = "it's\\me";
    CHECK(pgwarden::pg::primary_conninfo(s, "db1", 5432) ==
          "dbname=postgres user=rep\\ user host=db1 port=5432 sslmode=prefer "
          "application_name=it\\'s\\\\me gssencmode=prefer channel_binding=prefer");
    // The conninfo parses back with libpq to the same values.
    PQconninfoOption* opts =
        PQconninfoParse(pgwarden::pg::primary_conninfo(s, "db1", 5432).c_str(), nullptr);
    REQUIRE(opts != nullptr);
    std::map<std::string, std::string> parsed;
    for (auto* o = opts; o->keyword != nullptr; ++o) {
        if (o->val != nullptr) {
            parsed[o->keyword] = o->val;
        }
    }
    PQconninfoFree(opts);
    CHECK(parsed["user"] == "rep user");
    CHECK(parsed["application_name"] == "it's\\me");

    s.postgresql.replication = {"replicator", "pw"};
    CHECK(pgwarden::pg::basebackup_conninfo(s, "h", 1) ==
          "dbname=postgres user=replicator host=h port=1");
    s.postgresql.rewind = pgwarden::core::Credentials{"rewinder", "x"};
    s.postgresql.superuser = {"postgres", "y"};
    CHECK(pgwarden::pg::rewind_conninfo(s, "h", 2) ==
          "dbname=postgres user=rewinder host=h port=2 target_session_attrs=read-write");
    s.postgresql.rewind.reset();
    CHECK(pgwarden::pg::rewind_conninfo(s, "h", 2) ==
          "dbname=postgres user=postgres host=h port=2 target_session_attrs=read-write");
}

TEST_CASE("replication: slot names follow Patroni's slot_name_from_member_name", "[pg][unit]") {
    using pgwarden::pg::slot_name_from_member_name;
    CHECK(slot_name_from_member_name("Node-1.example.com") == "node_1_example_com");
    CHECK(slot_name_from_member_name("a b+c") == "au0032bu0043c");
    CHECK(slot_name_from_member_name("\xC3\xA9t\xC3\x89") == "u0233tu0233");  // "étÉ"
    CHECK(slot_name_from_member_name("\xE2\x82\xAC") == "u8364");             // "€"
    CHECK(slot_name_from_member_name("\xF0\x9F\x98\x80") == "u128512");       // emoji
    CHECK(slot_name_from_member_name(std::string(70, 'x')) == std::string(63, 'x'));
    CHECK(slot_name_from_member_name("pg_test_01") == "pg_test_01");
}

TEST_CASE("the end of a checkpoint record is read from pg_waldump output", "[pg][unit]") {
    using pgwarden::pg::parse_checkpoint_end;
    const std::string record =
        "rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, lsn: 0/014E52A8, "
        "prev 0/014E5270, desc: CHECKPOINT_SHUTDOWN redo 0/14E52A8; tli 1; shutdown\n";
    // After a clean shutdown nothing follows: pg_waldump reports where the next record is.
    CHECK(parse_checkpoint_end(record +
                                   "pg_waldump: error: error in WAL record at 0/14E52A8: invalid "
                                   "record length at 0/14E5320: wanted 24, got 0\n",
                               0x14E52A8) == 0x14E5320);
    // A record that follows gives the end too.
    CHECK(parse_checkpoint_end(
              record + "rmgr: Standby     len (rec/tot):     50/    50, tx:          0, "
                       "lsn: 0/014E5320, prev 0/014E52A8, desc: RUNNING_XACTS\n",
              0x14E52A8) == 0x14E5320);
    // Behind a page header: the record ended at the page boundary.
    CHECK(parse_checkpoint_end(record + "error in WAL record at 0/14E52A8: invalid record "
                                        "length at 0/14E6018: wanted 24, got 0\n",
                               0x14E52A8) == 0x14E6000);
    // Not the checkpoint we asked for, not a checkpoint, or nothing after it: unknown.
    CHECK_FALSE(parse_checkpoint_end(record, 0x14E5270));
    CHECK_FALSE(parse_checkpoint_end(record, 0x14E52A8));
    CHECK_FALSE(
        parse_checkpoint_end("rmgr: Heap        len (rec/tot):     54/    54, tx:        "
                             "735, lsn: 0/014E52A8, prev 0/014E5270, desc: INSERT off 2\n",
                             0x14E52A8));
    CHECK_FALSE(parse_checkpoint_end("pg_waldump: error: could not find file\n", 0x14E52A8));
}

TEST_CASE("replication: timeline history, LSNs, basebackup args and postmaster.opts parse",
          "[pg][unit]") {
    auto h = pgwarden::pg::parse_timeline_history(
        "1\t0/3000060\tno recovery target specified\n"
        "\n"
        "# comment line\n"
        "2\t1/A0000000\tbefore 2024-01-01 00:00:00+00\n"
        "bad\t0/1\tx\n"
        "3\tnot-an-lsn\tx\n");
    REQUIRE(h.size() == 2);
    CHECK(h[0].timeline == 1);
    CHECK(h[0].lsn == 0x3000060);
    CHECK(h[0].reason == "no recovery target specified");
    CHECK(h[1].timeline == 2);
    CHECK(h[1].lsn == 0x1A0000000LL);
    CHECK(pgwarden::pg::parse_lsn("16/B374D848") == 0x16B374D848LL);
    CHECK_FALSE(pgwarden::pg::parse_lsn("16B374D848"));
    CHECK(pgwarden::pg::format_lsn(0x16B374D848LL) == "16/B374D848");

    std::vector<std::string> rejected;
    auto kept = pgwarden::pg::filter_basebackup_args({"--checkpoint=fast",
                                                      "--max-rate=100M",
                                                      "--pgdata=/x",
                                                      "--compress=gzip",
                                                      "--compress=server-zstd",
                                                      "--host=evil",
                                                      "--verbose"},
                                                     &rejected);
    CHECK(kept ==
          std::vector<std::string>{
              "--checkpoint=fast", "--max-rate=100M", "--compress=server-zstd", "--verbose"});
    CHECK(rejected == std::vector<std::string>{"--pgdata=/x", "--compress=gzip", "--host=evil"});

    auto opts = pgwarden::pg::parse_postmaster_opts(
        "/usr/lib/postgresql/15/bin/postgres \"-D\" \"/data\" \"--config-file=/etc/pg.conf\" "
        "\"--port=5433\"\n");
    CHECK(opts ==
          std::map<std::string, std::string>{{"config-file", "/etc/pg.conf"}, {"port", "5433"}});
    CHECK(pgwarden::pg::build_archiver_command("cp %p /a/%f %r %% %x", "/d/pg_wal", "0001") ==
          "cp /d/pg_wal/0001 /a/0001 000000010000000000000001 % %x");

    auto rec = pgwarden::pg::with_standby_defaults(
        {{"primary_conninfo", "host=a"}, {"recovery_target_timeline", "3"}});
    CHECK(rec["recovery_target_timeline"] == "3");
    CHECK(rec["recovery_target"].empty());
    CHECK(rec.count("recovery_target_lsn") == 1);
}

// ---- process runner ------------------------------------------------------------------------

TEST_CASE("process runner: captures output and exit code, kills on timeout", "[pg]") {
    net::io_context io;
    pgwarden::pg::ProcessRunner runner(io.get_executor());
    auto r = run_task(io,
                      runner.run({"/bin/sh", "-c", "echo out; echo err >&2; echo $PGW_X; exit 3"},
                                 {{"PGW_X", "injected"}},
                                 10s));
    CHECK(r.started);
    CHECK(r.exit_code == 3);
    CHECK_FALSE(r.ok());
    CHECK(r.output.find("out") != std::string::npos);
    CHECK(r.output.find("err") != std::string::npos);
    CHECK(r.output.find("injected") != std::string::npos);

    auto t0 = Clock::now();
    auto slow = run_task(io, runner.run({"/bin/sleep", "30"}, {}, 300ms));
    CHECK(slow.timed_out);
    CHECK(Clock::now() - t0 < 10s);

    auto missing = run_task(io, runner.run({"/nonexistent/pgw-binary"}, {}, 1s));
    CHECK_FALSE(missing.started);
    CHECK(missing.output.find("/nonexistent/pgw-binary") != std::string::npos);
}

// ---- PostgreSQL ----------------------------------------------------------------------------

TEST_CASE("initdb, write_config and start give a running primary, stop fast stops it", "[pg]") {
    TestCluster c;
    net::io_context io;
    Postgres pg(io.get_executor(), c.settings);

    auto before = run_task(io, pg.observe());
    CHECK_FALSE(before.data_dir_exists);
    CHECK(before.data_dir_empty);
    CHECK_FALSE(before.postmaster_running);

    require_ok(run_task(io, pg.initdb()));
    CHECK(fs::exists(c.data_dir() / "PG_VERSION"));
    require_ok(run_task(io, pg.write_config(c.files())));

    // Patroni's layout: initdb's file became postgresql.base.conf, ours includes it.
    CHECK(fs::exists(c.data_dir() / "postgresql.base.conf"));
    auto conf = read_file(c.data_dir() / "postgresql.conf");
    CHECK(conf.find("include 'postgresql.base.conf'") != std::string::npos);
    CHECK(conf.find("port = '" + std::to_string(c.port) + "'") != std::string::npos);
    CHECK(conf.find("listen_addresses = '127.0.0.1'") != std::string::npos);
    CHECK(read_file(c.data_dir() / "pg_hba.conf").find("scram-sha-256") != std::string::npos);
    CHECK_FALSE(fs::exists(c.data_dir() / "standby.signal"));
    struct stat st {};
    REQUIRE(::stat(c.settings.postgresql.pgpass.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    auto pgpass = read_file(c.settings.postgresql.pgpass);
    CHECK(pgpass.find("*:*:*:replicator:rep\\:secret'pw\n") != std::string::npos);
    CHECK(pgpass.find("*:*:*:postgres:su-'secret\\\\pw\n") != std::string::npos);

    // Writing again keeps the base file (no double rename).
    require_ok(run_task(io, pg.write_config(c.files())));
    CHECK(read_file(c.data_dir() / "postgresql.base.conf").find("include 'postgresql.base") ==
          std::string::npos);

    require_ok(run_task(io, pg.start(60s)));
    auto log = pg.postmaster_log_file();
    CHECK(fs::path(log).parent_path() == c.root);  // next to the data directory
    CHECK(fs::exists(log));

    auto obs = run_task(io, pg.observe());
    CHECK(obs.data_dir_exists);
    CHECK_FALSE(obs.data_dir_empty);
    CHECK(obs.postmaster_running);
    INFO(obs.query_error);
    REQUIRE(obs.accepting_connections);
    REQUIRE(obs.query);
    CHECK_FALSE(obs.query->in_recovery);
    CHECK(obs.query->server_version >= 150000);
    CHECK(obs.query->timeline == 1);
    CHECK(obs.query->wal_location > 0);
    CHECK(obs.query->replication_json == "[]");
    CHECK_FALSE(obs.query->replication_state);
    CHECK(obs.query->postmaster_start_time.size() >= 19);
    REQUIRE(obs.sysid);
    CHECK(obs.sysid->size() >= 10);
    CHECK(obs.cluster_state == "in production");
    CHECK(obs.control_timeline == 1);
    CHECK(obs.checkpoint_end_lsn == 0);  // only after a clean shutdown
    REQUIRE(pg.postmaster_pid());

    // A second observe reuses the cached connection and sees WAL move after a write.
    require_ok(run_task(io, pg.execute("CREATE TABLE t AS SELECT generate_series(1, 1000) AS x")));
    auto obs2 = run_task(io, pg.observe());
    REQUIRE(obs2.query);
    CHECK(obs2.query->wal_location > obs.query->wal_location);
    CHECK(obs2.sysid == obs.sysid);

    auto sql_error = run_task(io, pg.execute("SELECT * FROM no_such_table"));
    REQUIRE(sql_error);
    CHECK(sql_error->message.find("42P01") != std::string::npos);
    CHECK(sql_error->kind == ErrorKind::SqlError);
    CHECK(sql_error->sqlstate == "42P01");
    CHECK_FALSE(pgwarden::pg::retryable(*sql_error));

    require_ok(run_task(io, pg.stop(StopMode::Fast, 60s)));
    auto t0 = Clock::now();
    auto stopped = run_task(io, pg.observe());
    CHECK(Clock::now() - t0 < 5s);
    CHECK_FALSE(stopped.postmaster_running);
    CHECK_FALSE(stopped.accepting_connections);
    CHECK_FALSE(stopped.query);
    CHECK(stopped.sysid == obs.sysid);
    CHECK(stopped.cluster_state == "shut down");
    CHECK(stopped.control_timeline == 1);
    CHECK_FALSE(pg.postmaster_pid());
    // F11 (b): the end of the shutdown checkpoint record, past its start, at or before the WAL
    // the primary had flushed plus the checkpoint record (a few hundred bytes at most).
    CHECK(stopped.checkpoint_lsn >= obs2.query->wal_location);
    CHECK(stopped.checkpoint_end_lsn > stopped.checkpoint_lsn);
    CHECK(stopped.checkpoint_end_lsn - stopped.checkpoint_lsn < 1024);

    // Statements against a stopped server fail quickly and cleanly; stop again is a no-op.
    t0 = Clock::now();
    auto refused = run_task(io, pg.execute("SELECT 1"));
    CHECK(Clock::now() - t0 < 5s);
    REQUIRE(refused);
    CHECK(refused->message.find("su-'secret") == std::string::npos);
    CHECK(refused->kind == ErrorKind::ConnectionFailed);
    CHECK(pgwarden::pg::retryable(*refused));
    require_ok(run_task(io, pg.stop(StopMode::Fast, 10s)));

    auto not_running = run_task(io, pg.promote(10s));
    REQUIRE(not_running);
    CHECK(not_running->kind == ErrorKind::NotRunning);
}

TEST_CASE("create_roles lets the replication user connect with its password", "[pg]") {
    TestCluster c;
    net::io_context io;
    Postgres pg(io.get_executor(), c.settings);
    bootstrap(io, pg, c);
    require_ok(run_task(io, pg.create_roles()));
    // Idempotent: a second run alters the existing roles.
    require_ok(run_task(io, pg.create_roles()));

    auto sysid =
        query_one(c.conninfo("replicator", c.settings.postgresql.replication.password, true),
                  "IDENTIFY_SYSTEM");
    REQUIRE(sysid);
    auto obs = run_task(io, pg.observe());
    CHECK(obs.sysid == sysid);

    CHECK_FALSE(query_one(c.conninfo("replicator", "wrong", true), "IDENTIFY_SYSTEM"));
    CHECK(query_one(c.conninfo("rewinder", "rw-secret"), "SELECT 1") == "1");
    CHECK(query_one(c.conninfo("postgres", ""),
                    "SELECT has_function_privilege('rewinder', "
                    "'pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)', "
                    "'EXECUTE')") == "t");
    CHECK(query_one(c.conninfo("postgres", ""),
                    "SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'") == "t");
    // The superuser password was set (scram verifier, never plain text).
    CHECK(query_one(c.conninfo("postgres", ""),
                    "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid "
                    "WHERE rolname = 'postgres'") == "t");

    // The observation shows a walsender while a replication connection is open.
    PGconn* rep = PQconnectdb(
        c.conninfo("replicator", c.settings.postgresql.replication.password, true).c_str());
    REQUIRE(PQstatus(rep) == CONNECTION_OK);
    auto with_sender = run_task(io, pg.observe());
    PQfinish(rep);
    REQUIRE(with_sender.query);
    // Patroni's field order is kept.
    CHECK(with_sender.query->replication_json.find(
              "[{\"usename\":\"replicator\",\"application_name\":") == 0);
}

TEST_CASE("kill -9 of the postmaster fires on_postmaster_exit and start works again", "[pg]") {
    TestCluster c;
    net::io_context io;
    Postgres pg(io.get_executor(), c.settings);
    int exits = 0;
    pg.start_supervision([&exits] { ++exits; });
    bootstrap(io, pg, c);
    auto pid = pg.postmaster_pid();
    REQUIRE(pid);
    auto running = run_task(io, pg.observe());
    REQUIRE(running.accepting_connections);

    REQUIRE(::kill(*pid, SIGKILL) == 0);
    auto t0 = Clock::now();
    REQUIRE(run_until(
        io, [&exits] { return exits == 1; }, 10s));
    CHECK(Clock::now() - t0 < 5s);
    CHECK_FALSE(process_alive(*pid));  // reaped, not a zombie

    // postmaster.pid is stale now: observe must not be fooled.
    CHECK(fs::exists(c.data_dir() / "postmaster.pid"));
    auto dead = run_task(io, pg.observe());
    CHECK_FALSE(dead.postmaster_running);
    CHECK_FALSE(dead.accepting_connections);
    CHECK(dead.sysid == running.sysid);
    CHECK_FALSE(pg.postmaster_pid());

    require_ok(run_task(io, pg.start(60s)));
    auto again = run_task(io, pg.observe());
    CHECK(again.postmaster_running);
    INFO(again.query_error);
    CHECK(again.accepting_connections);
    auto pid2 = pg.postmaster_pid();
    REQUIRE(pid2);
    CHECK(*pid2 != *pid);

    // A requested stop is reported through the callback too.
    require_ok(run_task(io, pg.stop(StopMode::Immediate, 30s)));
    CHECK(run_until(
        io, [&exits] { return exits == 2; }, 10s));
}

TEST_CASE("observe gives up at its deadline when the postmaster hangs", "[pg]") {
    TestCluster c;
    net::io_context io;
    Postgres pg(io.get_executor(), c.settings);
    bootstrap(io, pg, c);
    auto pid = pg.postmaster_pid();
    REQUIRE(pid);
    // A fresh object has no cached connection: its connect goes to the stopped postmaster.
    Postgres fresh(io.get_executor(), c.settings);
    REQUIRE(::kill(*pid, SIGSTOP) == 0);
    auto t0 = Clock::now();
    auto obs = run_task(io, fresh.observe());
    auto elapsed = Clock::now() - t0;
    ::kill(*pid, SIGCONT);
    CHECK(obs.postmaster_running);
    CHECK_FALSE(obs.accepting_connections);
    CHECK_FALSE(obs.query);
    CHECK(obs.query_error.find("timeout") != std::string::npos);
    CHECK(elapsed >= 1s);
    CHECK(elapsed < 4s);
    CHECK(obs.sysid);  // from pg_controldata when the query fails
    auto after = run_task(io, fresh.observe());
    INFO(after.query_error);
    CHECK(after.accepting_connections);
}

TEST_CASE("reload applies a changed parameter", "[pg]") {
    TestCluster c;
    net::io_context io;
    Postgres pg(io.get_executor(), c.settings);
    bootstrap(io, pg, c);
    auto files = c.files();
    files.parameters["work_mem"] = "7MB";
    require_ok(run_task(io, pg.write_config(files)));
    require_ok(run_task(io, pg.reload()));
    // The server applies SIGHUP asynchronously: poll, bounded.
    std::optional<std::string> value;
    auto deadline = Clock::now() + 10s;
    while (Clock::now() < deadline) {
        value = query_one(c.conninfo("postgres", ""), "SHOW work_mem");
        if (value == "7MB") {
            break;
        }
        run_until(
            io, [] { return false; }, 100ms);
    }
    CHECK(value == "7MB");
}

TEST_CASE("promote on a primary fails cleanly, a standby is observed and promoted", "[pg]") {
    TestCluster c;
    net::io_context io;
    Postgres pg(io.get_executor(), c.settings);
    bootstrap(io, pg, c);

    auto err = run_task(io, pg.promote(10s));
    REQUIRE(err);
    CHECK(err->kind == ErrorKind::CommandFailed);
    CHECK(err->message.find("pg_ctl promote") != std::string::npos);
    CHECK(err->message.find(c.data_dir().string()) != std::string::npos);
    CHECK(err->message.find("standby") != std::string::npos);

    // Restart as a standby without a primary: archive recovery, then promote to timeline 2.
    require_ok(run_task(io, pg.stop(StopMode::Fast, 60s)));
    auto files = c.files();
    files.recovery = std::map<std::string, std::string>{
        {"primary_conninfo", "host=127.0.0.1 port=1 user=replicator application_name=pg-test"},
        {"recovery_target_timeline", "latest"}};
    require_ok(run_task(io, pg.write_config(files)));
    CHECK(fs::exists(c.data_dir() / "standby.signal"));
    CHECK(read_file(c.data_dir() / "postgresql.conf").find("primary_conninfo = 'host=127.0.0.1") !=
          std::string::npos);
    require_ok(run_task(io, pg.start(60s)));
    auto standby = run_task(io, pg.observe());
    INFO(standby.query_error);
    REQUIRE(standby.query);
    CHECK(standby.query->in_recovery);
    CHECK(standby.query->replication_state == "in archive recovery");
    CHECK(standby.query->timeline == 1);
    CHECK(standby.query->replay_location > 0);
    CHECK(standby.cluster_state == "in archive recovery");

    require_ok(run_task(io, pg.promote(60s)));
    auto primary = run_task(io, pg.observe());
    REQUIRE(primary.query);
    CHECK_FALSE(primary.query->in_recovery);
    CHECK(primary.query->timeline == 2);

    // Back to a primary configuration: standby.signal goes away, recovery settings too.
    require_ok(run_task(io, pg.write_config(c.files())));
    CHECK_FALSE(fs::exists(c.data_dir() / "standby.signal"));
    CHECK(read_file(c.data_dir() / "postgresql.conf").find("primary_conninfo") ==
          std::string::npos);
}

TEST_CASE("start fails with a sentence naming pg_ctl, the data directory and the log", "[pg]") {
    TestCluster c;
    net::io_context io;
    Postgres pg(io.get_executor(), c.settings);
    require_ok(run_task(io, pg.initdb()));
    auto files = c.files();
    files.parameters["shared_buffers"] = "not-a-size";
    require_ok(run_task(io, pg.write_config(files)));
    auto err = run_task(io, pg.start(20s));
    REQUIRE(err);
    CHECK(err->message.find("pg_ctl start") != std::string::npos);
    CHECK(err->message.find(c.data_dir().string()) != std::string::npos);
    CHECK(err->message.find("shared_buffers") != std::string::npos);
    CHECK(err->message.size() < 5000);

    auto not_pg = Postgres(io.get_executor(), [&] {
        auto s = c.settings;
        s.postgresql.data_dir = (c.root / "nothing").string();
        return s;
    }());
    auto missing = run_task(io, not_pg.start(5s));
    REQUIRE(missing);
    CHECK(missing->kind == ErrorKind::InvalidState);
    CHECK(missing->message.find("not a PostgreSQL data directory") != std::string::npos);
}

// ---- replication -----------------------------------------------------------------------------

TEST_CASE("replication: a clone streams from the primary, slots follow sync_physical_slots",
          "[pg][replication]") {
    ReplicationPair p;
    p.start_primary();
    REQUIRE(query_one(p.a.conninfo("postgres", ""),
                      "SELECT slot_name FROM "
                      "pg_create_logical_replication_slot('logical_keep', 'pgoutput')") ==
            "logical_keep");

    // Never over a running cluster.
    auto refused = run_task(p.io, p.pa->clone_from("127.0.0.1", p.b.port, {}));
    REQUIRE(refused);
    CHECK(refused->message.find("running") != std::string::npos);

    p.clone_b_and_stream();
    struct stat st {};
    REQUIRE(::stat(p.b.data_dir().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    CHECK(fs::exists(p.b.data_dir() / "standby.signal"));
    auto conf = read_file(p.b.data_dir() / "postgresql.conf");
    CHECK(conf.find("primary_conninfo = 'dbname=postgres user=replicator passfile=" +
                    p.b.settings.postgresql.pgpass +
                    " host=127.0.0.1 port=" + std::to_string(p.a.port) +
                    " sslmode=prefer application_name=node-b") != std::string::npos);
    CHECK(conf.find("primary_slot_name = 'node_b'") != std::string::npos);
    CHECK(conf.find("recovery_target_timeline = 'latest'") != std::string::npos);
    CHECK(conf.find("port = '" + std::to_string(p.b.port) + "'") != std::string::npos);
    // The password reached pg_basebackup and the walreceiver through the pgpass file only.
    CHECK(conf.find("rep:secret") == std::string::npos);

    auto oa = observe_until(p.io, *p.pa, lists_standby("node-b"), 10s);
    CHECK(lists_standby("node-b")(oa));
    CHECK(query_one(p.a.conninfo("postgres", ""),
                    "SELECT active FROM pg_replication_slots WHERE slot_name = 'node_b'") == "t");

    require_ok(run_task(p.io, p.pa->sync_physical_slots({"node_b", "spare_1", "spare_2"})));
    CHECK(slot_names(p.a) == "logical_keep,node_b,spare_1,spare_2");
    // WAL is reserved at creation (immediately_reserve), as Patroni does.
    CHECK(query_one(p.a.conninfo("postgres", ""),
                    "SELECT restart_lsn IS NOT NULL FROM pg_replication_slots "
                    "WHERE slot_name = 'spare_1'") == "t");
    // Idempotent.
    require_ok(run_task(p.io, p.pa->sync_physical_slots({"node_b", "spare_1", "spare_2"})));
    CHECK(slot_names(p.a) == "logical_keep,node_b,spare_1,spare_2");
    // Unwanted inactive physical slots go; the active one and the logical one stay.
    require_ok(run_task(p.io, p.pa->sync_physical_slots({"spare_2"})));
    CHECK(slot_names(p.a) == "logical_keep,node_b,spare_2");
    // ignore_slots (F14): a matching slot nobody names is left alone.
    pgwarden::core::SlotMatcher keep_spare;
    keep_spare.name = "spare_2";
    require_ok(run_task(p.io, p.pa->sync_physical_slots({}, {keep_spare})));
    CHECK(slot_names(p.a) == "logical_keep,node_b,spare_2");
    require_ok(run_task(p.io, p.pa->sync_physical_slots({})));
    CHECK(slot_names(p.a) == "logical_keep,node_b");
    // A name PostgreSQL rejects is reported; the other slots are still handled.
    auto bad = run_task(p.io, p.pa->sync_physical_slots({"node_b", "Bad-Name", "ok_1"}));
    REQUIRE(bad);
    CHECK(bad->message.find("Bad-Name") != std::string::npos);
    CHECK(bad->kind == ErrorKind::SqlError);
    CHECK_FALSE(bad->sqlstate.empty());
    CHECK(slot_names(p.a) == "logical_keep,node_b,ok_1");

    // F11 (b): after a fast stop of the primary, the streaming replica has received exactly
    // up to the end of the shutdown checkpoint that observe() reports.
    require_ok(run_task(p.io, p.pa->stop(StopMode::Fast, 60s)));
    auto stopped = run_task(p.io, p.pa->observe());
    CHECK(stopped.cluster_state == "shut down");
    REQUIRE(stopped.checkpoint_end_lsn > stopped.checkpoint_lsn);
    auto received = [end = stopped.checkpoint_end_lsn](const pgwarden::core::PgObservation& o) {
        return o.query && o.query->receive_location >= end;
    };
    auto ob = observe_until(p.io, *p.pb, received, 10s);
    REQUIRE(ob.query);
    CHECK(ob.query->receive_location == stopped.checkpoint_end_lsn);
}

TEST_CASE("replication: promoted clone has a timeline history, old primary rewinds and follows",
          "[pg][replication]") {
    ReplicationPair p;
    p.start_primary();
    p.clone_b_and_stream();
    p.promote_b();

    auto history = run_task(p.io, p.pb->read_timeline_history(2));
    REQUIRE(history.has_value());
    REQUIRE(history->size() == 1);
    CHECK((*history)[0].timeline == 1);
    CHECK((*history)[0].lsn > 0);
    CHECK_FALSE((*history)[0].reason.empty());
    auto none = run_task(p.io, p.pb->read_timeline_history(1));
    REQUIRE(none.has_value());
    CHECK(none->empty());

    // The split: B writes on timeline 2, A keeps writing on timeline 1 and diverges.
    require_ok(run_task(p.io, p.pb->execute("CREATE TABLE after_promote AS SELECT 1 AS x")));
    require_ok(run_task(
        p.io, p.pa->execute("CREATE TABLE diverged AS SELECT generate_series(1, 10000) AS x")));
    require_ok(run_task(p.io, p.pa->stop(StopMode::Fast, 60s)));

    // Refused while running: B is.
    auto running = run_task(p.io, p.pb->rewind_from("127.0.0.1", p.a.port));
    REQUIRE(running);
    CHECK(running->kind == ErrorKind::Running);
    CHECK(running->message.find("running") != std::string::npos);

    require_ok(run_task(p.io, p.pa->rewind_from("127.0.0.1", p.b.port)));
    // pg_rewind copied B's files; A keeps its own configuration (its port) and has the history.
    CHECK(read_file(p.a.data_dir() / "postgresql.conf")
              .find("port = '" + std::to_string(p.a.port) + "'") != std::string::npos);
    CHECK(fs::exists(p.a.data_dir() / "pg_wal" / "00000002.history"));
    // A rewound node is a standby until told otherwise; pg_rewind's backup_label stays.
    CHECK(fs::exists(p.a.data_dir() / "standby.signal"));
    CHECK(fs::exists(p.a.data_dir() / "backup_label"));
    auto a_history = run_task(p.io, p.pa->read_timeline_history(2));
    REQUIRE(a_history.has_value());
    CHECK(a_history->size() == 1);

    p.a_follows_b();
}

TEST_CASE("replication: rewind after kill -9 runs single-user crash recovery first",
          "[pg][replication]") {
    ReplicationPair p;
    p.start_primary();
    p.clone_b_and_stream();
    p.promote_b();
    require_ok(run_task(p.io, p.pb->execute("CREATE TABLE after_promote AS SELECT 1 AS x")));
    require_ok(run_task(
        p.io, p.pa->execute("CREATE TABLE diverged AS SELECT generate_series(1, 10000) AS x")));

    auto pid = p.pa->postmaster_pid();
    REQUIRE(pid);
    REQUIRE(::kill(*pid, SIGKILL) == 0);
    REQUIRE(run_until(
        p.io, [&] { return !process_alive(*pid); }, 10s));
    auto crashed = run_task(p.io, p.pa->observe());
    CHECK_FALSE(crashed.postmaster_running);
    CHECK(crashed.cluster_state == "in production");
    CHECK(crashed.checkpoint_end_lsn == 0);  // no clean shutdown: no hand-over position

    require_ok(run_task(p.io, p.pa->rewind_from("127.0.0.1", p.b.port)));
    p.a_follows_b();
}

TEST_CASE("rewind_from a source that is down is SourceUnreachable, retryable, and changes nothing",
          "[pg][replication]") {
    TestCluster c;
    net::io_context io;
    Postgres pg(io.get_executor(), c.settings);
    bootstrap(io, pg, c);
    require_ok(run_task(io, pg.stop(StopMode::Fast, 60s)));
    auto t0 = Clock::now();
    auto err = run_task(io, pg.rewind_from("127.0.0.1", free_port()));
    REQUIRE(err);
    INFO(err->message);
    CHECK(err->kind == ErrorKind::SourceUnreachable);
    CHECK(pgwarden::pg::retryable(*err));
    CHECK(Clock::now() - t0 < 10s);
    CHECK_FALSE(fs::exists(c.data_dir() / "standby.signal"));
    CHECK(err->message.find("rw-secret") == std::string::npos);
}

TEST_CASE("clone_from fails cleanly after two attempts and leaves an empty data directory",
          "[pg][replication]") {
    TestCluster c;
    net::io_context io;
    Postgres pg(io.get_executor(), c.settings);
    fs::create_directories(c.data_dir());
    ::chmod(c.data_dir().c_str(), 0700);
    { std::ofstream(c.data_dir() / "leftover") << "partial"; }
    auto t0 = Clock::now();
    auto err = run_task(io, pg.clone_from("127.0.0.1", free_port(), {"--checkpoint=fast"}));
    auto elapsed = Clock::now() - t0;
    REQUIRE(err);
    CHECK(err->kind == ErrorKind::CommandFailed);
    CHECK(err->message.find("pg_basebackup") != std::string::npos);
    CHECK(err->message.find("rep:secret") == std::string::npos);
    CHECK(elapsed >= 5s);  // the second attempt comes 5 s after the first
    CHECK(elapsed < 30s);
    CHECK(fs::is_directory(c.data_dir()));
    CHECK(fs::is_empty(c.data_dir()));
    auto obs = run_task(io, pg.observe());
    CHECK(obs.data_dir_empty);
}

TEST_CASE("remove_data_directory refuses while running and empties a stopped one", "[pg]") {
    TestCluster c;
    c.settings.bootstrap.initdb_args.push_back("--waldir=" + (c.root / "wal").string());
    net::io_context io;
    Postgres pg(io.get_executor(), c.settings);
    bootstrap(io, pg, c);
    REQUIRE(fs::is_symlink(c.data_dir() / "pg_wal"));
    auto refused = run_task(io, pg.remove_data_directory());
    REQUIRE(refused);
    CHECK(refused->kind == ErrorKind::Running);
    CHECK(refused->message.find("running") != std::string::npos);
    CHECK(fs::exists(c.data_dir() / "PG_VERSION"));

    require_ok(run_task(io, pg.stop(StopMode::Fast, 60s)));
    require_ok(run_task(io, pg.remove_data_directory()));
    CHECK(fs::is_directory(c.data_dir()));
    CHECK(fs::is_empty(c.data_dir()));
    struct stat st {};
    REQUIRE(::stat(c.data_dir().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    // The symlinked WAL directory is emptied, the directory itself stays.
    CHECK(fs::is_directory(c.root / "wal"));
    CHECK(fs::is_empty(c.root / "wal"));
    auto obs = run_task(io, pg.observe());
    CHECK(obs.data_dir_empty);
    CHECK_FALSE(obs.sysid);
    require_ok(run_task(io, pg.remove_data_directory()));  // nothing left: still fine
}

// ---------------------------------------------------------------------------------------------

int main(int argc, char* argv[]) {
    if (::geteuid() == 0) {
        // PostgreSQL refuses to run as root: become the postgres OS user for the whole run.
        const passwd* pw = ::getpwnam("postgres");
        if (pw == nullptr) {
            std::fprintf(stderr, "pg tests: running as root and there is no 'postgres' user\n");
            return 1;
        }
        if (::initgroups(pw->pw_name, pw->pw_gid) != 0 || ::setgid(pw->pw_gid) != 0 ||
            ::setuid(pw->pw_uid) != 0) {
            std::perror("pg tests: dropping privileges to postgres");
            return 1;
        }
        ::setenv("HOME", pw->pw_dir, 1);
        ::setenv("USER", pw->pw_name, 1);
        ::setenv("LOGNAME", pw->pw_name, 1);
    }
    if (::chdir("/tmp") != 0) {
        std::perror("pg tests: chdir /tmp");
    }
    return Catch::Session().run(argc, argv);
}
