// The C API over the C++ one: errors, versions, logs and keepers
// (producers, consumers and the file sink in their own files). Every entry
// point catches everything: no exception crosses into C. Errors set a
// thread-local message.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "c_api.h"
#include "shmlog.h"
#include "shmlog/log.h"

namespace {
thread_local std::string g_error;  // shmlog_last_error()
}  // namespace

namespace shmlog::c_api {

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

shmlog_status null_argument(const char* what) {
  return fail(SHMLOG_INVALID_ARGUMENT, std::string(what) + " is NULL");
}

shmlog_status to_wait_strategy(int wait, shmlog::WaitStrategy* out) {
  switch (wait) {
    case SHMLOG_WAIT_BACKOFF: *out = shmlog::WaitStrategy::backoff(); return SHMLOG_OK;
    case SHMLOG_WAIT_SPIN: *out = shmlog::WaitStrategy::spin(); return SHMLOG_OK;
    case SHMLOG_WAIT_YIELD: *out = shmlog::WaitStrategy::yield(); return SHMLOG_OK;
    case SHMLOG_WAIT_BLOCK: *out = shmlog::WaitStrategy::block(); return SHMLOG_OK;
  }
  return fail(SHMLOG_INVALID_ARGUMENT, "unknown wait strategy " + std::to_string(wait));
}

shmlog_status bad_partition(uint32_t partition, std::size_t partitions) {
  return fail(SHMLOG_BAD_PARTITION, "partition " + std::to_string(partition) + " is out of range (the log has " +
                                        std::to_string(partitions) + ")");
}

}  // namespace shmlog::c_api

using shmlog::c_api::fail;
using shmlog::c_api::from_status;
using shmlog::c_api::from_errc;
using shmlog::c_api::null_argument;
using shmlog::c_api::guarded;
using shmlog::c_api::enum_value;
using shmlog::c_api::bad_partition;

// A keeper thread (shmlog_keeper_start). Its copy of the log keeps it mapped.
struct shmlog_keeper {
  explicit shmlog_keeper(shmlog::Log l) : log(std::move(l)) {}
  shmlog::Log log;
  std::atomic<bool> stop{false};
  shmlog::Status result;  // written by the thread, read after join
  std::thread thread;
};

namespace {

constexpr uint64_t kYearMs = 365ull * 24 * 3600 * 1000;

shmlog_status too_long(const char* field, uint64_t value) {
  return fail(SHMLOG_INVALID_ARGUMENT, std::string(field) + " must be at most a year, got " + std::to_string(value));
}

// The C options (NULL: the defaults) as C++ ones; the error names the field.
shmlog_status to_log_options(const shmlog_log_options* options, shmlog::LogOptions* o) {
  shmlog_log_options c;
  shmlog_log_options_init(&c);
  if (options != nullptr) c = *options;
  const int policy = enum_value(c.policy);
  if (policy != SHMLOG_OVERWRITE && policy != SHMLOG_BACKPRESSURE) {
    return fail(SHMLOG_INVALID_ARGUMENT, "policy must be SHMLOG_OVERWRITE or SHMLOG_BACKPRESSURE");
  }
  const int pages = enum_value(c.pages);
  if (pages < SHMLOG_PAGES_NORMAL || pages > SHMLOG_PAGES_HUGE) {
    return fail(SHMLOG_INVALID_ARGUMENT,
                "pages must be SHMLOG_PAGES_NORMAL, SHMLOG_PAGES_THP or SHMLOG_PAGES_HUGE, got " + std::to_string(pages));
  }
  if (c.durability > 2) return fail(SHMLOG_INVALID_ARGUMENT, "durability must be 0 (none), 1 (flush) or 2 (fsync)");
  // Durations past a year are refused before they could overflow C++'s
  // duration types (validate() bounds the sensible ones).
  if (c.token_window_ms > kYearMs) return too_long("token_window_ms", c.token_window_ms);
  if (c.retention_ms > kYearMs) return too_long("retention_ms", c.retention_ms);
  if (c.fsync_interval_us > kYearMs * 1000) return too_long("fsync_interval_us", c.fsync_interval_us);
  o->partitions = c.partitions;
  o->segment_size = c.segment_size;
  o->ring_segments = c.ring_segments;
  o->policy = static_cast<shmlog::Policy>(policy);
  o->max_record_size = c.max_record_size;
  o->max_producers = c.max_producers;
  o->max_groups = c.max_groups;
  o->max_members = c.max_members;
  o->claim_timeout = std::chrono::milliseconds(c.claim_timeout_ms);
  o->mode = c.mode;
  o->checksums = c.checksums != 0;
  o->token_window = c.token_window;
  o->durability = static_cast<shmlog::Durability>(c.durability);
  o->pages = static_cast<shmlog::Pages>(pages);
  if (c.memory_dir != nullptr) o->memory_dir = c.memory_dir;
  o->numa_node = c.numa_node;
  o->token_window_time = std::chrono::milliseconds(c.token_window_ms);
  o->fsync_interval_bytes = c.fsync_interval_bytes;
  o->fsync_interval = std::chrono::microseconds(c.fsync_interval_us);
  o->retention_bytes = c.retention_bytes;
  o->retention_time = std::chrono::milliseconds(c.retention_ms);
  return SHMLOG_OK;
}

// Hands out the log `made` (create, open, attach) or its error.
shmlog_status new_log(shmlog::Result<shmlog::Log> made, shmlog_log** out) {
  if (!made.ok()) return from_status(made.status());
  *out = new shmlog_log{std::move(made).value()};
  return SHMLOG_OK;
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
  o->pages = static_cast<shmlog_pages>(d.pages);
  o->memory_dir = nullptr;
  o->numa_node = d.numa_node;
  o->token_window_ms = static_cast<uint64_t>(d.token_window_time.count());
  o->fsync_interval_bytes = d.fsync_interval_bytes;
  o->fsync_interval_us = static_cast<uint64_t>(d.fsync_interval.count());
  o->retention_bytes = d.retention_bytes;
  o->retention_ms = static_cast<uint64_t>(d.retention_time.count());
}

shmlog_status shmlog_create(const char* path, const shmlog_log_options* options, shmlog_log** out) {
  return guarded([&] {
    if (path == nullptr) return null_argument("path");
    if (out == nullptr) return null_argument("log");
    shmlog::LogOptions o;
    if (shmlog_status s = to_log_options(options, &o); s != SHMLOG_OK) return s;
    return new_log(shmlog::Log::create(path, o), out);
  });
}

shmlog_status shmlog_create_in_memory(const shmlog_log_options* options, shmlog_log** out) {
  return guarded([&] {
    if (out == nullptr) return null_argument("log");
    shmlog::LogOptions o;
    if (shmlog_status s = to_log_options(options, &o); s != SHMLOG_OK) return s;
    return new_log(shmlog::Log::create_in_memory(o), out);
  });
}

void shmlog_open_options_init(shmlog_open_options* o) {
  if (o == nullptr) return;
  const shmlog::OpenOptions d;
  o->keeper = d.keeper ? 1 : 0;
  o->maker_patience_ms = static_cast<uint64_t>(d.maker_patience.count());
}

shmlog_status shmlog_open(const char* path, shmlog_log** out) { return shmlog_open_with(path, nullptr, out); }

shmlog_status shmlog_open_with(const char* path, const shmlog_open_options* options, shmlog_log** out) {
  return guarded([&] {
    if (path == nullptr) return null_argument("path");
    if (out == nullptr) return null_argument("log");
    shmlog_open_options c;
    shmlog_open_options_init(&c);
    if (options != nullptr) c = *options;
    if (c.maker_patience_ms > kYearMs) return too_long("maker_patience_ms", c.maker_patience_ms);
    shmlog::OpenOptions o;
    o.keeper = c.keeper != 0;
    o.maker_patience = std::chrono::milliseconds(c.maker_patience_ms);
    return new_log(shmlog::Log::open(path, o), out);
  });
}

shmlog_status shmlog_attach(const char* path, shmlog_log** out) {
  return guarded([&] {
    if (path == nullptr) return null_argument("path");
    if (out == nullptr) return null_argument("log");
    return new_log(shmlog::Log::attach(path), out);
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
    info->log_id = log->log.id();
    info->durability = static_cast<uint32_t>(o.durability);
    info->pages = static_cast<shmlog_pages>(o.pages);
    info->numa_node = o.numa_node;
    const shmlog::LogInfo now = log->log.info();
    info->keeper_pid = now.keeper_pid;
    info->keeper_alive = now.keeper_alive ? 1 : 0;
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_end_offset(const shmlog_log* log, uint32_t partition, uint64_t* offset) {
  return guarded([&] {
    if (log == nullptr) return null_argument("log");
    if (offset == nullptr) return null_argument("offset");
    auto info = log->log.info();
    if (partition >= info.partitions.size()) return bad_partition(partition, info.partitions.size());
    *offset = info.partitions[partition].end_offset;
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_info_partition(const shmlog_log* log, uint32_t partition, shmlog_partition_info* out) {
  return guarded([&] {
    if (log == nullptr) return null_argument("log");
    if (out == nullptr) return null_argument("info");
    const shmlog::LogInfo info = log->log.info();
    if (partition >= info.partitions.size()) return bad_partition(partition, info.partitions.size());
    const auto& p = info.partitions[partition];
    out->earliest_offset = p.earliest_offset;
    out->end_offset = p.end_offset;
    out->writers = p.writers;
    out->written_offset = p.written_offset;
    out->durable_offset = p.durable_offset;
    out->disk_start = p.disk_start;
    out->disk_bytes = p.disk_bytes;
    out->counted = p.counted ? 1 : 0;
    out->appends = p.appends;
    out->bytes = p.bytes;
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_delete_group(const shmlog_log* log, const char* group, int force) {
  return guarded([&] {
    if (log == nullptr) return null_argument("log");
    if (group == nullptr) return null_argument("group");
    return from_status(log->log.delete_group(group, force != 0));
  });
}

shmlog_status shmlog_reset_group(const shmlog_log* log, const char* group, shmlog_reset_to to, uint64_t value,
                                 uint64_t* offsets, size_t max, size_t* count) {
  return guarded([&] {
    if (log == nullptr) return null_argument("log");
    if (group == nullptr) return null_argument("group");
    if (offsets == nullptr && max != 0) return null_argument("offsets");
    shmlog::GroupReset where;
    switch (enum_value(to)) {
      case SHMLOG_RESET_EARLIEST: where = shmlog::GroupReset::earliest(); break;
      case SHMLOG_RESET_LATEST: where = shmlog::GroupReset::latest(); break;
      case SHMLOG_RESET_OFFSET: where = shmlog::GroupReset::to_offset(value); break;
      case SHMLOG_RESET_TIME: where = shmlog::GroupReset::to_time(value); break;
      default: return fail(SHMLOG_INVALID_ARGUMENT, "unknown reset target " + std::to_string(enum_value(to)));
    }
    auto moved = log->log.reset_group(group, where);
    if (!moved.ok()) return from_status(moved.status());
    std::copy_n(moved->begin(), std::min(max, moved->size()), offsets);
    if (count != nullptr) *count = moved->size();
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_sweep(const shmlog_log* log) {
  return guarded([&] {
    if (log == nullptr) return null_argument("log");
    log->log.sweep();
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_keeper_start(const shmlog_log* log, shmlog_keeper** out) {
  return guarded([&] {
    if (log == nullptr) return null_argument("log");
    if (out == nullptr) return null_argument("keeper");
    if (log->log.options().durability == shmlog::Durability::kNone) {
      return fail(SHMLOG_INVALID_ARGUMENT, log->log.path() + " is not durable: it has nothing to keep");
    }
    auto keeper = std::make_unique<shmlog_keeper>(log->log);
    shmlog_keeper* k = keeper.get();
    k->thread = std::thread([k] { k->result = k->log.keep(k->stop); });
    *out = keeper.release();
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_keeper_stop(shmlog_keeper* keeper) {
  if (keeper == nullptr) return SHMLOG_OK;
  std::unique_ptr<shmlog_keeper> owned(keeper);
  owned->stop.store(true, std::memory_order_release);  // keep() acquires it between rounds
  owned->thread.join();
  return guarded([&] { return from_status(owned->result); });
}

}  // extern "C"
