// The meta file (shmlog.meta): a log's options and id, written once by
// create, read by every open. key=value lines (io/files.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "format.h"
#include "shmlog/io/files.h"
#include "shmlog/log.h"

namespace shmlog::detail {

inline constexpr const char* kMetaFile = "shmlog.meta";
inline constexpr const char* kMetaHeader = "shmlog-log 1";

struct Meta {
  LogOptions options;
  std::uint64_t log_id = 0;
  // The random part of the shared memory's name, new each time the memory
  // is made (0: a log from before names had one). Kept only here (the
  // file has the log's mode), so another user cannot plant an object at
  // the next name; the header holds it too, and an opener compares them.
  std::uint64_t memory_nonce = 0;
  std::uint32_t owner = 0;  // uid of the meta file (not encoded): who made the memory
  std::uint32_t version_major = format::kVersionMajor;  // of the format the file was written in
  std::uint32_t features = 0;       // format::kFeature* the log uses (`features`, 2.0)
};

// The features a log of these options made now uses.
std::uint32_t features_of(const Meta& m);
// "durability,memory_nonce"
std::string feature_names(std::uint32_t features);

const char* policy_name(Policy p);
io::KeyValues to_meta(const Meta& m);
// <memory_dir>/shmlog-<log id>-<nonce> (or without the nonce when it is 0).
std::string memory_path_for(const Meta& m);
// A random 64-bit number, never 0 (log ids and nonces).
std::uint64_t random_nonzero();

// The log in directory `dir`: kNotFound when there is none, "permission
// denied" naming the path when that cannot be told.
Result<Meta> read_meta(const std::string& dir);
// Decodes and validates the meta file's contents (`file` names it in
// errors); whatever the bytes, a Meta that passes validate() or an error.
Result<Meta> decode_meta(const io::KeyValues& values, const std::string& file);
Result<Meta> decode_meta(std::string_view text, const std::string& file);

}  // namespace shmlog::detail
