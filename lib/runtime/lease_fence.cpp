// The in-process fence: a timer at core::fence_deadline() that runs core::fence() when it
// fires, so a primary whose lease ran out stops taking writes even while the loop is stuck on
// the DCS. (A fence that survives the daemon itself is issue 10's separate process.)
#include "runtime/runtime.hpp"

#include <spdlog/spdlog.h>

namespace pgwarden::runtime {

LeaseFence::LeaseFence(Runtime& rt) : rt_(rt), timer_(rt.ex) {}

void LeaseFence::update() {
    const auto deadline = core::fence_deadline(rt_.state, rt_.observer.dynamic());
    if (deadline == armed_for_) {
        return;
    }
    armed_for_ = deadline;
    timer_.cancel();
    if (!deadline) {
        return;
    }
    const core::MonoMs in = std::max<core::MonoMs>(0, *deadline - rt_.now());
    timer_.expires_after(std::chrono::milliseconds(in));
    std::weak_ptr<Runtime> weak = rt_.weak_from_this();
    timer_.async_wait([weak](boost::system::error_code ec) {
        if (auto rt = weak.lock(); rt && !ec) {
            rt->fence.fire();
        }
    });
}

void LeaseFence::cancel() {
    armed_for_.reset();
    timer_.cancel();
}

void LeaseFence::fire() {
    armed_for_.reset();
    auto r = core::fence(rt_.state, rt_.now(), rt_.observer.dynamic(), rt_.observer.pg());
    if (r.plan.actions.empty()) {
        update();
        return;
    }
    spdlog::error("{}: stopping postgresql now so it cannot accept writes without the lock",
                  r.plan.reason);
    rt_.set_state(r.next);
    rt_.publisher.set_last_outcome(r.plan.reason);
    rt_.executor.start_long(r.plan.actions.front());
    rt_.wakeup();
}

}  // namespace pgwarden::runtime
