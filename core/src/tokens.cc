#include "tokens.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "producer_state.h"
#include "word_pair.h"
#include "shmlog/shm/process.h"

namespace shmlog::detail {

using format::atomic;

namespace {

// A token slot's two pairs, (hash, seq) and (position, published_seq), are
// each compared and replaced together (word_pair.h).

// kReused: its ring slot is being taken for a later lap (the fate is
// noted before the slot is zeroed).
enum class Holder : std::uint8_t { kKept, kGone, kPending, kReused };

// What became of the claim that took a token (`seq`, in `slot`): kept
// (committed), gone (aborted or abandoned: the token is free), pending.
Holder holder_state(const LogState& s, std::uint64_t encoded, const format::TokenSlot& slot,
                    std::uint64_t seq) noexcept {
  const auto [p, position] = format::decode_token_position(encoded);
  if (p >= s.options.partitions) return Holder::kKept;
  const std::uint64_t segment = position >> s.segment_shift;
  const std::uint64_t w = atomic(s.descriptor(p, segment).state_word).load(std::memory_order_acquire);
  const std::uint64_t held = format::segment_index(w);
  if (held != segment) {
    // The ring moved on: whoever took the slot for a later lap noted the
    // fate first (resolve_tokens); still taking it: wait. Not noted: a
    // record restored after a host crash (those are all kept).
    if (held == segment + s.ring_segments && format::segment_state(w) != format::SegmentState::kReady) {
      return Holder::kReused;
    }
    const std::uint64_t resolved = atomic(const_cast<std::uint64_t&>(slot.resolved_seq)).load(std::memory_order_acquire);
    if ((resolved & ~format::kTokenKept) == seq) return (resolved & format::kTokenKept) != 0 ? Holder::kKept : Holder::kGone;
    return Holder::kKept;
  }
  const std::uint64_t v = atomic(*word_at(s, p, position)).load(std::memory_order_acquire);
  const std::int32_t length = format::word_length(v);
  if (length <= 0) return Holder::kPending;
  return format::word_type(v) == format::RecordType::kData ? Holder::kKept : Holder::kGone;
}

}  // namespace

Errc ProducerState::take_token(Bytes token, std::uint32_t p, std::uint64_t position) noexcept {
  const LogState& s = *log;
  const auto& h = *s.header;
  const std::uint64_t hash = token_hash(token);
  const std::uint64_t seq = atomic(const_cast<std::uint64_t&>(h.token_seq)).fetch_add(1, std::memory_order_relaxed) + 1;
  const std::uint64_t now = now_realtime_ns();
  const std::uint64_t window_ns = std::uint64_t{h.token_window_ms} * 1000000;
  const std::uint64_t mine = format::encode_token_position(p, position);
  format::TokenSlot* table = s.tokens();
  const std::uint64_t mask = s.geometry.token_slots - 1;
  const std::uint64_t probes = std::min<std::uint64_t>(64, mask + 1);
  const auto started = std::chrono::steady_clock::now();
  // Whether a slot's token is still in the window (a pending one is).
  auto fresh = [&](format::TokenSlot& slot, std::uint64_t slot_seq) {
    if (static_cast<std::int64_t>(seq - slot_seq) >= static_cast<std::int64_t>(h.token_window)) return false;
    if (window_ns == 0 || atomic(slot.published_seq).load(std::memory_order_acquire) != slot_seq) return true;
    return now - atomic(slot.time_ns).load(std::memory_order_relaxed) < window_ns;
  };
  // Takes `slot` from (slot_hash, slot_seq), then publishes our claim from
  // the position pair seen before: kOk, or false when either CAS lost.
  auto take = [&](format::TokenSlot& slot, std::uint64_t slot_hash, std::uint64_t slot_seq) {
    std::uint64_t old_position = 0, old_published = 0;
    load_pair(&slot.position, old_position, old_published);
    if (!cas_pair(&slot.hash, slot_hash, slot_seq, hash, seq)) return false;
    atomic(slot.time_ns).store(now, std::memory_order_relaxed);
    return cas_pair(&slot.position, old_position, old_published, mine, seq);
  };
  for (;;) {
    // Our token's slot on the probe path, or else the first slot to reuse.
    format::TokenSlot* own = nullptr;
    format::TokenSlot* reusable = nullptr;
    std::uint64_t own_seq = 0, reuse_hash = 0, reuse_seq = 0;
    for (std::uint64_t i = 0; i < probes && own == nullptr; ++i) {
      format::TokenSlot& slot = table[(hash + i) & mask];
      std::uint64_t slot_hash = 0, slot_seq = 0;
      load_pair(&slot.hash, slot_hash, slot_seq);
      if (slot_hash == hash) {
        own = &slot;
        own_seq = slot_seq;
      } else if (reusable == nullptr && (slot_hash == 0 || !fresh(slot, slot_seq))) {
        reusable = &slot;
        reuse_hash = slot_hash;
        reuse_seq = slot_seq;
      }
      if (slot_hash == 0) break;  // tokens never sit past an empty slot
    }
    if (own == nullptr) {
      if (reusable == nullptr) return Errc::kBadState;  // 64 slots in the window: cannot happen at half load
      if (take(*reusable, reuse_hash, reuse_seq)) return Errc::kOk;
      continue;  // lost a race: look again (perhaps at the same token)
    }
    if (fresh(*own, own_seq)) {
      std::uint64_t held = 0, published = 0;
      load_pair(&own->position, held, published);
      const Holder state = published != own_seq ? Holder::kPending : holder_state(s, held, *own, own_seq);
      if (state == Holder::kKept) return Errc::kDuplicate;
      if (state == Holder::kReused) {
        // Wait for the slot's taker to note the fate (take a dead one's over).
        const format::TokenPosition at = format::decode_token_position(held);
        const std::uint64_t segment = (at.offset >> s.segment_shift) + s.ring_segments;
        if (std::chrono::steady_clock::now() - started < s.claim_timeout || !prepare_unprepared(s, at.partition, segment)) {
          shm::yield_now();
        }
        continue;
      }
      if (state == Holder::kPending) {
        // The holder is between taking the token and committing: wait for
        // it; past the claim timeout its claim is resolved (or, never
        // published, its slot taken over: its publish then fails).
        const auto waited = std::chrono::steady_clock::now() - started;
        if (waited < s.claim_timeout) {
          shm::yield_now();
          continue;
        }
        if (published == own_seq) {
          const format::TokenPosition at = format::decode_token_position(held);
          if (at.partition < s.options.partitions && unblock(s, at.partition, at.offset, waited)) {
            continue;  // resolved: look at its fate again
          }
          shm::yield_now();
          continue;
        }
      }
    }
    // Ours to take: out of the window, its record never kept, or never published.
    if (take(*own, hash, own_seq)) return Errc::kOk;
  }
}

// The token claims of `segment`'s lap in partition p, about to be reused
// (as count_pending_claims): each token slot still naming one notes its
// fate (kept, or gone: aborted or abandoned) before the ring forgets it,
// for a producer that meets the token later (holder_state). A claim's
// bytes end in its token's hash (written before the token is taken), so
// walking the lap's records finds them: committed data flagged
// kRecordFlagToken, and padding or abandoned records (an aborted or dead
// claim), whose last 8 bytes are looked up (a slot must name this very
// position to count). Logs with a token window and token_hashes only.
void resolve_tokens(const LogState& s, std::uint32_t p, std::uint64_t segment) noexcept {
  if (s.geometry.token_slots == 0 || (s.header->features & format::kFeatureTokenHashes) == 0) return;
  const std::byte* base = s.segment_base(p, segment);
  const std::uint64_t begin = segment << s.segment_shift;
  const format::TokenSlot* table = s.tokens();
  const std::uint64_t mask = s.geometry.token_slots - 1;
  // To the lap's end (or damage).
  s.walk_records(base, begin, begin + s.segment_size, [&](const record::At& a, std::uint64_t position) {
    const record::Decoded& d = a.d;
    const bool data = d.kind == record::Kind::kData;
    const bool candidate = data ? (d.flags & format::kRecordFlagToken) != 0
                                : d.type == format::RecordType::kPadding || d.type == format::RecordType::kAbandoned;
    if (candidate && d.frame_length >= format::kRecordHeaderSize + format::kTokenTrailer) {
      std::uint64_t hash = 0;
      std::memcpy(&hash, reinterpret_cast<const std::byte*>(a.header) + d.frame_length - format::kTokenTrailer, sizeof hash);
      const std::uint64_t mine = format::encode_token_position(p, position);
      for (std::uint64_t i = 0; hash != 0 && i < std::min<std::uint64_t>(64, mask + 1); ++i) {
        auto& slot = const_cast<format::TokenSlot&>(table[(hash + i) & mask]);
        std::uint64_t slot_hash = 0, seq = 0, held = 0, published = 0;
        load_pair(&slot.hash, slot_hash, seq);
        if (slot_hash == 0) break;  // tokens never sit past an empty slot
        if (slot_hash != hash) continue;
        load_pair(&slot.position, held, published);
        if (published == seq && held == mine) {
          atomic(slot.resolved_seq).store(seq | (data ? format::kTokenKept : 0), std::memory_order_release);
        }
        break;
      }
    }
    return true;
  });
}

}  // namespace shmlog::detail
