// The meta file (shmlog.meta): a log's options and id, written once by
// create, read by every open. key=value lines (io/files.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "shmlog/io/files.h"
#include "shmlog/log.h"

namespace shmlog::detail {

inline constexpr const char* kMetaFile = "shmlog.meta";
inline constexpr const char* kMetaHeader = "shmlog-log 1";

struct Meta {
  LogOptions options;
  std::uint64_t log_id = 0;
};

const char* policy_name(Policy p);
io::KeyValues to_meta(const LogOptions& o, std::uint64_t log_id);

// The log in directory `dir`: kNotFound when there is none, "permission
// denied" naming the path when that cannot be told.
Result<Meta> read_meta(const std::string& dir);
// Decodes and validates the meta file's contents (`file` names it in
// errors); whatever the bytes, a Meta that passes validate() or an error.
Result<Meta> decode_meta(const io::KeyValues& values, const std::string& file);
Result<Meta> decode_meta(std::string_view text, const std::string& file);

}  // namespace shmlog::detail
