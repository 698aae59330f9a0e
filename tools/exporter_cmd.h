// `shmlog exporter`: the logs' counters at /metrics in Prometheus's text
// format (prometheus-cpp), read at each scrape from read-only attachments.
#pragma once

#include <CLI/CLI.hpp>

namespace shmlog::tools {

void add_exporter_command(CLI::App& app);

}  // namespace shmlog::tools
