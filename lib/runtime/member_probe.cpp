#include "runtime/member_probe.hpp"

#include "asio/event.hpp"
#include "asio/spawn.hpp"
#include "dcs/http_client.hpp"
#include "dcs/patroni_values.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <exception>
#include <memory>

namespace net = boost::asio;
using nlohmann::json;

namespace pgwarden::runtime {
namespace {

std::int64_t int_of(const json& j, const char* key) {
    if (auto it = j.find(key); it != j.end() && it->is_number_integer()) {
        return it->get<std::int64_t>();
    }
    return 0;
}

struct Gather {
    Gather(net::any_io_executor ex, std::size_t n) : done(std::move(ex), n) { results.resize(n); }
    std::vector<core::MemberProbe> results;
    async::Countdown done;
};

net::awaitable<void> probe_into(std::shared_ptr<Gather> g,
                                std::size_t index,
                                net::any_io_executor ex,
                                core::Member member,
                                std::chrono::milliseconds timeout) {
    g->results[index] = co_await probe_member(ex, std::move(member), timeout);
}

// Completion of one probe_into: an exception (a bug: probes report failures as values) is
// logged, the member stays unreachable, and the countdown still counts it.
struct ProbeDone {
    std::shared_ptr<Gather> g;
    void operator()(const std::exception_ptr& e) const {
        if (e) {
            async::log_exception("member probe", e);
        }
        g->done.arrive();
    }
};

}  // namespace

core::MemberProbe parse_member_probe(const std::string& name, const std::string& body) {
    core::MemberProbe p;
    p.name = name;
    auto j = json::parse(body, nullptr, false);
    if (!j.is_object()) {
        return p;
    }
    // Patroni requires xlog (or wal): a body without it is an unreachable member.
    const json* xlog = nullptr;
    if (auto it = j.find("xlog"); it != j.end() && it->is_object()) {
        xlog = &*it;
    } else if (auto w = j.find("wal"); w != j.end() && w->is_object()) {
        xlog = &*w;
    }
    if (xlog == nullptr) {
        return p;
    }
    // Reachable with whatever it did say: a field of an unexpected type counts as absent
    // (Patroni would not even get here for a non-string role, but a member must not vanish
    // from the race because of one odd field).
    p.reachable = true;
    const std::string role = dcs::patroni_string(j, "role").value_or(std::string());
    const std::int64_t location = int_of(*xlog, "location");
    p.is_primary = location != 0 || role == "primary" || role == "master";
    p.wal_position = p.is_primary ? location
                                  : std::max(int_of(*xlog, "received_location"),
                                             int_of(*xlog, "replayed_location"));
    p.timeline = static_cast<int>(int_of(j, "timeline"));
    p.state = dcs::patroni_string(j, "state").value_or(std::string());
    if (auto it = j.find("watchdog_failed"); it != j.end()) {
        p.watchdog_failed = dcs::patroni_truthy(*it);
    }
    if (auto t = j.find("tags"); t != j.end()) {
        const auto tags = dcs::patroni_failover_tags(*t);
        p.nofailover = tags.nofailover;
        p.failover_priority = tags.failover_priority;
    }
    return p;
}

net::awaitable<core::MemberProbe> probe_member(net::any_io_executor ex,
                                               core::Member member,
                                               std::chrono::milliseconds timeout) {
    core::MemberProbe unreachable;
    unreachable.name = member.name;
    // api_url is http://host:port/patroni
    std::string url = member.api_url;
    if (url.rfind("http://", 0) != 0) {
        co_return unreachable;  // https is not supported yet
    }
    url = url.substr(7);
    const auto slash = url.find('/');
    const std::string hostport = url.substr(0, slash);
    const std::string path = slash == std::string::npos ? "/patroni" : url.substr(slash);
    auto hp = dcs::parse_host_port(hostport, 8008);
    if (!hp) {
        co_return unreachable;
    }
    dcs::HttpClient client(ex, hp->host, hp->port);
    auto r = co_await client.request("GET", path, "", {}, timeout);
    if (!r || r->status != 200) {
        co_return unreachable;
    }
    co_return parse_member_probe(member.name, r->body);
}

net::awaitable<std::vector<core::MemberProbe>> probe_members(net::any_io_executor ex,
                                                             std::vector<core::Member> members,
                                                             std::chrono::milliseconds timeout) {
    auto g = std::make_shared<Gather>(ex, members.size());
    for (std::size_t i = 0; i < members.size(); ++i) {
        g->results[i].name = members[i].name;
        net::co_spawn(ex, probe_into(g, i, ex, members[i], timeout), ProbeDone{g});
    }
    // Every probe has its own deadline; the countdown waits a little longer than that at most.
    co_await g->done.done().wait_until(std::chrono::steady_clock::now() + timeout +
                                       std::chrono::milliseconds(500));
    co_return g->results;
}

}  // namespace pgwarden::runtime
