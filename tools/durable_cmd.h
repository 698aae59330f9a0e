// Commands for durable logs: `shmlog keeper`, `dump`, `verify`, `repair`.
#pragma once

#include <csignal>
#include <cstdint>
#include <string>

namespace shmlog::tools {

int run_keeper(const std::string& log, int core, volatile std::sig_atomic_t* interrupted);
// Decodes one segment file: a line per record (offset, timestamp, producer,
// length, CRC status), then where it is torn or damaged.
int run_dump(const std::string& file, bool values);
// Checks every segment file of a log; exit 0 when all are clean, 1 when
// any is torn or damaged (each problem named with its offsets).
int run_verify(const std::string& log);
// Cuts torn tails (zeroes them) and says what it removed.
int run_repair(const std::string& log);

}  // namespace shmlog::tools
