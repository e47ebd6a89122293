// Physical replication slots: the leader keeps exactly the wanted ones, a replica advances
// the ones it keeps for a promotion.
#include "core/node_state.hpp"
#include "pg/postgres_impl.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace pgwarden::pg {

namespace net = boost::asio;
using Clock = std::chrono::steady_clock;
using detail::pq_error;

Task<Status> Postgres::advance_physical_slots(std::vector<std::string> names) {
    Impl& d = *impl_;
    std::string array = "{";
    for (std::size_t i = 0; i < names.size(); ++i) {
        array += (i ? ",\"" : "\"") + names[i] + "\"";
    }
    array += "}";
    std::vector<std::optional<std::string>> params;
    params.emplace_back(std::move(array));
    auto out = co_await d.cached_query(
        "SELECT pg_catalog.count(pg_catalog.pg_replication_slot_advance(slot_name,"
        " pg_catalog.pg_last_wal_replay_lsn()))"
        " FROM pg_catalog.pg_replication_slots"
        " WHERE slot_type = 'physical' AND NOT active AND restart_lsn IS NOT NULL"
        " AND pg_catalog.pg_is_in_recovery()"
        " AND restart_lsn < pg_catalog.pg_last_wal_replay_lsn() AND slot_name = ANY($1::text[])",
        std::move(params));
    if (out.error) {
        co_return pq_error("could not advance the replication slots", *out.error);
    }
    co_return std::nullopt;
}

Task<Status> Postgres::sync_physical_slots(std::vector<std::string> names,
                                           std::vector<core::SlotMatcher> ignore) {
    Impl& d = *impl_;
    auto deadline = Clock::now() + std::chrono::seconds(30);
    PqConnection c(d.ex);
    if (auto err = co_await d.connect_fresh(&c, deadline)) {
        co_return pq_error("sync_physical_slots: could not connect to PostgreSQL for " + d.where(),
                           *err);
    }
    auto existing = co_await c.query(
        "SELECT slot_name, slot_type, active::int FROM pg_catalog.pg_replication_slots",
        {},
        deadline);
    if (existing.error) {
        co_return pq_error("sync_physical_slots: could not list replication slots",
                           *existing.error);
    }
    std::map<std::string, bool> physical;  // name -> active
    for (const auto& row : existing.result.rows) {
        if (row.size() >= 3 && row[0] && row[1] == "physical") {
            physical[*row[0]] = row[2] == "1";
        }
    }
    // Every failure is reported; the first one gives the kind and SQLSTATE.
    std::optional<PgError> failed;
    auto fail = [&failed](const std::string& what, const PqError& e) {
        PgError err = pq_error(what, e);
        if (failed) {
            failed->message += "; " + err.message;
        } else {
            failed = std::move(err);
        }
    };
    // Drop physical slots nobody wants any more (Patroni slots.py drop_replication_slot: only
    // when not active; an active one is retried next time).
    for (const auto& [name, active] : physical) {
        if (std::find(names.begin(), names.end(), name) != names.end() ||
            core::slot_ignored(ignore, name, "physical")) {
            continue;
        }
        if (active) {
            spdlog::warn("pg: unable to drop replication slot '{}', slot is active", name);
            continue;
        }
        std::vector<std::optional<std::string>> params;
        params.emplace_back(name);
        auto out = co_await c.query(
            "WITH slots AS (SELECT slot_name, active FROM pg_catalog.pg_replication_slots"
            " WHERE slot_name = $1 AND slot_type = 'physical'),"
            " dropped AS (SELECT pg_catalog.pg_drop_replication_slot(slot_name), true AS dropped"
            " FROM slots WHERE NOT active)"
            " SELECT active::int, COALESCE(dropped, false)::int FROM slots"
            " FULL OUTER JOIN dropped ON true",
            std::move(params),
            deadline);
        if (out.error) {
            fail("could not drop replication slot '" + name + "'", *out.error);
        } else if (!out.result.rows.empty() && out.result.rows[0].size() >= 2 &&
                   out.result.rows[0][1] == "1") {
            spdlog::info("pg: dropped replication slot '{}'", name);
        } else {
            spdlog::warn("pg: unable to drop replication slot '{}', slot is active", name);
        }
    }
    // Create the missing ones, reserving WAL at once (Patroni: immediately_reserve on 9.6+).
    for (const auto& name : names) {
        if (physical.contains(name)) {
            continue;
        }
        std::vector<std::optional<std::string>> params;
        params.emplace_back(name);
        auto out = co_await c.query(
            "SELECT pg_catalog.pg_create_physical_replication_slot($1, true)"
            " WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots"
            " WHERE slot_type = 'physical' AND slot_name = $1)",
            std::move(params),
            deadline);
        if (out.error) {
            fail("could not create physical replication slot '" + name + "'", *out.error);
        } else {
            spdlog::info("pg: created physical replication slot '{}'", name);
        }
    }
    if (failed) {
        co_return detail::with_prefix("sync_physical_slots for " + d.where() + ": ",
                                      std::move(*failed));
    }
    co_return std::nullopt;
}

}  // namespace pgwarden::pg
