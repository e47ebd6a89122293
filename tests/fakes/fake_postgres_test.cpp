// FakePostgres behaves like the small PostgreSQL it models and keeps its switches and
// counters; driven through the PgControl interface as the runtime will drive it.
#include "fakes/fake_postgres.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

namespace {

namespace net = boost::asio;
using pgwarden::fakes::FakePostgres;
using pgwarden::fakes::PgOp;
using pgwarden::pg::ErrorKind;
using pgwarden::pg::PgControl;
using pgwarden::pg::StopMode;
using namespace std::chrono_literals;

// Runs one awaitable to completion; the fake never suspends, so one run() is enough.
template <class T>
T run(net::awaitable<T> task) {
    net::io_context io;
    std::optional<T> out;
    net::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
        if (e) {
            std::rethrow_exception(e);
        }
        out = std::move(value);
    });
    io.run();
    REQUIRE(out);
    return std::move(*out);
}

pgwarden::pg::PgError timeout_error() {
    pgwarden::pg::PgError e;
    e.kind = ErrorKind::Timeout;
    e.message = "pg_ctl start timed out";
    return e;
}

}  // namespace

TEST_CASE("fake postgres: bootstrap, fast stop reports the end of the shutdown checkpoint",
          "[fakes]") {
    FakePostgres fake;
    PgControl& pg = fake;
    auto empty = run(pg.observe());
    CHECK(empty.data_dir_empty);
    CHECK_FALSE(empty.postmaster_running);

    CHECK_FALSE(run(pg.initdb()));
    CHECK_FALSE(run(pg.write_config({})));
    CHECK_FALSE(run(pg.start(10s)));
    auto primary = run(pg.observe());
    REQUIRE(primary.query);
    CHECK_FALSE(primary.query->in_recovery);
    CHECK(primary.query->timeline == 1);
    CHECK(primary.checkpoint_end_lsn == 0);

    CHECK_FALSE(run(pg.execute("CHECKPOINT")));
    CHECK(fake.executed == std::vector<std::string>{"CHECKPOINT"});

    CHECK_FALSE(run(pg.stop(StopMode::Fast, 10s)));
    auto stopped = run(pg.observe());
    CHECK(stopped.cluster_state == "shut down");
    CHECK(stopped.checkpoint_end_lsn > stopped.checkpoint_lsn);
    CHECK(stopped.checkpoint_lsn >= primary.query->wal_location);
    CHECK(fake.count(PgOp::Start) == 1);
    CHECK(fake.count(PgOp::Stop) == 1);
    CHECK(fake.count(PgOp::Observe) == 3);

    auto refused = run(pg.execute("SELECT 1"));
    REQUIRE(refused);
    CHECK(refused->kind == ErrorKind::ConnectionFailed);
}

TEST_CASE("fake postgres: fail_next fails exactly the next calls, in order", "[fakes]") {
    FakePostgres fake;
    PgControl& pg = fake;
    CHECK_FALSE(run(pg.initdb()));
    fake.fail_next(PgOp::Start, timeout_error());
    auto rewind_failed = timeout_error();
    rewind_failed.kind = ErrorKind::SourceUnreachable;
    fake.fail_next(PgOp::Start, rewind_failed);

    auto first = run(pg.start(10s));
    REQUIRE(first);
    CHECK(first->kind == ErrorKind::Timeout);
    CHECK(pgwarden::pg::retryable(*first));
    CHECK_FALSE(fake.running);
    auto second = run(pg.start(10s));
    REQUIRE(second);
    CHECK(second->kind == ErrorKind::SourceUnreachable);
    CHECK_FALSE(run(pg.start(10s)));
    CHECK(fake.running);
    CHECK(fake.count(PgOp::Start) == 3);
}

TEST_CASE("fake postgres: a standby is promoted to the next timeline with a history line",
          "[fakes]") {
    FakePostgres fake;
    PgControl& pg = fake;
    bool exited = false;
    pg.start_supervision([&exited] { exited = true; });

    CHECK_FALSE(run(pg.clone_from("10.0.0.1", 5432, {})));
    REQUIRE(fake.clone_source);
    CHECK(fake.clone_source->first == "10.0.0.1");
    pgwarden::pg::ConfigFiles standby;
    standby.recovery = std::map<std::string, std::string>{{"primary_conninfo", "host=10.0.0.1"}};
    CHECK_FALSE(run(pg.write_config(standby)));
    CHECK_FALSE(run(pg.start(10s)));
    auto replica = run(pg.query_status());
    REQUIRE(replica);
    CHECK(replica->in_recovery);

    CHECK_FALSE(run(pg.promote(10s)));
    auto promoted = run(pg.observe());
    REQUIRE(promoted.query);
    CHECK_FALSE(promoted.query->in_recovery);
    CHECK(promoted.query->timeline == 2);
    auto history = run(pg.read_timeline_history(2));
    REQUIRE(history.has_value());
    REQUIRE(history->size() == 1);
    CHECK((*history)[0].timeline == 1);

    auto again = run(pg.promote(10s));
    REQUIRE(again);
    CHECK(again->kind == ErrorKind::CommandFailed);
    CHECK_FALSE(pgwarden::pg::retryable(*again));

    fake.crash();
    CHECK(exited);
    auto crashed = run(pg.observe());
    CHECK(crashed.cluster_state == "in production");
    CHECK(crashed.checkpoint_end_lsn == 0);
    auto removed = run(pg.remove_data_directory());
    CHECK_FALSE(removed);
    CHECK(run(pg.observe()).data_dir_empty);
}
