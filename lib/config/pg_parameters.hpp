// What Patroni writes into postgresql.conf (postgresql/config.py
// ConfigHandler.get_server_parameters plus config.py _process_postgresql_parameters).
#pragma once

#include "config/load.hpp"
#include "core/settings.hpp"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pgwarden::config {

// Parameters Patroni always passes on the postmaster command line (ConfigHandler.CMDLINE_OPTIONS).
// They can only be set through the dynamic configuration, are validated there (an invalid value
// falls back to the default), and are ignored in the local postgresql.parameters.
bool is_cmdline_option(const std::string& name);
// Recovery parameters (primary_conninfo, restore_command, ...): Patroni manages them itself and
// never writes them from postgresql.parameters into postgresql.conf.
bool is_recovery_parameter(const std::string& name);
// For a CMDLINE option set in the dynamic configuration: nullopt if Patroni accepts the value,
// otherwise the reason ("failed validation, defaulting to 100").
std::optional<std::string> check_cmdline_option(const std::string& name, const std::string& value);
// For a CMDLINE option whose value is not even of the option's type (an integer that does not
// parse or does not fit in 64 bits, such as a 30-digit max_connections, or a boolean that is not
// one): the reason; nullopt otherwise. Patroni would fall back to its default; pgwarden treats it
// as an Error of the dynamic configuration (PATCH/PUT /config refuses it, a running node keeps
// the last good value).
std::optional<std::string> malformed_cmdline_option(const std::string& name,
                                                    const std::string& value);

// The parameters Patroni writes for this node. server_version_num as PostgreSQL reports it
// (150000 for 15.0); 0 = unknown (no version-dependent transformations). Notes describe every
// value dropped, replaced or transformed (Warning severity, path postgresql.parameters.<name>).
std::map<std::string, std::string> effective_parameters(const core::Settings& settings,
                                                        const core::DynamicSettings& dynamic,
                                                        int server_version_num,
                                                        std::vector<Problem>* notes);

}  // namespace pgwarden::config
