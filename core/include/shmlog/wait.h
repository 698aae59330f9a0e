// Wait strategies: what a thread does when it finds no work. Each is a small
// value type; a Waiter applies it with one verb, idle(work_count), and a
// reset. Escalation of backoff: spin with pause -> yield -> park (futex).
#pragma once

#include <chrono>
#include <cstdint>

namespace shmlog {

struct WaitStrategy {
  enum class Kind : std::uint8_t { kSpin, kYield, kBackoff, kBlock };
  Kind kind = Kind::kBackoff;
  std::uint32_t spins = 1000;   // pause iterations before yielding (backoff)
  std::uint32_t yields = 100;   // yields before parking (backoff)
  static WaitStrategy spin() { return {Kind::kSpin, 0, 0}; }
  static WaitStrategy yield() { return {Kind::kYield, 0, 0}; }
  static WaitStrategy backoff(std::uint32_t spins = 1000, std::uint32_t yields = 100) {
    return {Kind::kBackoff, spins, yields};
  }
  // Parks on a futex right away: the cheapest on CPU, ~50 us to wake.
  static WaitStrategy block() { return {Kind::kBlock, 0, 0}; }
};

// Parses "spin", "yield", "backoff" or "block"; false if unknown.
bool parse_wait_strategy(const char* text, WaitStrategy* out) noexcept;

// Applies a strategy. idle() returns true when the caller should park now
// (futex wait on its condition); spinning and yielding happen inside.
class Waiter {
 public:
  explicit Waiter(WaitStrategy strategy) noexcept : strategy_(strategy) {}
  [[nodiscard]] bool idle(std::uint64_t work_count) noexcept;
  void reset() noexcept { count_ = 0; }

 private:
  WaitStrategy strategy_;
  std::uint64_t count_ = 0;
};

}  // namespace shmlog
