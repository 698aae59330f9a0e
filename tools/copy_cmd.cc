#include "copy_cmd.h"

#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "command.h"
#include "shmlog/log.h"

namespace shmlog::tools {
namespace {

struct CopyArgs {
  std::string in;
  std::string out;
  std::string group;
  std::string transactional_id;
  std::uint32_t transaction_size = 256;  // records per transaction
  std::int64_t idle_timeout_ms = -1;     // >= 0: exit when nothing arrived for this long
  std::string prefix;                    // the "processing": prepended to each value
};

int failed(const std::string& what) {
  std::fprintf(stderr, "shmlog copy: %s\n", what.c_str());
  return 1;
}

// Each transaction holds the output records of up to transaction_size
// input records and the input offsets after them; the group's own offsets
// in IN follow after the commit. A restart (same arguments) aborts what the
// last instance left open and resumes from the offsets of the last
// committed transaction: every input record reaches OUT once.
int run_copy(const CopyArgs& a, volatile std::sig_atomic_t* interrupted) {
  if (a.transaction_size < 1) return failed("--transaction-size must be at least 1");
  auto in = Log::open(a.in);
  if (!in.ok()) return failed(in.status().message());
  auto out = Log::open(a.out);
  if (!out.ok()) return failed(out.status().message());
  ProducerOptions po;
  po.producer_id = a.transactional_id;
  po.transactional = true;
  po.name = "shmlog copy";
  auto producer = out->producer(po);
  if (!producer.ok()) return failed(producer.status().message());
  ConsumerOptions co;
  co.group = a.group;
  co.mode = DeliveryMode::kManual;
  co.isolation = Isolation::kReadCommitted;
  co.drop_duplicates = true;
  auto consumer = in->consumer(co);
  if (!consumer.ok()) return failed(consumer.status().message());
  const std::uint32_t partitions = in->options().partitions;
  if (consumer->assignment().size() != partitions) {
    return failed("another member is in group '" + a.group + "' of " + a.in + ": an exactly-once copy needs the group to itself");
  }
  // The offsets live in OUT with the records they produced.
  const std::string key = a.group + "@" + std::to_string(in->id());
  for (const auto& [p, offset] : producer->committed_offsets(key)) {
    Status s = consumer->seek(p, offset);
    if (!s.ok()) return failed("cannot resume partition " + std::to_string(p) + " of " + a.in + ": " + s.message());
  }
  const std::uint32_t out_partitions = out->options().partitions;
  std::string value;
  std::uint64_t copied = 0;
  const auto idle = std::chrono::milliseconds(a.idle_timeout_ms >= 0 ? a.idle_timeout_ms : 200);
  while (*interrupted == 0) {
    // A transaction begins with the first record of a poll (each takes an
    // epoch: idle polls must not use them up).
    AppendResult first_error;
    Status began;
    auto r = consumer->poll_wait(
        [&](const Record& rec) {
          if (!producer->in_transaction()) began = producer->begin_transaction();
          if (!began.ok()) return;
          value.assign(a.prefix);
          value.append(as_string(rec.value));
          auto w = rec.key.empty() ? producer->append_to(rec.partition % out_partitions, {}, as_bytes(value))
                                   : producer->append(rec.key, as_bytes(value));
          if (!w && first_error) first_error = w;
          producer->add_offsets(key, rec.partition, rec.next_offset);
        },
        a.transaction_size, idle);
    if (!began.ok()) return failed(began.message());
    if (!first_error) {
      (void)producer->abort_transaction();
      return failed(std::string("appending to ") + a.out + ": " + errc_name(first_error.error));
    }
    if (producer->in_transaction()) {
      // Resume where the group's commit below puts IN, not at the last
      // record's end: the poll may have stepped over a segment's end
      // padding, and once the group is past it the ring may reuse that
      // segment, so an offset before the padding would not be retained.
      for (std::uint32_t p = 0; p < partitions; ++p) {
        if (auto at = consumer->position(p)) producer->add_offsets(key, p, *at);
      }
      Status s = producer->commit_transaction();
      if (!s.ok()) return failed(s.message());
    }
    consumer->commit();  // the group's offsets in IN: lag, and room in its ring
    copied += r.records;
    if (r.records == 0 && a.idle_timeout_ms >= 0) break;
  }
  std::fprintf(stderr, "shmlog copy: %" PRIu64 " records copied\n", copied);
  return *interrupted != 0 ? 130 : 0;
}

}  // namespace

void add_copy_command(CLI::App& app) {
  auto a = std::make_shared<CopyArgs>();
  auto* copy = app.add_subcommand("copy", "Copy records from one log into another exactly once (transactions)");
  copy->add_option("IN", a->in, "Log to read")->required();
  copy->add_option("OUT", a->out, "Log to write")->required();
  copy->add_option("--group", a->group, "Consumer group in IN (needs the group to itself)")->required();
  copy->add_option("--transactional-id", a->transactional_id, "Producer id in OUT (same on every restart)")->required();
  copy->add_option("--transaction-size", a->transaction_size, "Records per transaction")->capture_default_str();
  copy->add_option("--idle-timeout-ms", a->idle_timeout_ms, "Exit when no record arrived for this long");
  copy->add_option("--prefix", a->prefix, "Prepend this to each value (the processing step)");
  set_action(copy, [a] { return run_copy(*a, &g_interrupted); });
}

}  // namespace shmlog::tools
