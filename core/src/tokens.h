// The token window of append_unique: a table of token slots in shared
// memory (format.h draws it) that remembers which claim took each token and
// what became of it, so that a token kept within the window is refused as
// a duplicate. ProducerState::take_token takes a token for a claim.
#pragma once

#include <cstdint>

#include "log_state.h"

namespace shmlog::detail {

// The token claims of `segment`'s lap in partition p, about to be reused:
// each token slot still naming one notes its fate (kept, or gone) before
// the ring forgets it. prepare.cc calls it when it takes a ring slot.
void resolve_tokens(const LogState& s, std::uint32_t p, std::uint64_t segment) noexcept;

}  // namespace shmlog::detail
