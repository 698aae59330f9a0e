// The C API: consumers.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstring>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include "c_api.h"
#include "shmlog.h"
#include "shmlog/log.h"

using shmlog::c_api::fail;
using shmlog::c_api::from_status;
using shmlog::c_api::null_argument;
using shmlog::c_api::guarded;
using shmlog::c_api::enum_value;

namespace {

// shmlog_record is shmlog::Record field for field, so that handing a record
// to C is one 88-byte copy (std::bit_cast) rather than eleven loads and
// stores: the largest part of what the C API adds to a poll.
static_assert(std::is_standard_layout_v<shmlog::Record> && std::is_trivially_copyable_v<shmlog::Record>);
static_assert(sizeof(shmlog_record) == sizeof(shmlog::Record));
#define SHMLOG_SAME_FIELD(f)                                               \
  static_assert(offsetof(shmlog_record, f) == offsetof(shmlog::Record, f) && \
                sizeof(shmlog_record::f) == sizeof(shmlog::Record::f))
SHMLOG_SAME_FIELD(partition);
SHMLOG_SAME_FIELD(offset);
SHMLOG_SAME_FIELD(next_offset);
SHMLOG_SAME_FIELD(timestamp_ns);
SHMLOG_SAME_FIELD(producer_id);
SHMLOG_SAME_FIELD(producer_epoch);
SHMLOG_SAME_FIELD(sequence);
SHMLOG_SAME_FIELD(transactional);
SHMLOG_SAME_FIELD(type);
#undef SHMLOG_SAME_FIELD
// A span is {data, size} (libstdc++ and libc++; c_api_test checks keys and
// values byte for byte, which a different order would fail).
static_assert(offsetof(shmlog_record, key) == offsetof(shmlog::Record, key) &&
              offsetof(shmlog_record, key_size) == offsetof(shmlog::Record, key) + sizeof(void*) &&
              offsetof(shmlog_record, value) == offsetof(shmlog::Record, value) &&
              offsetof(shmlog_record, value_size) == offsetof(shmlog::Record, value) + sizeof(void*) &&
              sizeof(shmlog::Bytes) == sizeof(void*) + sizeof(size_t));

// Hands each record to a C callback. RecordHandler calls it through a
// pointer to this struct: the callback and its context are one load each.
struct CallbackHandler {
  shmlog_record_fn fn;
  void* context;
  void operator()(const shmlog::Record& r) const {
    const auto out = std::bit_cast<shmlog_record>(r);
    fn(context, &out);
  }
};

}  // namespace

extern "C" {

void shmlog_consumer_options_init(shmlog_consumer_options* o) {
  if (o == nullptr) return;
  o->group = nullptr;
  o->mode = SHMLOG_AT_LEAST_ONCE;
  o->commit_every = 1;
  o->from = SHMLOG_FROM_EARLIEST;
  o->from_offset = 0;
  o->wait = SHMLOG_WAIT_BACKOFF;
  o->read_committed = 0;
  o->read_durable = 0;
  o->drop_duplicates = 0;
  o->partitions = nullptr;
  o->partition_count = 0;
  o->core = -1;
  o->short_poll_backoff_ns = 0;
}

shmlog_status shmlog_consumer_open(shmlog_log* log, const shmlog_consumer_options* options,
                                   shmlog_consumer** out) {
  return guarded([&] {
    if (log == nullptr) return null_argument("log");
    if (out == nullptr) return null_argument("consumer");
    shmlog_consumer_options c;
    shmlog_consumer_options_init(&c);
    if (options != nullptr) c = *options;
    shmlog::ConsumerOptions o;
    if (c.group != nullptr) o.group = c.group;
    switch (enum_value(c.mode)) {
      case SHMLOG_AT_LEAST_ONCE: o.mode = shmlog::DeliveryMode::kAtLeastOnce; break;
      case SHMLOG_AT_MOST_ONCE: o.mode = shmlog::DeliveryMode::kAtMostOnce; break;
      case SHMLOG_MANUAL: o.mode = shmlog::DeliveryMode::kManual; break;
      default: return fail(SHMLOG_INVALID_ARGUMENT, "unknown delivery mode " + std::to_string(enum_value(c.mode)));
    }
    o.commit_every = c.commit_every;
    switch (enum_value(c.from)) {
      case SHMLOG_FROM_EARLIEST: o.from = shmlog::StartFrom::earliest(); break;
      case SHMLOG_FROM_LATEST: o.from = shmlog::StartFrom::latest(); break;
      case SHMLOG_FROM_OFFSET: o.from = shmlog::StartFrom::at(c.from_offset); break;
      default: return fail(SHMLOG_INVALID_ARGUMENT, "unknown start position " + std::to_string(enum_value(c.from)));
    }
    if (shmlog_status s = shmlog::c_api::to_wait_strategy(enum_value(c.wait), &o.wait); s != SHMLOG_OK) return s;
    if (c.read_committed != 0) o.isolation = shmlog::Isolation::kReadCommitted;
    o.read_durable = c.read_durable != 0;
    o.drop_duplicates = c.drop_duplicates != 0;
    if (c.partitions == nullptr && c.partition_count != 0) return null_argument("partitions");
    if (c.partition_count != 0) o.partitions.assign(c.partitions, c.partitions + c.partition_count);
    o.core = c.core;
    if (c.short_poll_backoff_ns > static_cast<std::uint64_t>(std::chrono::nanoseconds::max().count())) {
      return fail(SHMLOG_INVALID_ARGUMENT, "short_poll_backoff_ns is too large");
    }
    o.short_poll_backoff = std::chrono::nanoseconds(c.short_poll_backoff_ns);
    auto consumer = log->log.consumer(o);
    if (!consumer.ok()) return from_status(consumer.status());
    *out = new shmlog_consumer{std::move(consumer).value(), {}};
    return SHMLOG_OK;
  });
}

void shmlog_consumer_close(shmlog_consumer* consumer) { delete consumer; }

shmlog_status shmlog_poll(shmlog_consumer* c, shmlog_record_fn fn, void* context, size_t max, uint32_t timeout_ms,
                          size_t* delivered) {
  if (c == nullptr) return null_argument("consumer");
  if (fn == nullptr) return null_argument("callback");
  CallbackHandler handler{fn, context};
  return guarded([&] {  // a rebalance may allocate
    auto result = timeout_ms == 0 ? c->consumer.poll(handler, max)
                                  : c->consumer.poll_wait(handler, max, std::chrono::milliseconds(timeout_ms));
    if (delivered != nullptr) *delivered = result.records;
    return result.records == 0 ? SHMLOG_EMPTY : SHMLOG_OK;
  });
}

shmlog_status shmlog_consumer_commit(shmlog_consumer* c) {
  if (c == nullptr) return null_argument("consumer");
  c->consumer.commit();
  return SHMLOG_OK;
}

shmlog_status shmlog_commit_offset(shmlog_consumer* c, uint32_t partition, uint64_t offset) {
  return guarded([&] {
    if (c == nullptr) return null_argument("consumer");
    return from_status(c->consumer.commit(partition, offset));
  });
}

shmlog_status shmlog_seek(shmlog_consumer* c, uint32_t partition, uint64_t offset) {
  return guarded([&] {
    if (c == nullptr) return null_argument("consumer");
    return from_status(c->consumer.seek(partition, offset));
  });
}

shmlog_status shmlog_seek_time(shmlog_consumer* c, uint32_t partition, uint64_t time_ns, uint64_t* offset) {
  return guarded([&] {
    if (c == nullptr) return null_argument("consumer");
    auto at = c->consumer.seek_time(partition, time_ns);
    if (!at.ok()) return from_status(at.status());
    if (offset != nullptr) *offset = *at;
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_assignment(const shmlog_consumer* c, uint32_t* out, size_t max, size_t* count) {
  return guarded([&] {
    if (c == nullptr) return null_argument("consumer");
    if (out == nullptr && max != 0) return null_argument("out");
    const std::vector<uint32_t> owned = c->consumer.assignment();
    std::copy_n(owned.begin(), std::min(max, owned.size()), out);
    if (count != nullptr) *count = owned.size();
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_lost_bytes(const shmlog_consumer* c, uint64_t* bytes) {
  if (c == nullptr) return null_argument("consumer");
  if (bytes == nullptr) return null_argument("bytes");
  *bytes = c->consumer.lost_bytes();
  return SHMLOG_OK;
}

size_t shmlog_take_damage(shmlog_consumer* c, shmlog_damage* out, size_t max) {
  if (c == nullptr || (out == nullptr && max > 0)) return 0;
  try {
    for (auto& d : c->consumer.take_damage()) c->damage.push_back(std::move(d));
  } catch (const std::bad_alloc&) {  // no exception into C: hand out what was queued before
    fail(SHMLOG_NO_SPACE, "out of memory: damage reports were dropped");
  }
  size_t n = 0;
  for (; n < max && !c->damage.empty(); ++n) {
    const shmlog::Damage& d = c->damage.front();
    out[n].partition = d.partition;
    out[n].from = d.from;
    out[n].to = d.to;
    const std::size_t len = std::min(d.what.size(), sizeof out[n].what - 1);
    std::memcpy(out[n].what, d.what.data(), len);
    out[n].what[len] = '\0';
    c->damage.pop_front();
  }
  return n;
}

shmlog_status shmlog_position(const shmlog_consumer* c, uint32_t partition, uint64_t* offset) {
  if (c == nullptr) return null_argument("consumer");
  if (offset == nullptr) return null_argument("offset");
  auto pos = c->consumer.position(partition);
  if (!pos) return fail(SHMLOG_BAD_PARTITION, "partition " + std::to_string(partition) + " is not assigned to this consumer");
  *offset = *pos;
  return SHMLOG_OK;
}

}  // extern "C"
