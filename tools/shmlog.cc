// The shmlog command: create, inspect and delete logs, produce and consume
// from a shell, and a live multi-process demo. Every error is one line on
// stderr naming what is wrong, and a non-zero exit code.
#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "args.h"
#include "copy_cmd.h"
#include "demo.h"
#include "memory_flags.h"
#include "json.h"
#include "bench_cmd.h"
#include "lat.h"
#include "durable_cmd.h"
#include "exec_cmd.h"
#include "exporter_cmd.h"
#include "stat_cmd.h"
#include "topo.h"
#include "shmlog/file_sink.h"
#include "shmlog/log.h"
#include "shmlog/shm/process.h"
#include "shmlog/shm/topology.h"

namespace {

using shmlog::Status;

volatile std::sig_atomic_t g_interrupted = 0;
void on_signal(int) {
  g_interrupted = 1;
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "shmlog: %s\n", what.c_str());
  std::exit(1);
}

template <class T>
T check(shmlog::Result<T> r) {
  if (!r.ok()) fail(r.status().message());
  return std::move(r).value();
}
void check(const Status& s) {
  if (!s.ok()) fail(s.message());
}

// A SIZE option: a byte count or K/M/G suffix.
struct SizeOpt {
  std::string text;
  std::uint64_t parse(const char* name) const {
    auto v = shmlog::parse_size(text);
    if (!v.ok()) fail(std::string("--") + name + ": " + v.status().message());
    return *v;
  }
};

shmlog::WaitStrategy parse_wait(const std::string& text) {
  shmlog::WaitStrategy w;
  if (!shmlog::parse_wait_strategy(text.c_str(), &w)) {
    fail("--wait: unknown strategy '" + text + "' (spin, yield, backoff or block)");
  }
  return w;
}

char parse_separator(const std::string& text, const char* flag) {
  if (text == "\\t") return '\t';
  if (text.size() != 1) fail(std::string(flag) + " must be a single character, got '" + text + "'");
  return text[0];
}

// ---------------------------------------------------------------- create
struct CreateArgs {
  std::string log;
  std::uint32_t partitions = 1;
  SizeOpt segment_size{"4M"};
  std::uint32_t ring_segments = 16;
  std::string policy = "backpressure";
  SizeOpt max_record_size{""};  // empty: 1M, or a quarter segment when segments are smaller than 4M
  std::uint32_t max_producers = 256, max_groups = 64, max_members = 32;
  std::uint32_t claim_timeout_ms = 1000;
  std::string mode = "0600";
  bool checksums = false;
  int numa_node = -1;
  int near_core = -1;
  shmlog::tools::MemoryFlags memory;
  std::uint64_t token_window = 0;
  std::uint64_t token_window_ms = 0;
  std::string durability = "none";
  std::vector<std::string> fsync_interval;  // SIZE (bytes) and/or TIME (500us, 2ms, 1s)
  SizeOpt retention_bytes{"0"};
  std::uint64_t retention_ms = 0;
};

std::string placement_text(const shmlog::LogOptions& o) {
  std::string pages = o.pages == shmlog::Pages::kHuge ? "huge pages"
                      : o.pages == shmlog::Pages::kTransparentHuge ? "transparent huge pages" : "normal pages";
  return pages + ", " + (o.numa_node >= 0 ? "bound to NUMA node " + std::to_string(o.numa_node)
                                          : "NUMA placement left to the kernel's policy");
}

int run_create(const CreateArgs& a) {
  shmlog::LogOptions o;
  o.partitions = a.partitions;
  o.segment_size = a.segment_size.parse("segment-size");
  o.ring_segments = a.ring_segments;
  if (a.policy == "overwrite") {
    o.policy = shmlog::Policy::kOverwrite;
  } else if (a.policy == "backpressure") {
    o.policy = shmlog::Policy::kBackpressure;
  } else {
    fail("--policy: unknown policy '" + a.policy + "' (overwrite or backpressure)");
  }
  std::uint64_t max_record = a.max_record_size.text.empty() ? std::min<std::uint64_t>(1u << 20, o.segment_size / 4)
                                                            : a.max_record_size.parse("max-record-size");
  if (max_record > UINT32_MAX) fail("--max-record-size: " + a.max_record_size.text + " is too large");
  o.max_record_size = static_cast<std::uint32_t>(max_record);
  o.max_producers = a.max_producers;
  o.max_groups = a.max_groups;
  o.max_members = a.max_members;
  o.claim_timeout = std::chrono::milliseconds(a.claim_timeout_ms);
  char* end = nullptr;
  unsigned long mode = std::strtoul(a.mode.c_str(), &end, 8);
  if (end == a.mode.c_str() || *end != '\0') fail("--mode: '" + a.mode + "' is not an octal mode");
  o.mode = static_cast<std::uint32_t>(mode);
  o.checksums = a.checksums;
  o.numa_node = a.numa_node;
  if (a.near_core >= 0) {
    auto node = shmlog::shm::numa_node_of_cpu(static_cast<unsigned>(a.near_core));
    if (!node.ok()) fail("--near-core: " + node.status().message());
    o.numa_node = *node;
  }
  o.pages = a.memory.pages();
  o.memory_dir = a.memory.dir;
  o.token_window = a.token_window;
  o.token_window_time = std::chrono::milliseconds(a.token_window_ms);
  o.durability = check(shmlog::parse_durability(a.durability));
  for (const auto& interval : a.fsync_interval) {
    auto parsed = shmlog::tools::parse_micros(interval);
    if (!parsed.ok()) fail("--fsync-interval: " + parsed.status().message());
    if (const std::optional<std::uint64_t> us = *parsed) {
      o.fsync_interval = std::chrono::microseconds(*us);
    } else {
      o.fsync_interval_bytes = SizeOpt{interval}.parse("fsync-interval");
    }
  }
  if (!a.fsync_interval.empty() && o.durability != shmlog::Durability::kFsync) {
    fail("--fsync-interval needs --durability fsync");
  }
  o.retention_bytes = a.retention_bytes.parse("retention-bytes");
  o.retention_time = std::chrono::milliseconds(a.retention_ms);
  if ((o.retention_bytes != 0 || a.retention_ms != 0) && o.durability == shmlog::Durability::kNone) {
    fail("--retention-bytes/--retention-ms need --durability flush or fsync (they apply to segment files)");
  }
  auto log = check(shmlog::Log::create(a.log, o));
  auto info = log.info();
  std::printf("created %s: %u partition(s), ring %u x %" PRIu64 " bytes, %s, shared memory %s (%s)\n",
              info.path.c_str(), o.partitions, o.ring_segments, o.segment_size, a.policy.c_str(),
              info.memory_path.c_str(), placement_text(o).c_str());
  if (o.durability != shmlog::Durability::kNone) {
    std::printf("durability %s: segment files in %s/partition-*, written by the keeper of an attached process "
                "or `shmlog keeper`\n",
                shmlog::durability_name(o.durability), info.path.c_str());
  }
  return 0;
}

// ---------------------------------------------------------------- produce
struct ProduceArgs {
  std::string log;
  int partition = -1;
  std::string key_separator;
  std::uint32_t batch = 1;
  std::uint32_t timeout_ms = 10000;
  bool exclusive = false;
  std::string wait = "backoff";
  std::string producer_id;
  std::string transactional_id;
  std::uint32_t transaction_size = 100;
  std::string token_separator;
  std::string acks = "memory";
};

int run_produce(const ProduceArgs& a) {
  auto log = check(shmlog::Log::open(a.log));
  if (a.partition >= 0 && static_cast<std::uint32_t>(a.partition) >= log.options().partitions) {
    fail("--partition " + std::to_string(a.partition) + " out of range: " + a.log + " has " +
         std::to_string(log.options().partitions) + " partition(s)");
  }
  if (a.batch < 1) fail("--batch must be at least 1");
  shmlog::ProducerOptions po;
  po.partition = a.partition >= 0 ? static_cast<std::uint32_t>(a.partition) : 0;
  po.exclusive = a.exclusive;
  po.backpressure_timeout = std::chrono::milliseconds(a.timeout_ms);
  po.wait = parse_wait(a.wait);
  po.name = "shmlog produce";
  const bool transactional = !a.transactional_id.empty();
  po.producer_id = transactional ? a.transactional_id : a.producer_id;
  po.transactional = transactional;
  if (transactional && a.transaction_size < 1) fail("--transaction-size must be at least 1");
  const bool acks_durable = a.acks == "durable";
  if (!acks_durable && a.acks != "memory") fail("--acks: '" + a.acks + "' is not memory or durable");
  if (acks_durable && log.options().durability == shmlog::Durability::kNone) {
    fail("--acks durable: " + a.log + " is not durable (create it with --durability flush or fsync)");
  }
  auto producer = check(log.producer(po));
  // --acks durable: each batch is appended, then waited for as a whole
  // (one sync covers it), per partition it touched.
  std::vector<std::uint64_t> batch_end(log.options().partitions, 0);
  auto note_end = [&](const shmlog::AppendResult& r) {
    if (r) batch_end[r.partition] = std::max(batch_end[r.partition], r.offset + 1);
  };
  // Idempotent: line n (from 0) carries sequence n, so a re-run of the same
  // input after a crash skips what already reached the log (with
  // transactions: what a committed transaction wrote).
  const bool idempotent = !po.producer_id.empty();
  if (idempotent && producer.last_sequence()) {
    std::fprintf(stderr, "shmlog produce: producer id '%s' resumes after line %" PRIu64 " (lines up to it are already in %s)\n",
                 po.producer_id.c_str(), *producer.last_sequence(), a.log.c_str());
  }
  const std::uint32_t batch = transactional ? a.transaction_size : a.batch;
  const bool tokens = !a.token_separator.empty();
  const char token_separator = tokens ? parse_separator(a.token_separator, "--token-separator") : '\0';
  if (tokens && log.options().token_window == 0) {
    fail("--token-separator: " + a.log + " keeps no tokens (create it with --token-window N)");
  }
  const bool keyed = !a.key_separator.empty() || tokens;
  const char separator = !a.key_separator.empty() ? parse_separator(a.key_separator, "--key-separator") : '\0';
  std::ios::sync_with_stdio(false);
  std::vector<std::string> lines;
  std::vector<shmlog::Bytes> values;
  std::uint64_t line_no = 0;
  auto report = [&](const shmlog::AppendResult& r, std::uint64_t line_number, std::size_t size) {
    std::string why = shmlog::errc_name(r.error);
    if (r.error == shmlog::Errc::kTooLarge) {
      why += " (" + std::to_string(size) + " bytes, max " + std::to_string(log.options().max_record_size) + ")";
    } else if (r.error == shmlog::Errc::kBackpressureTimeout) {
      why += " (no consumer group made room within " + std::to_string(a.timeout_ms) + " ms)";
    }
    fail("cannot append line " + std::to_string(line_number) + " to " + a.log + ": " + why);
  };
  std::uint64_t token_duplicates = 0;
  auto flush_batch = [&] {
    if (lines.empty()) return;
    const std::uint64_t first = line_no - lines.size() + 1;
    if (idempotent) producer.set_next_sequence(first - 1);
    if (transactional) check(producer.begin_transaction());
    if (!keyed) {
      values.clear();
      for (const auto& l : lines) values.push_back(shmlog::as_bytes(l));
      shmlog::AppendResult last;
      std::size_t n = producer.append_batch(values, &last);
      if (n < lines.size()) report(last, first + n, lines[n].size());
      note_end(last);
    } else {
      for (std::size_t i = 0; i < lines.size(); ++i) {
        std::string_view line = lines[i];
        std::string_view token;
        if (tokens) {  // TOKEN<sep>rest: the token is not stored, only remembered
          auto t = line.find(token_separator);
          if (t == std::string_view::npos) fail("line " + std::to_string(first + i) + " has no token separator");
          token = line.substr(0, t);
          line = line.substr(t + 1);
        }
        auto cut = separator == '\0' ? std::string_view::npos : line.find(separator);
        std::string_view key = cut == std::string_view::npos ? std::string_view() : line.substr(0, cut);
        std::string_view value = cut == std::string_view::npos ? line : line.substr(cut + 1);
        const std::uint32_t part = a.partition >= 0 ? po.partition : key.empty() ? 0 : producer.partition_for(shmlog::as_bytes(key));
        auto r = tokens ? producer.append_unique_to(part, shmlog::as_bytes(token), shmlog::as_bytes(key), shmlog::as_bytes(value))
                        : producer.append_to(part, shmlog::as_bytes(key), shmlog::as_bytes(value));
        if (r.error == shmlog::Errc::kDuplicate && tokens) ++token_duplicates;
        if (!r && r.error != shmlog::Errc::kDuplicate) report(r, first + i, line.size());
        note_end(r);
      }
    }
    if (transactional) check(producer.commit_transaction());
    for (std::uint32_t p = 0; acks_durable && p < batch_end.size(); ++p) {
      if (batch_end[p] == 0) continue;
      const auto e = producer.wait_durable(p, batch_end[p], std::chrono::milliseconds(a.timeout_ms));
      if (e != shmlog::Errc::kOk) {
        fail("lines up to " + std::to_string(line_no) + " are appended to " + a.log + " but not durable: " +
             shmlog::errc_name(e));
      }
      batch_end[p] = 0;
    }
    lines.clear();
  };
  std::string line;
  while (!g_interrupted && std::getline(std::cin, line)) {
    ++line_no;
    lines.push_back(line);
    if (lines.size() >= batch) flush_batch();
  }
  flush_batch();
  if (token_duplicates > 0) {
    std::fprintf(stderr, "shmlog produce: %" PRIu64 " line(s) skipped: their token was already in %s\n",
                 token_duplicates, a.log.c_str());
  }
  if (g_interrupted) return 130;
  return 0;
}

// ---------------------------------------------------------------- consume
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

shmlog::Isolation parse_isolation(const std::string& text) {
  if (text == "read_committed") return shmlog::Isolation::kReadCommitted;
  if (text != "read_uncommitted") fail("--isolation: '" + text + "' is not read_committed or read_uncommitted");
  return shmlog::Isolation::kReadUncommitted;
}

// One output line for a record, as the flags say.
void format_line(const ConsumeArgs& a, char separator, const shmlog::Record& r, std::string& line) {
  line.clear();
  if (a.print_offsets) line += std::to_string(r.partition) + ":" + std::to_string(r.offset) + "\t";
  if (a.print_key) {
    line += shmlog::as_string(r.key);
    line += separator;
  }
  line += shmlog::as_string(r.value);
  line += '\n';
}

// --mode exactly-once --out FILE: the records and the offsets they came
// from advance together (FileSink), so kill -9 at any point and a restart
// with the same arguments leave every record in FILE once, in order.
// What a poll stepped over, on stderr: records lost to a lap, and damage
// (the offsets lost, the file and why).
void report_skipped(const shmlog::PollResult& r, shmlog::Consumer& consumer) {
  if (r.lost_bytes > 0) {
    std::fprintf(stderr, "shmlog: consumer was lapped: %" PRIu64 " bytes of records lost\n", r.lost_bytes);
  }
  for (const auto& d : consumer.take_damage()) {
    std::fprintf(stderr, "shmlog: partition %" PRIu32 ": offsets %" PRIu64 "..%" PRIu64 " skipped: %s\n", d.partition,
                 d.from, d.to, d.what.c_str());
  }
}

int run_consume_exactly_once(const ConsumeArgs& a, const shmlog::Log& log, shmlog::ConsumerOptions co, char separator) {
  co.mode = shmlog::DeliveryMode::kManual;  // the group offset follows the file's checkpoint
  co.drop_duplicates = true;
  co.isolation = shmlog::Isolation::kReadCommitted;
  auto sink = check(shmlog::FileSink::open(a.out, log));
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
      shmlog::Status s = consumer.seek(p, *at);
      if (!s.ok()) fail("cannot resume partition " + std::to_string(p) + " where " + a.out + " left off: " + s.message());
    } else {
      sink.advance(p, consumer.position(p).value_or(0));
    }
  }
  std::uint64_t seen = 0;
  std::string line;
  auto handler = [&](const shmlog::Record& r) {
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
  auto log = check(shmlog::Log::open(a.log));
  shmlog::ConsumerOptions co;
  co.group = a.group;
  co.wait = parse_wait(a.wait);
  co.isolation = parse_isolation(a.isolation);
  co.read_durable = a.read_durable;
  const bool at_most_once = a.mode == "at-most-once";
  const bool exactly_once = a.mode == "exactly-once";
  if (a.mode == "at-least-once") {
    co.mode = shmlog::DeliveryMode::kManual;  // we commit after flushing stdout
  } else if (at_most_once) {
    co.mode = shmlog::DeliveryMode::kAtMostOnce;
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
  auto from = shmlog::tools::parse_start(a.from);
  if (!from.ok()) fail("--from: " + from.status().message());
  co.from = *from;
  const char separator = parse_separator(a.key_separator, "--key-separator");
  if (exactly_once) return run_consume_exactly_once(a, log, co, separator);
  auto consumer = check(log.consumer(co));
  std::uint64_t seen = 0;
  bool write_failed = false;
  std::string line;
  auto handler = [&](const shmlog::Record& r) {
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

// ---------------------------------------------------------------- info, groups
int run_info(const std::string& path, bool json) {
  auto log = check(shmlog::Log::attach(path));
  auto info = log.info();
  const auto where = log.memory_report();
  const auto& o = info.options;
  const char* policy = o.policy == shmlog::Policy::kOverwrite ? "overwrite" : "backpressure";
  if (json) {
    shmlog::tools::Json j;
    j.begin_object();
    j.key("path").value(info.path).key("memory_path").value(info.memory_path);
    j.key("pages").value(shmlog::shm::page_kind_name(o.pages)).key("numa_node");
    if (o.numa_node >= 0) {
      j.value(o.numa_node);
    } else {
      j.value("none");
    }
    j.key("kernel_page_bytes").value(where.kernel_page_bytes).key("huge_bytes").value(where.huge_bytes);
    if (where.nodes_error.empty()) {
      j.key("pages_on_node").begin_array();
      for (auto n : where.pages_on_node) j.value(n);
      j.end_array().key("pages_not_present").value(where.pages_not_present);
    } else {
      j.key("pages_on_node_error").value(where.nodes_error);
    }
    j.key("format_version").value(std::to_string(info.version_major) + "." + std::to_string(info.version_minor));
    j.key("partitions").value(o.partitions).key("segment_size").value(o.segment_size);
    j.key("ring_segments").value(o.ring_segments).key("policy").value(policy);
    j.key("max_record_size").value(o.max_record_size).key("claim_timeout_ms").value(o.claim_timeout.count());
    j.key("checksums").value(o.checksums).key("shm_bytes").value(info.shm_bytes);
    j.key("durability").value(shmlog::durability_name(o.durability));
    if (o.durability != shmlog::Durability::kNone) {
      j.key("keeper_pid").value(info.keeper_pid).key("keeper_alive").value(info.keeper_alive);
      j.key("keeper_takeovers").value(info.keeper_takeovers);
    }
    j.key("partition_offsets").begin_array();
    for (const auto& p : info.partitions) {
      j.begin_object().key("partition").value(p.index).key("earliest_offset").value(p.earliest_offset);
      j.key("end_offset").value(p.end_offset).key("writers").value(p.writers).key("exclusive").value(p.exclusive);
      if (o.durability != shmlog::Durability::kNone) {
        j.key("disk_start").value(p.disk_start).key("written_offset").value(p.written_offset);
        j.key("durable_offset").value(p.durable_offset).key("disk_bytes").value(p.disk_bytes);
        j.key("disk_segments").value(p.disk_segments).key("fsyncs").value(p.fsyncs);
        j.key("disk_full").value(p.disk_full).key("io_errors").value(p.io_errors).key("flush_errno").value(p.flush_errno);
      }
      j.end_object();
    }
    j.end_array().key("producers").begin_array();
    for (const auto& p : info.producers) {
      j.begin_object().key("id").value(p.id).key("name").value(p.name).key("pid").value(p.pid);
      j.key("alive").value(p.alive).key("exclusive").value(p.exclusive).key("appends").value(p.appends);
      j.key("bytes").value(p.bytes).key("idempotent").value(p.idempotent).key("epoch").value(p.epoch);
      if (p.last_sequence) j.key("last_sequence").value(*p.last_sequence);
      if (!p.transaction.empty()) j.key("transaction").value(p.transaction).key("transaction_epoch").value(p.transaction_epoch);
      j.end_object();
    }
    j.end_array().key("groups").begin_array();
    for (const auto& g : info.groups) j.value(g.name);
    j.end_array().end_object();
    std::printf("%s\n", j.str().c_str());
    return 0;
  }
  std::printf("log            %s\n", info.path.c_str());
  std::printf("shared memory  %s (%" PRIu64 " bytes)\n", info.memory_path.c_str(), info.shm_bytes);
  std::printf("placement      %s\n", placement_text(o).c_str());
  std::printf("pages          kernel page %" PRIu64 " KiB, %" PRIu64 " KiB mapped by huge pages\n",
              where.kernel_page_bytes >> 10, where.huge_bytes >> 10);
  if (!where.nodes_error.empty()) {
    std::printf("pages are on   unknown: %s\n", where.nodes_error.c_str());
  } else {
    std::uint64_t total = where.pages_not_present;
    for (auto n : where.pages_on_node) total += n;
    std::string on;
    for (std::size_t n = 0; n < where.pages_on_node.size(); ++n) {
      if (where.pages_on_node[n] == 0) continue;
      char part[96];
      std::snprintf(part, sizeof part, "%snode %zu: %" PRIu64 " pages (%.1f%%)", on.empty() ? "" : ", ", n,
                    where.pages_on_node[n], 100.0 * static_cast<double>(where.pages_on_node[n]) / static_cast<double>(total));
      on += part;
    }
    if (where.pages_not_present != 0) on += (on.empty() ? "" : ", ") + std::to_string(where.pages_not_present) + " not present";
    std::printf("pages are on   %s (as the kernel reports them)\n", on.c_str());
  }
  std::printf("format         %u.%u\n", info.version_major, info.version_minor);
  std::printf("partitions     %u\n", o.partitions);
  std::printf("ring           %u segments x %" PRIu64 " bytes\n", o.ring_segments, o.segment_size);
  std::printf("policy         %s\n", policy);
  std::printf("max record     %u bytes\n", o.max_record_size);
  std::printf("claim timeout  %lld ms\n", static_cast<long long>(o.claim_timeout.count()));
  std::printf("checksums      %s\n", o.checksums ? "on" : "off");
  const bool durable = o.durability != shmlog::Durability::kNone;
  if (durable) {
    std::string policy_text = shmlog::durability_name(o.durability);
    if (o.fsync_interval_bytes != 0) policy_text += ", sync every " + std::to_string(o.fsync_interval_bytes) + " bytes";
    if (o.fsync_interval.count() != 0) policy_text += ", sync every " + std::to_string(o.fsync_interval.count()) + " us";
    if (o.retention_bytes != 0) policy_text += ", keep " + std::to_string(o.retention_bytes) + " bytes";
    if (o.retention_time.count() != 0) policy_text += ", keep " + std::to_string(o.retention_time.count()) + " ms";
    std::printf("durability     %s\n", policy_text.c_str());
    const double beat = info.keeper_heartbeat_ns == 0 ? -1.0
                        : static_cast<double>(static_cast<std::int64_t>(
                              static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  std::chrono::system_clock::now().time_since_epoch()).count()) -
                              info.keeper_heartbeat_ns)) / 1e6;
    std::printf("keeper         %s (last round %.0f ms ago, %" PRIu64 " takeover(s))\n",
                info.keeper_pid == 0 ? "none" : (std::string("pid ") + std::to_string(info.keeper_pid) +
                                                 (info.keeper_alive ? "" : ", dead")).c_str(),
                beat, info.keeper_takeovers);
  }
  std::printf("\n%-10s %16s %16s %8s", "PARTITION", "EARLIEST", "END", "WRITERS");
  if (durable) std::printf(" %16s %16s %16s %12s %8s %8s", "DISK START", "WRITTEN", "DURABLE", "DISK BYTES", "FSYNCS", "FULL");
  std::printf("\n");
  for (const auto& p : info.partitions) {
    std::printf("%-10u %16" PRIu64 " %16" PRIu64 " %8s", p.index, p.earliest_offset, p.end_offset,
                p.exclusive ? "excl" : std::to_string(p.writers).c_str());
    if (durable) {
      std::printf(" %16" PRIu64 " %16" PRIu64 " %16" PRIu64 " %12" PRIu64 " %8" PRIu64 " %8" PRIu64, p.disk_start,
                  p.written_offset, p.durable_offset, p.disk_bytes, p.fsyncs, p.disk_full);
      if (p.flush_errno != 0) std::printf("  last error: %s", std::strerror(p.flush_errno));
    }
    std::printf("\n");
  }
  if (!info.producers.empty()) {
    std::printf("\n%-4s %-20s %8s %6s %12s %14s %6s %12s  %s\n", "ID", "NAME", "PID", "ALIVE", "APPENDS", "BYTES",
                "EPOCH", "LAST SEQ", "TRANSACTION");
    for (const auto& p : info.producers) {
      // Named (idempotent) producers show their epoch, last sequence and open transaction.
      const std::string txn = p.transaction.empty() ? "-" : p.transaction + " (epoch " + std::to_string(p.transaction_epoch) + ")";
      std::printf("%-4u %-20s %8u %6s %12" PRIu64 " %14" PRIu64 " %6s %12s  %s\n", p.id, p.name.c_str(), p.pid,
                  p.alive ? "yes" : "no", p.appends, p.bytes, p.idempotent ? std::to_string(p.epoch).c_str() : "-",
                  p.last_sequence ? std::to_string(*p.last_sequence).c_str() : "-", txn.c_str());
    }
  }
  std::printf("\ngroups         %zu (see shmlog groups)\n", info.groups.size());
  return 0;
}

int run_groups(const std::string& path, bool json) {
  auto log = check(shmlog::Log::attach(path));
  auto info = log.info();
  if (json) {
    shmlog::tools::Json j;
    j.begin_array();
    for (const auto& g : info.groups) {
      j.begin_object().key("group").value(g.name).key("members").value(g.members);
      j.key("partitions").begin_array();
      for (const auto& p : g.partitions) {
        j.begin_object().key("partition").value(p.partition).key("committed_offset").value(p.committed_offset);
        j.key("end_offset").value(p.end_offset).key("lag_bytes").value(p.lag_bytes);
        j.key("lag_records").value(p.lag_records).key("owner").value(p.owner).end_object();
      }
      j.end_array().end_object();
    }
    j.end_array();
    std::printf("%s\n", j.str().c_str());
    return 0;
  }
  std::printf("%-20s %8s %9s %16s %16s %12s %12s %6s\n", "GROUP", "MEMBERS", "PARTITION", "COMMITTED", "END",
              "LAG(REC)", "LAG(BYTES)", "OWNER");
  for (const auto& g : info.groups) {
    for (const auto& p : g.partitions) {
      std::printf("%-20s %8u %9u %16" PRIu64 " %16" PRIu64 " %12" PRIu64 " %12" PRIu64 " %6s\n", g.name.c_str(),
                  g.members, p.partition, p.committed_offset, p.end_offset, p.lag_records, p.lag_bytes,
                  p.owner < 0 ? "-" : std::to_string(p.owner).c_str());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shmlog: a shared-memory log for low-latency IPC on one host"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "shmlog 0.1.0");

  CreateArgs ca;
  auto* create = app.add_subcommand("create", "Create a log (a directory and its shared memory)");
  create->add_option("LOG", ca.log, "Log directory (absent or empty)")->required();
  create->add_option("--partitions", ca.partitions, "Number of partitions")->capture_default_str();
  create->add_option("--segment-size", ca.segment_size.text, "Segment size: power of two, 64K..1G")->capture_default_str();
  create->add_option("--ring-segments", ca.ring_segments, "Segments in each partition's ring")->capture_default_str();
  create->add_option("--policy", ca.policy, "overwrite or backpressure")->capture_default_str();
  create->add_option("--max-record-size", ca.max_record_size.text,
                     "Largest key+value (default 1M, or a quarter of a smaller segment)");
  create->add_option("--max-producers", ca.max_producers, "Producers attached at once")->capture_default_str();
  create->add_option("--max-groups", ca.max_groups, "Consumer groups")->capture_default_str();
  create->add_option("--max-members", ca.max_members, "Consumers per group")->capture_default_str();
  create->add_option("--claim-timeout-ms", ca.claim_timeout_ms, "Abandon a claim uncommitted this long")->capture_default_str();
  create->add_option("--mode", ca.mode, "Permissions (octal), e.g. 0660 to share with the group")->capture_default_str();
  create->add_flag("--checksums", ca.checksums, "Producers store CRC32C; consumers verify it");
  auto* numa = create->add_option("--numa-node", ca.numa_node, "Bind the log's memory to this NUMA node");
  create->add_option("--near-core", ca.near_core, "Bind the log's memory to the NUMA node of this CPU")->excludes(numa);
  ca.memory.add_to(create);
  create->add_option("--token-window", ca.token_window, "Uniqueness tokens remembered (0: none; 128 bytes each)")
      ->capture_default_str();
  create->add_option("--token-window-ms", ca.token_window_ms, "Also forget tokens older than this (0: by count only)")
      ->capture_default_str();
  create->add_option("--durability", ca.durability,
                     "none (shared memory only), flush (segment files) or fsync (and fdatasync)")
      ->capture_default_str();
  create->add_option("--fsync-interval", ca.fsync_interval,
                     "fsync: sync after SIZE unsynced bytes (64K, 1M) and/or TIME (500us, 2ms); default: every flush");
  create->add_option("--retention-bytes", ca.retention_bytes.text,
                     "Delete the oldest segment files while a partition's take more (0: keep all)")
      ->capture_default_str();
  create->add_option("--retention-ms", ca.retention_ms, "Delete segment files last written longer ago (0: keep all)")
      ->capture_default_str();

  ProduceArgs pa;
  auto* produce = app.add_subcommand("produce", "Append one record per stdin line");
  produce->add_option("LOG", pa.log, "Log directory")->required();
  produce->add_option("--partition", pa.partition, "Partition (default: 0, or by key hash)");
  produce->add_option("--key-separator", pa.key_separator, "Split each line into key, value at this character");
  produce->add_option("--batch", pa.batch, "Lines read per batch of appends")->capture_default_str();
  produce->add_option("--timeout-ms", pa.timeout_ms, "Wait this long for ring space")->capture_default_str();
  produce->add_flag("--exclusive", pa.exclusive, "Be the only writer (faster claims)");
  produce->add_option("--wait", pa.wait, "spin, yield, backoff or block")->capture_default_str();
  produce->add_option("--producer-id", pa.producer_id,
                      "Idempotent: line n carries sequence n; a re-run skips lines already in the log and "
                      "fences an older instance")
      ->excludes("--exclusive");
  produce->add_option("--token-separator", pa.token_separator,
                      "Each line is TOKEN<C>REST: REST is appended unless a record with TOKEN is in the window");
  produce->add_option("--transactional-id", pa.transactional_id,
                      "Transactional: every --transaction-size lines commit atomically (line n carries sequence n)")
      ->excludes("--exclusive")
      ->excludes("--producer-id")
      ->excludes("--token-separator");
  produce->add_option("--transaction-size", pa.transaction_size, "Lines per transaction (with --transactional-id)")
      ->needs("--transactional-id")
      ->capture_default_str();
  produce->add_option("--acks", pa.acks, "memory, or durable: each batch waits until it is durable (group commit)")
      ->capture_default_str();

  ConsumeArgs ka;
  auto* consume = app.add_subcommand("consume", "Print one record per stdout line");
  consume->add_option("LOG", ka.log, "Log directory")->required();
  consume->add_option("--group", ka.group, "Consumer group (committed offsets, shared partitions)");
  consume->add_option("--mode", ka.mode, "at-most-once, at-least-once or exactly-once (with --out)")
      ->capture_default_str();
  consume->add_option("--out", ka.out, "exactly-once: append records to FILE; FILE.offsets keeps where they came from");
  consume->add_option("--isolation", ka.isolation,
                      "read_committed: transactional records only once committed (exactly-once implies it)")
      ->capture_default_str();
  consume->add_option("--from", ka.from, "earliest, latest or OFFSET (first start of a group)")->capture_default_str();
  consume->add_option("--max", ka.max, "Exit after this many records");
  consume->add_option("--idle-timeout-ms", ka.idle_timeout_ms, "Exit when no record arrived for this long");
  consume->add_option("--commit-every", ka.commit_every, "Records per commit (at most)")->capture_default_str();
  consume->add_flag("--print-offsets", ka.print_offsets, "Prefix each line with PARTITION:OFFSET and a tab");
  consume->add_flag("--print-key", ka.print_key, "Print the key, the separator, then the value");
  consume->add_option("--key-separator", ka.key_separator, "Separator for --print-key (default tab)");
  consume->add_option("--wait", ka.wait, "spin, yield, backoff or block")->capture_default_str();
  consume->add_flag("--read-durable", ka.read_durable, "Only records that are durable already (durable logs)");

  std::string info_log;
  bool info_json = false;
  auto* info = app.add_subcommand("info", "Show a log's configuration, partitions and producers");
  info->add_option("LOG", info_log, "Log directory")->required();
  info->add_flag("--json", info_json, "Print JSON");

  std::string groups_log;
  bool groups_json = false;
  auto* groups = app.add_subcommand("groups", "Show committed offsets and lag per group and partition");
  groups->add_option("LOG", groups_log, "Log directory")->required();
  groups->add_flag("--json", groups_json, "Print JSON");

  std::string delete_log;
  auto* del = app.add_subcommand("delete", "Delete a log: its shared memory, files and directory");
  del->add_option("LOG", delete_log, "Log directory")->required();

  shmlog::tools::DemoArgs da;
  auto* demo = app.add_subcommand("demo", "Live demo: producer and consumer processes, throughput and latency");
  demo->add_option("--producers", da.producers, "Producer processes (default: half the cores, 1..4)");
  demo->add_option("--consumers", da.consumers, "Consumer processes in one group (default: as producers)");
  demo->add_option("--partitions", da.partitions, "Partitions (default: one per consumer)");
  demo->add_option("--size", da.size, "Record value size in bytes")->capture_default_str();
  demo->add_option("--seconds", da.seconds, "Duration of each phase")->capture_default_str();
  demo->add_option("--rate", da.rate, "Records/s (all producers) for the latency phase")->capture_default_str();
  demo->add_option("--dir", da.dir, "Where to create the demo log")->capture_default_str();
  demo->add_option("--wait", da.wait, "Consumer wait: spin, yield, backoff or block")->capture_default_str();

  shmlog::tools::LatArgs la;
  auto* lat = app.add_subcommand("lat", "Latency profiler: percentiles between two pinned processes, with baselines");
  lat->add_option("--size", la.size, "Record value size in bytes (>= 8)")->capture_default_str();
  auto* count_opt = lat->add_option("--count", la.count, "Measured messages (default: from --duration)");
  lat->add_option("--duration", la.duration_s, "Seconds of shmlog measurement when --count is not given")
      ->capture_default_str()->excludes(count_opt);
  lat->add_option("--rate", la.rate, "one-way: messages per second (latency from the intended send time)")
      ->capture_default_str();
  lat->add_option("--mode", la.mode, "ping-pong or one-way")->capture_default_str();
  lat->add_option("--producer-core", la.producer_core, "Core of the producer (ping) process")->capture_default_str();
  lat->add_option("--consumer-core", la.consumer_core, "Core of the consumer (echo) process")->capture_default_str();
  lat->add_option("--wait", la.wait_name, "Consumer wait: spin, yield, backoff or block")->capture_default_str();
  lat->add_flag("--json", la.json, "Print JSON instead of the table");
  lat->add_option("--hdr-out", la.hdr_out, "Write shmlog's one-way histogram in HdrHistogram's percentile format");
  lat->add_option("--plot", la.plot, "Write a PNG percentile plot of every row (needs gnuplot)");
  bool no_baselines = false;
  lat->add_flag("--no-baselines", no_baselines, "Measure shmlog only");
  lat->add_option("--baseline-seconds", la.baseline_seconds, "Time budget of each baseline")->capture_default_str();
  lat->add_option("--dir", la.dir, "Where the temporary logs go")->capture_default_str();
  la.memory.add_to(lat);

  shmlog::tools::BenchArgs ba;
  auto* bench = app.add_subcommand("bench", "Throughput matrix: producer and consumer processes, records/s and GB/s");
  bench->add_option("--sizes", ba.sizes, "Record sizes (default 0 32 256 1K 4K 64K)");
  bench->add_option("--producers", ba.producers, "N for the N -> M rows (default: half the cores, at least 2)");
  bench->add_option("--consumers", ba.consumers, "M for the N -> M rows (default: as producers)");
  bench->add_option("--seconds", ba.seconds, "Duration of each run")->capture_default_str();
  bench->add_flag("--json", ba.json, "Print JSON instead of the table");
  bench->add_option("--dir", ba.dir, "Where the temporary logs go")->capture_default_str();
  ba.memory.add_to(bench);

  bool topo_json = false;
  std::string topo_synthetic;
  auto* topo = app.add_subcommand("topo", "CPU topology, latency-relevant Linux settings, recommended cores");
  topo->add_flag("--json", topo_json, "Print JSON");
  topo->add_option("--synthetic", topo_synthetic, "Describe a synthetic hwloc topology instead, e.g. 'pack:2 core:4 pu:2'");

  shmlog::tools::CopyArgs ya;
  auto* copy = app.add_subcommand("copy", "Copy records from one log into another exactly once (transactions)");
  copy->add_option("IN", ya.in, "Log to read")->required();
  copy->add_option("OUT", ya.out, "Log to write")->required();
  copy->add_option("--group", ya.group, "Consumer group in IN (needs the group to itself)")->required();
  copy->add_option("--transactional-id", ya.transactional_id, "Producer id in OUT (same on every restart)")->required();
  copy->add_option("--transaction-size", ya.transaction_size, "Records per transaction")->capture_default_str();
  copy->add_option("--idle-timeout-ms", ya.idle_timeout_ms, "Exit when no record arrived for this long");
  copy->add_option("--prefix", ya.prefix, "Prepend this to each value (the processing step)");

  shmlog::tools::StatArgs sa;
  auto* stat = app.add_subcommand("stat", "Live counters of a log: rates, lag, stalls (attaches read-only)");
  stat->add_option("LOG", sa.log, "Log directory")->required();
  stat->add_option("--interval", sa.interval_ms, "Milliseconds between updates")->capture_default_str();
  stat->add_option("--count", sa.count, "Stop after this many updates");
  stat->add_flag("--json", sa.json, "One JSON object per update");

  shmlog::tools::ExporterArgs ea;
  auto* exporter = app.add_subcommand("exporter", "Serve logs' counters at /metrics for Prometheus");
  exporter->add_option("LOG", ea.logs, "Log directories")->required();
  exporter->add_option("--listen", ea.listen, "ADDR:PORT to serve on")->capture_default_str();

  std::string keeper_log;
  int keeper_core = -1;
  auto* keeper = app.add_subcommand("keeper", "Run a durable log's keeper (flusher, retention, checkpoints) here");
  keeper->add_option("LOG", keeper_log, "Log directory")->required();
  keeper->add_option("--core", keeper_core, "Pin to this CPU (a housekeeping core)");

  std::string dump_file;
  bool dump_values = false;
  auto* dump = app.add_subcommand("dump", "Decode a segment file: records, CRC status, where it is torn");
  dump->add_option("FILE", dump_file, "A segment file (LOG/partition-N/OFFSET.seg)")->required();
  dump->add_flag("--values", dump_values, "Print the start of each value");

  std::string verify_log;
  auto* verify = app.add_subcommand("verify", "Check every segment file of a durable log");
  verify->add_option("LOG", verify_log, "Log directory")->required();

  std::string repair_log;
  auto* repair = app.add_subcommand("repair", "Cut torn tails of a stopped durable log's segment files");
  repair->add_option("LOG", repair_log, "Log directory")->required();

  shmlog::tools::ExecArgs xa;
  auto* exec = app.add_subcommand("exec", "Run a program pinned to a core, memory on its NUMA node");
  exec->add_option("--core", xa.core, "The core (CPU number) to pin to")->required();
  exec->add_option("--numa", xa.numa, "Memory: local (the core's node), none, or a node number")->capture_default_str();
  exec->add_option("--sched", xa.sched, "Real-time scheduling: fifo:PRIO (1..99)");
  exec->add_flag("--force", xa.force, "Pin even beside another process pinned by shmlog exec");
  exec->add_option("command", xa.command, "-- CMD ARGS...")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string sub;
    for (auto* s : app.get_subcommands()) sub = " " + s->get_name();
    std::fprintf(stderr, "shmlog%s: %s (see shmlog%s --help)\n", sub.c_str(), e.what(), sub.c_str());
    return 2;
  }
  shmlog::shm::on_interrupt(on_signal);
  if (*create) return run_create(ca);
  if (*produce) return run_produce(pa);
  if (*consume) return run_consume(ka);
  if (*info) return run_info(info_log, info_json);
  if (*groups) return run_groups(groups_log, groups_json);
  if (*del) {
    check(shmlog::Log::remove(delete_log));
    return 0;
  }
  if (*bench) return shmlog::tools::run_bench(ba);
  if (*keeper) return shmlog::tools::run_keeper(keeper_log, keeper_core, &g_interrupted);
  if (*dump) return shmlog::tools::run_dump(dump_file, dump_values);
  if (*verify) return shmlog::tools::run_verify(verify_log);
  if (*repair) return shmlog::tools::run_repair(repair_log);
  if (*topo) return shmlog::tools::run_topo(topo_json, topo_synthetic);
  if (*exec) return shmlog::tools::run_exec(xa);
  if (*stat) return shmlog::tools::run_stat(sa, &g_interrupted);
  if (*copy) return shmlog::tools::run_copy(ya, &g_interrupted);
  if (*exporter) return shmlog::tools::run_exporter(ea, &g_interrupted);
  if (*lat) {
    la.wait = parse_wait(la.wait_name);
    la.baselines = !no_baselines;
    return shmlog::tools::run_lat(la);
  }
  if (*demo) {
    da.wait_strategy = parse_wait(da.wait);
    return shmlog::tools::run_demo(da, &g_interrupted);
  }
  return 1;
}
