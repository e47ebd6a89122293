#include "dcs/etcd3/wire.hpp"

#include "dcs/base64.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace pgwarden::dcs::etcd3 {

std::int64_t i64_field(const json& obj, const char* name) {
    if (!obj.is_object()) {
        return 0;
    }
    auto it = obj.find(name);
    if (it == obj.end()) {
        return 0;
    }
    if (it->is_number_integer()) {
        return it->get<std::int64_t>();
    }
    if (it->is_string()) {
        const auto& s = it->get_ref<const std::string&>();
        std::int64_t v = 0;
        auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec == std::errc{} && ptr == s.data() + s.size()) {
            return v;
        }
    }
    return 0;
}

// Lease IDs: keep them as decimal strings (> 2^53).
std::string id_field(const json& obj, const char* name) {
    if (!obj.is_object()) {
        return {};
    }
    auto it = obj.find(name);
    if (it == obj.end()) {
        return {};
    }
    if (it->is_string()) {
        return it->get<std::string>();
    }
    if (it->is_number_integer()) {
        return it->is_number_unsigned() ? std::to_string(it->get<std::uint64_t>())
                                        : std::to_string(it->get<std::int64_t>());
    }
    return {};
}

bool bool_field(const json& obj, const char* name) {
    if (!obj.is_object()) {
        return false;
    }
    auto it = obj.find(name);
    return it != obj.end() && it->is_boolean() && it->get<bool>();
}

// Patroni's prefix_range_end / clientv3 GetPrefixRangeEnd.
std::string prefix_range_end(std::string prefix) {
    while (!prefix.empty()) {
        auto& last = prefix.back();
        if (static_cast<unsigned char>(last) < 0xff) {
            last = static_cast<char>(static_cast<unsigned char>(last) + 1);
            return prefix;
        }
        prefix.pop_back();
    }
    return std::string(1, '\0');
}

std::string make_prefix(const std::string& namespace_, const std::string& scope) {
    std::string joined = "/" + namespace_ + "/" + scope + "/";
    std::string out;
    for (char c : joined) {
        if (c == '/' && !out.empty() && out.back() == '/') {
            continue;
        }
        out.push_back(c);
    }
    return out;
}

// {"key":..,"target":..,"result":"EQUAL", <field>: <operand>}
json compare(const std::string& key, const char* target, const char* field, json operand) {
    json c = json::object();
    c["key"] = base64_encode(key);
    c["target"] = target;
    c["result"] = "EQUAL";
    c[field] = std::move(operand);
    return c;
}

json put_request(const std::string& key, const std::string& value, const std::string& lease) {
    json p = json::object();
    p["key"] = base64_encode(key);
    p["value"] = base64_encode(value);
    if (!lease.empty()) {
        p["lease"] = lease;
    }
    return p;
}

json put_op(const std::string& key, const std::string& value, const std::string& lease) {
    return json{{"request_put", put_request(key, value, lease)}};
}

json delete_op(const std::string& key) {
    return json{{"request_delete_range", json{{"key", base64_encode(key)}}}};
}

json txn(json compares, json success, json failure) {
    json t = json::object();
    t["compare"] = std::move(compares);
    t["success"] = std::move(success);
    if (!failure.empty()) {
        t["failure"] = std::move(failure);
    }
    return t;
}

// header.revision of an answer: "header" (unary calls) or "result.header" (keepalive); 0 if
// absent.
std::int64_t header_revision(const json& body) {
    if (!body.is_object()) {
        return 0;
    }
    if (auto it = body.find("header"); it != body.end()) {
        return i64_field(*it, "revision");
    }
    if (auto it = body.find("result"); it != body.end() && it->is_object()) {
        if (auto h = it->find("header"); h != it->end()) {
            return i64_field(*h, "revision");
        }
    }
    return 0;
}

// Whether the executed branch of a txn answer (nested txns included) wrote anything.
bool txn_wrote(const json& body) {
    auto it = body.find("responses");
    if (it == body.end() || !it->is_array()) {
        return false;
    }
    for (const auto& r : *it) {
        if (!r.is_object()) {
            continue;
        }
        if (r.contains("response_put") || r.contains("response_delete_range")) {
            return true;
        }
        if (auto nested = r.find("response_txn"); nested != r.end() && txn_wrote(*nested)) {
            return true;
        }
    }
    return false;
}

// Whether an answer on `path` must be visible to the next get_cluster: every write, and a
// txn whose compare failed (our view was stale: Patroni PR #2783). A txn that succeeded
// without writing (update_leader's "already ours") changes nothing.
bool must_read_after(std::string_view path, const json& body) {
    if (path == "/kv/put" || path == "/kv/deleterange" || path == "/lease/revoke") {
        return true;
    }
    if (path == "/kv/txn") {
        return !bool_field(body, "succeeded") || txn_wrote(body);
    }
    return false;
}

bool same_keys(const RawKeys& a, const RawKeys& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
        return x.first == y.first && x.second.value == y.second.value &&
               x.second.version == y.second.version && x.second.owner == y.second.owner;
    });
}

std::optional<std::pair<std::string, RawKey>> decode_kv(const json& kv) {
    if (!kv.is_object()) {
        return std::nullopt;
    }
    auto text = [&kv](const char* name) -> std::optional<std::string> {
        auto it = kv.find(name);
        if (it == kv.end()) {
            return std::string();  // proto3 omits empty bytes
        }
        if (!it->is_string()) {
            return std::nullopt;
        }
        return base64_decode(it->get_ref<const std::string&>());
    };
    auto key = text("key");
    auto value = text("value");
    if (!key || !value) {
        return std::nullopt;
    }
    RawKey raw;
    raw.value = std::move(*value);
    raw.version = i64_field(kv, "mod_revision");
    raw.owner = id_field(kv, "lease");
    if (raw.owner == "0") {
        raw.owner.clear();
    }
    return std::pair{std::move(*key), std::move(raw)};
}

Result<RawKeys> parse_range(const json& body, const std::string& prefix) {
    RawKeys keys;
    if (!body.is_object()) {
        return make_error_code(Errc::Protocol);
    }
    auto it = body.find("kvs");
    if (it == body.end()) {
        return keys;
    }
    if (!it->is_array()) {
        return make_error_code(Errc::Protocol);
    }
    for (const auto& kv : *it) {
        auto decoded = decode_kv(kv);
        if (!decoded || decoded->first.rfind(prefix, 0) != 0) {
            return make_error_code(Errc::Protocol);
        }
        keys.emplace(decoded->first.substr(prefix.size()), std::move(decoded->second));
    }
    return keys;
}

json prefix_range_request(const std::string& prefix) {
    return json{{"key", base64_encode(prefix)},
                {"range_end", base64_encode(prefix_range_end(prefix))}};
}

std::optional<std::string> api_prefix(const json& version_body, std::string& version) {
    version.clear();
    if (version_body.is_object()) {
        for (const char* field : {"etcdcluster", "etcdserver"}) {
            if (auto it = version_body.find(field); it != version_body.end() && it->is_string() &&
                                                    !it->get_ref<const std::string&>().empty()) {
                version = it->get<std::string>();
                break;
            }
        }
    }
    int major = 0;
    int minor = 0;
    if (std::sscanf(version.c_str(), "%d.%d", &major, &minor) != 2) {
        return std::nullopt;
    }
    if (major > 3 || (major == 3 && minor >= 4)) {
        return "/v3";
    }
    if (major == 3 && minor == 3) {
        return "/v3beta";
    }
    return "/v3alpha";
}

}  // namespace pgwarden::dcs::etcd3
