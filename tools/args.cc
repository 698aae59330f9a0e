#include "args.h"

#include <charconv>
#include <cstring>
#include <utility>

namespace shmlog::tools {
namespace {

std::optional<std::uint64_t> decimal(std::string_view text) {
  std::uint64_t v = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || p != end) return std::nullopt;
  return v;
}

}  // namespace

Result<std::optional<std::uint64_t>> parse_micros(std::string_view text) {
  static constexpr std::pair<std::string_view, std::uint64_t> kUnits[] = {{"us", 1}, {"ms", 1000}, {"s", 1000000}};
  for (const auto& [suffix, scale] : kUnits) {
    if (!text.ends_with(suffix)) continue;
    const std::string_view number = text.substr(0, text.size() - suffix.size());
    if (number.empty() || number.find_first_not_of("0123456789") != std::string_view::npos) {
      if (suffix == "s") return std::optional<std::uint64_t>();  // "us"/"ms" spelled otherwise: not a duration
      continue;
    }
    auto v = decimal(number);
    if (!v || *v > UINT64_MAX / scale) {
      return Status(Status::Code::kInvalidArgument, quoted(text) + " is too long a duration");
    }
    return std::optional<std::uint64_t>(*v * scale);
  }
  return std::optional<std::uint64_t>();
}

Result<StartFrom> parse_start(std::string_view text) {
  if (text == "earliest") return StartFrom::earliest();
  if (text == "latest") return StartFrom::latest();
  if (auto offset = decimal(text)) return StartFrom::at(*offset);
  return Status(Status::Code::kInvalidArgument, quoted(text) + " is not earliest, latest or an offset");
}

}  // namespace shmlog::tools
