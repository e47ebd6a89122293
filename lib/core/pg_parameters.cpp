#include "core/pg_parameters.hpp"

#include <algorithm>
#include <cctype>
#include <string>

namespace pgwarden::core {

namespace {

// recovery_parameters of patroni/postgresql/available_parameters/0_postgres.yml (PostgreSQL 15
// recovery parameters plus the legacy recovery.conf names).
constexpr std::array<std::string_view, 18> kRecoveryParameters = {
    "archive_cleanup_command",
    "pause_at_recovery_target",
    "primary_conninfo",
    "primary_slot_name",
    "promote_trigger_file",
    "recovery_end_command",
    "recovery_min_apply_delay",
    "recovery_target",
    "recovery_target_action",
    "recovery_target_inclusive",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_timeline",
    "recovery_target_xid",
    "restore_command",
    "standby_mode",
    "trigger_file",
};

}  // namespace

bool is_recovery_parameter(std::string_view name) {
    std::string l(name);
    std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) {
        return static_cast<char>(std::tolower(c));
    });
    return std::find(kRecoveryParameters.begin(), kRecoveryParameters.end(), l) !=
           kRecoveryParameters.end();
}

}  // namespace pgwarden::core
