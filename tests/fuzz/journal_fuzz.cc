// The file sink's journal (<output>.offsets): the newest whole entry of the
// log's shape wins, nothing is read past the bytes, errors are one line.
// Input: a byte choosing the partition count (1..16) and whether the log
// is the one the first entry names, then the journal.
#include "fuzz_util.h"
#include "sink_journal.h"

using namespace shmlog;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const auto choice = in.take<std::uint8_t>();
  const std::uint32_t partitions = choice % 16 + 1;
  const std::string_view text = in.rest_text();
  std::uint64_t log_id = 0x5eed;
  if ((choice & 0x80) == 0 && text.size() >= 16) std::memcpy(&log_id, text.data() + 8, sizeof log_id);
  auto j = detail::decode_journal(text, partitions, log_id, "out.offsets");
  if (!j.ok()) {
    fuzz::check_one_line(j.status());
    return 0;
  }
  FUZZ_CHECK(j->end <= text.size() && j->offsets.size() == partitions);
  if (j->end > 0) {
    // The newest entry, written again, is read back as the only one.
    const std::string entry = detail::encode_journal_entry(log_id, j->length, j->offsets);
    auto again = detail::decode_journal(entry, partitions, log_id, "out.offsets");
    FUZZ_CHECK(again.ok() && again->end == entry.size() && again->length == j->length &&
               again->offsets == j->offsets);
  }
  return 0;
}
