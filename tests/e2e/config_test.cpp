// A bad dynamic configuration never takes a three-node cluster down (finding F7): PATCH /config
// with an invalid value answers 400 and writes nothing, and a bad value written straight into
// the DCS (a foreign writer, a truncated edit) keeps every node up, on its last good value.
#include "steps.hpp"
#include "support/net.hpp"

#include <catch2/catch.hpp>

#include <ctime>

using namespace pgwarden::e2e;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr const char* kThirtyDigits = "999999999999999999999999999999";

// dcs_last_seen of every node's /patroni is after `since` (epoch seconds): each ran a cycle that
// read the DCS after it.
bool all_read_dcs_after(const Cluster& c, std::int64_t since) {
    for (int i = 0; i < c.size(); ++i) {
        auto r = t::http_request("127.0.0.1", c.node(i).api_port, "GET", "/patroni");
        if (r.status != 200 && r.status != 503) {
            return false;
        }
        auto j = json::parse(r.body, nullptr, false);
        if (!j.is_object() || j.value("dcs_last_seen", std::int64_t{0}) <= since) {
            return false;
        }
    }
    return true;
}

void bad_dynamic_config(const dt::Backend& backend, const std::string& tag) {
    Cluster c(backend, "e2e-badconfig");
    bring_up(c);
    const int p = *c.primary();
    const auto& scope = c.node(p).scope;
    const auto before = backend.get(scope, "config");
    REQUIRE(before);

    const std::vector<std::pair<std::string, std::string>> bad_patches = {
        {R"({"ttl":"soon"})", "ttl"},
        {std::string(R"({"postgresql":{"parameters":{"max_connections":")") + kThirtyDigits +
             R"("}}})",
         "max_connections"}};
    for (const auto& [body, key] : bad_patches) {
        auto r = t::http_request("127.0.0.1",
                                 c.node(p).api_port,
                                 "PATCH",
                                 "/config",
                                 body,
                                 {{"Content-Type", "application/json"}});
        INFO("PATCH /config " << body << " -> " << r.status << " " << r.body);
        CHECK(r.status == 400);
        CHECK(r.body.find(key) != std::string::npos);
    }
    CHECK(backend.get(scope, "config") == before);  // nothing written

    // The same values written past the REST API, with a good change beside them.
    json bad = json::parse(*before);
    bad["ttl"] = "soon";
    bad["postgresql"]["parameters"]["max_connections"] = kThirtyDigits;
    bad["maximum_lag_on_failover"] = 2097152;
    const auto written_at = static_cast<std::int64_t>(std::time(nullptr));
    backend.put(scope, "config", bad.dump());

    // Every node runs more cycles over it (two DCS reads later), and the cluster stays healthy
    // with the same primary: no daemon crashed, no lease lapsed.
    CHECK(t::wait_until([&] { return all_read_dcs_after(c, written_at + 2); }, 30s, 250ms));
    for (int i = 0; i < c.size(); ++i) {
        INFO("node " << c.node(i).name);
        CHECK(c.daemon_running(i));
    }
    if (!c.wait_healthy(30s)) {
        FAIL("not healthy with a bad config key in the DCS:\n" << c.describe());
    }
    CHECK(c.primary() == std::optional<int>(p));
    // PostgreSQL still runs with its last good max_connections (a restart-only parameter).
    auto mc = t::http_request("127.0.0.1", c.node(p).api_port, "GET", "/patroni");
    CHECK(mc.body.find("pending_restart") == std::string::npos);
    std::printf("E2E[%s] bad-config: PATCH refused twice, foreign bad write survived, primary=%s\n",
                tag.c_str(),
                c.node(p).name.c_str());
}

}  // namespace

TEST_CASE("e2e (etcd3): a bad dynamic config is refused by PATCH /config and survived in the DCS",
          "[e2e][etcd3][config]") {
    on_backend(BackendKind::Etcd3, bad_dynamic_config);
}

TEST_CASE(
    "e2e (consul test server): a bad dynamic config is refused by PATCH /config and survived in "
    "the DCS",
    "[e2e][consul][config]") {
    on_backend(BackendKind::ConsulTestServer, bad_dynamic_config);
}
