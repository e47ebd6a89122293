// The managed configuration files a node's role asks for (parameters, pg_hba, pg_ident, the
// standby settings following the leader): a pure function of settings and the cluster view.
#include "config/pg_parameters.hpp"
#include "dcs/host_port.hpp"
#include "pg/config_files.hpp"
#include "pg/pg_control.hpp"
#include "runtime/runtime.hpp"

namespace pgwarden::runtime {

std::pair<std::string, int> host_port_of(const std::string& conn_url) {
    auto hp = dcs::parse_host_port(conn_url, 5432);
    if (!hp) {
        return {std::string(), 0};  // unusable: no address rather than a guess
    }
    return {hp->host, hp->port};
}

pg::ConfigFiles primary_files(const core::Settings& settings,
                              const core::DynamicSettings& dynamic,
                              int server_version) {
    pg::ConfigFiles files;
    std::vector<config::Problem> notes;
    files.parameters = config::effective_parameters(settings, dynamic, server_version, &notes);
    files.pg_hba =
        settings.postgresql.pg_hba.empty() ? dynamic.postgresql.pg_hba : settings.postgresql.pg_hba;
    files.pg_ident = settings.postgresql.pg_ident.empty() ? dynamic.postgresql.pg_ident
                                                          : settings.postgresql.pg_ident;
    return files;
}

pg::ConfigFiles replica_files(const core::Settings& settings,
                              const core::DynamicSettings& dynamic,
                              const std::optional<core::Cluster>& cluster,
                              const std::string& leader,
                              int server_version) {
    pg::ConfigFiles files = primary_files(settings, dynamic, server_version);
    std::map<std::string, std::string> recovery{{"recovery_target_timeline", "latest"}};
    const core::Member* m = cluster && !leader.empty() ? cluster->member(leader) : nullptr;
    const auto [host, port] =
        m != nullptr ? host_port_of(m->conn_url) : std::pair<std::string, int>{};
    if (!host.empty()) {
        recovery["primary_conninfo"] = pg::primary_conninfo(settings, host, port);
        if (dynamic.postgresql.use_slots) {
            recovery["primary_slot_name"] = pg::slot_name_from_member_name(settings.name);
        }
    }
    files.recovery = std::move(recovery);
    return files;
}

pg::ConfigFiles desired_files(const core::Settings& settings,
                              const core::DynamicSettings& dynamic,
                              const std::optional<core::Cluster>& cluster,
                              core::Role role,
                              const std::optional<std::string>& following,
                              int server_version) {
    if (role == core::Role::Primary || role == core::Role::Promoted) {
        return primary_files(settings, dynamic, server_version);
    }
    return replica_files(settings, dynamic, cluster, following.value_or(""), server_version);
}

std::string files_signature(const pg::ConfigFiles& f) {
    std::string sig;
    for (const auto& [k, v] : f.parameters) {
        sig += k + '=' + v + '\n';
    }
    for (const auto& l : f.pg_hba) {
        sig += "hba:" + l + '\n';
    }
    for (const auto& l : f.pg_ident) {
        sig += "ident:" + l + '\n';
    }
    return sig;
}

}  // namespace pgwarden::runtime
