#include "dcs/cluster_codec.hpp"

#include <catch2/catch.hpp>

using namespace pgwarden;
using dcs::RawKey;
using dcs::RawKeys;

namespace {

RawKey key(std::string value, std::int64_t version = 1, std::string owner = "") {
    return RawKey{std::move(value), version, std::move(owner)};
}

}  // namespace

TEST_CASE("cluster codec: empty prefix gives an empty, unlocked cluster", "[dcs][codec]") {
    auto c = dcs::build_cluster({});
    CHECK_FALSE(c.initialize);
    CHECK_FALSE(c.config_json);
    CHECK_FALSE(c.leader);
    CHECK_FALSE(c.is_locked());
    CHECK(c.members.empty());
    CHECK_FALSE(c.failover);
    CHECK_FALSE(c.sync_json);
    CHECK_FALSE(c.history_json);
    CHECK(c.history.empty());
    CHECK_FALSE(c.last_lsn);
    CHECK(c.slots.empty());
    CHECK_FALSE(c.failsafe_json);
}

TEST_CASE("cluster codec: full cluster with every key", "[dcs][codec]") {
    RawKeys keys{
        {"initialize", key("7000000000000000001", 3)},
        {"config", key(R"({"ttl":30,"loop_wait":10})", 2)},
        {"leader", key("node1", 17, "2324035619438300175")},
        {"members/node2",
         key(R"({"conn_url":"postgres://127.0.0.2:5432/postgres","api_url":"http://127.0.0.2:8008/patroni",)"
             R"("state":"running","role":"replica","xlog_location":50331648,"replay_lsn":50331600,)"
             R"("receive_lsn":50331648,"replication_state":"streaming","timeline":2,)"
             R"("tags":{"failover_priority":3,"clonefrom":true},"version":"4.1.4"})",
             20,
             "99")},
        {"members/node1",
         key(R"({"conn_url":"postgres://127.0.0.1:5432/postgres","api_url":"http://127.0.0.1:8008/patroni",)"
             R"("state":"running","role":"primary","xlog_location":50331648,"timeline":2})",
             19,
             "2324035619438300175")},
        {"failover",
         key(R"({"leader":"node1","member":"node2","scheduled_at":"2025-01-01T00:00:00+00:00"})",
             30)},
        {"sync", key(R"({"leader":"node1","sync_standby":"node2"})", 31)},
        {"history",
         key(R"([[1,25165984,"no recovery target specified","2025-01-01T00:00:00+00:00","node1"]])",
             32)},
        {"status", key(R"({"optime":50331648,"slots":{"node2":50331600,"bad":"x"}})", 33)},
        {"optime/leader", key("1", 34)},
        {"failsafe", key(R"({"node1":"http://127.0.0.1:8008/patroni"})", 35)},
    };
    auto c = dcs::build_cluster(keys);

    REQUIRE(c.initialize);
    CHECK(*c.initialize == "7000000000000000001");
    CHECK(c.sysid_valid());
    REQUIRE(c.config_json);
    CHECK(c.config_version == 2);

    REQUIRE(c.leader);
    CHECK(c.leader->name == "node1");
    CHECK(c.leader->version == 17);
    CHECK(c.leader->owner == "2324035619438300175");
    CHECK(c.is_locked());

    REQUIRE(c.members.size() == 2);
    CHECK(c.members[0].name == "node1");  // sorted by name
    CHECK(c.members[1].name == "node2");
    const auto* n2 = c.member("node2");
    REQUIRE(n2);
    CHECK(n2->conn_url == "postgres://127.0.0.2:5432/postgres");
    CHECK(n2->api_url == "http://127.0.0.2:8008/patroni");
    CHECK(n2->state == "running");
    CHECK(n2->role == "replica");
    CHECK(n2->xlog_location == 50331648);
    CHECK(n2->replay_lsn == 50331600);
    CHECK(n2->receive_lsn == 50331648);
    CHECK(n2->replication_state == "streaming");
    CHECK(n2->timeline == 2);
    CHECK_FALSE(n2->nofailover);
    CHECK(n2->failover_priority == 3);
    CHECK(n2->clonefrom);
    CHECK(n2->version == 20);
    CHECK(n2->owner == "99");
    CHECK(n2->data_json.find("\"version\":\"4.1.4\"") != std::string::npos);

    const auto* n1 = c.member("node1");
    REQUIRE(n1);
    CHECK_FALSE(n1->replay_lsn);
    CHECK_FALSE(n1->replication_state);
    CHECK(n1->failover_priority == 1);

    REQUIRE(c.failover);
    CHECK(c.failover->leader == "node1");
    CHECK(c.failover->member == "node2");
    CHECK(c.failover->scheduled_at == "2025-01-01T00:00:00+00:00");
    CHECK(c.failover->version == 30);

    REQUIRE(c.sync_json);
    CHECK(c.sync_version == 31);

    REQUIRE(c.history.size() == 1);
    CHECK(c.history[0].timeline == 1);
    CHECK(c.history[0].lsn == 25165984);
    CHECK(c.history[0].reason == "no recovery target specified");
    CHECK(c.history[0].timestamp == "2025-01-01T00:00:00+00:00");
    CHECK(c.history[0].new_leader == "node1");

    CHECK(c.last_lsn == 50331648);  // status wins over legacy optime/leader
    REQUIRE(c.slots.size() == 1);
    CHECK(c.slots.at("node2") == 50331600);
    REQUIRE(c.failsafe_json);
}

TEST_CASE("cluster codec: malformed member value gives a member with empty fields",
          "[dcs][codec]") {
    auto c = dcs::build_cluster({{"members/broken", key("{not json", 5, "7")},
                                 {"members/array", key("[1,2]", 6)},
                                 {"members/nested/too/deep", key("{}", 7)}});
    REQUIRE(c.members.size() == 2);
    const auto* m = c.member("broken");
    REQUIRE(m);
    CHECK(m->conn_url.empty());
    CHECK(m->api_url.empty());
    CHECK(m->role.empty());
    CHECK(m->data_json == "{}");
    CHECK(m->version == 5);
    CHECK(m->owner == "7");
    CHECK_FALSE(m->xlog_location);
    REQUIRE(c.member("array"));
    CHECK(c.member("array")->data_json == "{}");
}

TEST_CASE("cluster codec: wrongly typed member fields are ignored", "[dcs][codec]") {
    auto m = dcs::parse_member(
        "n", key(R"({"conn_url":5,"role":["x"],"xlog_location":"123","timeline":"x","tags":[]})"));
    CHECK(m.conn_url.empty());
    CHECK(m.role.empty());
    CHECK(m.xlog_location == 123);  // numeric strings are accepted as Python int() does
    CHECK_FALSE(m.timeline);
    CHECK(m.failover_priority == 1);
}

TEST_CASE("cluster codec: legacy member value is a connection string", "[dcs][codec]") {
    auto m = dcs::parse_member("old",
                               key("postgres://replicator:pw@10.0.0.1:5432/"
                                   "postgres?application_name=http%3A//10.0.0.1%3A8008/patroni"));
    CHECK(m.conn_url == "postgres://replicator:pw@10.0.0.1:5432/postgres");
    CHECK(m.api_url == "http://10.0.0.1:8008/patroni");
}

TEST_CASE("cluster codec: nofailover and failover_priority follow Patroni's Tags", "[dcs][codec]") {
    SECTION("nofailover true forces priority 0") {
        auto m =
            dcs::parse_member("n", key(R"({"tags":{"nofailover":true,"failover_priority":5}})"));
        CHECK(m.nofailover);
        CHECK(m.failover_priority == 0);
    }
    SECTION("nofailover false keeps the priority") {
        auto m =
            dcs::parse_member("n", key(R"({"tags":{"nofailover":false,"failover_priority":5}})"));
        CHECK_FALSE(m.nofailover);
        CHECK(m.failover_priority == 5);
    }
    SECTION("priority 0 without nofailover means nofailover") {
        auto m = dcs::parse_member("n", key(R"({"tags":{"failover_priority":0}})"));
        CHECK(m.nofailover);
        CHECK(m.failover_priority == 0);
    }
    SECTION("clonefrom false") {
        auto m = dcs::parse_member("n", key(R"({"tags":{"clonefrom":false}})"));
        CHECK_FALSE(m.clonefrom);
    }
}

TEST_CASE("cluster codec: failover key forms", "[dcs][codec]") {
    SECTION("json with member as candidate") {
        auto f = dcs::parse_failover(key(R"({"member":"node3"})", 9));
        CHECK_FALSE(f.leader);
        CHECK(f.member == "node3");
        CHECK(f.version == 9);
        CHECK_FALSE(f.empty());
    }
    SECTION("legacy leader:candidate") {
        auto f = dcs::parse_failover(key("node1:node2"));
        CHECK(f.leader == "node1");
        CHECK(f.member == "node2");
    }
    SECTION("legacy leader only") {
        auto f = dcs::parse_failover(key("node1"));
        CHECK(f.leader == "node1");
        CHECK_FALSE(f.member);
    }
    SECTION("emptied failover key {} is present but empty") {
        auto c = dcs::build_cluster({{"failover", key("{}", 4)}});
        REQUIRE(c.failover);
        CHECK(c.failover->empty());
        CHECK(c.failover->version == 4);
    }
    SECTION("non-object JSON") {
        auto f = dcs::parse_failover(key("[1]"));
        CHECK(f.empty());
    }
}

TEST_CASE("cluster codec: history rows with 3 to 5 fields, bad rows skipped", "[dcs][codec]") {
    auto h = dcs::parse_history(
        R"([[1,100,"r1"],[2,200,"r2","2025-01-01T00:00:00Z"],[3,300,"r3","ts","n3"],)"
        R"([4,"x","bad lsn"],[5],"junk",[6,600,"r6",null,null]])");
    REQUIRE(h.size() == 4);
    CHECK(h[0].timeline == 1);
    CHECK(h[0].lsn == 100);
    CHECK_FALSE(h[0].timestamp);
    CHECK_FALSE(h[0].new_leader);
    CHECK(h[1].timestamp == "2025-01-01T00:00:00Z");
    CHECK(h[2].new_leader == "n3");
    CHECK(h[3].timeline == 6);
    CHECK_FALSE(h[3].timestamp);

    CHECK(dcs::parse_history("not json").empty());
    CHECK(dcs::parse_history(R"({"a":1})").empty());
}

TEST_CASE("cluster codec: status and legacy optime fallback", "[dcs][codec]") {
    SECTION("legacy optime/leader used when status is missing") {
        auto c = dcs::build_cluster({{"optime/leader", key("67108864")}});
        CHECK(c.last_lsn == 67108864);
    }
    SECTION("malformed status gives no lsn and does not fall back") {
        auto c = dcs::build_cluster({{"status", key("{bad")}, {"optime/leader", key("5")}});
        CHECK_FALSE(c.last_lsn);
    }
    SECTION("status as a bare number (old writer)") {
        auto s = dcs::parse_status("123");
        CHECK(s.optime == 123);
    }
    SECTION("status without slots") {
        auto s = dcs::parse_status(R"({"optime":"77"})");
        CHECK(s.optime == 77);
        CHECK(s.slots.empty());
    }
    SECTION("make_status_json round-trips") {
        auto s = dcs::parse_status(dcs::make_status_json(4242));
        CHECK(s.optime == 4242);
    }
}

TEST_CASE("cluster codec: initialize in progress and empty leader value", "[dcs][codec]") {
    auto c = dcs::build_cluster({{"initialize", key("")}, {"leader", key("", 3)}});
    REQUIRE(c.initialize);
    CHECK(c.initialize->empty());
    CHECK_FALSE(c.sysid_valid());
    REQUIRE(c.leader);
    CHECK_FALSE(c.is_locked());
}
