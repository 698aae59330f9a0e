// `shmlog bridge to-kafka`: the log's records into a Kafka topic, exactly
// once (bridge/include/shmlog/bridge/to_kafka.h). Built where librdkafka is.
#pragma once

#include <CLI/CLI.hpp>

namespace shmlog::tools {

void add_bridge_command(CLI::App& app);

}  // namespace shmlog::tools
