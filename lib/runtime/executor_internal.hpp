// Helpers shared by the executor and the long actions (private to lib/runtime).
#pragma once

#include "core/iso8601.hpp"
#include "runtime/runtime.hpp"

#include <optional>
#include <string>
#include <vector>

namespace pgwarden::runtime {

// The primary's flush position, published as the optime (nullopt on a replica).
std::optional<std::int64_t> last_lsn(const core::PgObservation& pg);
// Slot names for an action: the members' names mangled as Patroni does, plus permanent slots.
std::vector<std::string> slot_names(const core::Action& a);
core::ActionResult result_of(const core::Action& a);
core::ActionResult failed(core::ActionResult r, core::Failure f, std::string message);

// One long action, from start to its result (long_actions.cpp).
net::awaitable<core::ActionResult> run_long_action(std::shared_ptr<Runtime> rt, core::Action a);

}  // namespace pgwarden::runtime
