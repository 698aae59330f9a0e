// `shmlog exporter`: the logs' counters at /metrics in Prometheus's text
// format (prometheus-cpp), read at each scrape from read-only attachments.
#pragma once

#include <csignal>
#include <string>
#include <vector>

namespace shmlog::tools {

struct ExporterArgs {
  std::vector<std::string> logs;
  std::string listen = "127.0.0.1:9464";
};

int run_exporter(const ExporterArgs& args, volatile std::sig_atomic_t* interrupted);

}  // namespace shmlog::tools
