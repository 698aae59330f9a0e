#include "args.h"

#include <charconv>
#include <chrono>
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

// "2026-12-04T21:30:00Z" or "...:00.25Z" in ns since the epoch (UTC).
std::optional<std::uint64_t> utc_time(std::string_view text) {
  if (text.size() < 20 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' ||
      text[16] != ':' || text.back() != 'Z') {
    return std::nullopt;
  }
  auto field = [&](std::size_t at, std::size_t n) { return decimal(text.substr(at, n)); };
  const auto y = field(0, 4), mo = field(5, 2), d = field(8, 2), h = field(11, 2), mi = field(14, 2), s = field(17, 2);
  if (!y || !mo || !d || !h || !mi || !s || *y < 1970 || *h > 23 || *mi > 59 || *s > 60) return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year(static_cast<int>(*y)),
                                         std::chrono::month(static_cast<unsigned>(*mo)),
                                         std::chrono::day(static_cast<unsigned>(*d))};
  if (!date.ok()) return std::nullopt;
  std::uint64_t fraction_ns = 0;
  const std::string_view rest = text.substr(19, text.size() - 20);  // "" or ".ddd"
  if (!rest.empty()) {
    if (rest[0] != '.' || rest.size() < 2 || rest.size() > 10) return std::nullopt;
    const auto digits = decimal(rest.substr(1));
    if (!digits) return std::nullopt;
    fraction_ns = *digits;
    for (std::size_t i = rest.size() - 1; i < 9; ++i) fraction_ns *= 10;
  }
  const auto days = std::chrono::sys_days(date).time_since_epoch().count();
  const std::uint64_t seconds = static_cast<std::uint64_t>(days) * 86400 + *h * 3600 + *mi * 60 + *s;
  return seconds * 1000000000 + fraction_ns;
}

// "-90s", "-15m", "-2h", "-1d", "-500ms": nanoseconds back from now.
std::optional<std::uint64_t> time_ago(std::string_view text) {
  static constexpr std::pair<std::string_view, std::uint64_t> kUnits[] = {
      {"ms", 1000000ull}, {"s", 1000000000ull}, {"m", 60000000000ull}, {"h", 3600000000000ull}, {"d", 86400000000000ull}};
  if (!text.starts_with('-')) return std::nullopt;
  text.remove_prefix(1);
  for (const auto& [suffix, scale] : kUnits) {
    if (!text.ends_with(suffix)) continue;
    auto v = decimal(text.substr(0, text.size() - suffix.size()));
    if (!v || *v > UINT64_MAX / scale) return std::nullopt;
    return *v * scale;
  }
  return std::nullopt;
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

Result<GroupReset> parse_reset(std::string_view text, std::uint64_t now_ns) {
  if (text == "earliest") return GroupReset::earliest();
  if (text == "latest") return GroupReset::latest();
  if (auto offset = decimal(text)) return GroupReset::to_offset(*offset);
  if (auto time = utc_time(text)) return GroupReset::to_time(*time);
  if (auto ago = time_ago(text)) return GroupReset::to_time(*ago > now_ns ? 0 : now_ns - *ago);
  return Status(Status::Code::kInvalidArgument,
                quoted(text) + " is not earliest, latest, an offset, a UTC time (2026-12-04T21:30:00Z) or a time "
                               "ago (-15m, -2h, -1d)");
}

}  // namespace shmlog::tools
