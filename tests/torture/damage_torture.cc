// Damage torture: thousands of durable logs, each with one to three of its
// files damaged the ways disks, people and tools damage them (a byte
// flipped, a 4 KiB block zeroed, a file cut short, emptied, removed or
// renamed away, its header flipped, another segment's file copied over it,
// a stray copy under a far-off name, a byte of the checkpoint or meta file
// flipped, the exactly-once sink's journal damaged), then read back with
// the shared memory kept or lost (a host crash: the log comes back from its
// files). An independent checker asks:
//
// - is every record delivered the one written at its offset, in order,
//   none twice (nothing invented)?
// - is every record not delivered inside a range the reader reported as
//   damage, naming the file (never a silent loss)? do only records of
//   damaged segments go missing?
// - does the reader reach the end, and does a recovered log end where the
//   log did (never a silent stop, never an offset given out twice)?
// - does verify (scan_log_files) name every file whose records were lost?
// - is a damaged checkpoint or meta file refused, naming it?
//
//   shmlog_damage_torture [--trials N] [--seed S] [--dir D]
//
// Exits 1 naming the trial and seed of the first violation, leaving its log.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "crash_util.h"
#include "trials.h"
#include "shmlog/file_sink.h"
#include "shmlog/io/segment_file.h"
#include "shmlog/log.h"
#include "shmlog/segments.h"

namespace shmlog {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr std::uint64_t kSegment = 64 * 1024;

std::string value_of(std::uint64_t trial, int i) {
  return "d" + std::to_string(trial) + "-" + std::to_string(i) + "-" +
         std::string(static_cast<std::size_t>((i * 29 + trial) % 500), static_cast<char>('a' + i % 26));
}

// The record index a value names, or -1.
int index_of(std::string_view v) {
  const auto dash = v.find('-');
  if (dash == std::string_view::npos) return -1;
  return std::atoi(std::string(v.substr(dash + 1, 12)).c_str());
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

void write_at(const std::string& path, std::uint64_t at, const std::string& bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(at));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

struct Totals {
  std::uint64_t trials = 0, damages = 0, records = 0, delivered = 0, reported_lost = 0, refused = 0;
  std::uint64_t sinks = 0, sinks_refused = 0;
};

// The exactly-once sink's journal damaged: the log is consumed into a
// FileSink (a checkpoint every 1 to 60 records), then a byte of its journal
// is flipped, the journal cut, or a stretch of it zeroed. Opening the sink
// again either refuses, naming the journal and leaving the output as it
// was, or resuming from its offsets writes every record exactly once.
std::string sink_trial(std::mt19937_64& rng, std::uint64_t n, const std::string& path, int count,
                       std::string& plan, Totals& totals) {
  auto log = Log::open(path, {.keeper = false});
  if (!log.ok()) return "open: " + log.status().to_string();
  const std::string out = path + "/sink.out", journal = out + ".offsets";
  auto consume = [&](FileSink& sink, int every) {
    ConsumerOptions co;
    co.partitions = {0};
    auto c = log->consumer(co).value();
    if (auto at = sink.offset(0)) (void)c.seek(0, *at);
    for (int idle = 0; idle < 2;) {
      const PollResult r = c.poll_wait(
          [&](const Record& rec) {
            sink.write(rec.value);
            sink.write("\n");
            sink.advance(0, rec.next_offset);
          },
          static_cast<std::size_t>(every), 20ms);
      if (Status done = sink.checkpoint(); !done.ok()) return "checkpoint: " + done.to_string();
      idle = r.records == 0 ? idle + 1 : 0;
    }
    return std::string();
  };
  {
    auto sink = FileSink::open(out, *log, FileSink::Survives::kProcessCrash);
    if (!sink.ok()) return "sink: " + sink.status().to_string();
    if (std::string e = consume(*sink, 1 + static_cast<int>(rng() % 60)); !e.empty()) return e;
  }
  std::string expected;
  for (int i = 0; i < count; ++i) expected += value_of(n, i) + "\n";
  if (read_file(out) != expected) return "the sink's output before any damage is not every record once";
  const std::string text = read_file(journal);
  if (text.empty()) return "an empty journal";
  switch (rng() % 3) {
    case 0: {
      const std::uint64_t at = rng() % text.size();
      std::string b = text.substr(at, 1);
      b[0] = static_cast<char>(b[0] ^ static_cast<char>(1u << (rng() % 8)));
      write_at(journal, at, b);
      plan += "; the sink's journal: byte " + std::to_string(at) + " of " + std::to_string(text.size()) + " flipped";
      break;
    }
    case 1: {
      const std::uint64_t size = rng() % text.size();
      fs::resize_file(journal, size);
      plan += "; the sink's journal cut to " + std::to_string(size) + " of " + std::to_string(text.size()) + " bytes";
      break;
    }
    default: {
      const std::uint64_t at = rng() % text.size(), len = 1 + rng() % 64;
      write_at(journal, at, std::string(std::min<std::uint64_t>(len, text.size() - at), '\0'));
      plan += "; the sink's journal zeroed at " + std::to_string(at);
      break;
    }
  }
  ++totals.sinks;
  auto sink = FileSink::open(out, *log, FileSink::Survives::kProcessCrash);
  if (!sink.ok()) {
    ++totals.sinks_refused;
    if (sink.status().message().find(journal) == std::string::npos) {
      return "the sink refused without naming its journal: " + sink.status().to_string();
    }
    if (read_file(out) != expected) return "the sink refused and cut its output";
    return {};
  }
  if (std::string e = consume(*sink, 1 + static_cast<int>(rng() % 60)); !e.empty()) return e;
  if (read_file(out) != expected) return "after the damaged journal the output is not every record exactly once";
  return {};
}

// One trial; returns an empty string or what went wrong.
std::string trial(std::uint64_t n, std::uint64_t seed, const std::string& dir, Totals& totals) {
  std::mt19937_64 rng(seed);
  const std::string path = dir + "/damage-" + std::to_string(::getpid()) + "-" + std::to_string(n);
  LogOptions o;
  o.partitions = 1;
  o.segment_size = kSegment;
  o.ring_segments = 2;
  o.max_record_size = 4096;
  o.durability = Durability::kFlush;
  const int count = 1500 + static_cast<int>(rng() % 4500);
  std::vector<std::uint64_t> offsets;
  std::uint64_t end = 0;
  {
    auto log = Log::create(path, o);
    if (!log.ok()) return "create: " + log.status().to_string();
    auto p = log->producer().value();
    for (int i = 0; i < count; ++i) {
      const AppendResult r = p.append(as_bytes(value_of(n, i)));
      if (!r) return "append " + std::to_string(i) + ": " + errc_name(r.error);
      offsets.push_back(r.offset);
    }
    end = log->info().partitions[0].end_offset;
  }  // the keeper writes everything and checkpoints
  const std::uint64_t segments = (end + kSegment - 1) / kSegment;
  const std::string pdir = io::partition_directory(path, 0);
  auto file_of = [&](std::uint64_t segment) { return pdir + "/" + io::segment_file_name(segment * kSegment); };
  if (rng() % 8 == 0) {  // the sink's journal alone
    std::string plan = std::to_string(count) + " records, consumed into a FileSink";
    const std::string error = sink_trial(rng, n, path, count, plan, totals);
    ++totals.trials;
    if (!error.empty()) return error + " (" + plan + "; the log is left in " + path + ")";
    test::remove_log_and_its_memory(path);
    return {};
  }
  const bool lose_memory = rng() % 2 == 0;
  std::string plan = std::to_string(count) + " records in " + std::to_string(segments) + " segments, memory " +
                     (lose_memory ? "lost" : "kept");
  if (lose_memory) {  // a host crash, before the damage is found
    if (Status lost = test::lose_shared_memory(path); !lost.ok()) return "removing shared memory: " + lost.to_string();
  }
  std::set<std::uint64_t> damaged;  // segments whose records may go
  std::string refused_file;         // a checkpoint or meta file that must be refused
  const int damages = 1 + static_cast<int>(rng() % 3);
  for (int d = 0; d < damages; ++d) {
    const std::uint64_t k = rng() % segments;
    const std::string file = file_of(k);
    const std::uint64_t used = std::min(kSegment, end - k * kSegment);  // data bytes holding records
    const int kind = static_cast<int>(rng() % 11);
    if (kind < 9 && (!fs::exists(file) || fs::file_size(file) < io::kSegmentHeaderSize + used)) {
      continue;  // an earlier damage of this trial took it
    }
    plan += "; segment " + std::to_string(k) + ": ";
    switch (kind) {
      case 0: {
        const std::uint64_t at = io::kSegmentHeaderSize + rng() % used;
        std::string b = read_file(file).substr(at, 1);
        if (b.empty()) b = "x";
        b[0] = static_cast<char>(b[0] ^ static_cast<char>(1u << (rng() % 8)));
        write_at(file, at, b);
        plan += "byte " + std::to_string(at) + " flipped";
        break;
      }
      case 1: {
        const std::uint64_t at = io::kSegmentHeaderSize + (rng() % (kSegment / 4096)) * 4096;
        write_at(file, at, std::string(4096, '\0'));
        plan += "block at " + std::to_string(at) + " zeroed";
        break;
      }
      case 2: {
        const std::uint64_t size = rng() % (io::kSegmentHeaderSize + kSegment);
        fs::resize_file(file, size);
        plan += "cut to " + std::to_string(size) + " bytes";
        break;
      }
      case 3: fs::resize_file(file, 0); plan += "emptied"; break;
      case 4: fs::remove(file); plan += "removed"; break;
      case 5: fs::rename(file, file + ".old"); plan += "renamed away"; break;
      case 6: {
        const std::uint64_t at = rng() % 64;
        std::string b = read_file(file).substr(at, 1);
        if (b.empty()) b = "x";
        b[0] = static_cast<char>(b[0] ^ 0x10);
        write_at(file, at, b);
        plan += "header byte " + std::to_string(at) + " flipped";
        break;
      }
      case 7: {
        if (segments < 2) continue;
        const std::uint64_t j = (k + 1 + rng() % (segments - 1)) % segments;
        if (!fs::exists(file_of(j))) continue;
        fs::copy_file(file_of(j), file, fs::copy_options::overwrite_existing);
        plan += "segment " + std::to_string(j) + "'s file copied over it";
        break;
      }
      case 8: {
        const std::uint64_t far = segments + 5 + rng() % 50;
        fs::copy_file(file, file_of(far), fs::copy_options::overwrite_existing);
        plan += "copied as segment " + std::to_string(far);
        continue;  // nothing of the log is lost
      }
      default: {  // the checkpoint (lost memory only: it is read then) or the meta file
        const std::string name = path + "/" + (lose_memory && rng() % 2 == 0 ? "shmlog.state" : "shmlog.meta");
        const std::string text = read_file(name);
        const std::size_t body = text.rfind("crc32c=");  // a byte before the checksum line
        if (body == std::string::npos || body == 0) return "no checksum in " + name;
        const std::uint64_t at = rng() % body;
        std::string b = text.substr(at, 1);
        b[0] = static_cast<char>(b[0] ^ static_cast<char>(1u << (rng() % 7)));
        write_at(name, at, b);
        refused_file = name;
        plan += "; " + name.substr(name.rfind('/') + 1) + " byte " + std::to_string(at) + " flipped";
        break;
      }
    }
    if (!refused_file.empty()) break;
    damaged.insert(k);
  }
  totals.damages += static_cast<std::uint64_t>(damages);
  std::string error;
  auto fail = [&](const std::string& what) {
    if (error.empty()) error = what;
  };
  // What verify says before anything reads (recovery sets damaged files
  // aside): the files it names.
  std::set<std::string> named_by_verify;
  if (refused_file.empty()) {
    auto scan = scan_log_files(path);
    if (!scan.ok()) return "verify: " + scan.status().to_string() + " (" + plan + ")";
    for (const auto& bad : scan->bad_files) named_by_verify.insert(bad.reason);
    for (const auto& f : scan->files) {
      if (!f.scan.problems.empty() || !f.scan.torn.empty()) named_by_verify.insert(f.path);
    }
  }
  {
    auto log = Log::open(path, {.keeper = false});
    if (!refused_file.empty()) {
      if (log.ok()) {
        fail("opened with a damaged " + refused_file);
      } else if (log.status().code() != Status::Code::kCorrupt ||
                 log.status().message().find(refused_file) == std::string::npos) {
        fail("refused without naming " + refused_file + " as damaged: " + log.status().to_string());
      }
      ++totals.refused;
    } else if (!log.ok()) {
      fail("open: " + log.status().to_string());
    } else {
      const std::uint64_t recovered_end = log->info().partitions[0].end_offset;
      if (recovered_end < end) {
        fail("the log ends at " + std::to_string(recovered_end) + ", below its end " + std::to_string(end) +
             " before the damage (offsets would be given out twice)");
      }
      ConsumerOptions co;
      co.partitions = {0};
      auto c = log->consumer(co).value();
      std::vector<bool> delivered(static_cast<std::size_t>(count), false);
      std::vector<Damage> reported;
      int last = -1;
      for (int idle = 0; error.empty() && c.position(0).value_or(0) < recovered_end && idle < 3;) {
        const std::uint64_t before = c.position(0).value_or(0);
        (void)c.poll_wait(
            [&](const Record& r) {
              const int i = index_of(as_string(r.value));
              if (i < 0 || i >= count || offsets[static_cast<std::size_t>(i)] != r.offset ||
                  as_string(r.value) != value_of(n, i)) {
                fail("a record at offset " + std::to_string(r.offset) + " that was not written there");
              } else if (i <= last) {
                fail("record " + std::to_string(i) + " after record " + std::to_string(last));
              } else {
                delivered[static_cast<std::size_t>(i)] = true;
                last = i;
              }
            },
            1024, 100ms);
        for (auto& d : c.take_damage()) reported.push_back(std::move(d));
        idle = c.position(0).value_or(0) == before ? idle + 1 : 0;
      }
      if (c.position(0).value_or(0) != recovered_end) {
        fail("the reader stopped at " + std::to_string(c.position(0).value_or(0)) + ", the log ends at " +
             std::to_string(recovered_end));
      }
      std::set<std::uint64_t> lost_segments;
      for (int i = 0; i < count && error.empty(); ++i) {
        if (delivered[static_cast<std::size_t>(i)]) continue;
        const std::uint64_t at = offsets[static_cast<std::size_t>(i)];
        lost_segments.insert(at / kSegment);
        const bool covered = std::any_of(reported.begin(), reported.end(),
                                         [&](const Damage& d) { return d.from <= at && at < d.to; });
        if (!covered) fail("record " + std::to_string(i) + " at offset " + std::to_string(at) + " lost in silence");
        if (damaged.count(at / kSegment) == 0) {
          fail("record " + std::to_string(i) + " of segment " + std::to_string(at / kSegment) +
               ", which nothing damaged, lost");
        }
        ++totals.reported_lost;
      }
      for (const Damage& d : reported) {
        if (d.what.find(pdir) == std::string::npos && d.what.find("shared memory") == std::string::npos) {
          fail("damage reported without naming its file: " + d.what);
        }
      }
      for (const std::uint64_t k : lost_segments) {
        const bool named = std::any_of(named_by_verify.begin(), named_by_verify.end(), [&](const std::string& s) {
          return s.find(file_of(k)) != std::string::npos;
        });
        if (!named) fail("verify does not name " + file_of(k) + ", whose records were lost");
      }
      totals.delivered += static_cast<std::uint64_t>(std::count(delivered.begin(), delivered.end(), true));
      totals.records += static_cast<std::uint64_t>(count);
    }
  }
  ++totals.trials;
  if (error.empty()) {
    test::remove_log_and_its_memory(path);
    return error;
  }
  return error + " (" + plan + "; the log is left in " + path + ")";
}

}  // namespace
}  // namespace shmlog

int main(int argc, char** argv) {
  shmlog::torture::Run run;
  shmlog::Totals totals;
  if (const int rc = shmlog::torture::run_trials(
          argc, argv, run,
          [&](std::uint64_t n, std::uint64_t seed, const std::string& dir) { return shmlog::trial(n, seed, dir, totals); });
      rc != 0) {
    return rc;
  }
  std::printf(
      "%llu damaged logs in %.0f s (seed %llu): %llu damages; of %llu records in logs read back %llu delivered, %llu lost and "
      "reported, 0 lost in silence, 0 invented; %llu damaged checkpoint or meta files refused; %llu sink journals "
      "damaged, %llu refused naming it, the others resumed exactly once\n",
      static_cast<unsigned long long>(totals.trials), run.seconds, static_cast<unsigned long long>(run.seed),
      static_cast<unsigned long long>(totals.damages), static_cast<unsigned long long>(totals.records),
      static_cast<unsigned long long>(totals.delivered), static_cast<unsigned long long>(totals.reported_lost),
      static_cast<unsigned long long>(totals.refused), static_cast<unsigned long long>(totals.sinks),
      static_cast<unsigned long long>(totals.sinks_refused));
  return 0;
}
