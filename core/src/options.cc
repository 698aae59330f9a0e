// Log options: their validation and the parsers of their text forms (the
// command and the bindings share them); pinning a thread; error names.
#include <charconv>
#include <string>

#include "format.h"
#include "shmlog/io/segment_file.h"
#include "shmlog/log.h"
#include "shmlog/shm/process.h"
#include "shmlog/shm/topology.h"

namespace shmlog {

namespace {
constexpr std::uint64_t kMinSegment = 64 * 1024;
constexpr std::uint64_t kMaxSegment = io::kMaxSegmentSize;  // segment files name no more
}  // namespace

Result<Pages> parse_pages(std::string_view text) {
  for (Pages p : {Pages::kNormal, Pages::kTransparentHuge, Pages::kHuge}) {
    if (text == shm::page_kind_name(p)) return p;
  }
  return Status(Status::Code::kInvalidArgument, "pages must be normal, thp or huge, got " + quoted(text));
}

Result<Durability> parse_durability(std::string_view text) {
  for (Durability d : {Durability::kNone, Durability::kFlush, Durability::kFsync}) {
    if (text == durability_name(d)) return d;
  }
  return Status(Status::Code::kInvalidArgument,
                "durability must be none, flush or fsync, got " + quoted(text));
}

const char* durability_name(Durability d) noexcept {
  switch (d) {
    case Durability::kNone: return "none";
    case Durability::kFlush: return "flush";
    case Durability::kFsync: return "fsync";
  }
  return "unknown";
}

Status validate(const LogOptions& o) {
  auto bad = [](std::string m) { return Status(Status::Code::kInvalidArgument, std::move(m)); };
  if (o.partitions < 1 || o.partitions > 4096) return bad("partitions must be 1..4096, got " + std::to_string(o.partitions));
  if (o.segment_size < kMinSegment || o.segment_size > kMaxSegment || (o.segment_size & (o.segment_size - 1)) != 0) {
    return bad("segment size must be a power of two from 64K to 1G, got " + std::to_string(o.segment_size));
  }
  if (o.ring_segments < 2 || o.ring_segments > 65536) {
    return bad("ring segments must be 2..65536, got " + std::to_string(o.ring_segments));
  }
  if (o.max_record_size < 1 ||
      format::align_record(format::kRecordHeaderSize + std::uint64_t{o.max_record_size}) > o.segment_size) {
    return bad("max record size " + std::to_string(o.max_record_size) + " must be at least 1 and fit a segment of " +
               std::to_string(o.segment_size) + " bytes with its 32-byte header");
  }
  if (o.max_producers < 1 || o.max_producers > 65535) return bad("max producers must be 1..65535");
  if (o.max_groups < 1 || o.max_groups > 4096) return bad("max groups must be 1..4096");
  if (o.max_members < 1 || o.max_members > 4096) return bad("max members must be 1..4096");
  if (o.claim_timeout.count() < 1 || o.claim_timeout > std::chrono::hours(1)) {
    return bad("claim timeout must be 1 ms..1 h");
  }
  if ((o.mode & ~0777u) != 0 || (o.mode & 0600u) != 0600u) {
    return bad("mode must be octal permission bits including owner read/write (e.g. 0600, 0660)");
  }
  if (o.policy != Policy::kOverwrite && o.policy != Policy::kBackpressure) return bad("unknown policy");
  if (o.token_window > (1ull << 28)) return bad("token window must be at most 268435456 tokens");
  if (o.token_window_time.count() < 0 || o.token_window_time > std::chrono::hours(24 * 365)) {
    return bad("token window time must be 0 (count only) up to a year");
  }
  if (o.numa_node < -1) return bad("NUMA node must be >= 0 (or -1 for the kernel's policy), got " + std::to_string(o.numa_node));
  if (!o.memory_dir.empty() && o.memory_dir.front() != '/') {
    return bad("memory directory must be an absolute path (every process opens it), got " + quoted(o.memory_dir));
  }
  if (o.durability != Durability::kNone && o.durability != Durability::kFlush && o.durability != Durability::kFsync) {
    return bad("unknown durability");
  }
  if (o.durability != Durability::kNone && !o.checksums) {
    return bad("a durable log needs checksums (a torn record on disk must be detectable)");
  }
  if (o.fsync_interval.count() < 0 || o.fsync_interval > std::chrono::hours(1)) {
    return bad("fsync interval must be 0 up to an hour");
  }
  if (o.retention_time.count() < 0) return bad("retention time must not be negative");
  const std::uint64_t total = format::compute_geometry(o, format::kKnownFeatures).total_size;
  if (total > (1ull << 40)) return bad("the log would need " + std::to_string(total) + " bytes of shared memory");
  return {};
}

Status pin_current_thread(unsigned core) {
  const unsigned cpus = shm::online_cpus();
  if (core >= cpus) {
    return Status(Status::Code::kInvalidArgument,
                  "core " + std::to_string(core) + " does not exist (" + std::to_string(cpus) + " CPUs available)");
  }
  return shm::pin_current_thread(core);
}

Result<std::uint64_t> parse_size(std::string_view text) {
  auto bad = [&] {
    return Status(Status::Code::kInvalidArgument,
                  quoted(text) + " is not a size (use a byte count or a K, M or G suffix)");
  };
  if (text.empty()) return bad();
  std::uint64_t multiplier = 1;
  switch (text.back()) {
    case 'k': case 'K': multiplier = 1ull << 10; break;
    case 'm': case 'M': multiplier = 1ull << 20; break;
    case 'g': case 'G': multiplier = 1ull << 30; break;
    default: break;
  }
  if (multiplier != 1) text.remove_suffix(1);
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || text.empty()) return bad();
  if (v > UINT64_MAX / multiplier) return bad();
  return v * multiplier;
}

const char* errc_name(Errc e) noexcept {
  switch (e) {
    case Errc::kOk: return "ok";
    case Errc::kEmpty: return "empty";
    case Errc::kTooLarge: return "record too large";
    case Errc::kBadPartition: return "partition out of range";
    case Errc::kBackpressureTimeout: return "ring full: backpressure timeout";
    case Errc::kRevoked: return "claim revoked after the claim timeout";
    case Errc::kBadState: return "bad state";
    case Errc::kFenced: return "fenced: a newer instance of this producer id took over";
    case Errc::kDuplicate: return "duplicate: this sequence already reached the log";
    case Errc::kDiskFull: return "disk full: the log's segment files cannot grow, so the ring cannot be reused";
    case Errc::kNotDurable: return "not durable in time (or the log has no durability)";
    case Errc::kCorrupt: return "the log's shared memory is damaged (a position that cannot be right)";
  }
  return "unknown";
}

}  // namespace shmlog
