#include "consume_cmd.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "args.h"
#include "command.h"
#include "shmlog/file_sink.h"
#include "shmlog/log.h"

namespace shmlog::tools {
namespace {

struct ConsumeArgs {
  std::string log;
  std::string group;
  std::string mode = "at-least-once";
  std::string from = "earliest";
  std::uint64_t max = 0;
  std::int64_t idle_timeout_ms = -1;
  std::uint32_t commit_every = 256;
  bool print_offsets = false;
  bool print_key = false;
  std::string key_separator = "\t";
  std::string wait = "backoff";
  std::string out;  // exactly-once: the output file (its offsets are kept beside it)
  std::string isolation = "read_uncommitted";
  bool read_durable = false;
};

Isolation parse_isolation(const std::string& text) {
  if (text == "read_committed") return Isolation::kReadCommitted;
  if (text != "read_uncommitted") fail("--isolation: '" + text + "' is not read_committed or read_uncommitted");
  return Isolation::kReadUncommitted;
}

// One output line for a record, as the flags say.
void format_line(const ConsumeArgs& a, char separator, const Record& r, std::string& line) {
  line.clear();
  if (a.print_offsets) line += std::to_string(r.partition) + ":" + std::to_string(r.offset) + "\t";
  if (a.print_key) {
    line += as_string(r.key);
    line += separator;
  }
  line += as_string(r.value);
  line += '\n';
}

// What a poll stepped over, on stderr: records lost to a lap, and damage
// (the offsets lost, the file and why).
void report_skipped(const PollResult& r, Consumer& consumer) {
  if (r.lost_bytes > 0) {
    std::fprintf(stderr, "shmlog: consumer was lapped: %" PRIu64 " bytes of records lost\n", r.lost_bytes);
  }
  for (const auto& d : consumer.take_damage()) {
    std::fprintf(stderr, "shmlog: partition %" PRIu32 ": offsets %" PRIu64 "..%" PRIu64 " skipped: %s\n", d.partition,
                 d.from, d.to, d.what.c_str());
  }
}

// --mode exactly-once --out FILE: the records and the offsets they came
// from advance together (FileSink), so kill -9 at any point and a restart
// with the same arguments leave every record in FILE once, in order.
int run_consume_exactly_once(const ConsumeArgs& a, const Log& log, ConsumerOptions co, char separator) {
  co.mode = DeliveryMode::kManual;  // the group offset follows the file's checkpoint
  co.drop_duplicates = true;
  co.isolation = Isolation::kReadCommitted;
  auto sink = check(FileSink::open(a.out, log));
  if (sink.truncated_at_open() > 0) {
    std::fprintf(stderr, "shmlog: cut %" PRIu64 " bytes off %s written after its last checkpoint (they are read again)\n",
                 sink.truncated_at_open(), a.out.c_str());
  }
  auto consumer = check(log.consumer(co));
  const std::uint32_t partitions = log.options().partitions;
  auto own_everything = [&] {
    if (consumer.assignment().size() != partitions) {
      fail("another member is in group '" + a.group + "': an exactly-once file sink needs the group to itself");
    }
  };
  own_everything();
  for (std::uint32_t p = 0; p < partitions; ++p) {
    if (auto at = sink.offset(p)) {
      Status s = consumer.seek(p, *at);
      if (!s.ok()) fail("cannot resume partition " + std::to_string(p) + " where " + a.out + " left off: " + s.message());
    } else {
      sink.advance(p, consumer.position(p).value_or(0));
    }
  }
  std::uint64_t seen = 0;
  std::string line;
  auto handler = [&](const Record& r) {
    format_line(a, separator, r, line);
    sink.write(line);
    sink.advance(r.partition, r.next_offset);
    ++seen;
  };
  const auto idle = a.idle_timeout_ms >= 0 ? std::chrono::milliseconds(a.idle_timeout_ms)
                                           : std::chrono::milliseconds(200);
  std::uint64_t duplicates = 0;
  while (!g_interrupted && (a.max == 0 || seen < a.max)) {
    std::size_t want = 256;
    if (a.max != 0) want = static_cast<std::size_t>(std::min<std::uint64_t>(want, a.max - seen));
    auto r = consumer.poll_wait(handler, want, idle);
    duplicates += r.duplicates;
    report_skipped(r, consumer);
    // Where the group's commit puts each partition (past a segment's end
    // padding the poll stepped over, which the last record's end is not):
    // the ring may reuse a segment the group is past.
    for (std::uint32_t p = 0; p < partitions; ++p) {
      if (auto at = consumer.position(p)) sink.advance(p, *at);
    }
    check(sink.checkpoint());
    consumer.commit();
    own_everything();
    if (r.records == 0 && a.idle_timeout_ms >= 0) break;
  }
  consumer.close();
  if (duplicates > 0) std::fprintf(stderr, "shmlog: %" PRIu64 " duplicate record(s) skipped\n", duplicates);
  return g_interrupted ? 130 : 0;
}

int run_consume(const ConsumeArgs& a) {
  auto log = check(Log::open(a.log));
  ConsumerOptions co;
  co.group = a.group;
  co.wait = parse_wait(a.wait);
  co.isolation = parse_isolation(a.isolation);
  co.read_durable = a.read_durable;
  const bool at_most_once = a.mode == "at-most-once";
  const bool exactly_once = a.mode == "exactly-once";
  if (a.mode == "at-least-once") {
    co.mode = DeliveryMode::kManual;  // we commit after flushing stdout
  } else if (at_most_once) {
    co.mode = DeliveryMode::kAtMostOnce;
  } else if (!exactly_once) {
    fail("--mode: unknown mode '" + a.mode + "' (at-most-once, at-least-once or exactly-once)");
  }
  if (exactly_once && a.group.empty()) fail("--mode exactly-once needs --group (the group holds the ring for it)");
  if (exactly_once && a.out.empty()) {
    fail("--mode exactly-once needs --out FILE: the offsets are kept with the output, not on stdout");
  }
  if (!exactly_once && !a.out.empty()) fail("--out is for --mode exactly-once");
  if (a.commit_every < 1) fail("--commit-every must be at least 1");
  co.commit_every = a.commit_every;
  auto from = parse_start(a.from);
  if (!from.ok()) fail("--from: " + from.status().message());
  co.from = *from;
  const char separator = parse_separator(a.key_separator, "--key-separator");
  if (exactly_once) return run_consume_exactly_once(a, log, co, separator);
  auto consumer = check(log.consumer(co));
  std::uint64_t seen = 0;
  bool write_failed = false;
  std::string line;
  auto handler = [&](const Record& r) {
    format_line(a, separator, r, line);
    if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size()) write_failed = true;
    ++seen;
  };
  const auto idle = a.idle_timeout_ms >= 0 ? std::chrono::milliseconds(a.idle_timeout_ms)
                                           : std::chrono::milliseconds(200);
  while (!g_interrupted && !write_failed && (a.max == 0 || seen < a.max)) {
    // at-least-once commits after each poll, so a poll takes --commit-every records at most.
    std::size_t want = at_most_once ? 256 : std::min<std::size_t>(256, a.commit_every);
    if (a.max != 0) want = static_cast<std::size_t>(std::min<std::uint64_t>(want, a.max - seen));
    auto r = consumer.poll_wait(handler, want, idle);
    report_skipped(r, consumer);
    // at-least-once: what was handed out is on its way before it is committed.
    if (std::fflush(stdout) != 0) write_failed = true;
    if (!write_failed && !at_most_once) consumer.commit();
    if (r.records == 0 && a.idle_timeout_ms >= 0) break;
  }
  consumer.close();
  if (write_failed) fail("writing to stdout failed: " + std::string(std::strerror(errno)));
  return g_interrupted ? 130 : 0;
}

}  // namespace

void add_consume_command(CLI::App& app) {
  auto a = std::make_shared<ConsumeArgs>();
  auto* consume = app.add_subcommand("consume", "Print one record per stdout line");
  consume->add_option("LOG", a->log, "Log directory")->required();
  consume->add_option("--group", a->group, "Consumer group (committed offsets, shared partitions)");
  consume->add_option("--mode", a->mode, "at-most-once, at-least-once or exactly-once (with --out)")
      ->capture_default_str();
  consume->add_option("--out", a->out, "exactly-once: append records to FILE; FILE.offsets keeps where they came from");
  consume->add_option("--isolation", a->isolation,
                      "read_committed: transactional records only once committed (exactly-once implies it)")
      ->capture_default_str();
  consume->add_option("--from", a->from, "earliest, latest or OFFSET (first start of a group)")->capture_default_str();
  consume->add_option("--max", a->max, "Exit after this many records");
  consume->add_option("--idle-timeout-ms", a->idle_timeout_ms, "Exit when no record arrived for this long");
  consume->add_option("--commit-every", a->commit_every, "Records per commit (at most)")->capture_default_str();
  consume->add_flag("--print-offsets", a->print_offsets, "Prefix each line with PARTITION:OFFSET and a tab");
  consume->add_flag("--print-key", a->print_key, "Print the key, the separator, then the value");
  consume->add_option("--key-separator", a->key_separator, "Separator for --print-key (default tab)");
  consume->add_option("--wait", a->wait, "spin, yield, backoff or block")->capture_default_str();
  consume->add_flag("--read-durable", a->read_durable, "Only records that are durable already (durable logs)");
  set_action(consume, [a] { return run_consume(*a); });
}

}  // namespace shmlog::tools
