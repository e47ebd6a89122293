// FakeDcs keeps Patroni's leader-key rules (ours = holds our name; update re-creates an absent
// key and refuses another's; acquire only when absent; delete only ours), its switches and
// counters; driven through the dcs::Dcs interface as the runtime drives it.
#include "fakes/fake_dcs.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

namespace {

namespace net = boost::asio;
using pgwarden::dcs::Dcs;
using pgwarden::dcs::Result;
using pgwarden::fakes::FakeDcs;

// The fake never suspends: one run() of a fresh io_context completes the call.
template <class T>
T run_dcs(net::awaitable<T> call) {
    net::io_context io;
    auto result = net::co_spawn(io, std::move(call), net::use_future);
    io.run();
    return result.get();
}

}  // namespace

TEST_CASE("FakeDcs: the leader key follows Patroni's compare rules", "[fakes][unit]") {
    FakeDcs fake("node1");
    Dcs& dcs = fake;

    // Acquire only when absent.
    fake.set_leader("node2");
    CHECK(run_dcs(dcs.attempt_to_acquire_leader()).value() == false);
    CHECK(run_dcs(dcs.update_leader(100)).value() == false);  // another's: lost
    CHECK(run_dcs(dcs.delete_leader(std::nullopt)).value() == false);
    CHECK(fake.cluster.leader->name == "node2");

    fake.cluster.leader.reset();
    fake.allow_acquire = false;
    CHECK(run_dcs(dcs.attempt_to_acquire_leader()).value() == false);
    fake.allow_acquire = true;
    CHECK(run_dcs(dcs.attempt_to_acquire_leader()).value() == true);
    CHECK(fake.leader_is_ours());
    CHECK(fake.cluster.leader->owner == fake.owner);

    // Ours: renewed, optime written; an absent key is re-created (Patroni's etcd3 txn).
    CHECK(run_dcs(dcs.update_leader(4096)).value() == true);
    CHECK(fake.cluster.last_lsn == 4096);
    fake.cluster.leader.reset();
    CHECK(run_dcs(dcs.update_leader(std::nullopt)).value() == true);
    CHECK(fake.leader_is_ours());

    CHECK(run_dcs(dcs.delete_leader(8192)).value() == true);
    CHECK_FALSE(fake.cluster.leader);
    CHECK(fake.cluster.last_lsn == 8192);

    CHECK(fake.acquire_calls == 3);
    CHECK(fake.update_leader_calls == 3);
    CHECK(fake.delete_leader_calls == 2);
    CHECK(fake.leader_deletes == 1);
    CHECK(fake.update_leader_lsns ==
          std::vector<std::optional<std::int64_t>>{100, 4096, std::nullopt});
}

TEST_CASE("FakeDcs: switches, member keys, CAS writes and the watch callback", "[fakes][unit]") {
    FakeDcs fake("node1");
    Dcs& dcs = fake;

    fake.fail_reads = true;
    CHECK_FALSE(run_dcs(dcs.get_cluster()).has_value());
    fake.fail_reads = false;
    fake.fail_writes = true;
    CHECK_FALSE(run_dcs(dcs.update_leader(std::nullopt)).has_value());
    CHECK_FALSE(run_dcs(dcs.touch_member("{}")).has_value());
    CHECK_FALSE(fake.cluster.leader);
    fake.fail_writes = false;
    CHECK(run_dcs(dcs.get_cluster()).has_value());
    CHECK(fake.get_cluster_calls == 2);

    CHECK(
        run_dcs(dcs.touch_member(
                    R"({"conn_url":"postgres://h:5432/postgres","api_url":"http://h:8008/patroni",)"
                    R"("state":"running","role":"primary","xlog_location":77,"timeline":2})"))
            .value());
    const auto* me = fake.cluster.member("node1");
    REQUIRE(me != nullptr);
    CHECK(me->api_url == "http://h:8008/patroni");
    CHECK(me->role == "primary");
    CHECK(me->xlog_location == 77);
    CHECK(me->timeline == 2);
    CHECK(fake.touch_member_values.size() == 2);

    CHECK(
        run_dcs(dcs.set_failover(R"({"leader":"node1","member":"node2"})", std::nullopt)).value());
    REQUIRE(fake.cluster.failover);
    CHECK(fake.cluster.failover->member == "node2");
    CHECK(run_dcs(dcs.set_failover("{}", fake.cluster.failover->version + 1)).value() == false);
    CHECK(run_dcs(dcs.set_failover("{}", fake.cluster.failover->version)).value());
    CHECK(fake.cluster.failover->empty());
    CHECK(fake.set_failover_values.size() == 3);

    int woken = 0;
    dcs.start([&woken] { ++woken; });
    fake.fire_leader_change();
    CHECK(woken == 1);

    // close_session drops every key of our lease.
    CHECK(run_dcs(dcs.attempt_to_acquire_leader()).value());
    CHECK(run_dcs(dcs.close_session()).has_value());
    CHECK_FALSE(fake.cluster.leader);
    CHECK(fake.cluster.member("node1") == nullptr);
}
