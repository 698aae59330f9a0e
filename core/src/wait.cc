#include <cstring>

#include "shmlog/shm/process.h"
#include "shmlog/wait.h"

namespace shmlog {

bool parse_wait_strategy(const char* text, WaitStrategy* out) noexcept {
  if (std::strcmp(text, "spin") == 0) {
    *out = WaitStrategy::spin();
  } else if (std::strcmp(text, "yield") == 0) {
    *out = WaitStrategy::yield();
  } else if (std::strcmp(text, "backoff") == 0) {
    *out = WaitStrategy::backoff();
  } else if (std::strcmp(text, "block") == 0) {
    *out = WaitStrategy::block();
  } else {
    return false;
  }
  return true;
}

bool Waiter::idle(std::uint64_t work_count) noexcept {
  if (work_count > 0) {
    count_ = 0;
    return false;
  }
  ++count_;
  switch (strategy_.kind) {
    case WaitStrategy::Kind::kSpin:
      shm::cpu_relax();
      return false;
    case WaitStrategy::Kind::kYield:
      shm::yield_now();
      return false;
    case WaitStrategy::Kind::kBackoff:
      if (count_ <= strategy_.spins) {
        shm::cpu_relax();
        return false;
      }
      if (count_ <= std::uint64_t{strategy_.spins} + strategy_.yields) {
        shm::yield_now();
        return false;
      }
      return true;
    case WaitStrategy::Kind::kBlock:
      return true;
  }
  return true;
}

}  // namespace shmlog
