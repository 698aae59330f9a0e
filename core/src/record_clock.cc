// Re-anchoring a producer's RecordClock (shmlog/detail/producer_hot.h):
// whether the TSC is used at all, the pair of clock readings an anchor is,
// and the TSC's rate measured over the span since the last anchor.
#include <cpuid.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>
#include <string>

#include "shmlog/detail/producer_hot.h"
#include "test_hooks.h"

namespace shmlog::detail {

namespace {

// Re-anchor after this long (~13 ms at 2.5 GHz): NTP's slewing changes
// CLOCK_REALTIME's rate by at most 500 ppm, so a span's drift from a rate
// measured over the previous one stays well under a microsecond.
constexpr std::uint64_t kSpanTicks = std::uint64_t{1} << 25;
// A rate is measured over at least this many ticks (~3 ms), so that the
// anchors' uncertainty (tens of ns each) moves it by ~10 ppm at most.
constexpr std::uint64_t kMinRateTicks = std::uint64_t{1} << 23;
// Rates outside 0.05 to 2 ns per tick (a 0.5 to 20 GHz TSC) are not
// believed; 2 ns also keeps span × rate below 2^64.
constexpr std::uint64_t kMinRateQ32 = (std::uint64_t{1} << 32) / 20;
constexpr std::uint64_t kMaxRateQ32 = std::uint64_t{2} << 32;
static_assert(kSpanTicks < (UINT64_MAX / kMaxRateQ32), "span × rate must fit 64 bits");

bool cpu_flag(const std::string& flag) {
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

// The TSC is used where it is invariant and the kernel keeps time with it:
// a kernel that found it unstable has switched to another clocksource.
bool tsc_usable() {
  if (!invariant_tsc()) return false;
  std::ifstream source("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  std::string name;
  return !(source >> name) || name == "tsc";
}

// The last rate any producer of this process measured: a new producer's
// clock starts from it instead of waiting out a span of its own.
std::atomic<std::uint64_t> g_rate_q32{0};
// The narrowest anchor seen (ticks between the TSC reads around
// clock_gettime): a pair much wider than it was interrupted.
std::atomic<std::uint64_t> g_narrowest{UINT64_MAX};

// A TSC reading and CLOCK_REALTIME taken together: the TSC's midpoint around
// clock_gettime. False when every try was interrupted (wider than twice
// the narrowest seen, plus slack).
bool take_anchor(std::uint64_t* ticks, std::uint64_t* ns) {
  for (int attempt = 0; attempt < 4; ++attempt) {
    const std::uint64_t before = read_ticks();
    const std::uint64_t now = now_realtime_ns();
    const std::uint64_t after = read_ticks();
    if (after < before) continue;  // moved to a core whose TSC is behind
    const std::uint64_t width = after - before;
    std::uint64_t narrowest = g_narrowest.load(std::memory_order_relaxed);
    while (width < narrowest && !g_narrowest.compare_exchange_weak(narrowest, width, std::memory_order_relaxed)) {
    }
    if (width <= 2 * std::min(narrowest, width) + 256) {
      *ticks = before + width / 2;
      *ns = now;
      return true;
    }
  }
  return false;
}

}  // namespace

bool invariant_tsc() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  // CPUID 0x80000007 EDX bit 8; hypervisors often hide the leaf but report
  // the equivalent constant_tsc and nonstop_tsc flags.
  if (__get_cpuid(0x80000007, &a, &b, &c, &d) != 0 && (d & (1u << 8)) != 0) return true;
  return cpu_flag("constant_tsc") && cpu_flag("nonstop_tsc");
#else
  return false;
#endif
}

bool tsc_timestamps() noexcept {
  static const bool usable = tsc_usable();
  return usable;
}

std::uint64_t reanchor_clock(RecordClock& clock) noexcept {
  bool use_tsc = tsc_timestamps();
  if constexpr (hooks::kEnabled) use_tsc = use_tsc && !hooks::timestamps_from_system_clock;
  std::uint64_t ticks = 0, ns = 0;
  if (!use_tsc || !take_anchor(&ticks, &ns)) {
    clock.span_ticks = 0;  // the next record tries again
    return now_realtime_ns();
  }
  std::uint64_t rate = clock.ns_per_tick_q32 != 0 ? clock.ns_per_tick_q32 : g_rate_q32.load(std::memory_order_relaxed);
  // The rate over the span since the last anchor, where it is long enough
  // and both clocks moved forward (CLOCK_REALTIME can be stepped back).
  const bool measured = clock.anchor_ticks != 0 && ticks > clock.anchor_ticks && ns > clock.anchor_ns &&
                        ticks - clock.anchor_ticks >= kMinRateTicks;
  if (measured) {
    const double q32 = static_cast<double>(ns - clock.anchor_ns) / static_cast<double>(ticks - clock.anchor_ticks) *
                       static_cast<double>(std::uint64_t{1} << 32);
    if (q32 >= static_cast<double>(kMinRateQ32) && q32 <= static_cast<double>(kMaxRateQ32)) {
      // A known rate moves by at most 1/1024 a span: more than NTP's slewing
      // ever asks, so a clock stepped within the span moves it little.
      const std::uint64_t measured_rate = static_cast<std::uint64_t>(q32);
      rate = rate == 0 ? measured_rate : std::clamp(measured_rate, rate - rate / 1024, rate + rate / 1024);
      g_rate_q32.store(rate, std::memory_order_relaxed);
    }
  }
  // Without a rate yet, keep the first anchor until a span has passed.
  if (rate != 0 || clock.anchor_ticks == 0 || measured) {
    clock.anchor_ticks = ticks;
    clock.anchor_ns = ns;
  }
  clock.ns_per_tick_q32 = rate;
  clock.span_ticks = rate != 0 ? kSpanTicks : 0;
  return ns;
}

}  // namespace shmlog::detail
