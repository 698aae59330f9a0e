#include "meta.h"

#include <sys/stat.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <random>
#include <utility>

#include "format.h"
#include "shmlog/io/files.h"
#include "shmlog/status.h"

namespace shmlog::detail {

const char* policy_name(Policy p) { return p == Policy::kOverwrite ? "overwrite" : "backpressure"; }

std::uint64_t random_nonzero() {
  std::random_device rd;
  std::uint64_t v = 0;
  while (v == 0) v = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  return v;
}

namespace {

constexpr std::pair<std::uint32_t, const char*> kFeatureNames[] = {
    {format::kFeatureDurability, "durability"},
    {format::kFeatureMemoryNonce, "memory_nonce"},
    {format::kFeatureFences, "fences"},
    {format::kFeaturePendingClaims, "pending_claims"},
    {format::kFeatureCommittedOffsets, "committed_offsets"},
    {format::kFeatureTokenHashes, "token_hashes"},
    {format::kFeatureOwnerPairs, "owner_pairs"},
    {format::kFeatureAppendCounts, "append_counts"},
};

}  // namespace

std::uint32_t features_of(const Meta& m) {
  return (m.options.durability != Durability::kNone ? format::kFeatureDurability : 0) |
         (m.memory_nonce != 0 ? format::kFeatureMemoryNonce : 0) |
         // Not options: every log made or remade since they came uses them.
         (m.features & format::kFeaturesOfThisBinary);
}

std::string feature_names(std::uint32_t features) {
  std::string out;
  for (const auto& [bit, name] : kFeatureNames) {
    if ((features & bit) == 0) continue;
    if (!out.empty()) out += ',';
    out += name;
  }
  return out;
}

std::string memory_path_for(const Meta& m) {
  char buf[64];
  if (m.memory_nonce == 0) {
    std::snprintf(buf, sizeof buf, "/shmlog-%016llx", static_cast<unsigned long long>(m.log_id));
  } else {
    std::snprintf(buf, sizeof buf, "/shmlog-%016llx-%016llx", static_cast<unsigned long long>(m.log_id),
                  static_cast<unsigned long long>(m.memory_nonce));
  }
  return m.options.memory_dir + buf;
}

io::KeyValues to_meta(const Meta& m) {
  const LogOptions& o = m.options;
  char id[24];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(m.log_id));
  char mode[16];
  std::snprintf(mode, sizeof mode, "%04o", o.mode);
  io::KeyValues kv{
      {"log_id", id},
      {"format_version", std::to_string(format::kVersionMajor) + "." + std::to_string(format::kVersionMinor)},
      {"partitions", std::to_string(o.partitions)},
      {"segment_size", std::to_string(o.segment_size)},
      {"ring_segments", std::to_string(o.ring_segments)},
      {"policy", policy_name(o.policy)},
      {"max_record_size", std::to_string(o.max_record_size)},
      {"max_producers", std::to_string(o.max_producers)},
      {"max_groups", std::to_string(o.max_groups)},
      {"max_members", std::to_string(o.max_members)},
      {"claim_timeout_ms", std::to_string(o.claim_timeout.count())},
      {"mode", mode},
      {"checksums", o.checksums ? "1" : "0"},
      {"pages", shm::page_kind_name(o.pages)},
      {"memory_dir", o.memory_dir},
      {"numa_node", o.numa_node < 0 ? "none" : std::to_string(o.numa_node)},
      {"token_window", std::to_string(o.token_window)},
      {"token_window_ms", std::to_string(o.token_window_time.count())},
      {"durability", durability_name(o.durability)},
      {"fsync_interval_bytes", std::to_string(o.fsync_interval_bytes)},
      {"fsync_interval_us", std::to_string(o.fsync_interval.count())},
      {"retention_bytes", std::to_string(o.retention_bytes)},
      {"retention_ms", std::to_string(o.retention_time.count())},
  };
  if (m.memory_nonce != 0) {
    char nonce[24];
    std::snprintf(nonce, sizeof nonce, "%016llx", static_cast<unsigned long long>(m.memory_nonce));
    kv["memory_nonce"] = nonce;
  }
  kv["features"] = feature_names(features_of(m));
  return kv;
}

namespace {

Result<std::uint64_t> meta_number(const io::KeyValues& kv, const char* key, const std::string& file,
                                  int base = 10) {
  auto it = kv.find(key);
  if (it == kv.end()) return Status(Status::Code::kCorrupt, file + ": missing '" + key + "'");
  std::uint64_t v = 0;
  const char* b = it->second.data();
  const char* e = b + it->second.size();
  auto [p, ec] = std::from_chars(b, e, v, base);
  if (ec != std::errc() || p != e || b == e) {
    return Status(Status::Code::kCorrupt, file + ": '" + key + "' is not a number: " + quoted(it->second));
  }
  return v;
}

}  // namespace

Result<Meta> decode_meta(const io::KeyValues& values, const std::string& file) {
  const io::KeyValues* kv = &values;
  Meta m;
  auto num = [&](const char* key, auto* out, int base = 10) -> Status {
    auto v = meta_number(*kv, key, file, base);
    if (!v.ok()) return std::move(v).status();
    *out = static_cast<std::remove_pointer_t<decltype(out)>>(*v);
    if (static_cast<std::uint64_t>(*out) != *v) {
      return Status(Status::Code::kCorrupt, file + ": '" + key + "' is out of range");
    }
    return {};
  };
  SHMLOG_RETURN_IF_ERROR(num("log_id", &m.log_id, 16));
  // The memory's random name part came with format 2.0.
  if (kv->count("memory_nonce") != 0) {
    SHMLOG_RETURN_IF_ERROR(num("memory_nonce", &m.memory_nonce, 16));
    if (m.memory_nonce == 0) return Status(Status::Code::kCorrupt, file + ": 'memory_nonce' is 0");
  }
  auto version = kv->find("format_version");
  if (version == kv->end()) return Status(Status::Code::kCorrupt, file + ": missing 'format_version'");
  const std::string& written_as = version->second;
  std::uint32_t major = 0;
  auto [end, ec] = std::from_chars(written_as.data(), written_as.data() + written_as.size(), major);
  if (ec != std::errc() || end == written_as.data() + written_as.size() || *end != '.' ||
      major < format::kOldestMajorRead || major > format::kVersionMajor) {
    return Status(Status::Code::kVersionMismatch,
                  file + " has format version " + quoted(written_as, 16) + ", this shmlog reads " +
                      std::to_string(format::kOldestMajorRead) + ".x to " + std::to_string(format::kVersionMajor) +
                      "." + std::to_string(format::kVersionMinor));
  }
  m.version_major = major;
  // Features a log of 2.0 or later uses: one this binary does not know
  // means it may not open the log at all.
  if (auto named = kv->find("features"); named != kv->end() && !named->second.empty()) {
    std::string_view rest = named->second;
    while (!rest.empty()) {
      const std::size_t comma = rest.find(',');
      const std::string_view name = rest.substr(0, comma);
      bool known = false;
      for (const auto& [bit, known_name] : kFeatureNames) {
        if (name == known_name) {
          m.features |= bit;
          known = true;
        }
      }
      if (!known) {
        return Status(Status::Code::kVersionMismatch,
                      file + ": the log uses feature " + quoted(name, 32) + ", which this shmlog does not know (upgrade it)");
      }
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  SHMLOG_RETURN_IF_ERROR(num("partitions", &m.options.partitions));
  SHMLOG_RETURN_IF_ERROR(num("segment_size", &m.options.segment_size));
  SHMLOG_RETURN_IF_ERROR(num("ring_segments", &m.options.ring_segments));
  SHMLOG_RETURN_IF_ERROR(num("max_record_size", &m.options.max_record_size));
  SHMLOG_RETURN_IF_ERROR(num("max_producers", &m.options.max_producers));
  SHMLOG_RETURN_IF_ERROR(num("max_groups", &m.options.max_groups));
  SHMLOG_RETURN_IF_ERROR(num("max_members", &m.options.max_members));
  std::uint64_t timeout_ms = 0, checksums = 0;
  SHMLOG_RETURN_IF_ERROR(num("claim_timeout_ms", &timeout_ms));
  m.options.claim_timeout = std::chrono::milliseconds(timeout_ms);
  SHMLOG_RETURN_IF_ERROR(num("mode", &m.options.mode, 8));
  SHMLOG_RETURN_IF_ERROR(num("checksums", &checksums));
  m.options.checksums = checksums != 0;
  auto policy = kv->find("policy");
  if (policy == kv->end()) return Status(Status::Code::kCorrupt, file + ": missing 'policy'");
  if (policy->second == "overwrite") {
    m.options.policy = Policy::kOverwrite;
  } else if (policy->second == "backpressure") {
    m.options.policy = Policy::kBackpressure;
  } else {
    return Status(Status::Code::kCorrupt, file + ": unknown policy " + quoted(policy->second));
  }
  // Placement keys came with format 1.1; older logs live in /dev/shm.
  m.options.memory_dir = "/dev/shm";
  if (auto memory = kv->find("memory_dir"); memory != kv->end()) m.options.memory_dir = memory->second;
  if (auto pages = kv->find("pages"); pages != kv->end()) {
    auto kind = parse_pages(pages->second);
    if (!kind.ok()) return Status(Status::Code::kCorrupt, file + ": " + kind.status().message());
    m.options.pages = *kind;
  }
  if (auto node = kv->find("numa_node"); node != kv->end() && node->second != "none") {
    SHMLOG_RETURN_IF_ERROR(num("numa_node", &m.options.numa_node));
  }
  if (kv->count("token_window") != 0) SHMLOG_RETURN_IF_ERROR(num("token_window", &m.options.token_window));
  if (kv->count("token_window_ms") != 0) {
    std::uint64_t ms = 0;
    SHMLOG_RETURN_IF_ERROR(num("token_window_ms", &ms));
    m.options.token_window_time = std::chrono::milliseconds(ms);
  }
  // Durability keys came with format 1.2; older logs are memory-only.
  if (auto d = kv->find("durability"); d != kv->end()) {
    auto parsed = parse_durability(d->second);
    if (!parsed.ok()) return Status(Status::Code::kCorrupt, file + ": " + parsed.status().message());
    m.options.durability = *parsed;
  }
  auto duration = [&](const char* key, auto* out) -> Status {
    if (kv->count(key) == 0) return {};
    std::uint64_t v = 0;
    SHMLOG_RETURN_IF_ERROR(num(key, &v));
    *out = std::remove_pointer_t<decltype(out)>(static_cast<std::int64_t>(v));
    return {};
  };
  if (kv->count("fsync_interval_bytes") != 0) {
    SHMLOG_RETURN_IF_ERROR(num("fsync_interval_bytes", &m.options.fsync_interval_bytes));
  }
  SHMLOG_RETURN_IF_ERROR(duration("fsync_interval_us", &m.options.fsync_interval));
  if (kv->count("retention_bytes") != 0) SHMLOG_RETURN_IF_ERROR(num("retention_bytes", &m.options.retention_bytes));
  SHMLOG_RETURN_IF_ERROR(duration("retention_ms", &m.options.retention_time));
  if (m.version_major >= 2 && m.features != features_of(m)) {
    return Status(Status::Code::kCorrupt, file + ": 'features' (" + quoted(feature_names(m.features)) +
                                              ") do not match the log's options (" + feature_names(features_of(m)) + ")");
  }
  Status valid = validate(m.options);
  if (!valid.ok()) return std::move(valid).with_context(file);
  return m;
}


Result<Meta> read_meta(const std::string& dir) {
  const std::string file = dir + "/" + kMetaFile;
  // What cannot be looked at is said so, not called missing.
  auto dir_exists = io::path_exists(dir);
  if (!dir_exists.ok()) return std::move(dir_exists).status();
  if (!*dir_exists || !io::is_directory(dir)) {
    return Status(Status::Code::kNotFound, "no log at " + dir + ": not a directory");
  }
  auto file_exists = io::path_exists(file);
  if (!file_exists.ok()) return std::move(file_exists).status();
  if (!*file_exists) {
    return Status(Status::Code::kNotFound, dir + " is not a shmlog log (" + file + " is missing)");
  }
  auto kv = io::read_key_value_file(file, kMetaHeader);
  if (!kv.ok()) return std::move(kv).status();
  auto meta = decode_meta(*kv, file);
  if (!meta.ok()) return meta;
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return Status::from_errno("inspecting " + file, errno);
  meta->owner = st.st_uid;
  return meta;
}

Result<Meta> decode_meta(std::string_view text, const std::string& file) {
  auto kv = io::parse_key_values(text, kMetaHeader, file);
  if (!kv.ok()) return std::move(kv).status();
  return decode_meta(*kv, file);
}

}  // namespace shmlog::detail
