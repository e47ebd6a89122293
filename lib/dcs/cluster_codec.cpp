#include "dcs/cluster_codec.hpp"

#include "dcs/patroni_values.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>

namespace pgwarden::dcs {

using json = nlohmann::json;

namespace {

std::string str_field(const json& obj, const char* name) {
    return patroni_string(obj, name).value_or(std::string());
}

std::optional<std::string> opt_str_field(const json& obj, const char* name) {
    auto it = obj.find(name);
    if (it != obj.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
        return it->get<std::string>();
    }
    return std::nullopt;
}

std::optional<std::int64_t> int_field(const json& obj, const char* name) {
    auto it = obj.find(name);
    if (it == obj.end()) {
        return std::nullopt;
    }
    return patroni_int(*it);
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

std::string percent_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
            hex_value(s[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
            i += 2;
        } else if (s[i] == '+') {
            out.push_back(' ');
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

// Legacy member value "postgres://host:port/db?application_name=<api_url>" (Patroni
// parse_connection_string): conn_url without the query, api_url from application_name.
json legacy_member_data(std::string_view value) {
    json data = json::object();
    auto q = value.find('?');
    std::string_view base = value.substr(0, q);
    std::string_view query = q == std::string_view::npos ? std::string_view{} : value.substr(q + 1);
    std::string_view fragment;
    if (auto hash = query.find('#'); hash != std::string_view::npos) {
        fragment = query.substr(hash);
        query = query.substr(0, hash);
    }
    data["conn_url"] = std::string(base) + std::string(fragment);
    json api_url = nullptr;
    while (!query.empty()) {
        auto amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        auto eq = pair.find('=');
        if (eq != std::string_view::npos && pair.substr(0, eq) == "application_name") {
            api_url = percent_decode(pair.substr(eq + 1));
            break;
        }
    }
    data["api_url"] = api_url;
    return data;
}

}  // namespace

core::Member parse_member(std::string name, const RawKey& key) {
    core::Member m;
    m.name = std::move(name);
    m.version = key.version;
    m.owner = key.owner;

    json data;
    if (key.value.rfind("postgres", 0) == 0) {
        data = legacy_member_data(key.value);
        m.data_json = data.dump();
    } else {
        data = json::parse(key.value, nullptr, false);
        if (data.is_discarded() || !data.is_object()) {
            data = json::object();
            m.data_json = "{}";
        } else {
            m.data_json = key.value;
        }
    }

    m.conn_url = str_field(data, "conn_url");
    m.api_url = str_field(data, "api_url");
    m.state = str_field(data, "state");
    m.role = str_field(data, "role");
    m.xlog_location = int_field(data, "xlog_location");
    m.receive_lsn = int_field(data, "receive_lsn");
    m.replay_lsn = int_field(data, "replay_lsn");
    if (auto it = data.find("replication_state"); it != data.end() && it->is_string()) {
        m.replication_state = it->get<std::string>();
    }
    if (auto tl = int_field(data, "timeline")) {
        if (*tl >= std::numeric_limits<int>::min() && *tl <= std::numeric_limits<int>::max()) {
            m.timeline = static_cast<int>(*tl);
        }
    }

    // Patroni: the new leader publishes "checkpoint_after_promote": false until its
    // post-promote CHECKPOINT is done; rewinders wait for it.
    if (auto it = data.find("checkpoint_after_promote"); it != data.end() && it->is_boolean()) {
        m.checkpoint_after_promote_pending = !it->get<bool>();
    }

    // Patroni's Tags.nofailover / failover_priority / clonefrom.
    auto tags_it = data.find("tags");
    if (tags_it != data.end() && tags_it->is_object()) {
        const json& tags = *tags_it;
        const FailoverTags failover = patroni_failover_tags(tags);
        m.nofailover = failover.nofailover;
        m.failover_priority = failover.failover_priority;
        m.clonefrom = patroni_clonefrom(tags);
    }
    return m;
}

core::FailoverKey parse_failover(const RawKey& key) {
    core::FailoverKey f;
    f.version = key.version;
    if (key.value.empty()) {
        return f;
    }
    auto data = json::parse(key.value, nullptr, false);
    if (data.is_discarded()) {
        // Legacy "leader:candidate".
        std::string_view v = key.value;
        auto colon = v.find(':');
        auto trim = [](std::string_view s) {
            while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) {
                s.remove_prefix(1);
            }
            while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
                s.remove_suffix(1);
            }
            return s;
        };
        auto leader = trim(v.substr(0, colon));
        if (!leader.empty()) {
            f.leader = std::string(leader);
        }
        if (colon != std::string_view::npos) {
            auto rest = v.substr(colon + 1);
            auto member = trim(rest.substr(0, rest.find(':')));
            if (!member.empty()) {
                f.member = std::string(member);
            }
        }
        return f;
    }
    if (!data.is_object()) {
        return f;
    }
    f.leader = opt_str_field(data, "leader");
    f.member = opt_str_field(data, "member");
    f.scheduled_at = opt_str_field(data, "scheduled_at");
    return f;
}

std::vector<core::HistoryLine> parse_history(std::string_view text) {
    std::vector<core::HistoryLine> out;
    auto data = json::parse(text, nullptr, false);
    if (data.is_discarded() || !data.is_array()) {
        return out;
    }
    for (const auto& row : data) {
        if (!row.is_array() || row.size() < 3) {
            continue;
        }
        auto timeline = patroni_int(row[0]);
        auto lsn = patroni_int(row[1]);
        if (!timeline || !lsn || *timeline < 0 || *timeline > std::numeric_limits<int>::max()) {
            continue;
        }
        core::HistoryLine line;
        line.timeline = static_cast<int>(*timeline);
        line.lsn = *lsn;
        line.reason = row[2].is_string() ? row[2].get<std::string>() : row[2].dump();
        if (row.size() > 3 && row[3].is_string()) {
            line.timestamp = row[3].get<std::string>();
        }
        if (row.size() > 4 && row[4].is_string()) {
            line.new_leader = row[4].get<std::string>();
        }
        out.push_back(std::move(line));
    }
    return out;
}

StatusValue parse_status(std::string_view text) {
    StatusValue out;
    auto data = json::parse(text, nullptr, false);
    if (data.is_discarded()) {
        return out;
    }
    if (data.is_number()) {  // legacy optime/leader: a bare LSN
        if (auto v = patroni_int(data); v && *v > 0) {
            out.optime = *v;
        }
        return out;
    }
    if (!data.is_object()) {
        return out;
    }
    if (auto v = int_field(data, "optime"); v && *v > 0) {
        out.optime = *v;
    }
    if (auto it = data.find("slots"); it != data.end() && it->is_object()) {
        for (const auto& [slot, lsn] : it->items()) {
            if (auto v = patroni_int(lsn)) {
                out.slots[slot] = *v;
            }
        }
    }
    return out;
}

std::string make_status_json(std::int64_t optime) {
    json j = json::object();
    j["optime"] = optime;
    return j.dump();
}

core::Cluster build_cluster(const RawKeys& keys) {
    core::Cluster c;
    static constexpr std::string_view kMembers = "members/";
    for (const auto& [name, key] : keys) {
        if (name.rfind(kMembers, 0) == 0) {
            std::string member_name = name.substr(kMembers.size());
            if (!member_name.empty() && member_name.find('/') == std::string::npos) {
                c.members.push_back(parse_member(std::move(member_name), key));
            }
        }
    }
    std::sort(c.members.begin(), c.members.end(), [](const auto& a, const auto& b) {
        return a.name < b.name;
    });

    auto find = [&keys](const char* name) -> const RawKey* {
        auto it = keys.find(name);
        return it == keys.end() ? nullptr : &it->second;
    };

    if (const auto* k = find("initialize")) {
        c.initialize = k->value;
    }
    if (const auto* k = find("config")) {
        c.config_json = k->value;
        c.config_version = k->version;
    }
    if (const auto* k = find("leader")) {
        core::LeaderKey leader;
        leader.name = k->value;
        leader.version = k->version;
        leader.owner = k->owner;
        c.leader = std::move(leader);
    }
    if (const auto* k = find("failover")) {
        c.failover = parse_failover(*k);
    }
    if (const auto* k = find("sync")) {
        c.sync_json = k->value;
        c.sync_version = k->version;
    }
    if (const auto* k = find("history")) {
        c.history_json = k->value;
        c.history = parse_history(k->value);
    }
    if (const auto* k = find("status")) {
        auto status = parse_status(k->value);
        c.last_lsn = status.optime;
        c.slots = std::move(status.slots);
    } else if (const auto* legacy = find("optime/leader")) {
        c.last_lsn = parse_status(legacy->value).optime;
    }
    if (const auto* k = find("failsafe")) {
        c.failsafe_json = k->value;
    }
    return c;
}

}  // namespace pgwarden::dcs
