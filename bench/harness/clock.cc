#include "clock.h"

#include <time.h>

#include <utility>

namespace shmlog::bench {

std::uint64_t monotonic_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

Tsc calibrate_tsc() {
  Tsc t;
  if (!detail::invariant_tsc()) {
    t.ns_per_tick = 1.0;
    return t;
  }
  // Several short windows; keep the median to shrug off a preemption.
  double samples[5];
  for (double& s : samples) {
    const std::uint64_t n0 = monotonic_ns(), t0 = rdtsc();
    while (monotonic_ns() - n0 < 20'000'000) {
    }
    const std::uint64_t n1 = monotonic_ns(), t1 = rdtsc();
    s = static_cast<double>(n1 - n0) / static_cast<double>(t1 - t0);
  }
  for (int i = 0; i < 5; ++i) {
    for (int j = i + 1; j < 5; ++j) {
      if (samples[j] < samples[i]) std::swap(samples[i], samples[j]);
    }
  }
  t.usable = true;
  t.ns_per_tick = samples[2];
  return t;
}

std::uint64_t Clock::now_ticks() const noexcept { return tsc_.usable ? rdtsc() : monotonic_ns(); }

}  // namespace shmlog::bench
