#include "core/go_duration.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string>

namespace pgwarden::core {

std::optional<double> parse_go_duration_ms(std::string_view text) {
    if (text == "0") {
        return 0.0;
    }
    if (text.empty()) {
        return std::nullopt;
    }
    double total_ms = 0;
    std::size_t n = 0;
    while (n < text.size()) {
        const std::size_t start = n;
        while (n < text.size() &&
               (std::isdigit(static_cast<unsigned char>(text[n])) != 0 || text[n] == '.')) {
            ++n;
        }
        // strtod reads the longest number at the start of the run ("1.5" of "1.5.2"); a run it
        // cannot read at all ("." or "..5") or an overflow is not a duration.
        const std::string run(text.substr(start, n - start));
        char* end = nullptr;
        const double number = std::strtod(run.c_str(), &end);
        if (run.empty() || end == run.c_str() || !std::isfinite(number)) {
            return std::nullopt;
        }
        const std::size_t unit_start = n;
        while (n < text.size() && (std::isalpha(static_cast<unsigned char>(text[n])) != 0 ||
                                   static_cast<unsigned char>(text[n]) >= 0x80)) {
            ++n;
        }
        const std::string_view unit = text.substr(unit_start, n - unit_start);
        double factor = 0;
        if (unit == "h") {
            factor = 3600000;
        } else if (unit == "m") {
            factor = 60000;
        } else if (unit == "s") {
            factor = 1000;
        } else if (unit == "ms") {
            factor = 1;
        } else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") {  // µs, μs
            factor = 0.001;
        } else if (unit == "ns") {
            factor = 0.000001;
        } else {
            return std::nullopt;
        }
        total_ms += number * factor;
    }
    if (!std::isfinite(total_ms)) {
        return std::nullopt;  // e.g. "99999999999999999999h": finite parts, infinite sum
    }
    return total_ms;
}

}  // namespace pgwarden::core
