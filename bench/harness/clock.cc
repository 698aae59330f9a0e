#include "clock.h"

#include <cpuid.h>
#include <time.h>

#include <fstream>
#include <sstream>
#include <string>

namespace shmlog::bench {

std::uint64_t monotonic_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

namespace {

bool cpuinfo_has(const std::string& flag) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line);
    for (std::string w; words >> w;) {
      if (w == flag) return true;
    }
    return false;
  }
  return false;
}

bool invariant_tsc() {
#if defined(__x86_64__)
  unsigned a, b, c, d;
  // CPUID 0x80000007 EDX bit 8: invariant TSC. Hypervisors often hide the
  // leaf but report the equivalent constant_tsc + nonstop_tsc flags.
  if (__get_cpuid(0x80000007, &a, &b, &c, &d) && (d & (1u << 8))) return true;
  return cpuinfo_has("constant_tsc") && cpuinfo_has("nonstop_tsc");
#else
  return false;
#endif
}

}  // namespace

Tsc calibrate_tsc() {
  Tsc t;
  if (!invariant_tsc()) {
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
