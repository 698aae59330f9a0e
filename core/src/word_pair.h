// Two adjacent 64-bit words in shared memory, 16-byte aligned, compared and
// replaced together (cmpxchg16b): lock-free across processes.
#pragma once

#include <cstdint>

// ThreadSanitizer does not see inside the asm: it is told that the CAS
// acquires and releases at `pair`, as the locked instruction does (a
// reader's acquire load of the first word then orders after it).
#if defined(__SANITIZE_THREAD__)
#define SHMLOG_WORD_PAIR_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHMLOG_WORD_PAIR_TSAN 1
#endif
#endif
#ifdef SHMLOG_WORD_PAIR_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace shmlog::detail {

// Replaces (first, second) at `pair` with (new_first, new_second) if it holds
// (first, second); otherwise loads what it holds into them.
inline bool cas_pair(std::uint64_t* pair, std::uint64_t& first, std::uint64_t& second, std::uint64_t new_first,
                     std::uint64_t new_second) noexcept {
#if defined(__x86_64__)
  bool ok;
#ifdef SHMLOG_WORD_PAIR_TSAN
  __tsan_release(pair);
#endif
  asm volatile("lock cmpxchg16b (%[pair])"
               : "=@ccz"(ok), "+a"(first), "+d"(second)
               : [pair] "r"(pair), "b"(new_first), "c"(new_second)
               : "memory");
#ifdef SHMLOG_WORD_PAIR_TSAN
  __tsan_acquire(pair);
#endif
  return ok;
#else
  __extension__ using Pair = unsigned __int128;
  Pair expected = static_cast<Pair>(second) << 64 | first;
  const Pair desired = static_cast<Pair>(new_second) << 64 | new_first;
  const bool ok = __atomic_compare_exchange_n(reinterpret_cast<Pair*>(pair), &expected, desired, false,
                                              __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  first = static_cast<std::uint64_t>(expected);
  second = static_cast<std::uint64_t>(expected >> 64);
  return ok;
#endif
}

// Reads a pair atomically (a CAS that writes back what it finds).
inline void load_pair(std::uint64_t* pair, std::uint64_t& first, std::uint64_t& second) noexcept {
  first = second = 0;
  (void)cas_pair(pair, first, second, 0, 0);
}

}  // namespace shmlog::detail
