// Pure helpers for the files pgwarden manages in the data directory and for parsing what
// PostgreSQL tools print. No I/O here, so they are unit-testable.
#pragma once

#include "core/cluster.hpp"
#include "core/settings.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgwarden::pg {

inline constexpr std::string_view kBaseConfName = "postgresql.base.conf";

// 'value' with ' and \ doubled, as postgresql.conf (and Patroni's ConfigWriter) wants it.
std::string quote_conf_value(std::string_view value);

// A GUC name: letters, digits, '_' and '.', not starting with a digit or '.'.
bool valid_parameter_name(std::string_view name);

// The pgwarden-owned postgresql.conf: header, include of the base file, the parameters (sorted),
// and the recovery parameters of a standby (PostgreSQL >= 12 keeps them in postgresql.conf).
// Invalid parameter names must be rejected by the caller (valid_parameter_name).
std::string render_postgresql_conf(
    const std::map<std::string, std::string>& parameters,
    const std::optional<std::map<std::string, std::string>>& recovery,
    std::string_view include_file);

// Lines for pg_hba.conf / pg_ident.conf, with the "do not edit" header.
std::string render_lines_file(const std::vector<std::string>& lines);

// One pgpass line "*:*:*:user:password" with ':' and '\' escaped.
std::string pgpass_line(std::string_view user, std::string_view password);
// The pgpass file: superuser, replication and rewind credentials that have a password.
std::string render_pgpass(const core::PostgresqlSettings& pg);

// Removes recovery parameters from postgresql.auto.conf content (they belong to pgwarden's
// postgresql.conf, as in Patroni's _sanitize_auto_conf). nullopt = nothing to change.
std::optional<std::string> sanitize_auto_conf(std::string_view content);

bool is_recovery_parameter(std::string_view name);

struct ControlData {
    std::optional<std::string> sysid;          // "Database system identifier"
    std::string cluster_state;                 // "Database cluster state"
    int timeline = 0;                          // "Latest checkpoint's TimeLineID"
    std::int64_t checkpoint_lsn = 0;           // "Latest checkpoint location", bytes
    std::int64_t wal_block_size = 8192;        // "WAL block size"
    std::int64_t wal_segment_size = 16 << 20;  // "Bytes per WAL segment"
};
// Parses `pg_controldata` output (run with LC_ALL=C).
ControlData parse_controldata(std::string_view output);

// Where the checkpoint record at `checkpoint_lsn` ends, from the output (stdout and stderr) of
// `pg_waldump -s <checkpoint_lsn> -n 2` (Patroni rewind.py _get_checkpoint_end): the first
// record must be an XLOG CHECKPOINT record at `checkpoint_lsn`; its end is the start of the
// next record, or, after a clean shutdown where none follows, the position in pg_waldump's
// "error in WAL record at <checkpoint>: invalid record length at <end>". nullopt otherwise.
// A next record right after a page header means the checkpoint ended at the page boundary
// (what the primary flushed and a replica receives): the boundary is returned then.
std::optional<std::int64_t> parse_checkpoint_end(std::string_view waldump_output,
                                                 std::int64_t checkpoint_lsn,
                                                 std::int64_t wal_block_size = 8192,
                                                 std::int64_t wal_segment_size = 16 << 20);

struct ListenAddress {
    std::string listen_addresses;  // "127.0.0.1" or "0.0.0.0,::"
    std::string port;              // "5432"
    std::string local_host;        // the host to connect to locally ('*'/0.0.0.0 → 127.0.0.1)
};
// postgresql.listen "host[,host...]:port" (Patroni's split_host_port). nullopt if malformed.
std::optional<ListenAddress> parse_listen(std::string_view listen);

// The last `max_bytes` of `text`, prefixed with "..." when cut, trimmed of trailing newlines.
std::string output_tail(std::string_view text, std::size_t max_bytes = 2048);

// Reads "key: value" style pid file: the first line of postmaster.pid as a pid.
std::optional<int> parse_postmaster_pid(std::string_view content);

// /proc/<pid>/stat: state letter, comm and ppid.
struct ProcStat {
    char state = '?';
    std::string comm;
    int ppid = 0;
};
std::optional<ProcStat> parse_proc_stat(std::string_view content);

// ---- replication (issue 4) -------------------------------------------------------------------

// A libpq keyword/value connection string in Patroni's format_dsn form: only the keywords below
// (core::kDsnKeywords), in this order, each `key=value` with ' \ and space escaped by a backslash
// (valid unquoted libpq syntax); empty values are left out. `passfile` replaces `password` when
// present. Keyword order: dbname user passfile|password host port sslmode sslcompression sslcert
// sslkey sslpassword sslrootcert sslcrl sslcrldir application_name krbsrvname gssencmode
// channel_binding target_session_attrs sslnegotiation.
std::string format_dsn(const std::map<std::string, std::string>& params);

// primary_conninfo for a standby of host:port on PostgreSQL 15 (Patroni config.py
// primary_conninfo_params + format_dsn): dbname=<database> user=<replication user>
// passfile=<pgpass> (only when the replication user has a password) host port sslmode=prefer
// application_name=<member name> gssencmode=prefer channel_binding=prefer.
std::string primary_conninfo(const core::Settings& s, const std::string& host, int port);

// --dbname for pg_basebackup (Patroni bootstrap.py create_replica: the replication user's
// conn_kwargs without password): dbname user host port. The password comes from PGPASSFILE.
std::string basebackup_conninfo(const core::Settings& s, const std::string& host, int port);

// --source-server for pg_rewind (Patroni rewind.py _conn_kwargs with rewind_credentials):
// dbname user host port target_session_attrs=read-write; user = postgresql.authentication.rewind
// or the superuser when there is no rewind user. The password comes from PGPASSFILE.
std::string rewind_conninfo(const core::Settings& s, const std::string& host, int port);
// The credentials pg_rewind uses (rewind user, else superuser).
const core::Credentials& rewind_credentials(const core::PostgresqlSettings& pg);

// Patroni dcs slot_name_from_member_name: lower-case, '-' and '.' become '_', any other
// character outside [a-z0-9_] becomes 'u' + its code point in decimal, at least 4 digits
// (' ' -> u0032); truncated to 63 characters. UTF-8 is decoded to code points (an invalid byte
// counts as its own value); upper-case letters of Latin-1, Latin Extended-A, Greek and Cyrillic
// are lowered as Python's str.lower() does, other scripts are kept as they are.
std::string slot_name_from_member_name(const std::string& name);

// "X/Y" (hex) to bytes; nullopt if malformed.
std::optional<std::int64_t> parse_lsn(std::string_view text);
// "X/Y" as PostgreSQL prints it (upper-case hex, no padding).
std::string format_lsn(std::int64_t lsn);

// A timeline history file (Patroni misc.py parse_history): lines "tli<TAB>X/Y<TAB>reason";
// lines that do not have exactly three tab-separated fields or do not parse are skipped.
std::vector<core::HistoryLine> parse_timeline_history(std::string_view content);

// pg_basebackup arguments from postgresql.basebackup ("--key=value" / "--flag") with the ones
// Patroni does not allow removed (pgdata format wal-method xlog-method gzip version dbname host
// port username password, and --compress unless it is server-side, PG15 rule). `rejected` gets
// the removed arguments.
std::vector<std::string> filter_basebackup_args(const std::vector<std::string>& args,
                                                std::vector<std::string>* rejected);

// The recovery parameters a standby gets by default (Patroni build_recovery_params, PG12+):
// recovery_target_timeline=latest and recovery_target, recovery_target_name,
// recovery_target_time, recovery_target_xid, recovery_target_lsn set to '' so that an included
// file cannot pause, promote or stop the standby. Values already in `recovery` are kept.
std::map<std::string, std::string> with_standby_defaults(
    std::map<std::string, std::string> recovery);

// Patroni rewind.py _build_archiver_command: %p -> <wal_dir>/<wal>, %f -> <wal>,
// %r -> 000000010000000000000001, %% -> %; any other %x is kept as it is.
std::string build_archiver_command(std::string_view command,
                                   std::string_view wal_dir,
                                   std::string_view wal);

// postmaster.opts ("/path/postgres" "-D" "/data" "--name=value" ...) → {name: value} for the
// "--name=value" entries (Patroni rewind.py read_postmaster_opts).
std::map<std::string, std::string> parse_postmaster_opts(std::string_view content);

}  // namespace pgwarden::pg
