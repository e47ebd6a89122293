// Pure helpers for the files pgwarden manages in the data directory and for parsing what
// PostgreSQL tools print. No I/O here, so they are unit-testable.
#pragma once

#include "core/settings.hpp"

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
    std::optional<std::string> sysid;  // "Database system identifier"
    std::string cluster_state;         // "Database cluster state"
    int timeline = 0;                  // "Latest checkpoint's TimeLineID"
};
// Parses `pg_controldata` output (run with LC_ALL=C).
ControlData parse_controldata(std::string_view output);

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

}  // namespace pgwarden::pg
