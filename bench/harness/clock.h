// Time for latency measurement: the CPU's invariant TSC, calibrated against
// CLOCK_MONOTONIC, so that a timestamp costs ~10 ns and is comparable across
// cores and processes (children inherit the calibration across fork).
#pragma once

#include <cstdint>

#include "shmlog/detail/producer_hot.h"

namespace shmlog::bench {

inline std::uint64_t rdtsc() noexcept { return detail::read_ticks(); }

struct Tsc {
  bool usable = false;     // invariant (constant and nonstop) TSC on x86
  double ns_per_tick = 0;  // from the calibration
  double ghz() const { return ns_per_tick > 0 ? 1.0 / ns_per_tick : 0; }
};

// Checks the TSC (cpuid and /proc/cpuinfo flags) and calibrates it over
// ~100 ms. Without a usable TSC, now_ticks() falls back to the monotonic
// clock in ns (ns_per_tick = 1).
Tsc calibrate_tsc();

class Clock {
 public:
  explicit Clock(Tsc tsc) : tsc_(tsc) {}
  std::uint64_t now_ticks() const noexcept;
  std::uint64_t to_ns(std::uint64_t ticks) const noexcept {
    return static_cast<std::uint64_t>(static_cast<double>(ticks) * tsc_.ns_per_tick);
  }
  std::uint64_t from_ns(double ns) const noexcept {
    return static_cast<std::uint64_t>(ns / tsc_.ns_per_tick);
  }
  const Tsc& tsc() const noexcept { return tsc_; }

 private:
  Tsc tsc_;
};

std::uint64_t monotonic_ns() noexcept;

}  // namespace shmlog::bench
