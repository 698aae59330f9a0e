// Parsers of the command's option values: pure, errors as values naming
// the value, so that `shmlog` prints one clear line and exits 2.
// Fuzzed by tests/fuzz/args_fuzz.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "shmlog/log.h"

namespace shmlog::tools {

// "500us", "2ms", "1s" in microseconds; nullopt when `text` does not end in
// one of those units (it may be a size); an error when it does but the
// number is not a plain decimal or the duration overflows.
Result<std::optional<std::uint64_t>> parse_micros(std::string_view text);

// --from: earliest, latest or a decimal offset.
Result<StartFrom> parse_start(std::string_view text);

// groups --to: earliest, latest, a decimal offset, a UTC time
// (2026-12-04T21:30:00Z, fractions of a second allowed) or a time before
// `now_ns` (CLOCK_REALTIME): -90s, -15m, -2h, -1d, -500ms.
Result<GroupReset> parse_reset(std::string_view text, std::uint64_t now_ns);

}  // namespace shmlog::tools
