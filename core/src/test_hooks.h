// Test-only hooks: points where this process kills itself (SIGKILL) or
// waits, so that crash tests can stop a process exactly there. Not part of
// the public API (tests reach core/src); each costs a load of a global
// where it sits.
#pragma once

#include <chrono>

namespace shmlog {

namespace testing {
// Test-only: the next claim committed by this process kills the process
// (SIGKILL) after its claim is registered and before it commits.
void die_between_claim_and_commit(bool enable) noexcept;
// Test-only: the next plain record a named producer of this process commits
// kills the process (SIGKILL) right after it is published, before the
// producer counts its sequence.
void die_between_commit_and_count(bool enable) noexcept;
// Test-only: the next FileSink::checkpoint of this process kills the process
// after it wrote the output and before it wrote the checkpoint entry.
void die_between_output_and_checkpoint(bool enable) noexcept;
// Test-only: Producer::commit_transactions kills the process after the
// participants are prepared (1) or after the decision (2); 0: never.
void die_in_multi_log_commit(int stage) noexcept;
// Test-only: commit_transaction kills the process right after its decision
// (1) or once its commit markers are written (2); 0: never.
void die_in_commit(int stage) noexcept;
// Test-only: recovery from the segment files in this process sleeps this
// long before it reads them (as a large log's recovery takes); 0: never.
void pause_in_recovery(std::chrono::milliseconds pause) noexcept;
}  // namespace testing

}  // namespace shmlog
