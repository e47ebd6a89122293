// Private to pgw_rest: the calendar arithmetic of core/iso8601.hpp under its REST name.
#pragma once

#include "core/iso8601.hpp"

namespace pgwarden::rest {

using core::days_from_civil;

}  // namespace pgwarden::rest
