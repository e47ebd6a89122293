// A hand-written fake of dcs::Dcs for executor and loop tests: an in-memory core::Cluster the
// test edits directly, switches to make reads or writes fail, and counters of every call. Every
// awaitable completes at once. The leader key follows Patroni's compare rules: it is ours when
// it holds our name; update_leader re-creates an absent key (Patroni's etcd3 nested txn) and
// reports false when another member holds it.
#pragma once

#include "dcs/dcs.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pgwarden::fakes {

class FakeDcs final : public dcs::Dcs {
public:
    explicit FakeDcs(std::string my_name, std::string my_owner = "lease-of-me")
        : name(std::move(my_name)), owner(std::move(my_owner)) {}

    // ---- the modelled store (tests may set these directly) -------------------------------------
    std::string name;   // our member name: the leader key is ours when it holds it
    std::string owner;  // our lease / session, written as the key's owner
    core::Cluster cluster;
    std::int64_t revision = 100;  // bumped by every successful write; versions of written keys

    // ---- switches
    // --------------------------------------------------------------------------------
    bool fail_reads = false;    // get_cluster fails (Unavailable)
    bool fail_writes = false;   // every write fails (Unavailable)
    bool allow_acquire = true;  // false: attempt_to_acquire_leader answers false, key absent too
    // Runs at the start of update_leader / attempt_to_acquire_leader, before the answer: lets a
    // test advance its clock "while the request is on the wire".
    std::function<void()> on_lock_request;

    // ---- what the runtime asked for -------------------------------------------------------------
    int get_cluster_calls = 0;
    int update_leader_calls = 0;
    int acquire_calls = 0;
    int delete_leader_calls = 0;
    int leader_deletes = 0;  // delete_leader calls that deleted the key
    int initialize_calls = 0;
    int close_session_calls = 0;
    int delete_member_calls = 0;
    std::vector<std::optional<std::int64_t>> update_leader_lsns;
    std::vector<std::string> touch_member_values;
    std::vector<std::string> set_failover_values;
    std::vector<std::string> set_config_values;
    std::vector<std::string> set_history_values;
    std::optional<dcs::DcsTiming> timing;
    bool started = false;
    bool stopped = false;
    std::function<void()> on_leader_change;  // from start()

    // The watch saw the leader key change: runs the callback start() was given.
    void fire_leader_change() {
        if (on_leader_change) {
            on_leader_change();
        }
    }

    // Someone else holds the leader key (an operator, a successor).
    void set_leader(std::string leader_name, std::string leader_owner = "lease-of-another") {
        cluster.leader =
            core::LeaderKey{std::move(leader_name), ++revision, std::move(leader_owner)};
    }

    bool leader_is_ours() const { return cluster.leader && cluster.leader->name == name; }

    // ---- Dcs
    // ---------------------------------------------------------------------------------------
    void start(std::function<void()> cb) override {
        started = true;
        on_leader_change = std::move(cb);
    }
    void stop() override { stopped = true; }
    void set_timing(dcs::DcsTiming t) override { timing = t; }

    dcs::Task<dcs::Result<core::Cluster>> get_cluster() override {
        ++get_cluster_calls;
        if (fail_reads) {
            co_return unavailable<core::Cluster>();
        }
        co_return cluster;
    }

    dcs::Task<dcs::Result<bool>> initialize(std::string sysid, bool create_new) override {
        ++initialize_calls;
        if (fail_writes) {
            co_return unavailable<bool>();
        }
        if (create_new && cluster.initialize) {
            co_return false;
        }
        cluster.initialize = std::move(sysid);
        ++revision;
        co_return true;
    }

    dcs::Task<dcs::Result<void>> cancel_initialization() override {
        if (fail_writes) {
            co_return unavailable<void>();
        }
        cluster.initialize.reset();
        co_return dcs::Result<void>();
    }

    dcs::Task<dcs::Result<bool>> attempt_to_acquire_leader() override {
        ++acquire_calls;
        if (on_lock_request) {
            on_lock_request();
        }
        if (fail_writes) {
            co_return unavailable<bool>();
        }
        if (!allow_acquire || cluster.leader) {
            co_return false;
        }
        take_key();
        co_return true;
    }

    dcs::Task<dcs::Result<bool>> update_leader(std::optional<std::int64_t> last_lsn) override {
        ++update_leader_calls;
        update_leader_lsns.push_back(last_lsn);
        if (on_lock_request) {
            on_lock_request();
        }
        if (fail_writes) {
            co_return unavailable<bool>();
        }
        if (cluster.leader && cluster.leader->name != name) {
            co_return false;
        }
        take_key();
        if (last_lsn) {
            cluster.last_lsn = last_lsn;
        }
        co_return true;
    }

    dcs::Task<dcs::Result<bool>> delete_leader(std::optional<std::int64_t> last_lsn) override {
        ++delete_leader_calls;
        if (fail_writes) {
            co_return unavailable<bool>();
        }
        if (!leader_is_ours()) {
            co_return false;
        }
        cluster.leader.reset();
        ++leader_deletes;
        ++revision;
        if (last_lsn) {
            cluster.last_lsn = last_lsn;
        }
        co_return true;
    }

    dcs::Task<dcs::Result<bool>> touch_member(std::string json) override {
        touch_member_values.push_back(json);
        if (fail_writes) {
            co_return unavailable<bool>();
        }
        core::Member m = parse_member(name, json);
        m.version = ++revision;
        m.owner = owner;
        auto it = std::find_if(cluster.members.begin(), cluster.members.end(), [&](const auto& x) {
            return x.name == name;
        });
        if (it != cluster.members.end()) {
            *it = std::move(m);
        } else {
            cluster.members.push_back(std::move(m));
            std::sort(cluster.members.begin(),
                      cluster.members.end(),
                      [](const auto& a, const auto& b) { return a.name < b.name; });
        }
        co_return true;
    }

    dcs::Task<dcs::Result<void>> delete_member() override {
        ++delete_member_calls;
        if (fail_writes) {
            co_return unavailable<void>();
        }
        std::erase_if(cluster.members, [&](const auto& m) { return m.name == name; });
        co_return dcs::Result<void>();
    }

    dcs::Task<dcs::Result<bool>> set_config(std::string json,
                                            std::optional<std::int64_t> version) override {
        set_config_values.push_back(json);
        co_return cas_write(cluster.config_json, cluster.config_version, std::move(json), version);
    }

    dcs::Task<dcs::Result<bool>> set_failover(std::string json,
                                              std::optional<std::int64_t> version) override {
        set_failover_values.push_back(json);
        if (fail_writes) {
            co_return unavailable<bool>();
        }
        const std::int64_t current = cluster.failover ? cluster.failover->version : 0;
        if (version && *version != current) {
            co_return false;
        }
        core::FailoverKey f;
        const auto j = nlohmann::json::parse(json, nullptr, false);
        if (j.is_object()) {
            f.leader = string_field(j, "leader");
            f.member = string_field(j, "member");
            f.scheduled_at = string_field(j, "scheduled_at");
        }
        f.version = ++revision;
        cluster.failover = std::move(f);
        co_return true;
    }

    dcs::Task<dcs::Result<bool>> set_history(std::string json) override {
        set_history_values.push_back(json);
        if (fail_writes) {
            co_return unavailable<bool>();
        }
        cluster.history_json = std::move(json);
        ++revision;
        co_return true;
    }

    dcs::Task<dcs::Result<bool>> set_sync(std::string json,
                                          std::optional<std::int64_t> version) override {
        co_return cas_write(cluster.sync_json, cluster.sync_version, std::move(json), version);
    }

    dcs::Task<dcs::Result<void>> close_session() override {
        ++close_session_calls;
        if (fail_writes) {
            co_return unavailable<void>();
        }
        // Every key tied to our lease/session goes with it.
        if (cluster.leader && cluster.leader->owner == owner) {
            cluster.leader.reset();
        }
        std::erase_if(cluster.members, [&](const auto& m) { return m.owner == owner; });
        co_return dcs::Result<void>();
    }

    // The member key's JSON as the codec reads it, minimally: conn_url, api_url, state, role,
    // xlog_location, timeline; the text is kept in data_json.
    static core::Member parse_member(std::string member_name, const std::string& json) {
        core::Member m;
        m.name = std::move(member_name);
        m.data_json = json;
        const auto j = nlohmann::json::parse(json, nullptr, false);
        if (!j.is_object()) {
            return m;
        }
        m.conn_url = string_field(j, "conn_url").value_or("");
        m.api_url = string_field(j, "api_url").value_or("");
        m.state = string_field(j, "state").value_or("");
        m.role = string_field(j, "role").value_or("");
        if (auto it = j.find("xlog_location"); it != j.end() && it->is_number_integer()) {
            m.xlog_location = it->get<std::int64_t>();
        }
        if (auto it = j.find("timeline"); it != j.end() && it->is_number_integer()) {
            m.timeline = it->get<int>();
        }
        return m;
    }

private:
    // Explicitly an error: result<bool> would otherwise take an error_code as a value.
    template <class T>
    static dcs::Result<T> unavailable() {
        return dcs::Result<T>(boost::system::in_place_error,
                              dcs::make_error_code(dcs::Errc::Unavailable));
    }

    static std::optional<std::string> string_field(const nlohmann::json& j, const char* key) {
        auto it = j.find(key);
        if (it == j.end() || !it->is_string()) {
            return std::nullopt;
        }
        return it->get<std::string>();
    }

    // A key written whole, compare-and-swap on its version when one is given.
    dcs::Result<bool> cas_write(std::optional<std::string>& value,
                                std::int64_t& value_version,
                                std::string json,
                                std::optional<std::int64_t> version) {
        if (fail_writes) {
            return unavailable<bool>();
        }
        if (version && *version != value_version) {
            return false;
        }
        value = std::move(json);
        value_version = ++revision;
        return true;
    }

    void take_key() {
        if (!cluster.leader || cluster.leader->owner != owner) {
            cluster.leader = core::LeaderKey{name, ++revision, owner};
        }
    }
};

}  // namespace pgwarden::fakes
