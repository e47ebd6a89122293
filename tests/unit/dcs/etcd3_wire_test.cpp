// The etcd3 backend's pure parts: the gateway's wire format and the error verdicts, on canned
// answers from spec/etcd3-gateway.md (§2, §5, §7-§9).
#include "canned_answer.hpp"
#include "dcs/etcd3/errors.hpp"
#include "dcs/etcd3/wire.hpp"

#include <catch2/catch.hpp>

using namespace pgwarden::dcs;
using pgwarden::dcs_test::answer;
using namespace pgwarden::dcs::etcd3;

namespace {

Errc errc_of(const Verdict& v) {
    REQUIRE_FALSE(v.result.has_value());
    REQUIRE(v.result.error().category() == dcs_category());
    return static_cast<Errc>(v.result.error().value());
}

}  // namespace

TEST_CASE("etcd3 wire: int64, id and bool fields as the gateway writes them", "[dcs][etcd3]") {
    const auto grant =
        json::parse(R"({"header":{"revision":"5"},"ID":"2324035619438300175","TTL":"30"})");
    CHECK(i64_field(grant, "TTL") == 30);
    CHECK(id_field(grant, "ID") == "2324035619438300175");  // > 2^53: kept as text
    CHECK(i64_field(json::parse(R"({"TTL":30})"), "TTL") == 30);
    CHECK(i64_field(grant, "missing") == 0);
    CHECK(i64_field(json::parse(R"({"TTL":"3x"})"), "TTL") == 0);
    CHECK(id_field(json::parse(R"({"ID":7})"), "ID") == "7");
    CHECK(bool_field(json::parse(R"({"succeeded":true})"), "succeeded"));
    CHECK_FALSE(bool_field(json::parse(R"({"header":{}})"), "succeeded"));  // false is omitted
    CHECK(header_revision(grant) == 5);
    // A keepalive answer carries its header under "result".
    CHECK(header_revision(json::parse(R"({"result":{"header":{"revision":"9"},"TTL":"30"}})")) ==
          9);
    CHECK(header_revision(json::parse("{}")) == 0);
}

TEST_CASE("etcd3 wire: prefixes and range requests", "[dcs][etcd3]") {
    CHECK(make_prefix("/service/", "demo") == "/service/demo/");
    CHECK(make_prefix("service", "demo") == "/service/demo/");
    CHECK(make_prefix("//a//", "b") == "/a/b/");
    CHECK(prefix_range_end("/service/demo/") == "/service/demo0");
    CHECK(prefix_range_end(std::string("a\xff", 2)) == "b");
    CHECK(prefix_range_end(std::string("\xff\xff", 2)) == std::string(1, '\0'));
    CHECK(prefix_range_request("/service/demo/") ==
          json::parse(R"({"key":"L3NlcnZpY2UvZGVtby8=","range_end":"L3NlcnZpY2UvZGVtbzA="})"));
}

TEST_CASE("etcd3 wire: the create-if-absent txn of spec §9", "[dcs][etcd3]") {
    const std::string leader = "/service/demo/leader";
    const auto request = txn(json::array({compare(leader, "CREATE", "create_revision", "0")}),
                             json::array({put_op(leader, "node1", "2324035619438300199")}));
    CHECK(request == json::parse(R"({
        "compare":[{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","target":"CREATE","result":"EQUAL",
                    "create_revision":"0"}],
        "success":[{"request_put":{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI=","value":"bm9kZTE=",
                                   "lease":"2324035619438300199"}}]})"));
    CHECK(put_request("k", "v", "") == json::parse(R"({"key":"aw==","value":"dg=="})"));
    CHECK(delete_op("k") == json::parse(R"({"request_delete_range":{"key":"aw=="}})"));
}

TEST_CASE("etcd3 wire: which answers the next get_cluster must see", "[dcs][etcd3]") {
    const auto won = json::parse(
        R"({"header":{"revision":"9"},"succeeded":true,
            "responses":[{"response_put":{"header":{"revision":"9"}}}]})");
    const auto lost = json::parse(R"({"header":{"revision":"9"}})");
    const auto nested_wrote = json::parse(
        R"({"header":{"revision":"10"},"responses":[{"response_txn":{"header":{},
            "succeeded":true,"responses":[{"response_put":{"header":{"revision":"10"}}}]}}]})");
    const auto already_ours = json::parse(R"({"header":{"revision":"9"},"succeeded":true})");
    CHECK(txn_wrote(won));
    CHECK_FALSE(txn_wrote(lost));
    CHECK(txn_wrote(nested_wrote));
    CHECK(must_read_after("/kv/txn", won));
    CHECK(must_read_after("/kv/txn", lost));  // a failed compare: our view was stale
    CHECK_FALSE(must_read_after("/kv/txn", already_ours));
    CHECK(must_read_after("/kv/put", lost));
    CHECK(must_read_after("/lease/revoke", lost));
    CHECK_FALSE(must_read_after("/kv/range", lost));
    CHECK_FALSE(must_read_after("/lease/keepalive", lost));
}

TEST_CASE("etcd3 wire: a prefix range answer (spec §9) decodes to relative keys", "[dcs][etcd3]") {
    const auto body = json::parse(R"({"header":{"revision":"5"},
        "kvs":[{"key":"L3NlcnZpY2UvZGVtby9jb25maWc=","create_revision":"2","mod_revision":"2",
                "version":"1","value":"eyJ0dGwiOjMwfQ=="},
               {"key":"L3NlcnZpY2UvZGVtby9tZW1iZXJzL25vZGUx","create_revision":"4",
                "mod_revision":"5","version":"2","value":"eyJyb2xlIjoicHJpbWFyeSJ9",
                "lease":"2324035619438300175"},
               {"key":"L3NlcnZpY2UvZGVtby9zeW5j","mod_revision":"3","lease":"0"}],
        "count":"3"})");
    auto keys = parse_range(body, "/service/demo/");
    REQUIRE(keys.has_value());
    REQUIRE(keys->size() == 3);
    CHECK(keys->at("config").value == R"({"ttl":30})");
    CHECK(keys->at("config").version == 2);
    CHECK(keys->at("config").owner.empty());
    CHECK(keys->at("members/node1").value == R"({"role":"primary"})");
    CHECK(keys->at("members/node1").version == 5);
    CHECK(keys->at("members/node1").owner == "2324035619438300175");
    CHECK(keys->at("sync").value.empty());  // empty value omitted
    CHECK(keys->at("sync").owner.empty());  // lease "0" = none

    auto empty = parse_range(json::parse(R"({"header":{"revision":"5"}})"), "/service/demo/");
    REQUIRE(empty.has_value());
    CHECK(empty->empty());
    // A key outside the prefix, bad base64, or kvs of the wrong type: the answer is not ours.
    CHECK_FALSE(parse_range(body, "/service/other/").has_value());
    CHECK_FALSE(parse_range(json::parse(R"({"kvs":[{"key":"L3Nl!!"}]})"), "/").has_value());
    CHECK_FALSE(parse_range(json::parse(R"({"kvs":[{"key":5}]})"), "/").has_value());
    CHECK_FALSE(parse_range(json::parse(R"({"kvs":{}})"), "/").has_value());
    CHECK(same_keys(*keys, *parse_range(body, "/service/demo/")));
    CHECK_FALSE(same_keys(*keys, *empty));
}

TEST_CASE("etcd3 wire: API prefix from GET /version", "[dcs][etcd3]") {
    std::string version;
    CHECK(api_prefix(json::parse(R"({"etcdserver":"3.4.23","etcdcluster":"3.4.0"})"), version) ==
          std::string("/v3"));
    CHECK(version == "3.4.0");
    CHECK(api_prefix(json::parse(R"({"etcdserver":"3.6.1","etcdcluster":""})"), version) ==
          std::string("/v3"));
    CHECK(api_prefix(json::parse(R"({"etcdserver":"3.3.11"})"), version) == std::string("/v3beta"));
    CHECK(api_prefix(json::parse(R"({"etcdserver":"3.2.0"})"), version) == std::string("/v3alpha"));
    CHECK_FALSE(api_prefix(json::parse(R"({"etcdserver":"dev"})"), version).has_value());
    CHECK_FALSE(api_prefix(json::parse("[]"), version).has_value());
}

TEST_CASE("etcd3 errors: the three error body formats", "[dcs][etcd3]") {
    auto v34 = extract_error(json::parse(
        R"({"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5})"));
    REQUIRE(v34);
    CHECK(v34->code == 5);
    CHECK(v34->message == "etcdserver: requested lease not found");
    auto v36 =
        extract_error(json::parse(R"({"code":9,"message":"etcdserver: lease already exists"})"));
    REQUIRE(v36);
    CHECK(v36->code == 9);
    CHECK(v36->message == "etcdserver: lease already exists");
    auto stream = extract_error(json::parse(
        R"({"error":{"grpc_code":14,"http_code":503,"message":"transport is closing","http_status":"Service Unavailable"}})"));
    REQUIRE(stream);
    CHECK(stream->code == 14);
    CHECK(stream->message == "transport is closing");
    CHECK_FALSE(extract_error(json::parse(R"({"header":{"revision":"5"}})")).has_value());
    CHECK_FALSE(extract_error(json::parse("[]")).has_value());
}

TEST_CASE("etcd3 errors: classify() on the gateway answers of spec §7-§8", "[dcs][etcd3]") {
    SECTION("200 with a JSON object is the result") {
        auto v = classify(answer(200, R"({"header":{"revision":"2"}})"));
        REQUIRE(v.result.has_value());
        CHECK(header_revision(*v.result) == 2);
        CHECK_FALSE(v.retry);
    }
    SECTION("200 that is not a JSON object is a protocol error") {
        CHECK(errc_of(classify(answer(200, "not json"))) == Errc::Protocol);
        CHECK(errc_of(classify(answer(200, "[1]"))) == Errc::Protocol);
    }
    SECTION("errors: Errc, retry elsewhere, authenticate again") {
        struct Case {
            const char* why;
            unsigned status;
            const char* body;
            Errc errc;
            bool retry;
            bool reauth;
        };
        const Case cases[] = {
            {"streaming error inside a 200 (keepalive)",
             200,
             R"({"error":{"grpc_code":14,"http_code":503,"message":"transport is closing","http_status":"Service Unavailable"}})",
             Errc::Unavailable,
             true,
             false},
            {"invalid auth token",
             401,
             R"({"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16})",
             Errc::Unauthorized,
             false,
             true},
            {"user name is empty (no token sent)",
             400,
             R"({"error":"etcdserver: user name is empty","message":"etcdserver: user name is empty","code":3})",
             Errc::Unauthorized,
             false,
             true},
            {"JWT auth store changed (3.6 format: code + message)",
             412,
             R"({"code":9,"message":"etcdserver: revision of auth store is old"})",
             Errc::Unauthorized,
             false,
             true},
            {"permission denied",
             403,
             R"({"error":"etcdserver: permission denied","message":"etcdserver: permission denied","code":7})",
             Errc::Forbidden,
             false,
             false},
            {"lease not found",
             404,
             R"({"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5})",
             Errc::NotFound,
             false,
             false},
            {"request timed out",
             503,
             R"({"error":"etcdserver: request timed out","message":"etcdserver: request timed out","code":14})",
             Errc::Unavailable,
             true,
             false},
            {"deadline exceeded",
             504,
             R"({"code":4,"message":"context deadline exceeded"})",
             Errc::Unavailable,
             true,
             false},
            {"lost leader during lease renewal (code 2)",
             500,
             R"({"code":2,"message":"etcdserver: not a primary lessor"})",
             Errc::Unavailable,
             true,
             false},
            {"malformed request (other code 2): judged by status",
             400,
             R"({"error":"invalid character 'b'","message":"invalid character 'b'","code":2})",
             Errc::BadRequest,
             false,
             false},
            {"illegal base64",
             400,
             R"({"error":"illegal base64 data at input byte 3","message":"illegal base64 data at input byte 3","code":3})",
             Errc::BadRequest,
             false,
             false},
            {"lease already exists",
             412,
             R"({"error":"etcdserver: lease already exists","message":"etcdserver: lease already exists","code":9})",
             Errc::BadRequest,
             false,
             false},
            {"revision compacted (code 11)",
             400,
             R"({"error":"etcdserver: mvcc: required revision has been compacted","code":11})",
             Errc::BadRequest,
             false,
             false},
            {"plain 404: wrong API prefix",
             404,
             "404 page not found",
             Errc::Protocol,
             false,
             false},
            {"plain 405", 405, "Method Not Allowed", Errc::BadRequest, false, false},
            {"plain 502", 502, "Bad Gateway", Errc::Unavailable, true, false},
            {"empty 401", 401, "", Errc::Unauthorized, false, true},
        };
        for (const auto& c : cases) {
            INFO(c.why);
            auto v = classify(answer(c.status, c.body));
            CHECK(errc_of(v) == c.errc);
            CHECK(v.retry == c.retry);
            CHECK(v.reauth == c.reauth);
        }
    }
    SECTION("only Unavailable and Timeout are worth another host") {
        CHECK(is_retriable(Errc::Unavailable));
        CHECK(is_retriable(Errc::Timeout));
        CHECK_FALSE(is_retriable(Errc::Forbidden));
        CHECK_FALSE(is_retriable(Errc::Protocol));
    }
}
