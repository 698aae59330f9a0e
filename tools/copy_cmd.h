// `shmlog copy`: consume-process-produce from one log into another, exactly
// once, with transactions.
#pragma once

#include <csignal>
#include <cstdint>
#include <string>

namespace shmlog::tools {

struct CopyArgs {
  std::string in;
  std::string out;
  std::string group;
  std::string transactional_id;
  std::uint32_t transaction_size = 256;  // records per transaction
  std::int64_t idle_timeout_ms = -1;     // >= 0: exit when nothing arrived for this long
  std::string prefix;                    // the "processing": prepended to each value
};

int run_copy(const CopyArgs& args, volatile std::sig_atomic_t* interrupted);

}  // namespace shmlog::tools
