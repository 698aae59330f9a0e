// The meta file (shmlog.meta): whatever the bytes, a Meta whose options
// pass validate() and survive a write and read back unchanged, or an error
// on one line.
#include "fuzz_util.h"
#include "meta.h"

using namespace shmlog;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto meta = detail::decode_meta(text, "shmlog.meta");
  if (!meta.ok()) {
    fuzz::check_one_line(meta.status());
    return 0;
  }
  FUZZ_CHECK(validate(meta->options).ok());
  const auto kv = detail::to_meta(*meta);
  auto again = detail::decode_meta(kv, "shmlog.meta");
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->log_id == meta->log_id && again->memory_nonce == meta->memory_nonce);
  FUZZ_CHECK(detail::to_meta(*again) == kv);
  return 0;
}
