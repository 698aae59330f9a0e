#include "durable_cmd.h"

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "command.h"
#include "shmlog/log.h"
#include "shmlog/segments.h"

namespace shmlog::tools {
namespace {

struct KeeperArgs {
  std::string log;
  int core = -1;
};

struct DumpArgs {
  std::string file;
  bool values = false;
};

const char* type_name(std::uint8_t type) {
  switch (type) {
    case 1: return "data";
    case 2: return "padding";
    case 3: return "abandoned";
    case 4: return "txn-commit";
    case 5: return "txn-abort";
    case 6: return "txn-offsets";
    case 7: return "txn-prepare";
    case 8: return "txn-participants";
    default: return "?";
  }
}

const char* check_name(SegmentRecord::Check c) {
  switch (c) {
    case SegmentRecord::Check::kGood: return "ok";
    case SegmentRecord::Check::kNone: return "none";
    case SegmentRecord::Check::kBad: return "BAD";
  }
  return "?";
}

void print_problems(const char* what, const std::vector<SegmentProblem>& problems) {
  for (const auto& p : problems) {
    std::printf("  %s at offset %" PRIu64 ", %" PRIu64 " bytes: %s\n", what, p.offset, p.bytes, p.reason.c_str());
  }
}

int run_keeper(const std::string& path, int core, volatile std::sig_atomic_t* interrupted) {
  if (core >= 0) {
    Status pinned = pin_current_thread(static_cast<unsigned>(core));
    if (!pinned.ok()) {
      std::fprintf(stderr, "shmlog keeper: %s\n", pinned.message().c_str());
      return 1;
    }
  }
  auto log = Log::open(path, {.keeper = false});
  if (!log.ok()) {
    std::fprintf(stderr, "shmlog keeper: %s\n", log.status().message().c_str());
    return 1;
  }
  std::atomic<bool> stop{false};
  std::thread watcher([&] {
    while (!*interrupted) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    stop.store(true, std::memory_order_release);
  });
  std::fprintf(stderr, "shmlog keeper: keeping %s (takes the lease when no live keeper holds it; Ctrl-C stops)\n",
               log->path().c_str());
  Status kept = log->keep(stop);
  *interrupted = 1;
  watcher.join();
  if (!kept.ok()) {
    std::fprintf(stderr, "shmlog keeper: %s\n", kept.message().c_str());
    return 1;
  }
  return 0;
}

// Decodes one segment file: a line per record (offset, timestamp, producer,
// length, CRC status), then where it is torn or damaged.
int run_dump(const std::string& file, bool values) {
  std::printf("%-16s %-20s %-16s %6s %6s %12s %8s %5s%s\n", "OFFSET", "TIMESTAMP_NS", "TYPE", "PROD", "EPOCH",
              "SEQUENCE", "LENGTH", "CRC", values ? "  VALUE" : "");
  auto scanned = scan_segment_file(file, 0, [&](const SegmentRecord& r) {
    std::printf("%-16" PRIu64 " %-20" PRIu64 " %-16s %6u %6u %12" PRIu64 " %8u %5s", r.offset, r.timestamp_ns,
                type_name(r.type), r.producer_id, r.producer_epoch, r.sequence, r.length, check_name(r.check));
    if (values && r.type == 1) {
      std::string v(reinterpret_cast<const char*>(r.value.data()), std::min<std::size_t>(r.value.size(), 60));
      for (char& c : v) {
        if (c < 32 || c > 126) c = '.';
      }
      std::printf("  %s", v.c_str());
    }
    std::printf("\n");
  });
  if (!scanned.ok()) {
    std::fprintf(stderr, "shmlog dump: %s\n", scanned.status().message().c_str());
    return 1;
  }
  const auto& s = scanned->scan;
  std::printf("# %s: partition %u, segment %" PRIu64 "..%" PRIu64 ", %" PRIu64 " records, clean up to %" PRIu64
              "%s\n",
              file.c_str(), scanned->partition, s.base_offset, s.base_offset + scanned->segment_size, s.records,
              s.end, s.complete ? " (complete)" : "");
  print_problems("damaged", s.problems);
  print_problems("torn tail", s.torn);
  return s.problems.empty() && s.torn.empty() ? 0 : 1;
}

// Checks every segment file of a log; exit 0 when all are clean, 1 when
// any is torn or damaged (each problem named with its offsets).
int run_verify(const std::string& path) {
  auto scan = scan_log_files(path);
  if (!scan.ok()) {
    std::fprintf(stderr, "shmlog verify: %s\n", scan.status().message().c_str());
    return 1;
  }
  std::uint64_t records = 0, damaged = 0, torn = 0;
  for (const auto& f : scan->files) {
    records += f.scan.records;
    if (f.scan.problems.empty() && f.scan.torn.empty()) continue;
    std::printf("%s:\n", f.path.c_str());
    print_problems("damaged", f.scan.problems);
    print_problems("torn tail", f.scan.torn);
    damaged += f.scan.problems.size();
    torn += f.scan.torn.size();
  }
  for (const auto& b : scan->bad_files) std::printf("bad file: %s\n", b.reason.c_str());
  std::printf("%zu segment file(s), %" PRIu64 " records; %" PRIu64 " damaged region(s), %" PRIu64
              " torn tail(s), %zu missing or unreadable file(s)%s\n",
              scan->files.size(), records, damaged, torn, scan->bad_files.size(),
              torn > 0 ? " (shmlog repair cuts torn tails)" : "");
  return damaged == 0 && torn == 0 && scan->bad_files.empty() ? 0 : 1;
}

// Cuts torn tails (zeroes them) and says what it removed.
int run_repair(const std::string& path) {
  auto removed = repair_log_files(path);
  if (!removed.ok()) {
    std::fprintf(stderr, "shmlog repair: %s\n", removed.status().message().c_str());
    return 1;
  }
  for (const auto& r : *removed) {
    std::printf("cut %" PRIu64 " bytes at offset %" PRIu64 " (%s)\n", r.bytes, r.offset, r.reason.c_str());
  }
  std::printf("%s\n", removed->empty() ? "nothing to repair: no torn tail" : "repaired");
  return 0;
}

}  // namespace

void add_durable_commands(CLI::App& app) {
  auto keeper_args = std::make_shared<KeeperArgs>();
  auto* keeper = app.add_subcommand("keeper", "Run a durable log's keeper (flusher, retention, checkpoints) here");
  keeper->add_option("LOG", keeper_args->log, "Log directory")->required();
  keeper->add_option("--core", keeper_args->core, "Pin to this CPU (a housekeeping core)");
  set_action(keeper, [keeper_args] { return run_keeper(keeper_args->log, keeper_args->core, &g_interrupted); });

  auto dump_args = std::make_shared<DumpArgs>();
  auto* dump = app.add_subcommand("dump", "Decode a segment file: records, CRC status, where it is torn");
  dump->add_option("FILE", dump_args->file, "A segment file (LOG/partition-N/OFFSET.seg)")->required();
  dump->add_flag("--values", dump_args->values, "Print the start of each value");
  set_action(dump, [dump_args] { return run_dump(dump_args->file, dump_args->values); });

  auto verify_log = std::make_shared<std::string>();
  auto* verify = app.add_subcommand("verify", "Check every segment file of a durable log");
  verify->add_option("LOG", *verify_log, "Log directory")->required();
  set_action(verify, [verify_log] { return run_verify(*verify_log); });

  auto repair_log = std::make_shared<std::string>();
  auto* repair = app.add_subcommand("repair", "Cut torn tails of a stopped durable log's segment files");
  repair->add_option("LOG", *repair_log, "Log directory")->required();
  set_action(repair, [repair_log] { return run_repair(*repair_log); });
}

}  // namespace shmlog::tools
