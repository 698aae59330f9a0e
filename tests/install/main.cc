// Built outside the project against an installed shmlog: find_package and pkg-config.
#include <cstdio>
#include <string_view>

#include "shmlog/log.h"

int main() {
  auto log = shmlog::Log::create_in_memory().value();
  auto producer = log.producer().value();
  if (!producer.append(shmlog::as_bytes("from outside"))) return 1;
  auto consumer = log.consumer().value();
  std::string_view got;
  consumer.poll([&](const shmlog::Record& r) { got = shmlog::as_string(r.value); });
  std::printf("%.*s\n", static_cast<int>(got.size()), got.data());
  return got == "from outside" ? 0 : 1;
}
