// The command's option values (sizes, durations, --from, --to, --pages,
// --durability, --wait): a value or a one-line error naming it, never an
// exception or an overflow.
#include "args.h"
#include "fuzz_util.h"
#include "shmlog/wait.h"

using namespace shmlog;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto one_line = [](const Status& s) { fuzz::check_one_line(s); };
  if (auto v = parse_size(text); !v.ok()) one_line(v.status());
  if (auto v = tools::parse_micros(text); !v.ok()) one_line(v.status());
  if (auto v = tools::parse_start(text); !v.ok()) one_line(v.status());
  if (auto v = tools::parse_reset(text, 1'800'000'000'000'000'000ull); !v.ok()) one_line(v.status());
  if (auto v = parse_pages(text); !v.ok()) one_line(v.status());
  if (auto v = parse_durability(text); !v.ok()) one_line(v.status());
  WaitStrategy w;
  (void)parse_wait_strategy(text.c_str(), &w);
  return 0;
}
