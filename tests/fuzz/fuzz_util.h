// Helpers for the fuzz targets: a check that aborts (libFuzzer reports the
// input), a reader of the fuzzer's bytes, and a scratch file per process.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

namespace shmlog::fuzz {

// Takes fixed-size numbers off the front of the input (zeros once it runs
// out), then hands out the rest.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  template <class T>
  T take() {
    T v{};
    const std::size_t n = size_ < sizeof v ? size_ : sizeof v;
    if (n > 0) std::memcpy(&v, data_, n);
    data_ += n;
    size_ -= n;
    return v;
  }
  std::span<const std::byte> rest_bytes() const { return {reinterpret_cast<const std::byte*>(data_), size_}; }
  std::string_view rest_text() const { return {reinterpret_cast<const char*>(data_), size_}; }
  void skip(std::size_t n) {
    n = n < size_ ? n : size_;
    data_ += n;
    size_ -= n;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
};

// One patch of a damage script, as the shared-memory targets read them: a
// 32-bit word the target maps to a position, then a length byte (below 64)
// and that many bytes (fewer at the input's end). False, and nothing
// taken, once fewer than 5 bytes are left.
struct Patch {
  std::uint32_t where = 0;
  std::span<const std::byte> bytes;
};
inline bool take_patch(Input& in, Patch* patch) {
  if (in.rest_bytes().size() < 5) return false;
  patch->where = in.take<std::uint32_t>();
  const std::size_t length = in.take<std::uint8_t>() % 64;
  patch->bytes = in.rest_bytes().first(length < in.rest_bytes().size() ? length : in.rest_bytes().size());
  in.skip(patch->bytes.size());
  return true;
}

// An error is one line of printable ASCII: bytes from the input are quoted.
template <class S>
void check_one_line(const S& status) {
  FUZZ_CHECK(!status.ok());
  for (char c : status.message()) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
}

// A file of this process's own under the temporary directory.
inline std::string scratch_path(const char* what) {
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/shmlog-fuzz-" + std::to_string(::getpid()) +
         "-" + what;
}

}  // namespace shmlog::fuzz
