// Test-only hooks: points where this process kills itself (SIGKILL) or
// waits, so that crash tests can stop a process exactly there. They exist
// only in the library the tests link (shmlog_testing, built with
// SHMLOG_TEST_HOOKS=1): in the library users link, hooks::kEnabled is
// false and each hook site compiles to nothing. Not part of the public API
// (tests reach core/src).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#ifndef SHMLOG_TEST_HOOKS
#define SHMLOG_TEST_HOOKS 0
#endif

namespace shmlog {

namespace testing {
// The next claim committed by this process kills the process (SIGKILL)
// after its claim is registered and before it commits.
void die_between_claim_and_commit(bool enable) noexcept;
// The next plain record a named producer of this process commits kills the
// process (SIGKILL) right after it is published, before the producer counts
// its sequence.
void die_between_commit_and_count(bool enable) noexcept;
// The next FileSink::checkpoint of this process kills the process after it
// wrote the output and before it wrote the checkpoint entry.
void die_between_output_and_checkpoint(bool enable) noexcept;
// Producer::commit_transactions kills the process after the participants
// are prepared (1) or after the decision (2); 0: never.
void die_in_multi_log_commit(int stage) noexcept;
// commit_transaction kills the process right after its decision (1) or
// once its commit markers are written (2); 0: never.
void die_in_commit(int stage) noexcept;
// Recovery from the segment files in this process sleeps this long before
// it reads them (as a large log's recovery takes); 0: never.
void pause_in_recovery(std::chrono::milliseconds pause) noexcept;
// Called right after this process took a ring slot for preparing; nullptr: never.
void after_taking_slot(void (*call)(std::uint32_t partition, std::uint64_t segment)) noexcept;
// Records' timestamps read CLOCK_REALTIME for every record, as where the
// TSC is not usable.
void timestamps_from_system_clock(bool enable) noexcept;
}  // namespace testing

// What the hook sites read; defined in test_hooks.cc, which only
// shmlog_testing has. A site reads them inside `if constexpr (kEnabled)`.
namespace detail::hooks {
inline constexpr bool kEnabled = SHMLOG_TEST_HOOKS != 0;
extern bool die_between_claim_and_commit;
extern bool die_between_commit_and_count;
extern bool die_between_output_and_checkpoint;
extern int die_in_multi_log_commit;
extern int die_in_commit;
extern std::atomic<std::int64_t> pause_in_recovery_ms;
extern void (*after_taking_slot)(std::uint32_t partition, std::uint64_t segment);
extern std::atomic<bool> timestamps_from_system_clock;
}  // namespace detail::hooks

}  // namespace shmlog
