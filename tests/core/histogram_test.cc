#include "shmlog/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace shmlog {
namespace {

TEST(Histogram, SmallValuesAreExact) {
  Histogram h;
  for (std::uint64_t v = 1; v <= 100; ++v) h.record(v);
  EXPECT_EQ(h.percentile(50), 50u);
  EXPECT_EQ(h.percentile(100), 100u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.count(), 100u);
}

TEST(Histogram, PercentilesAreWithinOnePercentOfExact) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(8.0, 2.0);
  std::vector<std::uint64_t> values;
  Histogram h;
  for (int i = 0; i < 200000; ++i) {
    auto v = static_cast<std::uint64_t>(dist(rng)) + 1;
    values.push_back(v);
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  for (double p : {50.0, 90.0, 99.0, 99.9, 99.99}) {
    auto rank = static_cast<std::size_t>(p / 100.0 * values.size() + 0.5);
    std::uint64_t exact = values[std::max<std::size_t>(rank, 1) - 1];
    std::uint64_t approx = h.percentile(p);
    EXPECT_GE(approx, exact) << p;
    EXPECT_LE(static_cast<double>(approx), static_cast<double>(exact) * 1.01 + 1) << p;
  }
  EXPECT_EQ(h.percentile(100), values.back());
}

TEST(Histogram, IndexBoundsRoundTrip) {
  for (unsigned i = 0; i < Histogram::kBuckets; ++i) {
    EXPECT_EQ(Histogram::index_of(Histogram::lowest_equivalent(i)), i);
    EXPECT_EQ(Histogram::index_of(Histogram::highest_equivalent(i)), i);
  }
}

TEST(Histogram, MergeAddsCounts) {
  Histogram a, b;
  a.record(10);
  b.record(1000);
  b.record(1000);
  a.merge(b);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_EQ(a.max(), 1000u);
  EXPECT_EQ(a.min(), 10u);
}

}  // namespace
}  // namespace shmlog
