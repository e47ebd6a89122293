// ignore_slots matching (F14): a slot is left alone when every non-empty field of one matcher
// matches it, as Patroni's ignore_slots_matchers.
#include "core/node_state.hpp"

#include <catch2/catch.hpp>

using namespace pgwarden::core;

TEST_CASE("slots: ignore_slots matches every non-empty field of one entry", "[core][slots][F14]") {
    SlotMatcher by_name;
    by_name.name = "backup_tool";
    SlotMatcher logical_on_db;
    logical_on_db.type = "logical";
    logical_on_db.database = "app";
    const std::vector<SlotMatcher> ignore{by_name, logical_on_db};
    CHECK(slot_ignored(ignore, "backup_tool", "physical"));
    CHECK_FALSE(slot_ignored(ignore, "node2", "physical"));
    CHECK(slot_ignored(ignore, "cdc", "logical", "app", "pgoutput"));
    CHECK_FALSE(slot_ignored(ignore, "cdc", "logical", "other", "pgoutput"));
    CHECK_FALSE(slot_ignored(ignore, "spare", "physical", "", ""));  // no database: no match
    CHECK_FALSE(slot_ignored({}, "anything", "physical"));
    CHECK(slot_ignored({SlotMatcher{}}, "anything", "physical"));  // an empty entry matches all
}
