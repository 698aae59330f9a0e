// Facts about the host that decide whether a latency figure can be trusted.
#pragma once

#include <string>
#include <vector>

namespace shmlog::bench {

// Warnings for running pinned to `cores` (empty when all is well): cores
// that do not exist, hyperthread siblings, a frequency governor other than
// "performance", a TSC that is not invariant.
std::vector<std::string> host_warnings(const std::vector<int>& cores, bool tsc_usable);
// One line describing the machine, for reports.
std::string host_summary();

}  // namespace shmlog::bench
