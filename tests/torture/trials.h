// The loop the torture programs share: flags, trials, the first violation.
//
//   prog [--trials N] [--seed S] [--dir D]
//
// Trial n runs with seed S + n (random S unless given), so `--seed S+n
// --trials 1` replays it.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>

namespace shmlog::torture {

struct Run {
  std::uint64_t trials = 200;
  std::uint64_t seed = static_cast<std::uint64_t>(std::random_device{}()) << 20;
  std::string dir = "/tmp";  // where trials make their logs
  double seconds = 0;        // how long the trials took
};

// Parses the flags into `run` and runs `trial(n, seed, dir)` for each
// trial, which returns what went wrong or an empty string. Returns 0 when
// every trial passed, 1 after naming the first violation (its trial and
// seed) on stderr, 2 on an unknown flag.
inline int run_trials(int argc, char** argv, Run& run,
                      const std::function<std::string(std::uint64_t, std::uint64_t, const std::string&)>& trial) {
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : "";
    if (flag == "--trials") {
      run.trials = std::strtoull(value, nullptr, 10);
    } else if (flag == "--seed") {
      run.seed = std::strtoull(value, nullptr, 10);
    } else if (flag == "--dir") {
      run.dir = value;
    } else {
      std::fprintf(stderr, "%s: unknown flag %s\n", argv[0], flag.c_str());
      return 2;
    }
  }
  const auto started = std::chrono::steady_clock::now();
  for (std::uint64_t n = 0; n < run.trials; ++n) {
    const std::string error = trial(n, run.seed + n, run.dir);
    if (!error.empty()) {
      std::fprintf(stderr, "trial %llu (--seed %llu --trials 1): %s\n", static_cast<unsigned long long>(n),
                   static_cast<unsigned long long>(run.seed + n), error.c_str());
      return 1;
    }
  }
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return 0;
}

}  // namespace shmlog::torture
