// PostgreSQL parameter and option names that Patroni treats specially. Shared by the
// configuration loader (lib/config) and the managed config files (lib/pg). Pure data.
#pragma once

#include <array>
#include <string_view>

namespace pgwarden::core {

// Recovery parameters (primary_conninfo, restore_command, ...): Patroni manages them itself
// (recovery_parameters of patroni/postgresql/available_parameters/0_postgres.yml plus legacy
// names). Case-insensitive.
bool is_recovery_parameter(std::string_view name);

// pg_basebackup options Patroni sets itself and refuses in postgresql.basebackup.
inline constexpr std::array<std::string_view, 11> kBasebackupNotAllowedOptions = {"pgdata",
                                                                                  "format",
                                                                                  "wal-method",
                                                                                  "xlog-method",
                                                                                  "gzip",
                                                                                  "version",
                                                                                  "dbname",
                                                                                  "host",
                                                                                  "port",
                                                                                  "username",
                                                                                  "password"};

}  // namespace pgwarden::core
