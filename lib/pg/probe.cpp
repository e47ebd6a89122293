// Observation of the local PostgreSQL: pg_controldata (+ pg_waldump for the end of a shutdown
// checkpoint), the status query on a cached connection, observe() and query_status().
#include "pg/postgres_impl.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <charconv>

namespace pgwarden::pg {

namespace net = boost::asio;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// The status query (one round trip). Columns are read by index below; LSNs are int64 bytes.
constexpr const char* kStatusColumns = R"SQL(
SELECT pg_catalog.pg_is_in_recovery()::int,
       pg_catalog.current_setting('server_version_num')::int,
       CASE WHEN pg_catalog.pg_is_in_recovery()
            THEN COALESCE((SELECT received_tli FROM pg_catalog.pg_stat_wal_receiver
                           WHERE status = 'streaming' LIMIT 1),
                          (pg_catalog.pg_control_checkpoint()).timeline_id)
            ELSE ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name(
                      pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int
       END,
       pg_catalog.to_char(pg_catalog.pg_postmaster_start_time(),
                          'YYYY-MM-DD HH24:MI:SS.US') ||
         pg_catalog.to_char(pg_catalog.pg_postmaster_start_time(), 'TZH:TZM'),
       CASE WHEN pg_catalog.pg_is_in_recovery() THEN 0
            ELSE pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_flush_lsn(), '0/0')::bigint
       END,
       COALESCE(pg_catalog.pg_wal_lsn_diff(
                    COALESCE((SELECT written_lsn FROM pg_catalog.pg_stat_wal_receiver LIMIT 1),
                             pg_catalog.pg_last_wal_receive_lsn()), '0/0')::bigint, 0),
       COALESCE(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_replay_lsn(), '0/0')::bigint, 0),
       pg_catalog.to_char(pg_catalog.pg_last_xact_replay_timestamp(),
                          'YYYY-MM-DD HH24:MI:SS.US') ||
         pg_catalog.to_char(pg_catalog.pg_last_xact_replay_timestamp(), 'TZH:TZM'),
       CASE WHEN pg_catalog.pg_is_in_recovery()
            THEN pg_catalog.pg_is_wal_replay_paused()::int ELSE 0 END,
       CASE WHEN pg_catalog.pg_is_in_recovery()
            THEN CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_stat_wal_receiver
                                   WHERE status = 'streaming')
                      THEN 'streaming' ELSE 'in archive recovery' END
       END,
       (SELECT COALESCE(pg_catalog.json_agg(r), '[]'::json)
          FROM (SELECT usename, application_name, client_addr, state, sync_state, sync_priority
                  FROM pg_catalog.pg_stat_replication ORDER BY pid) r)::text,
       COALESCE((SELECT pg_catalog.pg_wal_lsn_diff(latest_end_lsn, '0/0')::bigint
                   FROM pg_catalog.pg_stat_wal_receiver LIMIT 1), 0),
       (pg_catalog.pg_control_system()).system_identifier::text,
       (pg_catalog.pg_control_checkpoint()).timeline_id,
)SQL";
// Column 14: parameters waiting for a restart (reads pg_file_settings, which parses the
// configuration files: not for the per-request fresh query).
constexpr const char* kPendingRestartColumn = R"SQL(
       (SELECT COALESCE(pg_catalog.json_object_agg(s.name, pg_catalog.json_build_object(
                   'old_value', s.setting, 'new_value', COALESCE(f.setting, ''))), '{}'::json)
          FROM pg_catalog.pg_settings s
          LEFT JOIN LATERAL (SELECT fs.setting FROM pg_catalog.pg_file_settings fs
                              WHERE fs.name = s.name AND fs.error IS NULL
                              ORDER BY fs.seqno DESC LIMIT 1) f ON true
         WHERE s.pending_restart)::text
)SQL";
const std::string kStatusQuery = std::string(kStatusColumns) + kPendingRestartColumn;
const std::string kFreshStatusQuery = std::string(kStatusColumns) + "       NULL::text";

std::int64_t to_i64(const std::optional<std::string>& v) {
    if (!v) {
        return 0;
    }
    std::int64_t x = 0;
    std::from_chars(v->data(), v->data() + v->size(), x);
    return x;
}

int to_int(const std::optional<std::string>& v) {
    return static_cast<int>(to_i64(v));
}

bool clean_shutdown(const std::string& cluster_state) {
    return cluster_state == "shut down" || cluster_state == "shut down in recovery";
}

std::map<std::string, std::string> c_locale_env() {
    std::map<std::string, std::string> env;
    env["LC_ALL"] = "C";
    env["LANG"] = "C";
    env["LANGUAGE"] = "C";
    return env;
}

}  // namespace

namespace detail {

net::awaitable<void> AsyncLock::lock() {
    while (locked_) {
        auto t = std::make_shared<net::steady_timer>(ex_, Clock::time_point::max());
        waiters_.push_back(t);
        co_await t->async_wait(net::as_tuple(net::use_awaitable));
    }
    locked_ = true;
}

void AsyncLock::unlock() {
    locked_ = false;
    while (!waiters_.empty()) {
        auto w = waiters_.front().lock();
        waiters_.pop_front();
        if (w) {
            w->cancel();
            break;
        }
    }
}

}  // namespace detail

net::awaitable<std::optional<ControlData>> Postgres::Impl::controldata() {
    if (!fs::exists(data_dir() / "global" / "pg_control")) {
        co_return std::nullopt;
    }
    std::vector<std::string> argv;
    argv.push_back(bin("pg_controldata"));
    argv.push_back("-D");
    argv.push_back(data_dir().string());
    auto r = co_await run(std::move(argv), c_locale_env(), std::chrono::seconds(30));
    if (!r.ok()) {
        spdlog::warn("pg: {}", command_error("pg_controldata", r).message);
        co_return std::nullopt;
    }
    co_return parse_controldata(r.output);
}

// Patroni reads the shutdown checkpoint record with pg_waldump: its end is the last byte a
// replica must have received to have everything the stopped primary wrote (F11 b).
net::awaitable<std::int64_t> Postgres::Impl::checkpoint_end(ControlData cd) {
    if (!clean_shutdown(cd.cluster_state) || cd.checkpoint_lsn <= 0 || cd.timeline <= 0) {
        co_return 0;
    }
    const auto key = std::make_pair(cd.timeline, cd.checkpoint_lsn);
    if (checkpoint_end_cache && checkpoint_end_cache->first == key) {
        co_return checkpoint_end_cache->second;
    }
    std::vector<std::string> argv;
    argv.push_back(bin("pg_waldump"));
    argv.push_back("-p");
    argv.push_back((data_dir() / "pg_wal").string());
    argv.push_back("-t");
    argv.push_back(std::to_string(cd.timeline));
    argv.push_back("-s");
    argv.push_back(format_lsn(cd.checkpoint_lsn));
    argv.push_back("-n");
    argv.push_back("2");
    // Exits non-zero when no second record follows (the usual case after a shutdown).
    auto r = co_await run(std::move(argv), c_locale_env(), std::chrono::seconds(30));
    auto end = r.started && !r.timed_out
                   ? parse_checkpoint_end(
                         r.output, cd.checkpoint_lsn, cd.wal_block_size, cd.wal_segment_size)
                   : std::nullopt;
    if (!end) {
        spdlog::warn(
            "pg: could not find the end of the checkpoint record at {} with pg_waldump "
            "({}): {}",
            format_lsn(cd.checkpoint_lsn),
            r.describe(),
            output_tail(r.output, 512));
        co_return 0;  // not cached: a later observation tries again
    }
    checkpoint_end_cache = std::make_pair(key, *end);
    co_return *end;
}

net::awaitable<PqOutcome> Postgres::Impl::status_query(bool with_pending_restart) {
    co_return co_await cached_query(with_pending_restart ? kStatusQuery : kFreshStatusQuery, {});
}

// One statement on the cached connection (short deadline, one reconnect attempt).
net::awaitable<PqOutcome> Postgres::Impl::cached_query(
    std::string sql, std::vector<std::optional<std::string>> params) {
    co_await conn_lock.lock();
    detail::Unlocker unlock{conn_lock};
    auto deadline = Clock::now() + detail::kQueryDeadline;
    bool reused = conn.connected();
    if (!reused) {
        if (auto err = co_await conn.connect(conn_params(), deadline)) {
            co_return PqOutcome{err, {}};
        }
    }
    auto out = co_await conn.query(sql, params, deadline);
    if (out.error && reused && !conn.connected()) {
        // The cached connection died (e.g. after a restart): one fresh attempt.
        if (auto err = co_await conn.connect(conn_params(), deadline)) {
            co_return PqOutcome{err, {}};
        }
        out = co_await conn.query(std::move(sql), std::move(params), deadline);
    }
    co_return out;
}

// The status query's row as a PgQueryResult (nullopt on an error or a short row); also
// remembers the system identifier.
std::optional<core::PgQueryResult> Postgres::Impl::parse_status(const PqOutcome& out) {
    if (out.error || out.result.rows.empty() || out.result.rows[0].size() < 15) {
        return std::nullopt;
    }
    const auto& row = out.result.rows[0];
    core::PgQueryResult q;
    q.in_recovery = to_int(row[0]) != 0;
    q.server_version = to_int(row[1]);
    q.timeline = to_int(row[2]);
    q.postmaster_start_time = row[3].value_or("");
    q.wal_location = to_i64(row[4]);
    q.replay_location = to_i64(row[6]);
    q.receive_location = to_i64(row[5]);
    if (q.receive_location == 0) {
        q.receive_location = q.replay_location;
    }
    q.replayed_timestamp = row[7];
    q.replay_paused = to_int(row[8]) != 0;
    q.replication_state = row[9];
    auto json = nlohmann::ordered_json::parse(row[10].value_or("[]"), nullptr, false);
    q.replication_json = json.is_discarded() || !json.is_array() ? "[]" : json.dump();
    q.latest_end_lsn = to_i64(row[11]);
    if (row[12]) {
        sysid = *row[12];
    }
    q.pending_restart_json = row[14].value_or("{}");
    return q;
}

Task<core::PgObservation> Postgres::observe() {
    Impl& d = *impl_;
    core::PgObservation obs;
    std::error_code ec;
    const fs::path dd = d.data_dir();
    obs.data_dir_exists = fs::is_directory(dd, ec);
    if (obs.data_dir_exists) {
        fs::directory_iterator it(dd, ec);
        if (ec) {
            spdlog::warn("pg: cannot read {}: {}", dd.string(), ec.message());
            obs.data_dir_empty = false;  // unreadable is not "empty": never bootstrap over it
        } else {
            obs.data_dir_empty = it == fs::directory_iterator();
        }
    }
    if (!fs::exists(dd / "global" / "pg_control", ec)) {
        d.sysid.reset();
    }

    auto pc = d.check_postmaster();
    obs.postmaster_running = pc.alive;
    if (pc.alive && pc.pid) {
        d.track_postmaster(*pc.pid, pc.our_child);
    } else if (d.pm_pid && !d.pm_watched) {
        // Not our child: its exit cannot arrive through SIGCHLD, so report it from here.
        d.postmaster_exited(*d.pm_pid, std::nullopt);
    }

    bool need_controldata = !pc.alive || !d.sysid;
    if (pc.alive) {
        auto out = co_await d.status_query(/*with_pending_restart=*/true);
        auto parsed = d.parse_status(out);
        if (!parsed) {
            obs.accepting_connections = false;
            obs.query_error = out.error ? out.error->describe() : "status query returned no row";
            need_controldata = true;
        } else {
            obs.cluster_state = parsed->in_recovery ? "in archive recovery" : "in production";
            obs.control_timeline = to_int(out.result.rows[0][13]);
            obs.accepting_connections = true;
            obs.query = std::move(*parsed);
            need_controldata = !d.sysid;
        }
    }
    if (need_controldata) {
        if (auto cd = co_await d.controldata()) {
            if (cd->sysid) {
                d.sysid = cd->sysid;
            }
            obs.cluster_state = cd->cluster_state;
            obs.control_timeline = cd->timeline;
            obs.checkpoint_lsn = cd->checkpoint_lsn;
            obs.checkpoint_end_lsn = co_await d.checkpoint_end(*cd);
        }
    }
    obs.sysid = d.sysid;
    co_return obs;
}

Task<std::optional<core::PgQueryResult>> Postgres::query_status() {
    Impl& d = *impl_;
    if (!d.check_postmaster().alive) {
        co_return std::nullopt;
    }
    auto out = co_await d.status_query(/*with_pending_restart=*/false);
    co_return d.parse_status(out);
}

}  // namespace pgwarden::pg
