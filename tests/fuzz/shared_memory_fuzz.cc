// A log's shared memory as another process may leave it: damaged, or
// written by a hostile neighbour with access. The target keeps one real log
// (2 partitions, a ring of 2 segments of 64 KiB, records of a named, a
// transactional and a plain producer, a group with committed offsets),
// restores its memory before each input, applies the input as patches,
// then opens the log and runs what readers and tools run: read_committed
// and plain consumers, a group member, seek_time, info, sweep, an append.
// None may crash, hang or allocate without bound; errors are one line.
//
// Input: a byte of which operations run (the high bit: on the handle open
// since before the damage, not a new one), then patches: u32 where (high
// bit set: within the control region before the ring), u8 length, bytes.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "format.h"
#include "fuzz_util.h"
#include "log_access.h"
#include "shmlog/log.h"

using namespace shmlog;

namespace {

struct Fixture {
  std::string dir;
  Log log;  // keeps the memory mapped between inputs
  std::vector<std::byte> pristine;
};

// The log and its memory live under one scratch directory in /dev/shm, so
// that removing the directory frees both. libFuzzer may end a run without
// running exit handlers (a crash, a timeout): directories of runs whose
// process is gone are removed first.
constexpr const char* kScratchPrefix = "shmlog-fuzz-shm-";

void remove_stale_scratch() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kScratchPrefix, 0) != 0) continue;
    const long pid = std::strtol(name.c_str() + std::strlen(kScratchPrefix), nullptr, 10);
    if (pid <= 0 || pid == ::getpid()) continue;
    // Gone, or a zombie nobody reaped: its run is over.
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    const bool running = std::getline(stat, line) && line.find(") Z ") == std::string::npos;
    if (!running) std::filesystem::remove_all(entry.path(), ec);
  }
}

std::string scratch_root() { return std::string("/dev/shm/") + kScratchPrefix + std::to_string(::getpid()); }

Fixture* make_fixture() {
  remove_stale_scratch();
  const std::string root = scratch_root();
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root + "/memory");
  LogOptions o;
  o.memory_dir = root + "/memory";
  o.partitions = 2;
  o.segment_size = 64 * 1024;
  o.ring_segments = 2;
  o.max_record_size = 1024;
  o.max_producers = 4;
  o.max_groups = 2;
  o.max_members = 2;
  o.checksums = true;
  o.claim_timeout = std::chrono::milliseconds(5);
  o.token_window = 8;
  auto log = Log::create(root + "/log", o);
  FUZZ_CHECK(log.ok());
  {
    ProducerOptions po;
    po.producer_id = "named";
    auto named = log->producer(po);
    FUZZ_CHECK(named.ok());
    for (int i = 0; i < 40; ++i) (void)named->append(as_bytes("k" + std::to_string(i % 3)), as_bytes("value " + std::to_string(i)));
    po.producer_id = "txn";
    po.transactional = true;
    auto txn = log->producer(po);
    FUZZ_CHECK(txn.ok());
    for (int t = 0; t < 3; ++t) {
      FUZZ_CHECK(txn->begin_transaction().ok());
      for (int i = 0; i < 5; ++i) (void)txn->append(as_bytes("t"), as_bytes("in transaction " + std::to_string(t)));
      FUZZ_CHECK((t == 1 ? txn->abort_transaction() : txn->commit_transaction()).ok());
    }
    auto plain = log->producer();
    FUZZ_CHECK(plain.ok());
    for (int i = 0; i < 2000; ++i) (void)plain->append(as_bytes(std::string(static_cast<std::size_t>(i % 97), 'x')));
    ConsumerOptions co;
    co.group = "g";
    auto group = log->consumer(co);
    FUZZ_CHECK(group.ok());
    for (int i = 0; i < 10; ++i) group->poll([](const Record&) {}, 50);
  }
  auto* f = new Fixture{root + "/log", std::move(log).value(), {}};
  const auto& s = test::state(f->log);
  f->pristine.assign(s.base, s.base + s.geometry.total_size);
  std::atexit([] { std::filesystem::remove_all(scratch_root()); });
  return f;
}

// Where a patch landed (SHMLOG_FUZZ_VERBOSE=1, when replaying an input).
void describe_patch(const detail::LogState& s, std::uint64_t at, std::size_t n) {
  const auto& g = s.geometry;
  const std::pair<const char*, std::uint64_t> regions[] = {
      {"header", 0},           {"producer slots", g.producers_offset}, {"groups", g.groups_offset},
      {"offset slots", g.offset_slots_offset}, {"partitions", g.partitions_offset},
      {"tokens", g.tokens_offset}, {"ring", g.data_offset}};
  const char* name = "?";
  std::uint64_t from = 0;
  for (const auto& [region, start] : regions) {
    if (start <= at && start >= from) name = region, from = start;
  }
  std::fprintf(stderr, "patch of %zu bytes at %llu: %s + %llu\n", n, static_cast<unsigned long long>(at), name,
               static_cast<unsigned long long>(at - from));
}

void run_reads(const Log& log, std::uint8_t ops) {
  auto count = [](const Record& r) { FUZZ_CHECK(r.value.size() <= 1024 && r.key.size() <= 1024); };
  if ((ops & 1) != 0) {
    ConsumerOptions co;
    co.isolation = Isolation::kReadCommitted;
    auto c = log.consumer(co);
    if (c.ok()) {
      for (int i = 0; i < 4; ++i) c->poll(count, 256);
    } else {
      fuzz::check_one_line(c.status());
    }
  }
  if ((ops & 2) != 0) {
    ConsumerOptions co;
    co.group = "g";
    co.drop_duplicates = true;
    auto c = log.consumer(co);
    if (c.ok()) {
      for (int i = 0; i < 4; ++i) c->poll(count, 256);
      c->commit();
    } else {
      fuzz::check_one_line(c.status());
    }
  }
  if ((ops & 4) != 0) {
    auto c = log.consumer();
    if (c.ok()) {
      for (std::uint32_t p = 0; p < 2; ++p) {
        auto at = c->seek_time(p, 1);
        if (!at.ok()) fuzz::check_one_line(at.status());
      }
      c->poll(count, 64);
    }
  }
  if ((ops & 8) != 0) (void)log.info();
  if ((ops & 16) != 0) log.sweep();
  if ((ops & 32) != 0) {
    ProducerOptions po;
    po.backpressure_timeout = std::chrono::milliseconds(1);
    // Exclusive or shared claims. (A named producer is left out: on a
    // damaged tail its open reads up to the tail for 5 s before it gives
    // up with kTimeout, by design, which would make every such input slow.)
    po.exclusive = (ops & 64) != 0;
    auto p = log.producer(po);
    if (p.ok()) {
      (void)p->append(as_bytes("after"));
    } else {
      fuzz::check_one_line(p.status());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Fixture* f = make_fixture();
  auto& s = test::state(f->log);
  std::memcpy(s.base, f->pristine.data(), f->pristine.size());
  fuzz::Input in(data, size);
  const auto ops = in.take<std::uint8_t>();
  const std::uint64_t total = s.geometry.total_size;
  const std::uint64_t control = s.geometry.data_offset;
  for (fuzz::Patch patch; fuzz::take_patch(in, &patch);) {
    const std::uint32_t where = patch.where;
    std::uint64_t at = (where & 0x80000000u) != 0 ? (where & 0x7fffffffu) % control : where % total;
    // The magic is left alone: a zero one is a creator still at work, which
    // an opener waits for (2 s) rather than reads.
    if (at < 8) at = 8;
    const std::size_t n = std::min<std::uint64_t>(patch.bytes.size(), total - at);
    std::memcpy(s.base + at, patch.bytes.data(), n);
    if (std::getenv("SHMLOG_FUZZ_VERBOSE") != nullptr) describe_patch(s, at, n);
  }
  if ((ops & 128) != 0) {  // damage under a process that has the log open
    run_reads(f->log, ops);
    return 0;
  }
  auto log = Log::open(f->dir);
  if (!log.ok()) {
    fuzz::check_one_line(log.status());
    return 0;
  }
  run_reads(*log, ops);
  return 0;
}
