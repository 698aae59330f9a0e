// The inline poll (Consumer::poll with a handler of its own type, in
// shmlog/log.h) decodes ring bytes in the caller's code: here a log
// without checksums (the only kind it reads) has its ring and segment
// descriptors patched as another process may leave them, then two private
// readers poll the same bytes, one inline and one through a RecordHandler
// (the library's poll only). They must hand out the same records, whole
// and inside the ring, and report the same losses and damage: the inline
// poll takes nothing the library would not, and leaves the rest to it.
//
// Input: a byte of poll sizes, then patches: u32 where (within the ring,
// or with the high bit set within the partition header and descriptors),
// u8 length, bytes.
#include <cstring>
#include <string>
#include <vector>

#include "format.h"
#include "fuzz_util.h"
#include "log_access.h"
#include "shmlog/log.h"

using namespace shmlog;

namespace {

struct Fixture {
  Log log;
  std::vector<std::byte> pristine;
};

Fixture* make_fixture() {
  LogOptions o;
  o.segment_size = 64 * 1024;
  o.ring_segments = 4;
  o.max_record_size = 1024;
  o.max_producers = 4;
  o.max_groups = 2;
  o.max_members = 2;
  // Nobody unblocks or prepares in the readers' place: they only read.
  o.claim_timeout = std::chrono::hours(1);
  auto log = Log::create_in_memory(o);
  FUZZ_CHECK(log.ok());
  {
    auto producer = log->producer();
    FUZZ_CHECK(producer.ok());
    // More than a ring: three segments held, two segment ends with padding,
    // keyed and plain records.
    for (int i = 0; i < 1700; ++i) {
      const std::string value(static_cast<std::size_t>(i * 37 % 200), static_cast<char>('a' + i % 26));
      auto r = i % 5 == 0 ? producer->append(as_bytes("k" + std::to_string(i)), as_bytes(value))
                          : producer->append(as_bytes(value));
      FUZZ_CHECK(r);
    }
    auto* f = new Fixture{std::move(log).value(), {}};
    const auto& s = test::state(f->log);
    f->pristine.assign(s.base, s.base + s.geometry.total_size);
    return f;
  }
}

struct Seen {
  std::vector<std::uint64_t> offsets;
  std::string bytes;  // keys and values, in order
  PollResult sum;
};

void add(Seen& seen, const PollResult& r) {
  seen.sum.records += r.records;
  seen.sum.lost_bytes += r.lost_bytes;
  seen.sum.corrupt += r.corrupt;
  seen.sum.duplicates += r.duplicates;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Fixture* f = make_fixture();
  auto& s = test::state(f->log);
  std::memcpy(s.base, f->pristine.data(), f->pristine.size());
  fuzz::Input in(data, size);
  const auto sizes = in.take<std::uint8_t>();
  const std::uint64_t ring = s.geometry.data_offset;
  const std::uint64_t ring_bytes = s.geometry.total_size - ring;
  const std::uint64_t partition = s.geometry.partitions_offset;
  const std::uint64_t partition_bytes = ring - partition;
  for (fuzz::Patch patch; fuzz::take_patch(in, &patch);) {
    const std::uint32_t where = patch.where;
    const std::uint64_t at = (where & 0x80000000u) != 0 ? partition + (where & 0x7fffffffu) % partition_bytes
                                                        : ring + where % ring_bytes;
    const std::size_t n = std::min<std::uint64_t>(patch.bytes.size(), s.geometry.total_size - at);
    std::memcpy(s.base + at, patch.bytes.data(), n);
  }
  auto inline_reader = f->log.consumer();
  auto library_reader = f->log.consumer();
  if (!inline_reader.ok() || !library_reader.ok()) {  // a damaged tail or start: both refuse alike
    FUZZ_CHECK(inline_reader.ok() == library_reader.ok());
    return 0;
  }
  Seen a, b;
  const std::byte* lo = s.base + ring;
  const std::byte* hi = s.base + s.geometry.total_size;
  auto note = [&](Seen& seen, const Record& r) {
    FUZZ_CHECK(r.key.size() + r.value.size() <= 1024);
    FUZZ_CHECK(r.value.empty() || (r.value.data() >= lo && r.value.data() + r.value.size() <= hi));
    FUZZ_CHECK(r.key.empty() || (r.key.data() >= lo && r.key.data() + r.key.size() <= hi));
    seen.offsets.push_back(r.offset);
    seen.bytes.append(as_string(r.key)).append("|").append(as_string(r.value)).append("\n");
  };
  // Poll sizes from the input (1 to 16), so that polls stop anywhere.
  const std::size_t max = 1 + (sizes & 15);
  for (int i = 0; i < 4096; ++i) {
    const PollResult r = inline_reader->poll([&](const Record& rec) { note(a, rec); }, max);
    add(a, r);
    if (r.records == 0 && r.lost_bytes == 0 && r.corrupt == 0) break;
  }
  for (int i = 0; i < 4096; ++i) {
    const PollResult r = library_reader->poll(RecordHandler([&](const Record& rec) { note(b, rec); }), max);
    add(b, r);
    if (r.records == 0 && r.lost_bytes == 0 && r.corrupt == 0) break;
  }
  FUZZ_CHECK(a.offsets == b.offsets);
  FUZZ_CHECK(a.bytes == b.bytes);
  FUZZ_CHECK(a.sum.records == b.sum.records && a.sum.lost_bytes == b.sum.lost_bytes && a.sum.corrupt == b.sum.corrupt);
  FUZZ_CHECK(inline_reader->position(0) == library_reader->position(0));
  return 0;
}
