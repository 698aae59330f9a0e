// Reports of latency histograms: the percentile table, JSON, the
// HdrHistogram percentile-distribution text format and a gnuplot PNG.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

#include "latency.h"
#include "shmlog/histogram.h"
#include "shmlog/status.h"

namespace shmlog::bench {

inline constexpr double kPercentiles[] = {50, 90, 99, 99.9, 99.99, 99.999};

// A table with one row per histogram (values in ns) and, below it, the
// ratios of shmlog's round trip p50 to each baseline's.
std::string latency_table(const std::vector<LatencyRow>& rows);
// `header`'s keys, then "rows": one object per histogram (values in ns;
// the mean rounded to 0.1 ns).
nlohmann::ordered_json latency_json(const std::vector<LatencyRow>& rows, nlohmann::ordered_json header);
// Each round's shmlog p50 and p99.99 over the floor's (FloorRatio), and
// their medians, under `compared` (LatencyRun::floor_compared).
std::string floor_rounds_table(const std::vector<FloorRatio>& rounds, const std::string& compared);
nlohmann::ordered_json floor_rounds_json(const std::vector<FloorRatio>& rounds, const std::string& compared);
// HdrHistogram's percentile distribution (as outputPercentileDistribution
// writes it, 5 ticks per half distance), values in microseconds.
std::string hdr_percentile_distribution(const Histogram& h);
Status write_file(const std::string& path, const std::string& text);
// Renders the rows' percentile curves on a log "1 in N" axis with gnuplot.
Status plot_png(const std::string& png, const std::vector<LatencyRow>& rows, const std::string& title);

}  // namespace shmlog::bench
