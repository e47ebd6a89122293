// The consul backend's requests (call(): retries and what a status means) and its session:
// create, renew, acquire with it, and the agent's SessionTTLMin check.
#include "dcs/consul/state.hpp"

namespace pgwarden::dcs::consul {

namespace {

using json = nlohmann::json;

}  // namespace

net::awaitable<Result<HttpResponse>> call(StatePtr s,
                                          std::string method,
                                          std::string target,
                                          std::string body,
                                          Clock::time_point deadline) {
    Errc last = Errc::Unavailable;
    auto backoff = kBackoff;
    while (true) {
        const auto timeout = std::min(s->attempt_timeout(), remaining(deadline));
        if (timeout <= milliseconds(0)) {
            co_return last;
        }
        auto r = co_await s->client.request(method, target, body, s->headers(), timeout);
        if (!r) {
            if (r.error() == make_error_code(Errc::Cancelled)) {
                co_return r.error();
            }
            last = r.error() == make_error_code(Errc::Timeout) ? Errc::Timeout : Errc::Unavailable;
        } else {
            const unsigned st = r->status;
            switch (classify(st, r->body)) {
                case Answer::Deliver:
                    if (st != 500) {
                        s->last_error_logged.clear();
                    }
                    co_return r;
                case Answer::Forbidden:
                case Answer::Unauthorized:
                    s->log_error_once("consul: " + method + " " + target + " answered " +
                                      std::to_string(st) + " " + r->body +
                                      ": the consul.token is missing or lacks permissions; "
                                      "refusing to act on what cannot be read or written");
                    co_return st == 403 ? Errc::Forbidden : Errc::Unauthorized;
                case Answer::BadRequest:
                    s->log_error_once("consul: " + method + " " + target + " answered " +
                                      std::to_string(st) + " " + r->body);
                    co_return Errc::BadRequest;
                case Answer::Retry:
                    spdlog::debug(
                        "consul: {} {} answered {} {}; retrying", method, target, st, r->body);
                    last = Errc::Unavailable;
                    break;
            }
        }
        auto pause = std::min<Clock::duration>(backoff, deadline - Clock::now());
        if (pause <= Clock::duration::zero()) {
            co_return last;
        }
        co_await sleep_for(s->executor, pause);
        backoff = std::min(backoff * 2, milliseconds(1000));
    }
}

namespace {

net::awaitable<Result<void>> create_session(StatePtr s, Clock::time_point deadline) {
    const json body =
        session_request(s->scope + "-" + s->member_name, s->timing.ttl, s->settings.checks);
    auto r =
        co_await call(s, "PUT", s->with_params("/v1/session/create", false), body.dump(), deadline);
    if (!r) {
        co_return r.error();
    }
    if (r->status == 500 && r->body.find("Invalid Session TTL") != std::string::npos) {
        s->log_error_once("consul: refused a session TTL of " + seconds_text(s->timing.ttl * 5) +
                          " (ttl " + std::to_string(s->timing.ttl) + " / 2): " + r->body +
                          "; raise ttl to at least 20");
        co_return Errc::BadRequest;
    }
    auto parsed = json::parse(r->body, nullptr, false);
    if (r->status != 200 || !parsed.is_object() || !parsed.contains("ID") ||
        !parsed["ID"].is_string()) {
        co_return Errc::Protocol;
    }
    s->session = parsed["ID"].get<std::string>();
    s->session_renewed = Clock::now();
    spdlog::info(
        "consul: created session {} (ttl {})", s->session, seconds_text(s->timing.ttl * 5));
    co_return Result<void>{};
}

}  // namespace

// Makes sure we have a live session; renews it when forced or older than loop_wait.
net::awaitable<Result<void>> ensure_session(StatePtr s, bool force, Clock::time_point deadline) {
    if (s->session.empty()) {
        co_return co_await create_session(s, deadline);
    }
    if (!force && Clock::now() - s->session_renewed < std::chrono::seconds(s->timing.loop_wait)) {
        co_return Result<void>{};
    }
    const auto started = Clock::now();
    auto r = co_await call(
        s, "PUT", s->with_params("/v1/session/renew/" + s->session, false), "", deadline);
    if (!r) {
        co_return r.error();
    }
    if (r->status == 404) {
        spdlog::warn("consul: session {} is gone; creating a new one", s->session);
        s->session.clear();
        co_return co_await create_session(s, deadline);
    }
    if (r->status != 200) {
        co_return Errc::Protocol;
    }
    s->session_renewed = started;
    co_return Result<void>{};
}

// PUT <key>?acquire=<session>; a dead session is replaced and the acquire retried once.
net::awaitable<Result<bool>> acquire(StatePtr s,
                                     std::string key,
                                     std::string value,
                                     Clock::time_point deadline) {
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto ok = co_await ensure_session(s, false, deadline);
        if (!ok) {
            co_return Result<bool>(boost::system::in_place_error, ok.error());
        }
        auto r = co_await call(s,
                               "PUT",
                               s->with_params(s->kv(key) + "?acquire=" + s->session, false),
                               value,
                               deadline);
        if (!r) {
            co_return Result<bool>(boost::system::in_place_error, r.error());
        }
        if (r->status == 500) {
            spdlog::warn(
                "consul: acquire of {} with session {} failed: {}", key, s->session, r->body);
            s->session.clear();
            continue;
        }
        co_return parse_bool_body(*r);
    }
    co_return Errc::NotFound;
}

net::awaitable<Result<void>> do_check_ttl(StatePtr s, int ttl, std::string* message) {
    auto r = co_await call(s, "GET", s->with_params("/v1/agent/self", false), "", s->op_deadline());
    if (!r) {
        co_return r.error();
    }
    const auto min = r->status == 200 ? session_ttl_min(r->body) : milliseconds(10000);
    if (auto refusal = ttl_refusal(ttl, min)) {
        *message = std::move(*refusal);
        co_return Errc::BadRequest;
    }
    co_return Result<void>{};
}

}  // namespace pgwarden::dcs::consul
