// A bridge's counter file (tools/bridge_stats.h), as `shmlog stat` and the
// exporter read it from the log's directory: parsed, with every field in
// range, or a one-line error naming the file; what parses writes back the
// same.
#include <string>

#include "bridge_stats.h"
#include "fuzz_util.h"
#include "shmlog/io/files.h"

using namespace shmlog;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto parsed = tools::parse_bridge_stats(text, "bridge-to-kafka-t.stats");
  if (!parsed.ok()) {
    fuzz::check_one_line(parsed.status());
    return 0;
  }
  const tools::BridgeStatsFile& f = *parsed;
  FUZZ_CHECK(f.direction == "to-kafka" || f.direction == "from-kafka");
  FUZZ_CHECK(f.pid >= 1);
  FUZZ_CHECK(f.stats.lag >= -1 && f.stats.age_ms >= -1);
  // Round trip through the writer.
  const std::string path = fuzz::scratch_path("bridge-stats");
  FUZZ_CHECK(tools::write_bridge_stats(path, f).ok());
  auto fd = io::open_read_only(path);
  FUZZ_CHECK(fd.ok());
  auto again_text = io::read_whole_file(*fd, path, io::kMaxKeyValueFile);
  io::close_file(*fd);
  FUZZ_CHECK(again_text.ok());
  auto again = tools::parse_bridge_stats(*again_text, path);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->direction == f.direction && again->topic == f.topic && again->pid == f.pid &&
             again->start_time == f.start_time && again->updated_ns == f.updated_ns &&
             again->stats.records == f.stats.records && again->stats.duplicates == f.stats.duplicates &&
             again->stats.kafka_errors == f.stats.kafka_errors && again->stats.kafka_retries == f.stats.kafka_retries &&
             again->stats.lag == f.stats.lag && again->stats.age_ms == f.stats.age_ms);
  return 0;
}
