// The C API over the C++ one. Every entry point catches everything: no
// exception crosses into C. Errors set a thread-local message.
#include "shmlog.h"

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstring>
#include <deque>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "shmlog/log.h"

struct shmlog_log {
  shmlog::Log log;
};
struct shmlog_producer {
  shmlog::Producer producer;
  std::uint32_t partition;  // the default one: shmlog_append calls append_to without Producer::append's hop
  std::optional<shmlog::Claim> claim;
};
struct shmlog_consumer {
  shmlog::Consumer consumer;
  std::deque<shmlog::Damage> damage;  // taken from the consumer, not yet handed out
};

namespace {

thread_local std::string g_error;

shmlog_status fail(shmlog_status code, std::string message) {
  g_error = std::move(message);
  return code;
}

shmlog_status from_status(const shmlog::Status& s) {
  using C = shmlog::Status::Code;
  shmlog_status code = SHMLOG_INTERNAL;
  switch (s.code()) {
    case C::kOk: return SHMLOG_OK;
    case C::kInvalidArgument: code = SHMLOG_INVALID_ARGUMENT; break;
    case C::kNotFound: code = SHMLOG_NOT_FOUND; break;
    case C::kAlreadyExists: code = SHMLOG_ALREADY_EXISTS; break;
    case C::kCorrupt: code = SHMLOG_CORRUPT; break;
    case C::kVersionMismatch: code = SHMLOG_VERSION_MISMATCH; break;
    case C::kNoSpace: code = SHMLOG_NO_SPACE; break;
    case C::kIoError: code = SHMLOG_IO_ERROR; break;
    case C::kTimeout: code = SHMLOG_TIMEOUT; break;
    case C::kBusy: code = SHMLOG_BUSY; break;
    case C::kPermissionDenied: code = SHMLOG_PERMISSION_DENIED; break;
    case C::kAborted: code = SHMLOG_FENCED; break;
  }
  return fail(code, s.message());
}

shmlog_status from_errc(shmlog::Errc e) {
  switch (e) {
    case shmlog::Errc::kOk: return SHMLOG_OK;
    case shmlog::Errc::kEmpty: return SHMLOG_EMPTY;
    case shmlog::Errc::kTooLarge: return fail(SHMLOG_TOO_LARGE, "record larger than the log's max record size");
    case shmlog::Errc::kBadPartition: return fail(SHMLOG_BAD_PARTITION, "partition out of range");
    case shmlog::Errc::kBackpressureTimeout:
      return fail(SHMLOG_BACKPRESSURE_TIMEOUT, "ring full: no consumer group made room in time");
    case shmlog::Errc::kRevoked: return fail(SHMLOG_REVOKED, "claim revoked after the claim timeout");
    case shmlog::Errc::kBadState: return fail(SHMLOG_BAD_STATE, "no open claim (committed or aborted already?)");
    case shmlog::Errc::kFenced: return fail(SHMLOG_FENCED, shmlog::errc_name(e));
    case shmlog::Errc::kDuplicate: return fail(SHMLOG_DUPLICATE, shmlog::errc_name(e));
    case shmlog::Errc::kDiskFull: return fail(SHMLOG_DISK_FULL, shmlog::errc_name(e));
    case shmlog::Errc::kNotDurable: return fail(SHMLOG_NOT_DURABLE, shmlog::errc_name(e));
    case shmlog::Errc::kCorrupt: return fail(SHMLOG_CORRUPT, shmlog::errc_name(e));
  }
  return fail(SHMLOG_INTERNAL, "unknown error");
}

// Runs `body`, turning any exception into SHMLOG_INTERNAL.
template <class F>
shmlog_status guarded(F&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(SHMLOG_NO_SPACE, "out of memory");
  } catch (const std::exception& e) {
    return fail(SHMLOG_INTERNAL, e.what());
  } catch (...) {
    return fail(SHMLOG_INTERNAL, "unknown exception");
  }
}

// A C caller may put any int into an enum field; reading an out-of-range
// value as a C++ enum is undefined, so read the bits as an int.
template <class E>
int enum_value(const E& field) noexcept {
  static_assert(sizeof(E) == sizeof(int));
  int v;
  std::memcpy(&v, &field, sizeof v);
  return v;
}

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

shmlog_status null_argument(const char* what) {
  return fail(SHMLOG_INVALID_ARGUMENT, std::string(what) + " is NULL");
}

}  // namespace

extern "C" {

const char* shmlog_last_error(void) { return g_error.c_str(); }

const char* shmlog_status_name(shmlog_status status) {
  switch (status) {
    case SHMLOG_OK: return "ok";
    case SHMLOG_EMPTY: return "empty";
    case SHMLOG_TOO_LARGE: return "too large";
    case SHMLOG_BAD_PARTITION: return "bad partition";
    case SHMLOG_BACKPRESSURE_TIMEOUT: return "backpressure timeout";
    case SHMLOG_REVOKED: return "revoked";
    case SHMLOG_BAD_STATE: return "bad state";
    case SHMLOG_INVALID_ARGUMENT: return "invalid argument";
    case SHMLOG_NOT_FOUND: return "not found";
    case SHMLOG_ALREADY_EXISTS: return "already exists";
    case SHMLOG_CORRUPT: return "corrupt";
    case SHMLOG_VERSION_MISMATCH: return "version mismatch";
    case SHMLOG_NO_SPACE: return "no space";
    case SHMLOG_IO_ERROR: return "I/O error";
    case SHMLOG_TIMEOUT: return "timeout";
    case SHMLOG_BUSY: return "busy";
    case SHMLOG_PERMISSION_DENIED: return "permission denied";
    case SHMLOG_INTERNAL: return "internal error";
    case SHMLOG_FENCED: return "fenced";
    case SHMLOG_DUPLICATE: return "duplicate";
    case SHMLOG_DISK_FULL: return "disk full";
    case SHMLOG_NOT_DURABLE: return "not durable";
  }
  return "unknown status";
}

const char* shmlog_version(void) { return "0.1.0"; }

void shmlog_log_options_init(shmlog_log_options* o) {
  if (o == nullptr) return;
  const shmlog::LogOptions d;
  o->partitions = d.partitions;
  o->segment_size = d.segment_size;
  o->ring_segments = d.ring_segments;
  o->policy = static_cast<shmlog_policy>(d.policy);
  o->max_record_size = d.max_record_size;
  o->max_producers = d.max_producers;
  o->max_groups = d.max_groups;
  o->max_members = d.max_members;
  o->claim_timeout_ms = static_cast<uint32_t>(d.claim_timeout.count());
  o->mode = d.mode;
  o->checksums = d.checksums ? 1 : 0;
  o->token_window = d.token_window;
  o->durability = static_cast<uint32_t>(d.durability);
}

shmlog_status shmlog_create(const char* path, const shmlog_log_options* options, shmlog_log** out) {
  return guarded([&] {
    if (path == nullptr) return null_argument("path");
    if (out == nullptr) return null_argument("log");
    shmlog_log_options c;
    shmlog_log_options_init(&c);
    if (options != nullptr) c = *options;
    const int policy = enum_value(c.policy);
    if (policy != SHMLOG_OVERWRITE && policy != SHMLOG_BACKPRESSURE) {
      return fail(SHMLOG_INVALID_ARGUMENT, "policy must be SHMLOG_OVERWRITE or SHMLOG_BACKPRESSURE");
    }
    shmlog::LogOptions o;
    o.partitions = c.partitions;
    o.segment_size = c.segment_size;
    o.ring_segments = c.ring_segments;
    o.policy = static_cast<shmlog::Policy>(policy);
    o.max_record_size = c.max_record_size;
    o.max_producers = c.max_producers;
    o.max_groups = c.max_groups;
    o.max_members = c.max_members;
    o.claim_timeout = std::chrono::milliseconds(c.claim_timeout_ms);
    o.mode = c.mode;
    o.checksums = c.checksums != 0;
    o.token_window = c.token_window;
    if (c.durability > 2) return fail(SHMLOG_INVALID_ARGUMENT, "durability must be 0 (none), 1 (flush) or 2 (fsync)");
    o.durability = static_cast<shmlog::Durability>(c.durability);
    auto log = shmlog::Log::create(path, o);
    if (!log.ok()) return from_status(log.status());
    *out = new shmlog_log{std::move(log).value()};
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_open(const char* path, shmlog_log** out) {
  return guarded([&] {
    if (path == nullptr) return null_argument("path");
    if (out == nullptr) return null_argument("log");
    auto log = shmlog::Log::open(path);
    if (!log.ok()) return from_status(log.status());
    *out = new shmlog_log{std::move(log).value()};
    return SHMLOG_OK;
  });
}

void shmlog_close(shmlog_log* log) { delete log; }

shmlog_status shmlog_delete(const char* path) {
  return guarded([&] {
    if (path == nullptr) return null_argument("path");
    return from_status(shmlog::Log::remove(path));
  });
}

shmlog_status shmlog_info(const shmlog_log* log, shmlog_log_info* info) {
  return guarded([&] {
    if (log == nullptr) return null_argument("log");
    if (info == nullptr) return null_argument("info");
    const auto& o = log->log.options();
    info->partitions = o.partitions;
    info->segment_size = o.segment_size;
    info->ring_segments = o.ring_segments;
    info->policy = static_cast<shmlog_policy>(o.policy);
    info->max_record_size = o.max_record_size;
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_end_offset(const shmlog_log* log, uint32_t partition, uint64_t* offset) {
  return guarded([&] {
    if (log == nullptr) return null_argument("log");
    if (offset == nullptr) return null_argument("offset");
    auto info = log->log.info();
    if (partition >= info.partitions.size()) return from_errc(shmlog::Errc::kBadPartition);
    *offset = info.partitions[partition].end_offset;
    return SHMLOG_OK;
  });
}

void shmlog_producer_options_init(shmlog_producer_options* o) {
  if (o == nullptr) return;
  const shmlog::ProducerOptions d;
  o->partition = d.partition;
  o->exclusive = d.exclusive ? 1 : 0;
  o->backpressure_timeout_ms = static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(d.backpressure_timeout).count());
  o->timestamps = d.timestamps ? 1 : 0;
  o->name = nullptr;
  o->producer_id = nullptr;
  o->transactional = 0;
  o->acks_durable = 0;
}

shmlog_status shmlog_producer_open(shmlog_log* log, const shmlog_producer_options* options,
                                   shmlog_producer** out) {
  return guarded([&] {
    if (log == nullptr) return null_argument("log");
    if (out == nullptr) return null_argument("producer");
    shmlog_producer_options c;
    shmlog_producer_options_init(&c);
    if (options != nullptr) c = *options;
    shmlog::ProducerOptions o;
    o.partition = c.partition;
    o.exclusive = c.exclusive != 0;
    o.backpressure_timeout = std::chrono::milliseconds(c.backpressure_timeout_ms);
    o.timestamps = c.timestamps != 0;
    if (c.name != nullptr) o.name = c.name;
    if (c.producer_id != nullptr) o.producer_id = c.producer_id;
    o.transactional = c.transactional != 0;
    if (c.acks_durable != 0) o.acks = shmlog::ProducerOptions::Acks::kDurable;
    auto producer = log->log.producer(o);
    if (!producer.ok()) return from_status(producer.status());
    *out = new shmlog_producer{std::move(producer).value(), o.partition, std::nullopt};
    return SHMLOG_OK;
  });
}

void shmlog_producer_close(shmlog_producer* producer) { delete producer; }

shmlog_status shmlog_append(shmlog_producer* p, const void* value, size_t size, uint64_t* offset) {
  if (p == nullptr) return null_argument("producer");
  if (value == nullptr && size != 0) return null_argument("value");
  auto r = p->producer.append_to(p->partition, {}, shmlog::Bytes(static_cast<const std::byte*>(value), size));
  if (!r) return from_errc(r.error);
  if (offset != nullptr) *offset = r.offset;
  return SHMLOG_OK;
}

shmlog_status shmlog_wait_durable(shmlog_producer* p, uint32_t partition, uint64_t end, uint32_t timeout_ms) {
  if (p == nullptr) return null_argument("producer");
  return from_errc(p->producer.wait_durable(partition, end, std::chrono::milliseconds(timeout_ms)));
}

void shmlog_set_next_sequence(shmlog_producer* p, uint64_t sequence) {
  if (p != nullptr) p->producer.set_next_sequence(sequence);
}

shmlog_status shmlog_last_sequence(const shmlog_producer* p, uint64_t* sequence) {
  if (p == nullptr) return null_argument("producer");
  if (sequence == nullptr) return null_argument("sequence");
  auto last = p->producer.last_sequence();
  if (!last) return SHMLOG_EMPTY;
  *sequence = *last;
  return SHMLOG_OK;
}

shmlog_status shmlog_append_unique(shmlog_producer* p, const void* token, size_t token_size, const void* value,
                                   size_t value_size, uint64_t* offset) {
  if (p == nullptr) return null_argument("producer");
  if ((token == nullptr && token_size != 0) || (value == nullptr && value_size != 0)) return null_argument("token or value");
  auto r = p->producer.append_unique(shmlog::Bytes(static_cast<const std::byte*>(token), token_size), {},
                                     shmlog::Bytes(static_cast<const std::byte*>(value), value_size));
  if (r.error == shmlog::Errc::kBadState) return fail(SHMLOG_BAD_STATE, "the log keeps no uniqueness tokens (token_window is 0)");
  if (!r) return from_errc(r.error);
  if (offset != nullptr) *offset = r.offset;
  return SHMLOG_OK;
}

shmlog_status shmlog_begin_transaction(shmlog_producer* p) {
  if (p == nullptr) return null_argument("producer");
  return guarded([&] { return from_status(p->producer.begin_transaction()); });
}

shmlog_status shmlog_commit_transaction(shmlog_producer* p) {
  if (p == nullptr) return null_argument("producer");
  return guarded([&] { return from_status(p->producer.commit_transaction()); });
}

shmlog_status shmlog_abort_transaction(shmlog_producer* p) {
  if (p == nullptr) return null_argument("producer");
  return guarded([&] { return from_status(p->producer.abort_transaction()); });
}

shmlog_status shmlog_append_keyed(shmlog_producer* p, const void* key, size_t key_size, const void* value,
                                  size_t value_size, uint32_t* partition, uint64_t* offset) {
  if (p == nullptr) return null_argument("producer");
  if ((key == nullptr && key_size != 0) || (value == nullptr && value_size != 0)) return null_argument("key or value");
  auto r = p->producer.append(shmlog::Bytes(static_cast<const std::byte*>(key), key_size),
                              shmlog::Bytes(static_cast<const std::byte*>(value), value_size));
  if (!r) return from_errc(r.error);
  if (partition != nullptr) *partition = r.partition;
  if (offset != nullptr) *offset = r.offset;
  return SHMLOG_OK;
}

shmlog_status shmlog_append_batch(shmlog_producer* p, const void* const* values, const size_t* sizes, size_t count,
                                  size_t* appended) {
  return guarded([&] {
    if (p == nullptr) return null_argument("producer");
    if (count != 0 && (values == nullptr || sizes == nullptr)) return null_argument("values or sizes");
    std::vector<shmlog::Bytes> batch;
    batch.reserve(count);
    for (size_t i = 0; i < count; ++i) batch.emplace_back(static_cast<const std::byte*>(values[i]), sizes[i]);
    shmlog::AppendResult last;
    const size_t n = p->producer.append_batch(batch, &last);
    if (appended != nullptr) *appended = n;
    return n == count ? SHMLOG_OK : from_errc(last.error);
  });
}

shmlog_status shmlog_claim_space(shmlog_producer* p, size_t value_size, size_t key_size, shmlog_claim* claim) {
  if (p == nullptr) return null_argument("producer");
  if (claim == nullptr) return null_argument("claim");
  if (p->claim) return fail(SHMLOG_BAD_STATE, "a claim is already open: commit or abort it first");
  shmlog::Claim c = p->producer.claim(value_size, key_size);
  if (!c) return from_errc(c.error());
  claim->key = c.key().data();
  claim->key_size = c.key().size();
  claim->value = c.value().data();
  claim->value_size = c.value().size();
  claim->partition = c.partition();
  claim->offset = c.offset();
  p->claim = c;
  return SHMLOG_OK;
}

shmlog_status shmlog_commit(shmlog_producer* p, shmlog_claim* claim) {
  if (p == nullptr) return null_argument("producer");
  if (claim == nullptr) return null_argument("claim");
  if (!p->claim || p->claim->offset() != claim->offset) return from_errc(shmlog::Errc::kBadState);
  auto r = p->producer.commit(*p->claim);
  p->claim.reset();
  return from_errc(r.error);
}

void shmlog_abort(shmlog_producer* p, shmlog_claim* claim) {
  if (p == nullptr || claim == nullptr || !p->claim || p->claim->offset() != claim->offset) return;
  p->producer.abort(*p->claim);
  p->claim.reset();
}

void shmlog_consumer_options_init(shmlog_consumer_options* o) {
  if (o == nullptr) return;
  o->group = nullptr;
  o->mode = SHMLOG_AT_LEAST_ONCE;
  o->commit_every = 1;
  o->from = SHMLOG_FROM_EARLIEST;
  o->from_offset = 0;
  o->wait = SHMLOG_WAIT_BACKOFF;
  o->read_committed = 0;
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
    switch (enum_value(c.wait)) {
      case SHMLOG_WAIT_BACKOFF: o.wait = shmlog::WaitStrategy::backoff(); break;
      case SHMLOG_WAIT_SPIN: o.wait = shmlog::WaitStrategy::spin(); break;
      case SHMLOG_WAIT_YIELD: o.wait = shmlog::WaitStrategy::yield(); break;
      case SHMLOG_WAIT_BLOCK: o.wait = shmlog::WaitStrategy::block(); break;
      default: return fail(SHMLOG_INVALID_ARGUMENT, "unknown wait strategy " + std::to_string(enum_value(c.wait)));
    }
    if (c.read_committed != 0) o.isolation = shmlog::Isolation::kReadCommitted;
    auto consumer = log->log.consumer(o);
    if (!consumer.ok()) return from_status(consumer.status());
    *out = new shmlog_consumer{std::move(consumer).value(), {}};
    return SHMLOG_OK;
  });
}

void shmlog_consumer_close(shmlog_consumer* consumer) { delete consumer; }

shmlog_status shmlog_poll(shmlog_consumer* c, shmlog_record_fn fn, void* context, size_t max, uint32_t timeout_ms,
                          size_t* delivered) {
  return guarded([&] {  // a rebalance may allocate
    if (c == nullptr) return null_argument("consumer");
    if (fn == nullptr) return null_argument("callback");
    CallbackHandler handler{fn, context};
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

shmlog_status shmlog_seek(shmlog_consumer* c, uint32_t partition, uint64_t offset) {
  return guarded([&] {
    if (c == nullptr) return null_argument("consumer");
    return from_status(c->consumer.seek(partition, offset));
  });
}

size_t shmlog_take_damage(shmlog_consumer* c, shmlog_damage* out, size_t max) {
  if (c == nullptr || (out == nullptr && max > 0)) return 0;
  for (auto& d : c->consumer.take_damage()) c->damage.push_back(std::move(d));
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
