// The C API over the C++ one: errors, versions and logs (producers and
// consumers in their own files). Every entry point catches everything: no
// exception crosses into C. Errors set a thread-local message.
#include <string>
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

}  // namespace shmlog::c_api

using shmlog::c_api::fail;
using shmlog::c_api::from_status;
using shmlog::c_api::from_errc;
using shmlog::c_api::null_argument;
using shmlog::c_api::guarded;
using shmlog::c_api::enum_value;

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

}  // extern "C"
