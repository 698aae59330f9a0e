// A running bridge's counters, handed to its owner every stats interval
// (the command writes them where `shmlog stat` and the exporter read
// them: tools/bridge_stats.h). Header-only: the tools that read them are
// built also where librdkafka is not.
#pragma once

#include <cstdint>

namespace shmlog::bridge {

struct BridgeStats {
  // to-kafka: records Kafka acknowledged; from-kafka: records appended to
  // the log. Both since the bridge started.
  std::uint64_t records = 0;
  std::uint64_t duplicates = 0;     // from-kafka: records already in the log
  std::uint64_t kafka_errors = 0;   // errors librdkafka reported: connections, brokers down, refused requests
  std::uint64_t kafka_retries = 0;  // requests librdkafka sent again (its statistics' txretries)
  // Records behind: to-kafka: sent, not yet acknowledged; from-kafka:
  // Kafka's consumer lag, summed over partitions. -1: not known yet.
  std::int64_t lag = -1;
  // End to end, of the last record: Kafka's acknowledgement (to-kafka) or
  // the append (from-kafka) minus the record's timestamp. -1: none yet.
  std::int64_t age_ms = -1;
};

}  // namespace shmlog::bridge
