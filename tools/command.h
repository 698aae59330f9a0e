// What the subcommands of `shmlog` share: how a subcommand runs, the one
// interrupt flag, the helpers that turn an error into one line on stderr
// and exit code 1, and how --json output is printed.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json_fwd.hpp>

#include <csignal>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "shmlog/log.h"
#include "shmlog/wait.h"

namespace shmlog::tools {

// Set by SIGINT and SIGTERM while a subcommand runs; long-running ones poll
// it and stop.
extern volatile std::sig_atomic_t g_interrupted;

// Makes `run` what `command` does once the whole command line parsed
// without error: SIGINT and SIGTERM then set g_interrupted, and what `run`
// returns is the exit code (main gets a non-zero one as CLI::RuntimeError).
void set_action(CLI::App* command, std::function<int()> run);

// Prints "shmlog: WHAT" on stderr and exits 1.
[[noreturn]] void fail(const std::string& what);

template <class T>
T check(Result<T> r) {
  if (!r.ok()) fail(r.status().message());
  return std::move(r).value();
}
void check(const Status& s);

// --wait: spin, yield, backoff or block.
WaitStrategy parse_wait(const std::string& text);
// One character, or "\t" for a tab; `flag` names the option in the error.
char parse_separator(const std::string& text, const char* flag);
// CLOCK_REALTIME in ns: what records' timestamps and the keeper's heartbeat use.
std::uint64_t realtime_ns();
// The log's pages and NUMA binding in words, for create and info.
std::string placement_text(const LogOptions& o);

// --json output: objects keep their keys in the order they were added.
using Json = nlohmann::ordered_json;
// Prints `j` as one line on stdout. Bytes that are not UTF-8 (a path or a
// name may hold any) become U+FFFD, so every line parses as JSON.
void print_json(const Json& j);

}  // namespace shmlog::tools
