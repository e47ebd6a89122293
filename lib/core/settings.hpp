// Settings structs: what patroni.yml (plus PATRONI_* environment and the DCS `config` key) means.
// Defaults live here; lib/config fills these from YAML/JSON and validates them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pgwarden::core {

struct Credentials {
    std::string username;
    std::string password;  // never logged
};

struct RestApiSettings {
    std::string listen = "127.0.0.1:8008";      // host:port; "" or "*" host = all interfaces
    std::string connect_address;                // host:port published as api_url
    std::optional<Credentials> authentication;  // restapi.authentication or legacy restapi.auth
    std::string certfile;
    std::string keyfile;
    std::string cafile;
    std::string verify_client = "none";
    std::vector<std::string> allowlist;
    bool allowlist_include_members = false;
    std::map<std::string, std::string> http_extra_headers;
    std::string keyfile_password;  // never logged (added by lib/config)
    std::string ciphers;
};

struct Etcd3Settings {
    std::vector<std::string> hosts;  // host:port, from host/hosts/url
    std::string protocol = "http";
    std::string username;
    std::string password;
    std::string cacert;
    std::string cert;
    std::string key;
    bool use_proxies = false;
};

struct ConsulSettings {
    std::string host = "127.0.0.1";  // without port
    int port = 8500;
    std::string scheme = "http";
    std::string token;  // never logged
    bool verify = true;
    std::string cacert;
    std::string cert;
    std::string key;
    std::string dc;
    std::string consistency = "default";  // default | consistent | stale
    std::vector<std::string> checks;
    bool register_service = false;
    std::vector<std::string> service_tags;
    int service_check_interval = 5;  // seconds
    // service_check_interval exactly as configured (a Go duration); Patroni sends it verbatim.
    std::string service_check_interval_text = "5s";
    std::string service_check_tls_server_name;
};

enum class DcsKind { None, Etcd3, Consul };

struct DcsSettings {
    DcsKind kind = DcsKind::None;
    Etcd3Settings etcd3;
    ConsulSettings consul;
};

// Keys of the dynamic configuration's `postgresql` section.
struct PostgresqlDynamic {
    bool use_pg_rewind = false;
    bool use_slots = true;
    std::map<std::string, std::string> parameters;  // values rendered as PostgreSQL strings
    std::vector<std::string> pg_hba;
    std::vector<std::string> pg_ident;
    bool remove_data_directory_on_rewind_failure = false;
    bool remove_data_directory_on_diverged_timelines = false;
};

// A permanent replication slot (dynamic `slots`; Patroni also reads `permanent_slots` and
// `permanent_replication_slots`): kept whatever the members are.
struct PermanentSlot {
    std::string name;               // matches ^[a-z0-9_]{1,63}$
    std::string type = "physical";  // physical | logical
    std::string database;           // logical only (required there)
    std::string plugin;             // logical only (required there)
};

// One `ignore_slots` entry: a slot that matches every non-empty field is left alone (never
// created, advanced or dropped by the HA loop). All fields empty matches every slot.
struct SlotMatcher {
    std::string name;
    std::string type;  // "" | physical | logical
    std::string database;
    std::string plugin;
};

// The dynamic configuration (bootstrap.dcs, then the DCS `config` key).
struct DynamicSettings {
    int ttl = 30;
    int loop_wait = 10;
    int retry_timeout = 10;
    std::int64_t maximum_lag_on_failover = 1048576;
    int primary_start_timeout = 300;
    int primary_stop_timeout = 0;
    std::string synchronous_mode = "off";  // off | on | quorum
    bool synchronous_mode_strict = false;
    int synchronous_node_count = 1;
    bool failsafe_mode = false;
    bool check_timeline = false;
    bool pause = false;
    int max_timelines_history = 0;
    std::int64_t maximum_lag_on_syncnode = -1;
    int primary_race_backoff = 0;
    int member_slots_ttl = 1800;  // seconds
    PostgresqlDynamic postgresql;
    std::vector<PermanentSlot> slots;  // in the order of the configuration
    std::vector<SlotMatcher> ignore_slots;
    // standby_cluster as Patroni's is_standby_cluster() reads it: a mapping with a non-empty
    // host, port or restore_command. The section itself (compact JSON, "" = absent) is kept for
    // messages and for the day it is implemented.
    bool standby_cluster_present = false;
    std::string standby_cluster_json;
    // Keys present with a non-null value that Patroni applies and pgwarden does not implement
    // yet, relative to the section (e.g. "postgresql.recovery_conf"). Reported by
    // config::unsupported_dynamic().
    std::vector<std::string> unimplemented_keys;
};

struct BootstrapSettings {
    std::string dcs_json = "{}";  // bootstrap.dcs as compact JSON, written to the `config` key
    DynamicSettings dcs;          // the same, parsed
    std::string method = "initdb";
    std::vector<std::string> initdb_args;  // rendered: "--encoding=UTF8", "--data-checksums"
    std::string post_bootstrap;            // post_bootstrap / post_init script
};

struct PostgresqlSettings {
    std::string listen = "127.0.0.1:5432";  // host[,host...]:port
    std::string connect_address;            // host:port published as conn_url
    std::string data_dir;
    std::string bin_dir;     // "" = look up on PATH
    std::string config_dir;  // "" = data_dir
    std::string pgpass = "/tmp/pgpass0";
    std::string database = "postgres";
    Credentials superuser;
    Credentials replication;
    std::optional<Credentials> rewind;
    std::map<std::string, std::string> parameters;  // local postgresql.parameters
    std::vector<std::string> pg_hba;                // local override of the dynamic pg_hba
    std::vector<std::string> pg_ident;
    std::map<std::string, std::string> callbacks;
    std::vector<std::string> create_replica_methods;  // default {"basebackup"}
    std::vector<std::string> basebackup_args;         // rendered "--key=value" / "--flag"
    bool use_unix_socket = false;
    std::string proxy_address;
    std::map<std::string, std::string> bin_name;  // custom binary names (pg_ctl, initdb, ...)
    // Local override of the dynamic use_pg_rewind: set by postgresql.use_pg_rewind, or forced
    // by the legacy credentials layout (no postgresql.authentication): true iff
    // postgresql.pg_rewind exists (Patroni config.py _build_effective_configuration).
    std::optional<bool> use_pg_rewind;
    int pg_ctl_timeout = 60;
    bool remove_data_directory_on_rewind_failure = false;
    bool remove_data_directory_on_diverged_timelines = false;
};

struct Tags {
    bool nofailover = false;
    int failover_priority = 1;  // <= 0 means nofailover
    bool noloadbalance = false;
    bool clonefrom = false;
    std::string replicatefrom;
    bool nosync = false;
    bool nostream = false;
    // Every configured tag as Patroni renders it for ?tag_<k>=<v> (str(v).lower() for non-strings)
    std::map<std::string, std::string> rendered;
    // Every configured tag as compact JSON value text (for the member key and /patroni).
    std::map<std::string, std::string> json;
};

struct LogSettings {
    std::string level = "INFO";
};

struct Settings {
    std::string config_file;
    std::string name;
    std::string scope;
    std::string namespace_ = "/service/";
    RestApiSettings restapi;
    DcsSettings dcs;
    BootstrapSettings bootstrap;
    PostgresqlSettings postgresql;
    Tags tags;
    std::string watchdog_mode = "off";
    std::string watchdog_device = "/dev/watchdog";
    int watchdog_safety_margin = 5;
    LogSettings log;
    // Keys of patroni.yml present with a non-null value that Patroni applies and pgwarden does
    // not implement yet, as dotted paths (e.g. "log.dir", "postgresql.custom_conf"). Reported by
    // config::unsupported_settings().
    std::vector<std::string> unimplemented_keys;
};

}  // namespace pgwarden::core
