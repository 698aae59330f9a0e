// A log-linear latency histogram in the manner of HdrHistogram: values up
// to 2^42 ns with a relative error below 1/128 (< 1%). Fixed size and
// trivially copyable, so it can live in shared memory and be merged.
#pragma once

#include <array>
#include <cstdint>
#include <type_traits>

namespace shmlog {

class Histogram {
 public:
  static constexpr unsigned kSubBits = 7;                   // 128 sub-buckets per octave
  static constexpr unsigned kLinear = 2u << kSubBits;       // values below 256 are exact
  static constexpr unsigned kMaxShift = 42 - kSubBits - 1;  // largest shift
  static constexpr unsigned kBuckets = kLinear + kMaxShift * (1u << kSubBits);

  void record(std::uint64_t value) noexcept { record_n(value, 1); }
  void record_n(std::uint64_t value, std::uint64_t n) noexcept {
    counts_[index_of(value)] += n;
    total_ += n;
    if (value > max_) max_ = value;
    if (value < min_) min_ = value;
  }
  void merge(const Histogram& other) noexcept {
    for (unsigned i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
    if (other.max_ > max_) max_ = other.max_;
    if (other.min_ < min_) min_ = other.min_;
  }
  void reset() noexcept { *this = Histogram(); }

  std::uint64_t count() const noexcept { return total_; }
  std::uint64_t max() const noexcept { return max_; }
  std::uint64_t min() const noexcept { return total_ ? min_ : 0; }
  // The smallest value v such that at least `percentile`% of the recorded
  // values are <= v (reported as its bucket's upper bound, capped at max).
  std::uint64_t percentile(double percentile) const noexcept {
    if (total_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(percentile / 100.0 * static_cast<double>(total_) + 0.5);
    if (rank < 1) rank = 1;
    if (rank > total_) rank = total_;
    std::uint64_t seen = 0;
    for (unsigned i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        std::uint64_t upper = highest_equivalent(i);
        return upper < max_ ? upper : max_;
      }
    }
    return max_;
  }
  double mean() const noexcept {
    if (total_ == 0) return 0;
    double sum = 0;
    for (unsigned i = 0; i < kBuckets; ++i) {
      if (counts_[i] != 0) sum += static_cast<double>(counts_[i]) * static_cast<double>(lowest_equivalent(i));
    }
    return sum / static_cast<double>(total_);
  }
  std::uint64_t count_at_index(unsigned i) const noexcept { return counts_[i]; }

  static unsigned index_of(std::uint64_t v) noexcept {
    if (v < kLinear) return static_cast<unsigned>(v);
    unsigned shift = 63u - static_cast<unsigned>(__builtin_clzll(v)) - kSubBits;  // v >> shift in [128, 256)
    if (shift > kMaxShift) return kBuckets - 1;
    return kLinear + (shift - 1) * (1u << kSubBits) + static_cast<unsigned>((v >> shift) - (1u << kSubBits));
  }
  static std::uint64_t lowest_equivalent(unsigned i) noexcept {
    if (i < kLinear) return i;
    unsigned shift = (i - kLinear) / (1u << kSubBits) + 1;
    std::uint64_t sub = (i - kLinear) % (1u << kSubBits) + (1u << kSubBits);
    return sub << shift;
  }
  static std::uint64_t highest_equivalent(unsigned i) noexcept {
    if (i < kLinear) return i;
    unsigned shift = (i - kLinear) / (1u << kSubBits) + 1;
    return lowest_equivalent(i) + (std::uint64_t{1} << shift) - 1;
  }

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
  std::uint64_t min_ = UINT64_MAX;
};
static_assert(std::is_trivially_copyable_v<Histogram>);

}  // namespace shmlog
