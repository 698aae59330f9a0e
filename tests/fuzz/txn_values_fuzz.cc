// Values of transaction control records, as a read_committed reader or a
// restarting producer finds them in the ring or a segment file: the
// participants of a prepare record and the offsets a transaction commits.
// Decoding never reads past the value, and what it decodes encodes to a
// prefix of the input.
#include "fuzz_util.h"
#include "txn.h"

using namespace shmlog;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto refs = detail::decode_refs(bytes);
  const std::string again = detail::encode_refs(refs);
  FUZZ_CHECK(bytes.substr(0, again.size()) == again);

  // Offsets of one group ("g", the first entry's group, or none).
  for (const std::string& group : {std::string("g"), std::string()}) {
    const auto offsets = detail::decode_offsets(bytes, group);
    detail::TxnOffsets map;
    for (const auto& [partition, offset] : offsets) map[{group, partition}] = offset;
    const auto back = detail::decode_offsets(detail::encode_offsets(map), group);
    FUZZ_CHECK(back.size() <= offsets.size());
  }
  return 0;
}
