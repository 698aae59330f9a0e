#include "report.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

#include "shmlog/shm/process.h"

namespace shmlog::bench {
namespace {

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// Number of values at or below `value`.
std::uint64_t count_at_or_below(const Histogram& h, std::uint64_t value) {
  std::uint64_t n = 0;
  const unsigned last = Histogram::index_of(value);
  for (unsigned i = 0; i <= last; ++i) n += h.count_at_index(i);
  return n;
}

const LatencyRow* find(const std::vector<LatencyRow>& rows, const std::string& name, const std::string& kind_prefix) {
  for (const auto& r : rows) {
    if (r.name == name && r.kind.rfind(kind_prefix, 0) == 0) return &r;
  }
  return nullptr;
}

}  // namespace

std::string latency_table(const std::vector<LatencyRow>& rows) {
  std::ostringstream out;
  char line[256];
  std::snprintf(line, sizeof line, "%-22s %-34s %9s %8s %8s %8s %8s %8s %8s %9s\n", "", "(ns)", "count", "p50", "p90",
                "p99", "p99.9", "p99.99", "p99.999", "max");
  out << line;
  for (const auto& r : rows) {
    std::snprintf(line, sizeof line, "%-22s %-34s %9llu", r.name.c_str(),
                  (r.kind + (r.processes ? "" : ", threads")).c_str(),
                  static_cast<unsigned long long>(r.histogram.count()));
    out << line;
    for (double p : kPercentiles) {
      std::snprintf(line, sizeof line, " %8llu", static_cast<unsigned long long>(r.histogram.percentile(p)));
      out << line;
    }
    std::snprintf(line, sizeof line, " %9llu\n", static_cast<unsigned long long>(r.histogram.max()));
    out << line;
  }
  const LatencyRow* mine = find(rows, "shmlog", "round trip");
  if (mine != nullptr && mine->histogram.count() > 0) {
    out << "\nshmlog round trip p50 against each baseline's (same size, same cores, same run):\n";
    const double ours = static_cast<double>(mine->histogram.percentile(50));
    for (const auto& r : rows) {
      if (r.name == "shmlog" || r.histogram.count() == 0) continue;
      const double theirs = static_cast<double>(r.histogram.percentile(50));
      if (theirs >= ours) {
        out << "  " << fmt("%.1fx faster", theirs / ours) << " than " << r.name << "\n";
      } else {
        out << "  " << fmt("%.2fx", ours / theirs) << " the time of " << r.name << "\n";
      }
    }
  }
  return out.str();
}

nlohmann::ordered_json latency_json(const std::vector<LatencyRow>& rows, nlohmann::ordered_json header) {
  auto& out = header["rows"] = nlohmann::ordered_json::array();
  for (const auto& r : rows) {
    nlohmann::ordered_json percentiles = nlohmann::ordered_json::object();
    for (double p : kPercentiles) percentiles[fmt("%g", p)] = r.histogram.percentile(p);
    out.push_back(nlohmann::ordered_json{{"name", r.name},
                                         {"kind", r.kind},
                                         {"processes", r.processes},
                                         {"count", r.histogram.count()},
                                         {"unit", "ns"},
                                         {"percentiles", std::move(percentiles)},
                                         {"max", r.histogram.max()},
                                         {"mean", std::round(r.histogram.mean() * 10) / 10}});
  }
  return header;
}

namespace {

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::pair<double, double> medians(const std::vector<FloorRatio>& rounds) {
  std::vector<double> p50, p9999;
  for (const auto& r : rounds) {
    p50.push_back(r.p50);
    p9999.push_back(r.p9999);
  }
  return {median_of(p50), median_of(p9999)};
}

}  // namespace

std::string floor_rounds_table(const std::vector<FloorRatio>& rounds, const std::string& compared) {
  std::ostringstream out;
  out << compared << ", per round:\n";
  char line[128];
  for (std::size_t i = 0; i < rounds.size(); ++i) {
    std::snprintf(line, sizeof line, "  round %zu: p50 %.2fx, p99.99 %.2fx\n", i + 1, rounds[i].p50, rounds[i].p9999);
    out << line;
  }
  const auto [p50, p9999] = medians(rounds);
  std::snprintf(line, sizeof line, "  median of the rounds: p50 %.2fx, p99.99 %.2fx\n", p50, p9999);
  out << line;
  return out.str();
}

nlohmann::ordered_json floor_rounds_json(const std::vector<FloorRatio>& rounds, const std::string& compared) {
  nlohmann::ordered_json out{{"compared", compared}, {"rounds", nlohmann::ordered_json::array()}};
  for (const auto& r : rounds) out["rounds"].push_back({{"p50", r.p50}, {"p99.99", r.p9999}});
  const auto [p50, p9999] = medians(rounds);
  out["median"] = {{"p50", p50}, {"p99.99", p9999}};
  return out;
}

std::string hdr_percentile_distribution(const Histogram& h) {
  std::ostringstream out;
  char line[128];
  out << "       Value     Percentile TotalCount 1/(1-Percentile)\n\n";
  const std::uint64_t total = h.count();
  if (total == 0) return out.str();
  constexpr double kTicksPerHalfDistance = 5;
  // The loop ends at the level whose value holds every count (the max).
  double level = 0;
  for (;;) {
    const std::uint64_t value = h.percentile(level == 0 ? 0.0 : level);
    const std::uint64_t below = count_at_or_below(h, value);
    if (below >= total) {
      std::snprintf(line, sizeof line, "%12.3f %1.12f %10llu\n", static_cast<double>(h.max()) / 1000.0, 1.0,
                    static_cast<unsigned long long>(total));
      out << line;
      break;
    }
    std::snprintf(line, sizeof line, "%12.3f %1.12f %10llu %14.2f\n", static_cast<double>(value) / 1000.0,
                  level / 100.0, static_cast<unsigned long long>(below), 1.0 / (1.0 - level / 100.0));
    out << line;
    // HdrHistogram's percentile iteration: ticks double each half distance to 100%.
    const double half_distances = std::floor(std::log2(100.0 / (100.0 - level))) + 1;
    level += 100.0 / (kTicksPerHalfDistance * std::pow(2.0, half_distances));
  }
  double sum_sq = 0;
  const double mean = h.mean();
  for (unsigned i = 0; i < Histogram::kBuckets; ++i) {
    if (h.count_at_index(i) == 0) continue;
    const double d = static_cast<double>(Histogram::lowest_equivalent(i)) - mean;
    sum_sq += d * d * static_cast<double>(h.count_at_index(i));
  }
  std::snprintf(line, sizeof line, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", mean / 1000.0,
                std::sqrt(sum_sq / static_cast<double>(total)) / 1000.0);
  out << line;
  std::snprintf(line, sizeof line, "#[Max     = %12.3f, Total count    = %12llu]\n", static_cast<double>(h.max()) / 1000.0,
                static_cast<unsigned long long>(total));
  out << line;
  std::snprintf(line, sizeof line, "#[Buckets = %12u, SubBuckets     = %12u]\n", Histogram::kMaxShift + 1,
                1u << (Histogram::kSubBits + 1));
  out << line;
  return out.str();
}

Status write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  if (!f) return Status(Status::Code::kIoError, "cannot write " + path);
  f << text;
  f.close();
  if (!f) return Status(Status::Code::kIoError, "cannot write " + path);
  return {};
}

Status plot_png(const std::string& png, const std::vector<LatencyRow>& rows, const std::string& title) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    return Status(Status::Code::kNotFound, "--plot needs gnuplot (apt-get install gnuplot-nox)");
  }
  const std::string base = "/tmp/shmlog-plot-" + std::to_string(shm::self().pid);
  std::ostringstream script;
  script << "set terminal pngcairo size 1100,650 noenhanced font 'DejaVu Sans,10'\n"
         << "set output '" << png << "'\n"
         << "set title '" << title << "'\n"
         << "set logscale x\nset logscale y\n"
         << "set xlabel 'percentile'\nset ylabel 'latency (ns)'\n"
         // Tic labels are formats to gnuplot: %% prints a percent sign.
         << "set xtics ('0%%' 1, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, '99.999%%' 100000, "
            "'99.9999%%' 1000000)\n"
         << "set grid\nset key top left\nplot ";
  std::vector<std::string> files;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    if (r.histogram.count() == 0) continue;
    const std::string file = base + "-" + std::to_string(i) + ".hgrm";
    SHMLOG_RETURN_IF_ERROR(write_file(file, hdr_percentile_distribution(r.histogram)));
    files.push_back(file);
    // Columns: value in us (x1000 back to ns) against 1/(1-percentile).
    script << (files.size() > 1 ? ", " : "") << "'" << file
           << "' every ::2 using 4:($1*1000) with lines lw 2 title '" << r.name << " " << r.kind << "'";
  }
  script << "\n";
  const std::string script_file = base + ".gp";
  SHMLOG_RETURN_IF_ERROR(write_file(script_file, script.str()));
  const int rc = std::system(("gnuplot '" + script_file + "' 2>" + base + ".err").c_str());
  std::string err;
  {
    std::ifstream e(base + ".err");
    std::getline(e, err);
  }
  for (const auto& f : files) std::remove(f.c_str());
  std::remove(script_file.c_str());
  std::remove((base + ".err").c_str());
  if (rc != 0) return Status(Status::Code::kIoError, "gnuplot failed to write " + png + ": " + err);
  return {};
}

}  // namespace shmlog::bench
