// The C API: the exactly-once file sink (shmlog/file_sink.h).
#include "shmlog_file_sink.h"

#include <cstdint>
#include <string_view>
#include <utility>

#include "c_api.h"
#include "shmlog/file_sink.h"

using shmlog::c_api::bad_partition;
using shmlog::c_api::enum_value;
using shmlog::c_api::fail;
using shmlog::c_api::from_status;
using shmlog::c_api::guarded;
using shmlog::c_api::null_argument;

struct shmlog_file_sink {
  shmlog::FileSink sink;
  std::uint32_t partitions;  // the log's: FileSink ignores others, the C API names them
};

extern "C" {

shmlog_status shmlog_file_sink_open(const char* path, const shmlog_log* log, shmlog_survives survives,
                                    shmlog_file_sink** out) {
  return guarded([&] {
    if (path == nullptr) return null_argument("path");
    if (log == nullptr) return null_argument("log");
    if (out == nullptr) return null_argument("sink");
    shmlog::FileSink::Survives s;
    switch (enum_value(survives)) {
      case SHMLOG_SURVIVES_HOST_CRASH: s = shmlog::FileSink::Survives::kHostCrash; break;
      case SHMLOG_SURVIVES_PROCESS_CRASH: s = shmlog::FileSink::Survives::kProcessCrash; break;
      default:
        return fail(SHMLOG_INVALID_ARGUMENT, "survives must be SHMLOG_SURVIVES_HOST_CRASH or "
                                             "SHMLOG_SURVIVES_PROCESS_CRASH, got " +
                                                 std::to_string(enum_value(survives)));
    }
    auto sink = shmlog::FileSink::open(path, log->log, s);
    if (!sink.ok()) return from_status(sink.status());
    *out = new shmlog_file_sink{std::move(sink).value(), log->log.options().partitions};
    return SHMLOG_OK;
  });
}

void shmlog_file_sink_close(shmlog_file_sink* sink) { delete sink; }

shmlog_status shmlog_file_sink_offset(const shmlog_file_sink* sink, uint32_t partition, uint64_t* offset) {
  if (sink == nullptr) return null_argument("sink");
  if (offset == nullptr) return null_argument("offset");
  if (partition >= sink->partitions) return bad_partition(partition, sink->partitions);
  const auto at = sink->sink.offset(partition);
  if (!at) return SHMLOG_EMPTY;
  *offset = *at;
  return SHMLOG_OK;
}

shmlog_status shmlog_file_sink_write(shmlog_file_sink* sink, const void* data, size_t size) {
  return guarded([&] {  // the buffer grows
    if (sink == nullptr) return null_argument("sink");
    if (data == nullptr && size != 0) return null_argument("data");
    sink->sink.write(std::string_view(static_cast<const char*>(data), size));
    return SHMLOG_OK;
  });
}

shmlog_status shmlog_file_sink_advance(shmlog_file_sink* sink, uint32_t partition, uint64_t next_offset) {
  if (sink == nullptr) return null_argument("sink");
  if (partition >= sink->partitions) return bad_partition(partition, sink->partitions);
  sink->sink.advance(partition, next_offset);
  return SHMLOG_OK;
}

shmlog_status shmlog_file_sink_checkpoint(shmlog_file_sink* sink) {
  return guarded([&] {
    if (sink == nullptr) return null_argument("sink");
    return from_status(sink->sink.checkpoint());
  });
}

uint64_t shmlog_file_sink_length(const shmlog_file_sink* sink) { return sink == nullptr ? 0 : sink->sink.file_length(); }

uint64_t shmlog_file_sink_truncated_at_open(const shmlog_file_sink* sink) {
  return sink == nullptr ? 0 : sink->sink.truncated_at_open();
}

}  // extern "C"
