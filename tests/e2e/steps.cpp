#include "steps.hpp"

#include "support/net.hpp"

#include <catch2/catch.hpp>

namespace pgwarden::e2e {

using namespace std::chrono_literals;

void bring_up(Cluster& c) {
    c.start_all();
    if (!c.wait_healthy(kBootstrapTimeout)) {
        FAIL("the cluster did not become healthy (one primary, two streaming replicas) within "
             << kBootstrapTimeout.count() << " s:\n"
             << c.describe());
    }
}

void warm_up(const Writer& w, const Cluster& c, std::size_t n) {
    if (!t::wait_until([&] { return w.acked() >= n; }, 60s)) {
        FAIL("the writer got " << w.acked() << " of " << n
                               << " writes acknowledged; last error: " << w.last_error() << "\n"
                               << c.describe());
    }
}

Clock::time_point wait_writes_after(const Writer& w,
                                    const Cluster& c,
                                    Clock::time_point t,
                                    AckFilter filter,
                                    std::chrono::milliseconds timeout) {
    if (!t::wait_until([&] { return w.first_ack_after(t, filter).has_value(); }, timeout, 20ms)) {
        FAIL("no write was acknowledged within "
             << std::chrono::duration_cast<std::chrono::seconds>(timeout).count()
             << " s; the writer's last error: " << w.last_error() << "\n"
             << c.describe());
    }
    return *w.first_ack_after(t, filter);
}

LostWrites settle(Cluster& c, Writer& w, SplitBrainChecker& sb) {
    if (!c.wait_healthy(kRejoinTimeout)) {
        w.stop();
        sb.stop();
        INFO(sb.summary());
        FAIL("the cluster did not become healthy again within " << kRejoinTimeout.count() << " s:\n"
                                                                << c.describe());
    }
    std::string why;
    const bool streams = t::wait_until([&] { return c.primary_streams_to_all(&why); }, 30s, 250ms);
    INFO(why);
    CHECK(streams);
    std::string listed_why;
    const bool listed =
        t::wait_until([&] { return c.dcs_lists_all_members(&listed_why); }, 30s, 250ms);
    INFO(listed_why);
    CHECK(listed);
    wait_writes_after(w, c, Clock::now(), {}, 30s);
    w.stop();
    auto p = c.primary();
    LostWrites lost;
    if (p) {
        lost = count_lost(w, c.conninfo(*p));
    } else {
        lost.error = "no single primary to count the writes on";
    }
    sb.stop();
    INFO(sb.summary());
    CHECK(sb.violations().empty());
    CHECK(lost.error.empty());
    return lost;
}

}  // namespace pgwarden::e2e
