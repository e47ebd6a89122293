// Go's time.ParseDuration for the durations Consul uses ("10s", "1m30s", "0.001s", "250ms").
// Shared by the configuration loader and the Consul backend. Pure.
#pragma once

#include <optional>
#include <string_view>

namespace pgwarden::core {

// The duration in milliseconds (fractional), or nullopt if unparsable. "0" is 0; otherwise a
// sequence of <number><unit> with units h, m, s, ms, us/µs/μs, ns. No sign, as Consul writes them.
std::optional<double> parse_go_duration_ms(std::string_view text);

}  // namespace pgwarden::core
