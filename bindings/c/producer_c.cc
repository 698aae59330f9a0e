// The C API: producers, and transactions across logs.
#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "c_api.h"
#include "shmlog.h"
#include "shmlog/log.h"

using shmlog::c_api::fail;
using shmlog::c_api::from_status;
using shmlog::c_api::from_errc;
using shmlog::c_api::null_argument;
using shmlog::c_api::guarded;
using shmlog::c_api::bad_partition;
using shmlog::c_api::enum_value;

namespace {

shmlog::Bytes bytes(const void* data, size_t size) { return {static_cast<const std::byte*>(data), size}; }

// An append's result as a status; its partition and offset, when it
// succeeded, into the out-parameters that are not NULL.
shmlog_status appended(const shmlog_producer* p, const shmlog::AppendResult& r, uint32_t* partition, uint64_t* offset) {
  if (r.error == shmlog::Errc::kBadPartition) return bad_partition(r.partition, p->partitions);
  if (!r) return from_errc(r.error);
  if (partition != nullptr) *partition = r.partition;
  if (offset != nullptr) *offset = r.offset;
  return SHMLOG_OK;
}

// The C++ producers of a C array for a transaction across logs; refuses
// NULL entries and the same producer twice, naming them.
shmlog_status participants(shmlog_producer* const* producers, size_t count, std::vector<shmlog::Producer*>* out) {
  if (producers == nullptr && count != 0) return null_argument("producers");
  for (size_t i = 0; i < count; ++i) {
    if (producers[i] == nullptr) return null_argument(("producers[" + std::to_string(i) + "]").c_str());
    for (size_t j = 0; j < i; ++j) {
      if (producers[j] == producers[i]) {
        return fail(SHMLOG_INVALID_ARGUMENT, "producers[" + std::to_string(j) + "] and producers[" +
                                                 std::to_string(i) + "] are the same producer (one per log)");
      }
    }
    out->push_back(&producers[i]->producer);
  }
  return SHMLOG_OK;
}

}  // namespace

extern "C" {

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
  o->wait = SHMLOG_WAIT_BACKOFF;
  o->core = d.core;
  o->transaction_timeout_ms = static_cast<uint32_t>(d.transaction_timeout.count());
  o->durable_timeout_ms = static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(d.durable_timeout).count());
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
    if (shmlog_status s = shmlog::c_api::to_wait_strategy(enum_value(c.wait), &o.wait); s != SHMLOG_OK) return s;
    o.core = c.core;
    o.transaction_timeout = std::chrono::milliseconds(c.transaction_timeout_ms);
    o.durable_timeout = std::chrono::milliseconds(c.durable_timeout_ms);
    auto producer = log->log.producer(o);
    if (!producer.ok()) return from_status(producer.status());
    *out = new shmlog_producer{std::move(producer).value(), o.partition, log->log.options().partitions, std::nullopt};
    return SHMLOG_OK;
  });
}

void shmlog_producer_close(shmlog_producer* producer) { delete producer; }

shmlog_status shmlog_append(shmlog_producer* p, const void* value, size_t size, uint64_t* offset) {
  if (p == nullptr) return null_argument("producer");
  if (value == nullptr && size != 0) return null_argument("value");
  // The default partition: an exclusive producer's append is then inline.
  auto r = p->producer.append(shmlog::Bytes(static_cast<const std::byte*>(value), size));
  if (!r) return from_errc(r.error);
  if (offset != nullptr) *offset = r.offset;
  return SHMLOG_OK;
}

shmlog_status shmlog_wait_durable(shmlog_producer* p, uint32_t partition, uint64_t end, uint32_t timeout_ms) {
  if (p == nullptr) return null_argument("producer");
  if (partition >= p->partitions) return bad_partition(partition, p->partitions);  // C++ says kNotDurable
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

shmlog_status shmlog_next_sequence(const shmlog_producer* p, uint64_t* sequence) {
  if (p == nullptr) return null_argument("producer");
  if (sequence == nullptr) return null_argument("sequence");
  *sequence = p->producer.next_sequence();
  return SHMLOG_OK;
}

shmlog_status shmlog_producer_identity(const shmlog_producer* p, uint16_t* id, uint16_t* epoch) {
  if (p == nullptr) return null_argument("producer");
  if (id != nullptr) *id = p->producer.id();
  if (epoch != nullptr) *epoch = p->producer.epoch();
  return SHMLOG_OK;
}

shmlog_status shmlog_append_unique(shmlog_producer* p, const void* token, size_t token_size, const void* value,
                                   size_t value_size, uint64_t* offset) {
  if (p == nullptr) return null_argument("producer");
  return shmlog_append_unique_to(p, p->partition, token, token_size, nullptr, 0, value, value_size, offset);
}

shmlog_status shmlog_append_unique_to(shmlog_producer* p, uint32_t partition, const void* token, size_t token_size,
                                      const void* key, size_t key_size, const void* value, size_t value_size,
                                      uint64_t* offset) {
  if (p == nullptr) return null_argument("producer");
  if ((token == nullptr && token_size != 0) || (key == nullptr && key_size != 0) ||
      (value == nullptr && value_size != 0)) {
    return null_argument("token, key or value");
  }
  auto r = p->producer.append_unique_to(partition, bytes(token, token_size), bytes(key, key_size),
                                        bytes(value, value_size));
  if (r.error == shmlog::Errc::kBadState) {
    return fail(SHMLOG_BAD_STATE, "no uniqueness tokens here: the log keeps none (token_window is 0), or a "
                                  "transaction is open");
  }
  return appended(p, r, nullptr, offset);
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

shmlog_status shmlog_in_transaction(const shmlog_producer* p, int* open) {
  if (p == nullptr) return null_argument("producer");
  if (open == nullptr) return null_argument("open");
  *open = p->producer.in_transaction() ? 1 : 0;
  return SHMLOG_OK;
}

shmlog_status shmlog_add_offsets(shmlog_producer* p, const char* group, uint32_t partition, uint64_t offset) {
  return guarded([&] {
    if (p == nullptr) return null_argument("producer");
    if (group == nullptr) return null_argument("group");
    if (!p->producer.in_transaction()) return fail(SHMLOG_BAD_STATE, "no transaction is open to add offsets to");
    p->producer.add_offsets(group, partition, offset);
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_committed_offsets(const shmlog_producer* p, const char* group, shmlog_partition_offset* out,
                                       size_t max, size_t* count) {
  return guarded([&] {
    if (p == nullptr) return null_argument("producer");
    if (group == nullptr) return null_argument("group");
    if (out == nullptr && max != 0) return null_argument("out");
    const auto offsets = p->producer.committed_offsets(group);
    for (size_t i = 0; i < std::min(max, offsets.size()); ++i) out[i] = {offsets[i].first, offsets[i].second};
    if (count != nullptr) *count = offsets.size();
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_commit_transactions(shmlog_producer* const* producers, size_t count) {
  return guarded([&] {
    std::vector<shmlog::Producer*> all;
    if (shmlog_status s = participants(producers, count, &all); s != SHMLOG_OK) return s;
    return from_status(shmlog::Producer::commit_transactions(all));
  });
}

shmlog_status shmlog_abort_transactions(shmlog_producer* const* producers, size_t count) {
  return guarded([&] {
    std::vector<shmlog::Producer*> all;
    if (shmlog_status s = participants(producers, count, &all); s != SHMLOG_OK) return s;
    return from_status(shmlog::Producer::abort_transactions(all));
  });
}

shmlog_status shmlog_append_keyed(shmlog_producer* p, const void* key, size_t key_size, const void* value,
                                  size_t value_size, uint32_t* partition, uint64_t* offset) {
  if (p == nullptr) return null_argument("producer");
  if ((key == nullptr && key_size != 0) || (value == nullptr && value_size != 0)) return null_argument("key or value");
  return appended(p, p->producer.append(bytes(key, key_size), bytes(value, value_size)), partition, offset);
}

shmlog_status shmlog_append_to(shmlog_producer* p, uint32_t partition, const void* key, size_t key_size,
                               const void* value, size_t value_size, uint64_t* offset) {
  if (p == nullptr) return null_argument("producer");
  if ((key == nullptr && key_size != 0) || (value == nullptr && value_size != 0)) return null_argument("key or value");
  return appended(p, p->producer.append_to(partition, bytes(key, key_size), bytes(value, value_size)), nullptr, offset);
}

shmlog_status shmlog_append_at(shmlog_producer* p, uint32_t partition, const void* key, size_t key_size,
                               const void* value, size_t value_size, uint64_t timestamp_ns, uint64_t* offset) {
  if (p == nullptr) return null_argument("producer");
  if ((key == nullptr && key_size != 0) || (value == nullptr && value_size != 0)) return null_argument("key or value");
  return appended(
      p, p->producer.append_at(partition, bytes(key, key_size), bytes(value, value_size), timestamp_ns), nullptr,
      offset);
}

shmlog_status shmlog_partition_for(const shmlog_producer* p, const void* key, size_t key_size, uint32_t* partition) {
  if (p == nullptr) return null_argument("producer");
  if (key == nullptr && key_size != 0) return null_argument("key");
  if (partition == nullptr) return null_argument("partition");
  *partition = p->producer.partition_for(bytes(key, key_size));
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
  return shmlog_claim_in(p, p->partition, value_size, key_size, claim);
}

shmlog_status shmlog_claim_in(shmlog_producer* p, uint32_t partition, size_t value_size, size_t key_size,
                              shmlog_claim* claim) {
  if (p == nullptr) return null_argument("producer");
  if (claim == nullptr) return null_argument("claim");
  if (p->claim) return fail(SHMLOG_BAD_STATE, "a claim is already open: commit or abort it first");
  shmlog::Claim c = p->producer.claim_in(partition, value_size, key_size);
  if (c.error() == shmlog::Errc::kBadPartition) return bad_partition(partition, p->partitions);
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

}  // extern "C"
