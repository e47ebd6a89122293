// Small helpers of the Consul API test server: Go duration syntax, base64, URL decoding.
// Independent of the daemon's Consul client on purpose (the double must not share its bugs).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgwarden::consul_test {

using Nanos = std::chrono::nanoseconds;

// Result of parse_go_duration: a value or Go's error text (`time: invalid duration "x"`).
struct DurationResult {
    std::optional<Nanos> value;
    std::string error;
};

// Go `time.ParseDuration`: `<decimal><unit>` sequences, units ns us µs μs ms s m h, optional
// sign, a bare "0" allowed, anything unit-less is an error.
DurationResult parse_go_duration(std::string_view text);

// Go `time.Duration.String()`: "10s", "24h0m0s", "1m30s", "250ms", "1.5s", "0s".
std::string format_go_duration(Nanos d);

std::string base64_encode(std::string_view data);

// Percent-decoding; `plus_is_space` for query components (Go url.ParseQuery semantics).
std::optional<std::string> url_decode(std::string_view text, bool plus_is_space);

// Parsed query string; flags are tested by presence (spec §1).
class Query {
public:
    static std::optional<Query> parse(std::string_view raw);

    bool has(std::string_view key) const;
    std::optional<std::string> get(std::string_view key) const;
    std::vector<std::string> all(std::string_view key) const;
    // Canonical `k=v&k2=v2` re-encoding (sorted by key), used in "Conflicting flags: ..." text.
    std::string encode() const;

private:
    std::vector<std::pair<std::string, std::string>> items_;
};

// Go strconv.ParseUint for uint64 (decimal only, no sign, no spaces).
std::optional<std::uint64_t> parse_uint64(std::string_view text);

std::string to_lower(std::string_view text);

}  // namespace pgwarden::consul_test
