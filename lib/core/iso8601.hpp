// ISO 8601 timestamps as Patroni writes and accepts them (scheduled_at, schedule): one parser
// for the whole daemon.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgwarden::core {

// "2026-01-01T10:00:00+01:00", "...Z", seconds optional ("2026-01-01T10:00+00:00"), fractions
// allowed; the timezone is required (Patroni refuses naive times). Epoch milliseconds.
std::optional<std::int64_t> parse_iso8601_ms(std::string_view text) noexcept;

// Epoch milliseconds as "2026-01-01T09:00:00+00:00".
std::string format_iso8601(std::int64_t epoch_ms);

}  // namespace pgwarden::core
