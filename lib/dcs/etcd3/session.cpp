// The etcd3 backend's connection: API discovery, authentication, call() with retries across
// hosts, and the lease (grant, keepalive, loss).
#include "dcs/etcd3/errors.hpp"
#include "dcs/etcd3/state.hpp"
#include "dcs/etcd3/wire.hpp"

#include <spdlog/spdlog.h>

namespace pgwarden::dcs::etcd3 {

namespace {

// GET /version -> API prefix (Patroni: >= 3.4 -> /v3, 3.3 -> /v3beta, older -> /v3alpha).
net::awaitable<Result<void>> discover_api(StatePtr s, Clock::time_point deadline) {
    auto timeout = std::min(s->attempt_timeout(), std::max(remaining(deadline), milliseconds(1)));
    ++s->requests["/version"];
    auto r = co_await s->client().request("GET", "/version", "", s->headers(), timeout);
    if (!r) {
        co_return r.error();
    }
    if (r->status != 200) {
        co_return r->status >= 500 ? Errc::Unavailable : Errc::Protocol;
    }
    std::string version;
    auto api = api_prefix(json::parse(r->body, nullptr, false), version);
    if (!api) {
        spdlog::warn("etcd3: cannot parse version from \"{}\"; assuming /v3", r->body);
        s->api = "/v3";
        co_return Result<void>{};
    }
    s->api = std::move(*api);
    spdlog::info("etcd3: cluster version {} at {}:{}, using {}",
                 version,
                 s->client().host(),
                 s->client().port(),
                 s->api);
    co_return Result<void>{};
}

net::awaitable<Result<void>> authenticate(StatePtr s, Clock::time_point deadline) {
    json body{{"name", s->settings.username}, {"password", s->settings.password}};
    auto timeout = std::min(s->attempt_timeout(), std::max(remaining(deadline), milliseconds(1)));
    HttpHeaders headers{{"Content-Type", "application/json"}};
    ++s->requests["/auth/authenticate"];
    auto r = co_await s->client().request(
        "POST", s->api + "/auth/authenticate", body.dump(), std::move(headers), timeout);
    if (!r) {
        co_return r.error();
    }
    auto parsed = json::parse(r->body, nullptr, false);
    if (r->status == 200 && parsed.is_object()) {
        s->token = id_field(parsed, "token");
        if (s->token.empty()) {
            co_return Errc::Protocol;
        }
        spdlog::info("etcd3: authenticated as {}", s->settings.username);
        co_return Result<void>{};
    }
    EtcdError e;
    if (auto extracted = extract_error(parsed)) {
        e = std::move(*extracted);
    }
    if (contains(e.message, "authentication is not enabled")) {
        spdlog::info("etcd3: authentication is not enabled on the server; continuing without");
        s->auth_disabled = true;
        co_return Result<void>{};
    }
    if (r->status >= 500 || e.code == kGrpcUnavailable) {
        co_return Errc::Unavailable;
    }
    spdlog::error("etcd3: authentication as {} failed: {}", s->settings.username, e.message);
    co_return Errc::Unauthorized;
}

net::awaitable<Result<void>> ensure_ready(StatePtr s, Clock::time_point deadline) {
    if (s->config_error) {
        co_return Errc::BadRequest;
    }
    if (s->api.empty()) {
        auto r = co_await discover_api(s, deadline);
        if (!r) {
            co_return r;
        }
    }
    if (!s->settings.username.empty() && s->token.empty() && !s->auth_disabled) {
        auto r = co_await authenticate(s, deadline);
        if (!r) {
            co_return r;
        }
    }
    co_return Result<void>{};
}

}  // namespace

// One RPC with retries until `deadline`: transient errors switch host and back off.
net::awaitable<Result<json>> call(StatePtr s,
                                  std::string path,
                                  json body,
                                  Clock::time_point deadline) {
    const std::string text = body.dump();
    Errc last = Errc::Unavailable;
    auto backoff = kFirstBackoff;
    bool reauthenticated = false;
    while (true) {
        if (Clock::now() >= deadline) {
            co_return make_error_code(last);
        }
        auto ready = co_await ensure_ready(s, deadline);
        Verdict v;
        if (!ready) {
            v.result = ready.error();
            v.retry = is_retriable(static_cast<Errc>(ready.error().value())) &&
                      ready.error().category() == dcs_category();
        } else {
            auto timeout = std::min(s->attempt_timeout(), remaining(deadline));
            if (timeout <= milliseconds(0)) {
                co_return make_error_code(last);
            }
            ++s->requests[path];
            auto r =
                co_await s->client().request("POST", s->api + path, text, s->headers(), timeout);
            if (!r) {
                v.result = r.error();
                v.retry = r.error() != make_error_code(Errc::Cancelled);
            } else {
                v = classify(*r);
            }
        }
        if (v.result) {
            if (auto rev = header_revision(*v.result); rev > 0) {
                s->note_revision(rev, must_read_after(path, *v.result));
            }
            co_return std::move(v.result);
        }
        if (v.reauth && !s->settings.username.empty() && !reauthenticated) {
            spdlog::info("etcd3: token rejected; authenticating again");
            s->token.clear();
            s->auth_disabled = false;
            reauthenticated = true;
            continue;
        }
        if (!v.retry) {
            co_return v.result.error();
        }
        // etcd did not answer (or has no quorum): the watch may be as dead, so the cache is not
        // trusted until it has been read again; get_cluster reads directly meanwhile and reports
        // the outage as an error (a DCS error is never "no leader").
        s->drop_cache("a request failed");
        if (v.result.error().category() == dcs_category()) {
            last = static_cast<Errc>(v.result.error().value());
        }
        spdlog::debug("etcd3: {} failed ({}); retrying", path, v.result.error().message());
        s->next_host();
        auto pause = std::min<Clock::duration>(backoff, deadline - Clock::now());
        if (pause > Clock::duration::zero()) {
            co_await sleep_for(s->executor, pause);
        }
        backoff = std::min(backoff * 2, kMaxBackoff);
    }
}

Clock::time_point op_deadline(const StatePtr& s) {
    return Clock::now() + s->retry_timeout();
}

namespace {

net::awaitable<Result<void>> grant_lease(StatePtr s, Clock::time_point deadline) {
    json request{{"TTL", s->timing.ttl}};
    auto r = co_await call(s, "/lease/grant", std::move(request), deadline);
    if (!r) {
        co_return r.error();
    }
    auto id = id_field(*r, "ID");
    if (id.empty() || id == "0") {
        co_return Errc::Protocol;
    }
    s->lease = id;
    s->lease_ttl = s->timing.ttl;
    s->last_lease_refresh = Clock::now();
    s->keepalive_revision = 0;
    spdlog::info("etcd3: granted lease {} ttl={}s", id, i64_field(*r, "TTL"));
    co_return Result<void>{};
}

}  // namespace

// Our lease is gone (expired, revoked, or replaced after a ttl change): so are the keys attached
// to it. Forget that the member key is ours, so that touch_member writes it again.
void drop_lease(State& s) {
    s.lease.clear();
    s.keepalive_revision = 0;
    s.member_value.reset();
    s.member_owner.clear();
}

// Patroni's _do_refresh_lease: keepalive at most once per loop_wait unless forced; a keepalive
// answer without TTL means the lease is gone, then (or without a lease) grant a new one.
net::awaitable<Result<void>> refresh_lease(StatePtr s, bool force, Clock::time_point deadline) {
    if (!s->lease.empty() && s->lease_ttl != s->timing.ttl) {
        spdlog::info("etcd3: ttl changed to {}s; dropping lease {}", s->timing.ttl, s->lease);
        drop_lease(*s);
    }
    if (!s->lease.empty() && !force &&
        Clock::now() - s->last_lease_refresh < std::chrono::seconds(s->timing.loop_wait)) {
        co_return Result<void>{};
    }
    if (!s->lease.empty()) {
        json request{{"ID", s->lease}};
        auto r = co_await call(s, "/lease/keepalive", std::move(request), deadline);
        if (!r) {
            if (r.error() != make_error_code(Errc::NotFound)) {
                co_return r.error();
            }
            drop_lease(*s);
        } else {
            const json& result = r->contains("result") ? (*r)["result"] : *r;
            if (i64_field(result, "TTL") <= 0) {
                spdlog::warn("etcd3: lease {} expired", s->lease);
                drop_lease(*s);
            } else {
                s->last_lease_refresh = Clock::now();
                s->keepalive_revision = header_revision(*r);
            }
        }
    }
    if (s->lease.empty()) {
        co_return co_await grant_lease(s, deadline);
    }
    co_return Result<void>{};
}

}  // namespace pgwarden::dcs::etcd3
