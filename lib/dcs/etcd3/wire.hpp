// The etcd v3 JSON gateway's wire format (spec/etcd3-gateway.md §2-§4): reading int64/id/bool
// fields, building txn/put/range requests, and decoding range answers. Pure functions.
#pragma once

#include "dcs/cluster_codec.hpp"
#include "dcs/errc.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace pgwarden::dcs::etcd3 {

using json = nlohmann::json;

// int64 fields come as strings ("5"), sometimes as numbers; missing or malformed = 0.
std::int64_t i64_field(const json& obj, const char* name);
// Lease IDs: kept as decimal strings (they exceed 2^53); "" when missing.
std::string id_field(const json& obj, const char* name);
// Missing = false (proto3 omits false).
bool bool_field(const json& obj, const char* name);

// Patroni's prefix_range_end / clientv3 GetPrefixRangeEnd.
std::string prefix_range_end(std::string prefix);
// "/<namespace>/<scope>/" with repeated slashes collapsed.
std::string make_prefix(const std::string& namespace_, const std::string& scope);

// {"key":..,"target":..,"result":"EQUAL", <field>: <operand>}
json compare(const std::string& key, const char* target, const char* field, json operand);
json put_request(const std::string& key, const std::string& value, const std::string& lease);
json put_op(const std::string& key, const std::string& value, const std::string& lease);
json delete_op(const std::string& key);
json txn(json compares, json success, json failure = json::array());
// /kv/range (and the watch's create_request) over every key under `prefix`.
json prefix_range_request(const std::string& prefix);

// header.revision of an answer: "header" (unary calls) or "result.header" (keepalive); 0 if
// absent.
std::int64_t header_revision(const json& body);
// Whether the executed branch of a txn answer (nested txns included) wrote anything.
bool txn_wrote(const json& body);
// Whether an answer on `path` must be visible to the next get_cluster: every write, and a
// txn whose compare failed (our view was stale: Patroni PR #2783). A txn that succeeded
// without writing (update_leader's "already ours") changes nothing.
bool must_read_after(std::string_view path, const json& body);

// One "kv" object: its full (decoded) key and the key as RawKey (value, mod_revision, lease
// with "0" = none). nullopt if the key or value is not a base64 string.
std::optional<std::pair<std::string, RawKey>> decode_kv(const json& kv);
// The keys of a /kv/range answer on the prefix, relative to it.
Result<RawKeys> parse_range(const json& body, const std::string& prefix);
bool same_keys(const RawKeys& a, const RawKeys& b);

// The API prefix for a GET /version answer (Patroni: >= 3.4 -> /v3, 3.3 -> /v3beta, older ->
// /v3alpha); nullopt if the body names no parsable version. `version` receives the text.
std::optional<std::string> api_prefix(const json& version_body, std::string& version);

}  // namespace pgwarden::dcs::etcd3
