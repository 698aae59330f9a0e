#include "bridge_stats.h"

#include <charconv>
#include <chrono>
#include <optional>

#include "shmlog/io/files.h"
#include "shmlog/shm/process.h"

namespace shmlog::tools {
namespace {

constexpr const char* kHeader = "shmlog bridge stats v1";
constexpr std::string_view kPrefix = "bridge-";
constexpr std::string_view kSuffix = ".stats";

template <class T>
std::optional<T> parse_number(const std::string& text) {
  T v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

}  // namespace

std::string bridge_stats_path(const std::string& log, const std::string& direction, const std::string& topic) {
  return log + "/" + std::string(kPrefix) + direction + "-" + topic + std::string(kSuffix);
}

Status write_bridge_stats(const std::string& path, const BridgeStatsFile& f) {
  const bridge::BridgeStats& s = f.stats;
  return io::write_key_value_file(path, kHeader,
                                  {{"direction", f.direction},
                                   {"topic", f.topic},
                                   {"pid", std::to_string(f.pid)},
                                   {"start_time", std::to_string(f.start_time)},
                                   {"updated_ns", std::to_string(f.updated_ns)},
                                   {"records", std::to_string(s.records)},
                                   {"duplicates", std::to_string(s.duplicates)},
                                   {"kafka_errors", std::to_string(s.kafka_errors)},
                                   {"kafka_retries", std::to_string(s.kafka_retries)},
                                   {"lag", std::to_string(s.lag)},
                                   {"age_ms", std::to_string(s.age_ms)}},
                                  0644);
}

Result<BridgeStatsFile> parse_bridge_stats(std::string_view text, const std::string& name) {
  auto values = io::parse_key_values(text, kHeader, name);
  if (!values.ok()) return std::move(values).status();
  const auto field = [&](const char* key) -> Result<std::string> {
    const auto it = values->find(key);
    if (it == values->end()) return Status(Status::Code::kCorrupt, name + ": no " + key);
    return it->second;
  };
  BridgeStatsFile f;
  bool ok = true;
  std::string bad;
  const auto number = [&]<class T>(const char* key, T& out, T least) {
    auto value = field(key);
    if (!value.ok()) {
      if (ok) bad = value.status().message();
      ok = false;
      return;
    }
    const auto v = parse_number<T>(*value);
    if (!v || *v < least) {
      if (ok) bad = name + ": " + key + " " + quoted(*value) + " is not a number of at least " + std::to_string(least);
      ok = false;
      return;
    }
    out = *v;
  };
  auto direction = field("direction");
  auto topic = field("topic");
  if (!direction.ok()) return std::move(direction).status();
  if (!topic.ok()) return std::move(topic).status();
  if (*direction != "to-kafka" && *direction != "from-kafka") {
    return Status(Status::Code::kCorrupt, name + ": direction " + quoted(*direction) + " is neither to-kafka nor from-kafka");
  }
  f.direction = *direction;
  f.topic = *topic;
  number("pid", f.pid, std::uint32_t{1});
  number("start_time", f.start_time, std::uint64_t{0});
  number("updated_ns", f.updated_ns, std::uint64_t{0});
  number("records", f.stats.records, std::uint64_t{0});
  number("duplicates", f.stats.duplicates, std::uint64_t{0});
  number("kafka_errors", f.stats.kafka_errors, std::uint64_t{0});
  number("kafka_retries", f.stats.kafka_retries, std::uint64_t{0});
  number("lag", f.stats.lag, std::int64_t{-1});
  number("age_ms", f.stats.age_ms, std::int64_t{-1});
  if (!ok) return Status(Status::Code::kCorrupt, bad);
  return f;
}

std::vector<FoundBridge> find_bridges(const std::string& log) {
  std::vector<FoundBridge> found;
  auto names = io::list_directory(log);
  if (!names.ok()) return found;
  const std::uint64_t now = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  for (const std::string& name : *names) {
    if (!name.starts_with(kPrefix) || !name.ends_with(kSuffix)) continue;
    FoundBridge b;
    b.file = log + "/" + name;
    auto fd = io::open_read_only(b.file);
    if (!fd.ok()) {
      b.stats = std::move(fd).status();
    } else {
      auto text = io::read_whole_file(*fd, b.file, io::kMaxKeyValueFile);
      io::close_file(*fd);
      b.stats = text.ok() ? parse_bridge_stats(*text, b.file) : Result<BridgeStatsFile>(std::move(text).status());
    }
    if (b.stats.ok()) {
      const bool fresh = b.stats->updated_ns <= now && now - b.stats->updated_ns < 10'000'000'000ull;
      b.up = fresh && shm::liveness_of(b.stats->pid, b.stats->start_time) != shm::Liveness::kDead;
    }
    found.push_back(std::move(b));
  }
  return found;
}

}  // namespace shmlog::tools
