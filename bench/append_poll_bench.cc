// Microbenchmarks of the hot path, each next to a baseline from the same
// run: memcpy of the same bytes, and moodycamel::ConcurrentQueue.
//   build/test/bench/shmlog_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <concurrentqueue/concurrentqueue.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <optional>
#include <string>

#include <unistd.h>
#include <thread>
#include <utility>
#include <vector>

#include "shmlog.h"
#include "shmlog/log.h"

namespace {

using shmlog::Bytes;

// The default ring (16 x 4 MiB, larger than this machine's L3), or a small
// one that stays in L2 (4 x 128 KiB): the difference is memory traffic.
shmlog::LogOptions bench_options(bool small_ring = false) {
  shmlog::LogOptions o;
  o.segment_size = small_ring ? 128u << 10 : 4u << 20;
  o.ring_segments = small_ring ? 4 : 16;
  o.max_record_size = small_ring ? 64u << 10 : 1u << 20;
  return o;
}

const std::vector<std::int64_t> kSizes = {0, 32, 256, 1024, 4096, 65536};

void set_counters(benchmark::State& state, std::size_t size) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

// Consumer::poll with a handler of its own type is inline (shmlog/log.h):
// the benchmarks bench/callgrind.sh counts call it through this function,
// never inlined, so that callgrind sees one call per poll (whose count
// then includes this call's entry and exit too).
template <class Handler>
[[gnu::noinline]] shmlog::PollResult counted_poll(shmlog::Consumer& consumer, Handler&& handler, std::size_t max) {
  return consumer.poll(std::forward<Handler>(handler), max);
}

// One thread appends a record and polls it back: the cost of the whole path
// without any cross-core transfer.
void BM_AppendPoll(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const bool exclusive = state.range(1) != 0;
  auto log = shmlog::Log::create_in_memory(bench_options(state.range(2) != 0)).value();
  auto producer = log.producer({.exclusive = exclusive, .timestamps = false}).value();
  auto consumer = log.consumer().value();
  std::vector<std::byte> value(size, std::byte{1});
  std::uint64_t sink = 0;
  for (auto _ : state) {
    if (!producer.append(Bytes(value.data(), size))) state.SkipWithError("append failed");
    counted_poll(consumer, [&](const shmlog::Record& r) { sink += r.value.size(); }, 1);
  }
  benchmark::DoNotOptimize(sink);
  set_counters(state, size);
}
BENCHMARK(BM_AppendPoll)
    ->ArgNames({"size", "exclusive", "small_ring"})
    ->ArgsProduct({kSizes, {0, 1}, {0, 1}});
// The same, a fixed number of times, for bench/callgrind.sh: instructions
// per call then compare exactly between builds (one-off costs and segment
// crossings amortize over the same count).
BENCHMARK(BM_AppendPoll)
    ->Name("BM_AppendPollFixed")
    ->ArgNames({"size", "exclusive", "small_ring"})
    ->ArgsProduct({{32}, {0, 1}, {1}})
    ->Iterations(100000);

// A poll that finds nothing, as a spinning consumer makes between records
// (a fixed count, for bench/callgrind.sh): inline, or through a
// RecordHandler (the library's poll).
void BM_PollEmpty(benchmark::State& state) {
  auto log = shmlog::Log::create_in_memory(bench_options(/*small_ring=*/true)).value();
  auto producer = log.producer({.exclusive = true, .timestamps = false}).value();
  auto consumer = log.consumer().value();
  std::byte value[32] = {};
  if (!producer.append(Bytes(value, sizeof value))) state.SkipWithError("append failed");
  std::uint64_t sink = 0;
  auto handler = [&](const shmlog::Record& r) { sink += r.value.size(); };
  consumer.poll(handler, 64);  // the first poll of a consumer is the library's
  for (auto _ : state) {
    if (state.range(0) != 0) {
      counted_poll(consumer, handler, 64);
    } else {
      counted_poll(consumer, shmlog::RecordHandler(handler), 64);
    }
  }
  benchmark::DoNotOptimize(sink);
}
BENCHMARK(BM_PollEmpty)->ArgName("inline")->Arg(0)->Arg(1)->Iterations(100000);

// Append alone (no reader: with no group the ring is reused once each
// segment's claims are resolved, so the cost of reuse is included).
void BM_Append(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  auto log = shmlog::Log::create_in_memory(bench_options()).value();
  auto producer = log.producer({.exclusive = state.range(1) != 0, .timestamps = false}).value();
  std::vector<std::byte> value(size, std::byte{1});
  for (auto _ : state) {
    if (!producer.append(Bytes(value.data(), size))) state.SkipWithError("append failed");
  }
  set_counters(state, size);
}
BENCHMARK(BM_Append)->ArgNames({"size", "exclusive"})->ArgsProduct({kSizes, {0, 1}});

// Poll alone: records are appended in batches outside the timed region.
void BM_Poll(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  auto log = shmlog::Log::create_in_memory(bench_options()).value();
  auto producer = log.producer({.exclusive = true, .timestamps = false}).value();
  auto consumer = log.consumer().value();
  std::vector<std::byte> value(size, std::byte{1});
  const std::size_t batch = std::max<std::size_t>(16, (8u << 20) / (size + 64));
  std::size_t left = 0;
  std::uint64_t sink = 0;
  for (auto _ : state) {
    if (left == 0) {
      state.PauseTiming();
      for (std::size_t i = 0; i < batch; ++i) (void)producer.append(Bytes(value.data(), size));
      left = batch;
      state.ResumeTiming();
    }
    consumer.poll([&](const shmlog::Record& r) { sink += r.value.size(); }, 1);
    --left;
  }
  benchmark::DoNotOptimize(sink);
  set_counters(state, size);
}
BENCHMARK(BM_Poll)->ArgName("size")->ArgsProduct({kSizes});

// A batch of 256 appended, then polled in one call, a fixed number of
// times: bench/callgrind.sh's per-record cost of each side when a consumer
// keeps up in batches (as `shmlog bench`'s does).
void BM_AppendPollBatch(benchmark::State& state) {
  constexpr std::size_t kBatch = 256;
  auto log = shmlog::Log::create_in_memory(bench_options(/*small_ring=*/true)).value();
  auto producer = log.producer({.exclusive = state.range(0) != 0, .timestamps = false}).value();
  auto consumer = log.consumer({.group = "batch", .commit_every = kBatch}).value();
  std::vector<std::byte> value(32, std::byte{1});
  std::uint64_t sink = 0;
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatch; ++i) {
      if (!producer.append(Bytes(value.data(), value.size()))) state.SkipWithError("append failed");
    }
    counted_poll(consumer, [&](const shmlog::Record& r) { sink += r.value.size(); }, kBatch);
  }
  benchmark::DoNotOptimize(sink);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kBatch));
}
BENCHMARK(BM_AppendPollBatch)->ArgName("exclusive")->Arg(0)->Arg(1)->Iterations(2000);

// Contended multi-producer: every thread appends through its own shared
// producer into one partition (one fetch-add each on the same tail).
void BM_ContendedAppend(benchmark::State& state) {
  static std::optional<shmlog::Log> log;
  if (state.thread_index() == 0) log = shmlog::Log::create_in_memory(bench_options()).value();
  static std::atomic<int> ready{0};
  // Google Benchmark starts the threads together; wait until the log exists.
  if (state.thread_index() == 0) ready.store(1);
  while (ready.load() == 0) {
  }
  const auto size = static_cast<std::size_t>(state.range(0));
  auto producer = log->producer({.timestamps = false}).value();
  std::vector<std::byte> value(size, std::byte{1});
  for (auto _ : state) {
    if (!producer.append(Bytes(value.data(), size))) state.SkipWithError("append failed");
  }
  set_counters(state, size);
  if (state.thread_index() == 0) ready.store(0);
}
BENCHMARK(BM_ContendedAppend)->ArgName("size")->Arg(32)->Arg(4096)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

// Zero-copy claim/commit and a batch of 16 appends (one timestamp per batch).
void BM_ClaimCommit(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  auto log = shmlog::Log::create_in_memory(bench_options()).value();
  auto producer = log.producer({.exclusive = true}).value();
  auto consumer = log.consumer().value();
  for (auto _ : state) {
    auto claim = producer.claim(size);
    std::memset(claim.value().data(), 7, size);
    if (!producer.commit(claim)) state.SkipWithError("commit failed");
    consumer.poll([](const shmlog::Record&) {}, 1);
  }
  set_counters(state, size);
}
BENCHMARK(BM_ClaimCommit)->ArgName("size")->ArgsProduct({kSizes});

void BM_AppendBatch16(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  auto log = shmlog::Log::create_in_memory(bench_options()).value();
  auto producer = log.producer().value();
  auto consumer = log.consumer().value();
  std::vector<std::byte> value(size, std::byte{1});
  std::vector<Bytes> batch(16, Bytes(value.data(), size));
  for (auto _ : state) {
    if (producer.append_batch(batch) != batch.size()) state.SkipWithError("append failed");
    consumer.poll([](const shmlog::Record&) {}, 16);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * 16));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * 16 * size));
}
BENCHMARK(BM_AppendBatch16)->ArgName("size")->ArgsProduct({kSizes});

// Group commit cost: one consumer committing its offset per record.
void BM_PollCommitEachRecord(benchmark::State& state) {
  auto log = shmlog::Log::create_in_memory(bench_options()).value();
  auto producer = log.producer({.exclusive = true, .timestamps = false}).value();
  auto consumer = log.consumer({.group = "g", .mode = shmlog::DeliveryMode::kAtLeastOnce}).value();
  std::byte value[32] = {};
  for (auto _ : state) {
    (void)producer.append(Bytes(value, sizeof value));
    consumer.poll([](const shmlog::Record&) {}, 1);
  }
  set_counters(state, 32);
}
BENCHMARK(BM_PollCommitEachRecord);

// A shared-memory log made through the C API (bindings/c) with `o`, an
// exclusive producer without timestamps, and a consumer with `co` (NULL:
// the defaults); all removed at the end.
struct CApiLog {
  CApiLog(const char* name, const shmlog_log_options& o, const shmlog_consumer_options* co)
      : path(std::string("/tmp/shmlog-bench-") + name + "-" + std::to_string(::getpid())) {
    if (shmlog_create(path.c_str(), &o, &log) != SHMLOG_OK) return;
    shmlog_producer_options po;
    shmlog_producer_options_init(&po);
    po.exclusive = 1;
    po.timestamps = 0;
    ok = shmlog_producer_open(log, &po, &producer) == SHMLOG_OK && shmlog_consumer_open(log, co, &consumer) == SHMLOG_OK;
  }
  ~CApiLog() {
    shmlog_consumer_close(consumer);
    shmlog_producer_close(producer);
    shmlog_close(log);
    shmlog_delete(path.c_str());
  }
  std::string path;
  shmlog_log* log = nullptr;
  shmlog_producer* producer = nullptr;
  shmlog_consumer* consumer = nullptr;
  bool ok = false;
};

void add_value_size(void* sum, const shmlog_record* r) { *static_cast<std::uint64_t*>(sum) += r->value_size; }

// Through the C API, per iteration: `batch` appends of 32 bytes, then one
// poll of them. bench/callgrind.sh counts the calls made here.
void c_api_append_poll(benchmark::State& state, const CApiLog& c, std::size_t batch) {
  if (!c.ok) {
    state.SkipWithError(shmlog_last_error());
    return;
  }
  std::byte value[32] = {};
  std::uint64_t sink = 0;
  for (auto _ : state) {
    for (std::size_t i = 0; i < batch; ++i) {
      if (shmlog_append(c.producer, value, sizeof value, nullptr) != SHMLOG_OK) state.SkipWithError("append failed");
    }
    shmlog_poll(c.consumer, add_value_size, &sink, batch, 0, nullptr);
  }
  benchmark::DoNotOptimize(sink);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
}

// The same append+poll through the C API, for its overhead.
void BM_CApiAppendPoll(benchmark::State& state) {
  shmlog_log_options o;
  shmlog_log_options_init(&o);
  c_api_append_poll(state, CApiLog("capi", o, nullptr), 1);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * 32));
}
BENCHMARK(BM_CApiAppendPoll);
// Fixed counts of both, for bench/callgrind.sh's C-against-C++ comparison.
BENCHMARK(BM_CApiAppendPoll)->Name("BM_CApiAppendPollFixed")->Iterations(100000);

// BM_AppendPollBatch/exclusive:1 through the C API (on a shared-memory log
// of the same geometry): what the C API costs per record when a consumer
// keeps up in batches, for bench/callgrind.sh.
void BM_CApiAppendPollBatch(benchmark::State& state) {
  constexpr std::size_t kBatch = 256;
  const shmlog::LogOptions small = bench_options(/*small_ring=*/true);
  shmlog_log_options o;
  shmlog_log_options_init(&o);
  o.segment_size = small.segment_size;
  o.ring_segments = small.ring_segments;
  o.max_record_size = small.max_record_size;
  shmlog_consumer_options co;
  shmlog_consumer_options_init(&co);
  co.group = "batch";
  co.commit_every = kBatch;
  c_api_append_poll(state, CApiLog("capi-batch", o, &co), kBatch);
}
BENCHMARK(BM_CApiAppendPollBatch)->Iterations(2000);

// The C++ API on the same default (shared-memory) log, for comparison.
void BM_CppAppendPollSharedMemory(benchmark::State& state) {
  const std::string path = "/tmp/shmlog-bench-cpp-" + std::to_string(::getpid());
  auto log = shmlog::Log::create(path, {}).value();
  auto producer = log.producer({.exclusive = true, .timestamps = false}).value();
  auto consumer = log.consumer().value();
  std::byte value[32] = {};
  std::uint64_t sink = 0;
  for (auto _ : state) {
    if (!producer.append(Bytes(value, sizeof value))) state.SkipWithError("append failed");
    counted_poll(consumer, [&](const shmlog::Record& r) { sink += r.value.size(); }, 1);
  }
  benchmark::DoNotOptimize(sink);
  set_counters(state, 32);
  (void)shmlog::Log::remove(path);
}
BENCHMARK(BM_CppAppendPollSharedMemory);
BENCHMARK(BM_CppAppendPollSharedMemory)->Name("BM_CppAppendPollFixed")->Iterations(100000);

// A record's timestamp: clock_gettime(CLOCK_REALTIME) (tsc:0) against
// the producers' clock (tsc:1), which extrapolates from the TSC between
// anchors (shmlog/detail/producer_hot.h).
void BM_Timestamp(benchmark::State& state) {
  shmlog::detail::RecordClock clock;
  const bool tsc = state.range(0) != 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(tsc ? shmlog::detail::record_time_ns(clock) : shmlog::detail::now_realtime_ns());
  }
}
BENCHMARK(BM_Timestamp)->ArgName("tsc")->Arg(0)->Arg(1);

// How far the producers' clock is from clock_gettime(CLOCK_REALTIME): its
// reading minus the midpoint of the clock_gettime calls around it, as
// percentiles (ns). A preempted pair shows as the extremes.
void BM_TimestampError(benchmark::State& state) {
  shmlog::detail::RecordClock clock;
  std::vector<std::int64_t> error;
  error.reserve(1u << 22);
  for (auto _ : state) {
    const std::uint64_t before = shmlog::detail::now_realtime_ns();
    const std::uint64_t stamp = shmlog::detail::record_time_ns(clock);
    const std::uint64_t after = shmlog::detail::now_realtime_ns();
    if (error.size() < error.capacity()) {
      error.push_back(static_cast<std::int64_t>(stamp - before) - static_cast<std::int64_t>((after - before) / 2));
    }
  }
  std::sort(error.begin(), error.end());
  const auto at = [&](double q) {
    return error.empty() ? 0.0 : static_cast<double>(error[static_cast<std::size_t>(q * static_cast<double>(error.size() - 1))]);
  };
  state.counters["err_p1_ns"] = at(0.01);
  state.counters["err_p50_ns"] = at(0.5);
  state.counters["err_p99_ns"] = at(0.99);
}
BENCHMARK(BM_TimestampError);

// Baseline: copying the same bytes.
void BM_Memcpy(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::vector<std::byte> src(size + 1, std::byte{1}), dst(size + 1);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), size);
    benchmark::ClobberMemory();
  }
  set_counters(state, size);
}
BENCHMARK(BM_Memcpy)->Arg(32)->Arg(4096)->Arg(65536);

// Baseline: the in-process queue everybody compares against, moving a
// 32-byte value through enqueue and dequeue on one thread.
void BM_ConcurrentQueueEnqueueDequeue(benchmark::State& state) {
  struct Item {
    std::byte bytes[32];
  };
  moodycamel::ConcurrentQueue<Item> queue(1024);
  moodycamel::ProducerToken token(queue);
  Item item{}, out{};
  for (auto _ : state) {
    queue.enqueue(token, item);
    queue.try_dequeue_from_producer(token, out);
    benchmark::DoNotOptimize(out);
  }
  set_counters(state, 32);
}
BENCHMARK(BM_ConcurrentQueueEnqueueDequeue);

// Producer thread -> consumer thread throughput through one log.
void BM_ThroughputTwoThreads(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  auto log = shmlog::Log::create_in_memory(bench_options()).value();
  auto producer = log.producer({.exclusive = true, .timestamps = false}).value();
  auto consumer = log.consumer({.group = "g", .commit_every = 256}).value();
  std::vector<std::byte> value(size, std::byte{1});
  std::int64_t total = 0;
  for (auto _ : state) {
    const std::int64_t n = 1 << 18;
    std::thread reader([&] {
      std::int64_t got = 0;
      while (got < n) got += static_cast<std::int64_t>(consumer.poll([](const shmlog::Record&) {}, 256).records);
      consumer.commit();
    });
    for (std::int64_t i = 0; i < n; ++i) {
      if (!producer.append(Bytes(value.data(), size))) state.SkipWithError("append failed");
    }
    reader.join();
    total += n;
  }
  state.SetItemsProcessed(total);
  state.SetBytesProcessed(total * static_cast<std::int64_t>(size));
}
BENCHMARK(BM_ThroughputTwoThreads)->Arg(32)->Arg(4096)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
