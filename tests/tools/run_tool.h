// Runs the shmlog command of this build (SHMLOG_CLI_PATH) as a process of
// its own, for the tests of its subcommands.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "shmlog/shm/process.h"
#include "test_util.h"

namespace shmlog::test {

struct Outcome {
  int code = 0;  // exit code, 128 + signal, or -1: still running at the deadline (killed)
  std::string out, err;
};

inline std::string contents(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Runs the shmlog command with `args`, stdin from `input` (a file), its
// output kept in `work`.out and .err; kills it after `patience`.
inline Outcome run_tool(const std::vector<std::string>& args, const std::string& input, const std::string& work,
                        std::chrono::milliseconds patience) {
  const std::string out_file = work + ".out", err_file = work + ".err";
  std::vector<std::string> argv_text{SHMLOG_CLI_PATH};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  const auto pid = test::spawn([&] {
    std::vector<char*> argv;
    for (auto& a : argv_text) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int in = ::open(input.c_str(), O_RDONLY | O_CLOEXEC);
    const int out = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const int err = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (in < 0 || out < 0 || err < 0 || ::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) return 97;
    ::execv(argv[0], argv.data());
    return 98;
  });
  Outcome o;
  o.code = shm::wait_process_for(pid, patience);
  if (o.code == -1) {
    shm::kill_process(pid);
    (void)shm::wait_process(pid);
  }
  o.out = contents(out_file);
  o.err = contents(err_file);
  return o;
}

}  // namespace shmlog::test
