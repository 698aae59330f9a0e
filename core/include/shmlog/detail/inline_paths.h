// The inline fast paths of shmlog/log.h, defined here once the classes
// they belong to are complete: an exclusive producer's append
// (Producer::append, on shmlog/detail/producer_hot.h) and the poll of a
// handler of its own type (Consumer::poll, on shmlog/detail/consumer_hot.h).
// Included at the end of shmlog/log.h; not a header to include on its own.
// Not an API: what is here may change with any release.
#pragma once

namespace shmlog {

namespace detail {

// What the inline append did: the record is in, and a consumer may be
// asleep (the caller wakes it), or it is the library's append to do.
enum class PlainAppend : std::uint8_t { kDone, kWake, kLibrary };

// An exclusive producer's append when nothing but the record is due: it
// ends at or below fast_limit (no padding, preparation or zeroing), and
// the clock needs no re-anchor. Makes no call, so that the inline append
// saves no registers; kShort: the value is at most kShortValue bytes
// (copy_value), else memcpy copies it (Producer::append_long).
template <bool kShort>
[[gnu::always_inline]] inline PlainAppend append_plain(ProducerHot& h, Bytes value, AppendResult& result) noexcept {
  ProducerCursor* const c = h.fast;
  if (c == nullptr || h.claim_open || value.size() > h.max_record) return PlainAppend::kLibrary;
  const std::uint64_t position = c->tail;
  const std::uint64_t frame = format::kRecordHeaderSize + value.size();
  const std::uint64_t end = position + format::align_record(frame);
  std::uint64_t timestamp = 0;
  if (end > c->fast_limit || (h.timestamps && !extrapolate_time(h.clock, timestamp))) [[unlikely]] {
    return PlainAppend::kLibrary;
  }
  auto* header = reinterpret_cast<format::RecordHeader*>(c->ready_base + (position - c->ready_begin));
  if constexpr (kShort) {
    copy_value(reinterpret_cast<std::byte*>(header + 1), value.data(), value.size());
  } else {
    std::memcpy(header + 1, value.data(), value.size());
  }
  stamp_data_header(*header, h, timestamp);
  const bool sleepers = consumers_may_sleep(h);
  publish_exclusive(header->commit_word,
                    format::make_commit_word(static_cast<std::int32_t>(frame), format::RecordType::kData, 0, 0), *c,
                    end, sleepers);
  count_append(*c, value.size());
  result = {Errc::kOk, h.default_partition, position};
  return sleepers ? PlainAppend::kWake : PlainAppend::kDone;
}

}  // namespace detail

inline AppendResult Producer::append(Bytes value) noexcept {
  detail::ProducerHot* const h = hot_;
  if (h == nullptr) return {Errc::kBadState, 0, 0};
  // Each way out of the inline path is one call in tail position.
  if (value.size() > detail::kShortValue) return append_long(value);
  AppendResult result;
  const detail::PlainAppend done = detail::append_plain<true>(*h, value, result);
  if (done == detail::PlainAppend::kDone) [[likely]] return result;
  if (done == detail::PlainAppend::kWake) return woken(result);
  return append_to(h->default_partition, {}, value);
}

namespace detail {

// The inline poll's loop (shmlog/detail/consumer_hot.h): hands the plain
// data records of the slot last validated to `handler`, up to `max`, and
// adds them to `delivered`.
template <class Handler>
[[gnu::always_inline]] inline InlineStop poll_inline(ConsumerHot& h, Handler& handler, std::size_t max,
                                                  std::size_t& delivered) {
  ReadCursor& c = *h.fast;
  Record r;
  r.partition = c.partition;
  std::size_t n = 0;
  InlineStop stop = InlineStop::kMax;
  // The slot last validated, once a poll: a position outside its segment
  // (before it, after a seek back, wraps to a large offset) is the
  // library's.
  const std::uint64_t segment = c.segment;
  const std::uint64_t segment_begin = segment << h.segment_shift;
  const std::uint64_t segment_size = h.segment_size;
  const std::byte* const base = c.segment_base;
  std::uint64_t position = c.position;  // record-aligned, as the library's positions are (plain_data_extent)
  while (n < max) {
    const std::uint64_t offset = position - segment_begin;
    if (offset >= segment_size) {
      stop = InlineStop::kSkip;
      break;
    }
    {
      const SpeculativeReads speculative;  // checked against the slot's word before use
      const auto* header = reinterpret_cast<const format::RecordHeader*>(base + offset);
      // Pairs with the producer's release (or seq_cst) store of the commit word.
      const std::uint64_t word = std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(header->commit_word))
                                     .load(std::memory_order_acquire);
      const std::uint32_t extent = format::plain_data_extent(word, segment_size - offset, h.max_frame);
      if (extent == 0) {
        if (word == 0) {  // (a lapping producer may be zeroing the slot)
          stop = !h.may_be_lapped || slot_holds(c.descriptor, segment) ? InlineStop::kEmpty : InlineStop::kLibrary;
        } else {
          stop = format::word_type(word) == format::RecordType::kPadding ? InlineStop::kSkip : InlineStop::kLibrary;
        }
        break;
      }
      const auto* body = reinterpret_cast<const std::byte*>(header + 1);
      const std::uint32_t key_size = format::word_key_length(word);
      const std::uint32_t body_size = static_cast<std::uint32_t>(format::word_length(word)) -
                                      static_cast<std::uint32_t>(format::kRecordHeaderSize);
      r.offset = position;
      r.next_offset = position + extent;
      r.timestamp_ns = header->timestamp_ns;
      r.producer_id = header->producer_id;
      r.producer_epoch = header->producer_epoch;
      r.sequence = header->sequence;
      r.key = Bytes(body, key_size);
      r.value = Bytes(body + key_size, body_size - key_size);
      if (h.may_be_lapped && !slot_holds(c.descriptor, segment)) {
        stop = InlineStop::kLibrary;
        break;
      }
    }
    const Record& record = r;
    handler(record);
    ++n;
    c.position = position = r.next_offset;
    // (A slot reused while the handler ran is found by the check before
    // the next record, of this poll or the next, before anything of it is
    // handed out; the library's poll then counts the lap.)
    if (h.commits_as_it_reads && ++c.uncommitted >= h.commit_every && !commit_fast(h)) {
      stop = InlineStop::kRefused;  // not ours now: its new owner resumes at the last commit
      break;
    }
  }
  delivered += n;
  return stop;
}

}  // namespace detail

template <class Handler>
PollResult Consumer::poll(Handler&& handler, std::size_t max) {
  detail::ConsumerHot* const h = hot_;
  if (h == nullptr || max == 0 || !detail::may_poll_inline(*h)) return poll(RecordHandler(handler), max);
  std::size_t delivered = 0;
  const detail::InlineStop stop = detail::poll_inline(*h, handler, max, delivered);
  if (stop == detail::InlineStop::kMax || stop == detail::InlineStop::kRefused ||
      (stop == detail::InlineStop::kEmpty && detail::may_skip_library(*h))) [[likely]] {
    return PollResult{delivered};
  }
  return poll_on(handler, max, delivered, stop);
}

template <class Handler>
PollResult Consumer::poll_on(Handler& handler, std::size_t max, std::size_t delivered, detail::InlineStop stop) {
  PollResult result{delivered};
  for (;;) {
    // Padding or a segment's end: the library's poll steps over it and
    // hands out the record after it, then the inline poll goes on.
    const bool again = stop == detail::InlineStop::kSkip;
    const PollResult more = poll(RecordHandler(handler), again ? 1 : max - result.records);
    result.records += more.records;
    result.lost_bytes += more.lost_bytes;
    result.corrupt += more.corrupt;
    result.duplicates += more.duplicates;
    if (!again || more.records == 0 || result.records == max || hot_->fast == nullptr) return result;
    stop = detail::poll_inline(*hot_, handler, max - result.records, result.records);
    if (stop != detail::InlineStop::kSkip && stop != detail::InlineStop::kLibrary) return result;
  }
}

}  // namespace shmlog
