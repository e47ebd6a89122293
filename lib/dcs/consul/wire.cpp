#include "dcs/consul/wire.hpp"

#include "core/go_duration.hpp"
#include "dcs/base64.hpp"
#include "dcs/consul/consul_dcs.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>

namespace pgwarden::dcs {

namespace consul {

using std::chrono::milliseconds;

namespace {

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

}  // namespace

std::string url_escape(std::string_view in) {
    std::string out;
    for (unsigned char c : in) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
            out.push_back(static_cast<char>(c));
        } else {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%%%02X", c);
            out += buf;
        }
    }
    return out;
}

std::optional<milliseconds> parse_go_duration(std::string_view text) {
    const std::optional<double> total_ms = core::parse_go_duration_ms(text);
    if (!total_ms) {
        return std::nullopt;
    }
    return milliseconds(static_cast<std::int64_t>(*total_ms + 0.5));
}

std::string seconds_text(int ttl_half_tenths) {  // tenths of a second -> "15s" / "12.5s"
    if (ttl_half_tenths % 10 == 0) {
        return std::to_string(ttl_half_tenths / 10) + "s";
    }
    return std::to_string(ttl_half_tenths / 10) + "." + std::to_string(ttl_half_tenths % 10) + "s";
}

UrlParts parse_url(const std::string& url) {
    UrlParts p;
    std::string rest = url;
    if (auto pos = rest.find("://"); pos != std::string::npos) {
        p.scheme = rest.substr(0, pos);
        rest = rest.substr(pos + 3);
    }
    if (auto pos = rest.find('/'); pos != std::string::npos) {
        rest = rest.substr(0, pos);
    }
    if (auto pos = rest.rfind(':');
        pos != std::string::npos && rest.find(']', pos) == std::string::npos) {
        p.host = rest.substr(0, pos);
        p.port = rest.substr(pos + 1);
    } else {
        p.host = rest;
    }
    if (p.host.size() > 1 && p.host.front() == '[' && p.host.back() == ']') {
        p.host = p.host.substr(1, p.host.size() - 2);
    }
    return p;
}

// Patroni's consul TLS options: scheme https (or an https:// url), verify, cacert, cert, key.
TlsOptions tls_options(const core::ConsulSettings& s) {
    TlsOptions tls;
    std::string scheme = s.scheme;
    std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) {
        return static_cast<char>(std::tolower(c));
    });
    tls.enabled = scheme == "https";
    tls.verify = s.verify;
    tls.cacert = s.cacert;
    tls.cert = s.cert;
    tls.key = s.key;
    tls.server_name = s.host;
    return tls;
}

Answer classify(unsigned status, std::string_view body) {
    if ((status >= 200 && status < 300) || status == 404) {
        return Answer::Deliver;
    }
    if (status == 403) {
        return Answer::Forbidden;
    }
    if (status == 401) {
        return Answer::Unauthorized;
    }
    if (status == 500 &&
        (contains(body, "invalid session") || contains(body, "Invalid Session TTL") ||
         contains(body, "missing session"))) {
        return Answer::Deliver;
    }
    if (status == 400 || status == 405 || status == 413) {
        return Answer::BadRequest;
    }
    return Answer::Retry;
}

Result<bool> parse_bool_body(const HttpResponse& r) {
    if (r.status != 200) {
        return Errc::Protocol;
    }
    if (r.body == "true") {
        return true;
    }
    if (r.body == "false") {
        return false;
    }
    return Errc::Protocol;
}

std::optional<KvEntry> decode_entry(const json& e) {
    if (!e.is_object()) {
        return std::nullopt;
    }
    KvEntry entry;
    if (auto v = e.find("Key"); v != e.end() && v->is_string()) {
        entry.key = v->get<std::string>();
    }
    if (auto v = e.find("Value"); v != e.end() && v->is_string()) {
        auto decoded = base64_decode(v->get_ref<const std::string&>());
        if (!decoded) {
            return std::nullopt;
        }
        entry.value = std::move(*decoded);
    }
    if (auto v = e.find("Session"); v != e.end() && v->is_string()) {
        entry.session = v->get<std::string>();
    }
    if (auto v = e.find("CreateIndex"); v != e.end() && v->is_number_integer()) {
        entry.create_index = v->get<std::int64_t>();
    }
    if (auto v = e.find("ModifyIndex"); v != e.end() && v->is_number_integer()) {
        entry.modify_index = v->get<std::int64_t>();
    }
    return entry;
}

Result<RawKeys> parse_kv_list(const HttpResponse& r, const std::string& prefix) {
    RawKeys keys;
    if (r.status == 404) {
        return keys;
    }
    if (r.status != 200) {
        return make_error_code(Errc::Protocol);
    }
    auto arr = json::parse(r.body, nullptr, false);
    if (!arr.is_array()) {
        return make_error_code(Errc::Protocol);
    }
    for (const auto& e : arr) {
        if (!e.is_object()) {
            continue;
        }
        auto entry = decode_entry(e);
        if (!entry) {
            return make_error_code(Errc::Protocol);
        }
        if (entry->key.rfind(prefix, 0) != 0 || entry->key.size() == prefix.size()) {
            continue;
        }
        RawKey k;
        k.value = std::move(entry->value);
        k.owner = std::move(entry->session);
        k.version = entry->modify_index;
        keys.emplace(entry->key.substr(prefix.size()), std::move(k));
    }
    return keys;
}

std::optional<std::optional<LeaderSeen>> parse_leader_answer(const HttpResponse& r) {
    if (r.status == 404) {
        return std::optional<LeaderSeen>();
    }
    auto arr = json::parse(r.body, nullptr, false);
    if (!arr.is_array() || arr.empty()) {
        return std::nullopt;
    }
    auto entry = decode_entry(arr[0]);
    if (!entry) {
        return std::nullopt;
    }
    return std::optional<LeaderSeen>(
        LeaderSeen{std::move(entry->value), std::move(entry->session), entry->create_index});
}

json session_request(const std::string& name, int ttl, const std::vector<std::string>& checks) {
    json body = {{"Name", name},
                 {"LockDelay", "0.001s"},
                 {"Behavior", "delete"},
                 {"TTL", seconds_text(ttl * 5)}};  // ttl/2 in tenths of a second
    if (checks.empty()) {
        body["Checks"] = json::array();
        body["NodeChecks"] = json::array();
    } else {
        body["NodeChecks"] = checks;
    }
    return body;
}

ServiceUpdate service_update(const core::ConsulSettings& settings,
                             const std::string& scope,
                             const std::string& member_name,
                             int ttl,
                             std::string_view member_json) {
    ServiceUpdate update;
    if (!settings.register_service) {
        return update;
    }
    auto m = json::parse(member_json, nullptr, false);
    if (!m.is_object()) {
        return update;
    }
    const std::string role = m.value("role", "");
    const std::string state = m.value("state", "");
    const bool registrable =
        state == "running" && (role == "primary" || role == "replica" || role == "standby_leader");
    if (!registrable) {
        if (state == "stopped") {
            update.kind = ServiceUpdate::Kind::Deregister;
        }
        return update;
    }
    std::string role_tag = role;
    std::replace(role_tag.begin(), role_tag.end(), '_', '-');
    const UrlParts conn = parse_url(m.value("conn_url", ""));
    const UrlParts api = parse_url(m.value("api_url", ""));
    std::vector<std::string> tags = settings.service_tags;
    std::sort(tags.begin(), tags.end());
    tags.push_back(role_tag);
    if (role == "primary") {
        tags.emplace_back("master");
    }
    json check = {{"HTTP",
                   (api.scheme.empty() ? "http" : api.scheme) + "://" + api.host + ":" + api.port +
                       "/" + role_tag},
                  {"Interval", std::to_string(std::max(settings.service_check_interval, 1)) + "s"},
                  {"DeregisterCriticalServiceAfter", std::to_string(ttl * 5) + "s"}};
    if (!settings.service_check_tls_server_name.empty()) {
        check["TLSServerName"] = settings.service_check_tls_server_name;
    }
    update.kind = ServiceUpdate::Kind::Register;
    update.body = {{"Name", consul_service_name(scope)},
                   {"ID", scope + "/" + member_name},
                   {"Address", conn.host},
                   {"Port", std::atoi(conn.port.c_str())},
                   {"Tags", tags},
                   {"EnableTagOverride", true},
                   {"Checks", json::array({check})}};
    return update;
}

milliseconds session_ttl_min(std::string_view agent_self_body) {
    milliseconds min(10000);
    auto body = json::parse(agent_self_body, nullptr, false);
    if (body.is_object() && body.contains("DebugConfig") && body["DebugConfig"].is_object()) {
        const auto& dbg = body["DebugConfig"];
        if (dbg.contains("SessionTTLMin") && dbg["SessionTTLMin"].is_string()) {
            if (auto d = parse_go_duration(dbg["SessionTTLMin"].get<std::string>())) {
                min = *d;
            }
        }
    }
    return min;
}

std::optional<std::string> ttl_refusal(int ttl, milliseconds min) {
    if (milliseconds(ttl * 500) >= min) {
        return std::nullopt;
    }
    return "ttl " + std::to_string(ttl) +
           " cannot be honoured by Consul: pgwarden asks for a session TTL of ttl/2 = " +
           seconds_text(ttl * 5) +
           " (Consul expires sessions up to 2 x TTL late), below the agent's SessionTTLMin of " +
           std::to_string(min.count()) + " ms; set ttl to at least " +
           std::to_string((2 * min.count() + 999) / 1000);
}

}  // namespace consul

std::string consul_service_name(const std::string& scope) {
    std::string out;
    for (unsigned char c : scope) {
        const unsigned char l = static_cast<unsigned char>(std::tolower(c));
        if ((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') || l == '-') {
            out.push_back(static_cast<char>(l));
        } else if (l == '.' || l == ' ' || l == '_') {
            out.push_back('-');
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "u%04d", static_cast<int>(c));
            out += buf;
        }
    }
    if (out.size() > 230) {
        out.resize(230);
    }
    return out;
}

}  // namespace pgwarden::dcs
