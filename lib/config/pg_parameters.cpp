// postgresql.conf parameters as Patroni writes them: the command-line options and their checks,
// recovery parameters, and the effective parameter set of this node.

#include "config/pg_parameters.hpp"

#include "config/text.hpp"
#include "config/value.hpp"
#include "config/walker.hpp"
#include "core/pg_parameters.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <string_view>

namespace pgwarden::config {

using detail::lower;

namespace {

enum class Check { Never, Int, Bool, BoolTrue, WalLevel, WalKeepSize };

struct CmdlineOption {
    std::string_view name;
    const char* default_value;  // nullptr = none
    Check check;
    std::int64_t min;
    int min_version;
};

// ConfigHandler.CMDLINE_OPTIONS (patroni/postgresql/config.py, Patroni 4.1).
constexpr std::array<CmdlineOption, 15> kCmdline{{
    {"listen_addresses", nullptr, Check::Never, 0, 90100},
    {"port", nullptr, Check::Never, 0, 90100},
    {"cluster_name", nullptr, Check::Never, 0, 90500},
    {"wal_level", "hot_standby", Check::WalLevel, 0, 90100},
    {"hot_standby", "on", Check::BoolTrue, 0, 90100},
    {"max_connections", "100", Check::Int, 25, 90100},
    {"max_wal_senders", "10", Check::Int, 3, 90100},
    {"wal_keep_segments", "8", Check::Int, 1, 90100},
    {"wal_keep_size", "128MB", Check::WalKeepSize, 16, 130000},
    {"max_prepared_transactions", "0", Check::Int, 0, 90100},
    {"max_locks_per_transaction", "64", Check::Int, 32, 90100},
    {"track_commit_timestamp", "off", Check::Bool, 0, 90500},
    {"max_replication_slots", "10", Check::Int, 4, 90400},
    {"max_worker_processes", "8", Check::Int, 2, 90400},
    {"wal_log_hints", "on", Check::Bool, 0, 90400},
}};

const CmdlineOption* find_cmdline(const std::string& name) {
    const std::string l = lower(name);
    for (const auto& o : kCmdline) {
        if (o.name == l) {
            return &o;
        }
    }
    return nullptr;
}

// Patroni's parse_int(value, base_unit) for the units CMDLINE options use; nullopt if invalid or
// out of range (never throws: the value comes from the DCS).
std::optional<std::int64_t> parse_int_unit(const std::string& value, const char* base_unit) {
    const auto n = detail::split_number_unit(value);
    if (!n) {
        return std::nullopt;
    }
    if (n->unit.empty()) {
        return n->number;
    }
    if (base_unit == nullptr || std::string_view(base_unit) != "MB") {
        return std::nullopt;
    }
    if (n->unit == "MB") {
        return n->number;
    }
    if (n->unit == "GB") {
        return detail::checked_mul(n->number, 1024);
    }
    if (n->unit == "TB") {
        return detail::checked_mul(n->number, 1024 * 1024);
    }
    if (n->unit == "kB") {
        return n->number < 0 ? -1 : detail::div_round(n->number, 1024);
    }
    return std::nullopt;
}

std::optional<bool> pg_bool(const std::string& value) {
    detail::Value v = detail::Value::string(value);
    return detail::parse_bool(v);
}

std::string join_path(const std::string& dir, const std::string& file) {
    if (!file.empty() && file[0] == '/') {
        return file;
    }
    if (dir.empty() || dir.back() == '/') {
        return dir + file;
    }
    return dir + "/" + file;
}

std::string abspath_dir(std::string d) {
    while (d.size() > 1 && d.back() == '/') {
        d.pop_back();
    }
    return d;
}

// Python split_host_port(value, 5432).
std::pair<std::string, std::string> split_listen(const std::string& value) {
    const auto colon = value.rfind(':');
    if (colon == std::string::npos) {
        return {value, "5432"};
    }
    std::string hosts = value.substr(0, colon);
    if (hosts.find(':') != std::string::npos) {
        std::string cleaned;
        std::size_t start = 0;
        while (start <= hosts.size()) {
            auto comma = hosts.find(',', start);
            std::string h =
                hosts.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
            h.erase(0, h.find_first_not_of(" []"));
            h.erase(h.find_last_not_of(" []") + 1);
            cleaned += (cleaned.empty() ? "" : ",") + h;
            if (comma == std::string::npos) {
                break;
            }
            start = comma + 1;
        }
        hosts = cleaned;
    }
    return {hosts, value.substr(colon + 1)};
}

void note(std::vector<Problem>* notes, const std::string& name, const std::string& message) {
    if (notes != nullptr) {
        notes->push_back({Problem::Severity::Warning, "postgresql.parameters." + name, 0, message});
    }
}

}  // namespace

bool is_cmdline_option(const std::string& name) {
    return find_cmdline(name) != nullptr;
}

bool is_recovery_parameter(const std::string& name) {
    return core::is_recovery_parameter(name);
}

std::optional<std::string> check_cmdline_option(const std::string& name, const std::string& value) {
    const CmdlineOption* o = find_cmdline(name);
    if (o == nullptr) {
        return std::nullopt;
    }
    const std::string fallback = o->default_value != nullptr
                                     ? std::string("defaulting to ") + o->default_value
                                     : std::string("Patroni sets it itself");
    bool ok = true;
    switch (o->check) {
        case Check::Never:
            ok = false;
            break;
        case Check::Int: {
            auto i = parse_int_unit(value, nullptr);
            ok = i.has_value() && *i >= o->min;
            break;
        }
        case Check::WalKeepSize: {
            auto i = parse_int_unit(value, "MB");
            ok = i.has_value() && *i >= o->min;
            break;
        }
        case Check::Bool:
            ok = pg_bool(value).has_value();
            break;
        case Check::BoolTrue:
            ok = pg_bool(value) == std::optional<bool>(true);
            break;
        case Check::WalLevel: {
            const std::string l = lower(value);
            ok = l == "hot_standby" || l == "replica" || l == "logical";
            break;
        }
    }
    if (ok) {
        return std::nullopt;
    }
    return "value '" + value + "' failed Patroni's validation, " + fallback;
}

std::optional<std::string> malformed_cmdline_option(const std::string& name,
                                                    const std::string& value) {
    const CmdlineOption* o = find_cmdline(name);
    if (o == nullptr) {
        return std::nullopt;
    }
    switch (o->check) {
        case Check::Int:
            if (!parse_int_unit(value, nullptr)) {
                return "expected an integer, got '" + value + "'";
            }
            break;
        case Check::WalKeepSize:
            if (!parse_int_unit(value, "MB")) {
                return "expected a size in MB (or with a unit kB, MB, GB, TB), got '" + value + "'";
            }
            break;
        case Check::Bool:
        case Check::BoolTrue:
            if (!pg_bool(value)) {
                return "expected a boolean (on/off), got '" + value + "'";
            }
            break;
        case Check::Never:
        case Check::WalLevel:
            break;
    }
    return std::nullopt;
}

std::map<std::string, std::string> effective_parameters(const core::Settings& settings,
                                                        const core::DynamicSettings& dynamic,
                                                        int server_version_num,
                                                        std::vector<Problem>* notes) {
    // Config.__DEFAULT_CONFIG: every CMDLINE option with a default, except wal_keep_*.
    std::map<std::string, std::string> params;
    for (const auto& o : kCmdline) {
        if (o.default_value != nullptr && o.name != "wal_keep_segments" &&
            o.name != "wal_keep_size") {
            params[std::string(o.name)] = o.default_value;
        }
    }
    // Dynamic parameters: CMDLINE options validated (invalid -> default kept); IntValidator
    // values are normalised to integers.
    for (const auto& [raw_name, value] : dynamic.postgresql.parameters) {
        const std::string name = lower(raw_name);
        if (const CmdlineOption* o = find_cmdline(name)) {
            if (auto reason = check_cmdline_option(name, value)) {
                note(notes, name, *reason);
                continue;
            }
            if (o->check == Check::Int) {
                params[name] = std::to_string(*parse_int_unit(value, nullptr));
                continue;
            }
        }
        params[name] = value;
    }
    // Local parameters: CMDLINE options are ignored (they can only be changed globally).
    for (const auto& [raw_name, value] : settings.postgresql.parameters) {
        const std::string name = lower(raw_name);
        if (is_cmdline_option(name)) {
            note(notes,
                 name,
                 "set in the local postgresql.parameters; Patroni ignores it there (it can only be "
                 "changed in the dynamic configuration)");
            continue;
        }
        params[name] = value;
    }
    const auto [listen_addresses, port] = split_listen(settings.postgresql.listen);
    params["cluster_name"] = settings.scope;
    params["listen_addresses"] = listen_addresses;
    params["port"] = port;

    const int version = server_version_num;
    if (version != 0) {
        auto wal_level = params.find("wal_level");
        if (wal_level != params.end()) {
            const char* from = version >= 90600 ? "hot_standby" : "replica";
            const char* to = version >= 90600 ? "replica" : "hot_standby";
            if (wal_level->second == from) {
                wal_level->second = to;
                note(notes,
                     "wal_level",
                     std::string("'") + from + "' is written as '" + to + "' for PostgreSQL " +
                         std::to_string(version / 10000));
            }
        }
        if (version >= 130000) {
            std::int64_t segments = 8;
            auto it = params.find("wal_keep_segments");
            const bool had_segments = it != params.end();
            if (had_segments) {
                segments = parse_int_unit(it->second, nullptr).value_or(8);
                params.erase(it);
            }
            if (params.find("wal_keep_size") == params.end()) {
                params["wal_keep_size"] =
                    std::to_string(detail::checked_mul(segments, 16).value_or(8 * 16)) + "MB";
                if (had_segments) {
                    note(notes,
                         "wal_keep_segments",
                         "wal_keep_segments=" + std::to_string(segments) +
                             " is replaced by wal_keep_size=" + params["wal_keep_size"] +
                             " (PostgreSQL 13+; 16MB segments assumed)");
                }
            } else if (had_segments) {
                note(
                    notes, "wal_keep_segments", "dropped for PostgreSQL 13+; wal_keep_size is set");
            }
        } else {
            auto it = params.find("wal_keep_size");
            std::int64_t size_mb = 128;
            if (it != params.end()) {
                size_mb = parse_int_unit(it->second, "MB").value_or(0);
                params.erase(it);
            }
            if (params.find("wal_keep_segments") == params.end()) {
                params["wal_keep_segments"] =
                    std::to_string(size_mb < 0 ? 0 : detail::div_round(size_mb, 16));
            }
        }
        for (auto it = params.begin(); it != params.end();) {
            const CmdlineOption* o = find_cmdline(it->first);
            if (o != nullptr && version < o->min_version) {
                it = params.erase(it);
            } else {
                ++it;
            }
        }
    }
    // Recovery parameters are managed by Patroni (recovery configuration), never written from here.
    for (auto it = params.begin(); it != params.end();) {
        if (is_recovery_parameter(it->first)) {
            note(notes,
                 it->first,
                 "is a recovery parameter: Patroni moves it into the recovery settings it "
                 "manages (recovery_conf) instead of writing it as a server parameter");
            it = params.erase(it);
        } else {
            ++it;
        }
    }
    const std::string config_dir =
        abspath_dir(settings.postgresql.config_dir.empty() ? settings.postgresql.data_dir
                                                           : settings.postgresql.config_dir);
    for (const char* k : {"hba_file", "ident_file"}) {
        auto it = params.find(k);
        if (it != params.end()) {
            it->second = join_path(config_dir, it->second);
        }
    }
    if (params.find("hba_file") == params.end()) {
        params["hba_file"] = join_path(config_dir, "pg_hba.conf");
    }
    if (params.find("ident_file") == params.end()) {
        params["ident_file"] = join_path(config_dir, "pg_ident.conf");
    }
    return params;
}

}  // namespace pgwarden::config
