#include "command.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "shmlog/shm/process.h"

namespace shmlog::tools {

volatile std::sig_atomic_t g_interrupted = 0;

namespace {

void on_signal(int) {
  g_interrupted = 1;
}

}  // namespace

void set_action(CLI::App* command, std::function<int()> run) {
  // CLI11 calls it after it parsed and checked every option.
  command->callback([run = std::move(run)] {
    shm::on_interrupt(on_signal);
    if (const int code = run(); code != 0) throw CLI::RuntimeError(code);
  });
}

std::uint64_t realtime_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "shmlog: %s\n", what.c_str());
  std::exit(1);
}

void check(const Status& s) {
  if (!s.ok()) fail(s.message());
}

WaitStrategy parse_wait(const std::string& text) {
  WaitStrategy w;
  if (!parse_wait_strategy(text.c_str(), &w)) {
    fail("--wait: unknown strategy '" + text + "' (spin, yield, backoff or block)");
  }
  return w;
}

char parse_separator(const std::string& text, const char* flag) {
  if (text == "\\t") return '\t';
  if (text.size() != 1) fail(std::string(flag) + " must be a single character, got '" + text + "'");
  return text[0];
}

std::string placement_text(const LogOptions& o) {
  std::string pages = o.pages == Pages::kHuge ? "huge pages"
                      : o.pages == Pages::kTransparentHuge ? "transparent huge pages" : "normal pages";
  return pages + ", " + (o.numa_node >= 0 ? "bound to NUMA node " + std::to_string(o.numa_node)
                                          : "NUMA placement left to the kernel's policy");
}

void print_json(const Json& j) {
  std::printf("%s\n", j.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
}

}  // namespace shmlog::tools
