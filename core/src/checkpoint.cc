#include "checkpoint.h"

#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <limits>
#include <optional>
#include <set>

#include "format.h"
#include "shmlog/status.h"

namespace shmlog::detail {
namespace {

std::string hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

// Any bytes, two lowercase hex digits each, at most `limit` of them.
std::optional<std::string> unhex(std::string_view text, std::size_t limit) {
  if (text.size() % 2 != 0 || text.size() / 2 > limit) return std::nullopt;
  auto value = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < text.size(); i += 2) {
    const int hi = value(text[i]), lo = value(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi << 4 | lo);
  }
  return out;
}

// A name as the slots hold it: 1..63 bytes, no NUL.
std::optional<std::string> unhex_name(std::string_view text) {
  auto name = unhex(text, format::kNameCapacity - 1);
  if (!name || name->empty() || name->find('\0') != std::string::npos) return std::nullopt;
  return name;
}

std::optional<std::uint64_t> number(std::string_view text, int base = 10) {
  std::uint64_t v = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v, base);
  if (ec != std::errc() || p != end || text.empty()) return std::nullopt;
  return v;
}

// Comma-separated decimal numbers; nothing when any is not one.
std::optional<std::vector<std::uint64_t>> numbers(std::string_view text) {
  std::vector<std::uint64_t> out;
  for (;;) {
    const std::size_t comma = text.find(',');
    auto v = number(text.substr(0, comma));
    if (!v) return std::nullopt;
    out.push_back(*v);
    if (comma == std::string_view::npos) return out;
    text.remove_prefix(comma + 1);
  }
}

// The slot number after `prefix` in `key` up to `suffix`, if below `limit`.
std::optional<std::uint32_t> slot_in(std::string_view key, std::string_view prefix, std::string_view suffix,
                                     std::uint32_t limit) {
  if (!key.starts_with(prefix) || !key.ends_with(suffix) || key.size() < prefix.size() + suffix.size()) {
    return std::nullopt;
  }
  const std::string_view digits = key.substr(prefix.size(), key.size() - prefix.size() - suffix.size());
  if (digits.size() > 1 && digits[0] == '0') return std::nullopt;  // one spelling per slot
  auto v = number(digits);
  if (!v || *v >= limit) return std::nullopt;
  return static_cast<std::uint32_t>(*v);
}

}  // namespace

io::KeyValues encode_checkpoint(const Checkpoint& c) {
  io::KeyValues kv;
  char id[24];
  std::snprintf(id, sizeof id, "%016" PRIx64, c.log_id);
  kv["log_id"] = id;
  for (const auto& g : c.groups) {
    const std::string key = "group." + std::to_string(g.slot);
    kv[key] = hex(g.name);
    std::string offsets;
    for (std::size_t p = 0; p < g.offsets.size(); ++p) {
      if (p != 0) offsets += ',';
      offsets += std::to_string(g.offsets[p]);
    }
    kv[key + ".offsets"] = offsets;
  }
  for (std::size_t p = 0; p < c.durable.size(); ++p) {
    kv["partition." + std::to_string(p) + ".durable"] = std::to_string(c.durable[p]);
    if (p < c.start.size() && c.start[p] != UINT64_MAX) {
      kv["partition." + std::to_string(p) + ".start"] = std::to_string(c.start[p]);
    }
  }
  for (std::size_t p = 0; p < c.appended.size(); ++p) {
    kv["appended." + std::to_string(p)] =
        std::to_string(c.appended[p].appends) + "," + std::to_string(c.appended[p].bytes);
  }
  for (const auto& e : c.producers) {
    kv["producer." + std::to_string(e.slot)] =
        hex(e.name) + "," + std::to_string(e.epoch) + "," + std::to_string(e.first_epoch) + "," +
        std::to_string(e.next_sequence) + "," + std::to_string(e.txn_word) + "," + std::to_string(e.txn_timeout_ms) +
        "," + std::to_string(e.txn_changed_ns);
    if (e.has_offsets) {
      kv["producer." + std::to_string(e.slot) + ".offsets"] = std::to_string(e.offsets_epoch) + "," + hex(e.offsets);
    }
  }
  return kv;
}

Result<Checkpoint> decode_checkpoint(const io::KeyValues& values, const LogOptions& options, const std::string& file) {
  Checkpoint c;
  c.durable.assign(options.partitions, 0);
  c.start.assign(options.partitions, UINT64_MAX);
  auto bad = [&](const std::string& key, const char* why) {
    return Status(Status::Code::kCorrupt, file + ": entry " + quoted(key, 40) + " " + why);
  };
  for (const auto& [key, value] : values) {
    if (key == "log_id") {
      auto id = number(value, 16);
      if (!id || value.size() != 16) return bad(key, "is not a 16-digit hex log id");
      c.log_id = *id;
    } else if (key.starts_with("partition.")) {
      const bool start = key.ends_with(".start");
      auto p = slot_in(key, "partition.", start ? ".start" : ".durable", options.partitions);
      if (!p) return bad(key, "names no partition of this log");
      auto v = number(value);
      if (!v || *v == UINT64_MAX) return bad(key, "is not a position");
      (start ? c.start : c.durable)[*p] = *v;
    } else if (key.starts_with("appended.")) {
      auto p = slot_in(key, "appended.", "", options.partitions);
      if (!p) return bad(key, "names no partition of this log");
      auto n = numbers(value);
      if (!n || n->size() != 2) return bad(key, "is not two counts (records,bytes)");
      c.appended.resize(options.partitions);
      c.appended[*p] = {(*n)[0], (*n)[1]};
    } else if (key.starts_with("group.")) {
      if (key.ends_with(".offsets")) {
        if (!slot_in(key, "group.", ".offsets", options.max_groups)) return bad(key, "names no group slot");
        continue;  // read with its group
      }
      auto g = slot_in(key, "group.", "", options.max_groups);
      if (!g) return bad(key, "names no group slot");
      Checkpoint::Group group;
      group.slot = *g;
      auto name = unhex_name(value);
      if (!name) return bad(key, "has no valid group name");
      group.name = std::move(*name);
      auto offsets = values.find(key + ".offsets");
      if (offsets == values.end()) return bad(key, "has no offsets");
      auto list = numbers(offsets->second);
      if (!list || list->size() != options.partitions) return bad(key, "has offsets not one per partition");
      group.offsets = std::move(*list);
      c.groups.push_back(std::move(group));
    } else if (key.starts_with("producer.")) {
      if (key.ends_with(".offsets")) {
        if (!slot_in(key, "producer.", ".offsets", options.max_producers)) return bad(key, "names no producer slot");
        if (values.count(key.substr(0, key.size() - 8)) == 0) return bad(key, "belongs to no producer entry");
        continue;  // read with its producer
      }
      auto slot = slot_in(key, "producer.", "", options.max_producers);
      if (!slot) return bad(key, "names no producer slot");
      const std::size_t comma = value.find(',');
      auto name = unhex_name(std::string_view(value).substr(0, comma));
      if (!name) return bad(key, "has no valid producer name");
      auto n = comma == std::string::npos ? std::nullopt : numbers(std::string_view(value).substr(comma + 1));
      if (!n || n->size() != 6) return bad(key, "does not have six numbers after the name");
      const auto& v = *n;
      constexpr auto kU16 = std::numeric_limits<std::uint16_t>::max();
      if (v[0] > kU16 || v[1] > kU16 || v[4] > std::numeric_limits<std::uint32_t>::max()) {
        return bad(key, "has a number out of range");
      }
      Checkpoint::Producer e;
      e.slot = *slot;
      e.name = std::move(*name);
      e.epoch = static_cast<std::uint16_t>(v[0]);
      e.first_epoch = static_cast<std::uint16_t>(v[1]);
      e.next_sequence = v[2];
      e.txn_word = v[3];
      e.txn_timeout_ms = static_cast<std::uint32_t>(v[4]);
      e.txn_changed_ns = v[5];
      if (auto kept = values.find(key + ".offsets"); kept != values.end()) {
        const std::string_view text = kept->second;
        const std::size_t at = text.find(',');
        auto epoch = at == std::string_view::npos ? std::nullopt : number(text.substr(0, at));
        if (!epoch || *epoch > kU16) return bad(kept->first, "has no epoch before its offsets");
        auto bytes = unhex(text.substr(at + 1), sizeof format::OffsetsBuffer::bytes);
        if (!bytes || bytes->empty()) return bad(kept->first, "has no offsets of at most 1008 bytes in hex");
        e.has_offsets = true;
        e.offsets_epoch = static_cast<std::uint16_t>(*epoch);
        e.offsets = std::move(*bytes);
      }
      c.producers.push_back(std::move(e));
    }
  }
  // Names are unique among the slots, as the slots keep them.
  std::set<std::string> names;
  for (const auto& g : c.groups) {
    if (!names.insert(g.name).second) return bad("group." + std::to_string(g.slot), "repeats a group name");
  }
  names.clear();
  for (const auto& e : c.producers) {
    if (!names.insert(e.name).second) return bad("producer." + std::to_string(e.slot), "repeats a producer name");
  }
  return c;
}

Result<Checkpoint> decode_checkpoint(std::string_view text, const LogOptions& options, const std::string& file) {
  auto kv = io::parse_key_values(text, kStateHeader, file);
  if (!kv.ok()) return std::move(kv).status();
  return decode_checkpoint(*kv, options, file);
}

// The checkpoint file, if there is one.
// The checkpoint file of the log in `dir` (none when there is none).
Result<std::optional<Checkpoint>> read_checkpoint(const std::string& dir, const LogOptions& options,
                                                   std::uint64_t log_id) {
  const std::string file = dir + "/" + kStateFile;
  if (!io::file_exists(file)) return std::optional<Checkpoint>();
  auto kv = io::read_key_value_file(file, kStateHeader);
  if (!kv.ok()) return std::move(kv).status();
  auto c = decode_checkpoint(*kv, options, file);
  if (!c.ok()) return std::move(c).status();
  if (c->log_id != 0 && c->log_id != log_id) {
    return Status(Status::Code::kCorrupt, file + " belongs to another log (its log id is not this log's)");
  }
  return std::optional<Checkpoint>(std::move(c).value());
}

// Restores a checkpoint into fresh memory (no process attached yet), and
// gives each partition's checkpointed durable position (0 when absent) and
// retained start (UINT64_MAX when absent).
Status restore_checkpoint(LogState& s, std::vector<std::uint64_t>& durable, std::vector<std::uint64_t>& start) {
  durable.assign(s.options.partitions, 0);
  start.assign(s.options.partitions, UINT64_MAX);
  auto read = read_checkpoint(s.path, s.options, s.header->log_id);
  if (!read.ok()) return std::move(read).status();
  if (!*read) return {};
  const Checkpoint& c = **read;
  durable = c.durable;
  start = c.start;
  // Counting goes on from the checkpoint's totals (what was appended after
  // it is not counted again: recovery does not count records).
  for (std::size_t p = 0; p < c.appended.size(); ++p) {
    s.partition(static_cast<std::uint32_t>(p)).appends_before_total = c.appended[p].appends;
    s.partition(static_cast<std::uint32_t>(p)).bytes_before_total = c.appended[p].bytes;
  }
  const auto active = static_cast<std::uint32_t>(format::SlotState::kActive);
  for (const auto& g : c.groups) {
    auto& group = s.group(g.slot);
    std::memcpy(group.name, g.name.data(), g.name.size());
    group.created_ns = now_realtime_ns();
    for (std::uint32_t p = 0; p < s.options.partitions; ++p) s.offset_slot(p, g.slot).committed_offset = g.offsets[p];
    group.state = active;
  }
  for (const auto& e : c.producers) {
    auto& slot = s.producer_slot(e.slot);
    std::memcpy(slot.name, e.name.data(), e.name.size());
    slot.flags = format::kProducerIdempotent;
    slot.epoch = e.epoch;
    slot.first_epoch = e.first_epoch;
    slot.last_sequence_plus_one = e.next_sequence;
    slot.txn_word = e.txn_word;  // an open transaction is aborted by its first reader (no process holds it)
    slot.txn_timeout_ms = e.txn_timeout_ms;
    slot.txn_changed_ns = e.txn_changed_ns;
    if (format::OffsetsBuffer* buffers = s.offsets_buffers(e.slot); buffers != nullptr && e.has_offsets) {
      buffers[0].epoch = e.offsets_epoch;
      buffers[0].length = static_cast<std::uint32_t>(e.offsets.size());  // at most 1008: the decoder checked
      std::memcpy(buffers[0].bytes, e.offsets.data(), e.offsets.size());
      slot.committed_offsets_buffer = 1;
    }
  }
  return {};
}

}  // namespace shmlog::detail
