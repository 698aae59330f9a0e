// The checkpoint file (shmlog.state) of a durable log, decoded against a
// log of 3 partitions, 8 producer slots and 4 group slots: every entry it
// returns fits those slots, and encoding it decodes to the same.
#include "checkpoint.h"
#include "fuzz_util.h"

using namespace shmlog;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  LogOptions o;
  o.partitions = 3;
  o.max_producers = 8;
  o.max_groups = 4;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto c = detail::decode_checkpoint(text, o, "shmlog.state");
  if (!c.ok()) {
    fuzz::check_one_line(c.status());
    return 0;
  }
  FUZZ_CHECK(c->durable.size() == o.partitions && c->start.size() == o.partitions);
  for (const auto& g : c->groups) {
    FUZZ_CHECK(g.slot < o.max_groups && g.offsets.size() == o.partitions);
    FUZZ_CHECK(!g.name.empty() && g.name.size() < 64 && g.name.find('\0') == std::string::npos);
  }
  for (const auto& e : c->producers) {
    FUZZ_CHECK(e.slot < o.max_producers && !e.name.empty() && e.name.size() < 64);
    FUZZ_CHECK(!e.has_offsets || (!e.offsets.empty() && e.offsets.size() <= 1008));
  }
  auto again = detail::decode_checkpoint(detail::encode_checkpoint(*c), o, "shmlog.state");
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(detail::encode_checkpoint(*again) == detail::encode_checkpoint(*c));
  return 0;
}
