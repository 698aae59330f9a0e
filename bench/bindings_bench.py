#!/usr/bin/python3
"""append+poll of 32-byte records through Python, next to the C++ and C
APIs measured in the same run (by shmlog_bench).

  PYTHONPATH=build/test/bindings/python bench/bindings_bench.py build/test/bench/shmlog_bench
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import shmlog


def python_ns_per_record(n=200_000):
    path = os.path.join(tempfile.mkdtemp(prefix="shmlog-pybench-"), "log")
    log = shmlog.Log.create(path)
    try:
        p = log.producer(exclusive=True)
        c = log.consumer()
        value = bytes(32)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter_ns()
            for _ in range(n):
                p.append(value)
                c.poll(1)
            best = min(best, (time.perf_counter_ns() - t0) / n)
        return best
    finally:
        shmlog.Log.delete(path)


def cpp_and_c(bench):
    out = subprocess.run([bench, "--benchmark_filter=^BM_(CppAppendPollSharedMemory|CApiAppendPoll)$",
                          "--benchmark_min_time=0.5", "--benchmark_format=json"],
                         capture_output=True, check=True, text=True).stdout
    return {b["name"]: b["real_time"] for b in json.loads(out)["benchmarks"]}


if __name__ == "__main__":
    rows = cpp_and_c(sys.argv[1])
    rows["Python"] = python_ns_per_record()
    cpp = rows["BM_CppAppendPollSharedMemory"]
    for name, ns in rows.items():
        print(f"{name:32s} {ns:8.1f} ns per append+poll  ({ns / cpp:.2f}x C++)")
