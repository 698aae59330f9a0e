// Built into shmlog_testing only (see test_hooks.h).
#include "test_hooks.h"

static_assert(shmlog::detail::hooks::kEnabled, "test_hooks.cc belongs to the library built with SHMLOG_TEST_HOOKS=1");

namespace shmlog {

namespace detail::hooks {
bool die_between_claim_and_commit = false;
bool die_between_commit_and_count = false;
bool die_between_output_and_checkpoint = false;
int die_in_multi_log_commit = 0;
int die_in_commit = 0;
std::atomic<std::int64_t> pause_in_recovery_ms{0};
void (*after_taking_slot)(std::uint32_t partition, std::uint64_t segment) = nullptr;
std::atomic<bool> timestamps_from_system_clock{false};
}  // namespace detail::hooks

namespace testing {
void die_between_claim_and_commit(bool enable) noexcept { detail::hooks::die_between_claim_and_commit = enable; }
void die_between_commit_and_count(bool enable) noexcept { detail::hooks::die_between_commit_and_count = enable; }
void die_between_output_and_checkpoint(bool enable) noexcept {
  detail::hooks::die_between_output_and_checkpoint = enable;
}
void die_in_multi_log_commit(int stage) noexcept { detail::hooks::die_in_multi_log_commit = stage; }
void die_in_commit(int stage) noexcept { detail::hooks::die_in_commit = stage; }
void pause_in_recovery(std::chrono::milliseconds pause) noexcept { detail::hooks::pause_in_recovery_ms = pause.count(); }
void after_taking_slot(void (*call)(std::uint32_t, std::uint64_t)) noexcept { detail::hooks::after_taking_slot = call; }
void timestamps_from_system_clock(bool enable) noexcept { detail::hooks::timestamps_from_system_clock = enable; }
}  // namespace testing

}  // namespace shmlog
