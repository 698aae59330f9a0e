#include "produce_cmd.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "command.h"
#include "shmlog/log.h"

namespace shmlog::tools {
namespace {

struct ProduceArgs {
  std::string log;
  int partition = -1;
  std::string key_separator;
  std::uint32_t batch = 1;
  std::uint32_t timeout_ms = 10000;
  bool exclusive = false;
  std::string wait = "backoff";
  std::string producer_id;
  std::string transactional_id;
  std::uint32_t transaction_size = 100;
  std::string token_separator;
  std::string acks = "memory";
};

int run_produce(const ProduceArgs& a) {
  auto log = check(Log::open(a.log));
  if (a.partition >= 0 && static_cast<std::uint32_t>(a.partition) >= log.options().partitions) {
    fail("--partition " + std::to_string(a.partition) + " out of range: " + a.log + " has " +
         std::to_string(log.options().partitions) + " partition(s)");
  }
  if (a.batch < 1) fail("--batch must be at least 1");
  ProducerOptions po;
  po.partition = a.partition >= 0 ? static_cast<std::uint32_t>(a.partition) : 0;
  po.exclusive = a.exclusive;
  po.backpressure_timeout = std::chrono::milliseconds(a.timeout_ms);
  po.wait = parse_wait(a.wait);
  po.name = "shmlog produce";
  const bool transactional = !a.transactional_id.empty();
  po.producer_id = transactional ? a.transactional_id : a.producer_id;
  po.transactional = transactional;
  if (transactional && a.transaction_size < 1) fail("--transaction-size must be at least 1");
  const bool acks_durable = a.acks == "durable";
  if (!acks_durable && a.acks != "memory") fail("--acks: '" + a.acks + "' is not memory or durable");
  if (acks_durable && log.options().durability == Durability::kNone) {
    fail("--acks durable: " + a.log + " is not durable (create it with --durability flush or fsync)");
  }
  auto producer = check(log.producer(po));
  // --acks durable: each batch is appended, then waited for as a whole
  // (one sync covers it), per partition it touched.
  std::vector<std::uint64_t> batch_end(log.options().partitions, 0);
  auto note_end = [&](const AppendResult& r) {
    if (r) batch_end[r.partition] = std::max(batch_end[r.partition], r.offset + 1);
  };
  // Idempotent: line n (from 0) carries sequence n, so a re-run of the same
  // input after a crash skips what already reached the log (with
  // transactions: what a committed transaction wrote).
  const bool idempotent = !po.producer_id.empty();
  if (idempotent && producer.last_sequence()) {
    std::fprintf(stderr, "shmlog produce: producer id '%s' resumes after line %" PRIu64 " (lines up to it are already in %s)\n",
                 po.producer_id.c_str(), *producer.last_sequence(), a.log.c_str());
  }
  const std::uint32_t batch = transactional ? a.transaction_size : a.batch;
  const bool tokens = !a.token_separator.empty();
  const char token_separator = tokens ? parse_separator(a.token_separator, "--token-separator") : '\0';
  if (tokens && log.options().token_window == 0) {
    fail("--token-separator: " + a.log + " keeps no tokens (create it with --token-window N)");
  }
  const bool keyed = !a.key_separator.empty() || tokens;
  const char separator = !a.key_separator.empty() ? parse_separator(a.key_separator, "--key-separator") : '\0';
  std::ios::sync_with_stdio(false);
  std::vector<std::string> lines;
  std::vector<Bytes> values;
  std::uint64_t line_no = 0;
  auto report = [&](const AppendResult& r, std::uint64_t line_number, std::size_t size) {
    std::string why = errc_name(r.error);
    if (r.error == Errc::kTooLarge) {
      why += " (" + std::to_string(size) + " bytes, max " + std::to_string(log.options().max_record_size) + ")";
    } else if (r.error == Errc::kBackpressureTimeout) {
      why += " (no consumer group made room within " + std::to_string(a.timeout_ms) + " ms)";
    }
    fail("cannot append line " + std::to_string(line_number) + " to " + a.log + ": " + why);
  };
  std::uint64_t token_duplicates = 0;
  auto flush_batch = [&] {
    if (lines.empty()) return;
    const std::uint64_t first = line_no - lines.size() + 1;
    if (idempotent) producer.set_next_sequence(first - 1);
    if (transactional) check(producer.begin_transaction());
    if (!keyed) {
      values.clear();
      for (const auto& l : lines) values.push_back(as_bytes(l));
      AppendResult last;
      std::size_t n = producer.append_batch(values, &last);
      if (n < lines.size()) report(last, first + n, lines[n].size());
      note_end(last);
    } else {
      for (std::size_t i = 0; i < lines.size(); ++i) {
        std::string_view line = lines[i];
        std::string_view token;
        if (tokens) {  // TOKEN<sep>rest: the token is not stored, only remembered
          auto t = line.find(token_separator);
          if (t == std::string_view::npos) fail("line " + std::to_string(first + i) + " has no token separator");
          token = line.substr(0, t);
          line = line.substr(t + 1);
        }
        auto cut = separator == '\0' ? std::string_view::npos : line.find(separator);
        std::string_view key = cut == std::string_view::npos ? std::string_view() : line.substr(0, cut);
        std::string_view value = cut == std::string_view::npos ? line : line.substr(cut + 1);
        const std::uint32_t part = a.partition >= 0 ? po.partition : key.empty() ? 0 : producer.partition_for(as_bytes(key));
        auto r = tokens ? producer.append_unique_to(part, as_bytes(token), as_bytes(key), as_bytes(value))
                        : producer.append_to(part, as_bytes(key), as_bytes(value));
        if (r.error == Errc::kDuplicate && tokens) ++token_duplicates;
        if (!r && r.error != Errc::kDuplicate) report(r, first + i, line.size());
        note_end(r);
      }
    }
    if (transactional) check(producer.commit_transaction());
    for (std::uint32_t p = 0; acks_durable && p < batch_end.size(); ++p) {
      if (batch_end[p] == 0) continue;
      const auto e = producer.wait_durable(p, batch_end[p], std::chrono::milliseconds(a.timeout_ms));
      if (e != Errc::kOk) {
        fail("lines up to " + std::to_string(line_no) + " are appended to " + a.log + " but not durable: " +
             errc_name(e));
      }
      batch_end[p] = 0;
    }
    lines.clear();
  };
  std::string line;
  while (!g_interrupted && std::getline(std::cin, line)) {
    ++line_no;
    lines.push_back(line);
    if (lines.size() >= batch) flush_batch();
  }
  flush_batch();
  if (token_duplicates > 0) {
    std::fprintf(stderr, "shmlog produce: %" PRIu64 " line(s) skipped: their token was already in %s\n",
                 token_duplicates, a.log.c_str());
  }
  if (g_interrupted) return 130;
  return 0;
}

}  // namespace

void add_produce_command(CLI::App& app) {
  auto a = std::make_shared<ProduceArgs>();
  auto* produce = app.add_subcommand("produce", "Append one record per stdin line");
  produce->add_option("LOG", a->log, "Log directory")->required();
  produce->add_option("--partition", a->partition, "Partition (default: 0, or by key hash)");
  produce->add_option("--key-separator", a->key_separator, "Split each line into key, value at this character");
  produce->add_option("--batch", a->batch, "Lines read per batch of appends")->capture_default_str();
  produce->add_option("--timeout-ms", a->timeout_ms, "Wait this long for ring space")->capture_default_str();
  produce->add_flag("--exclusive", a->exclusive, "Be the only writer (faster claims)");
  produce->add_option("--wait", a->wait, "spin, yield, backoff or block")->capture_default_str();
  produce->add_option("--producer-id", a->producer_id,
                      "Idempotent: line n carries sequence n; a re-run skips lines already in the log and "
                      "fences an older instance")
      ->excludes("--exclusive");
  produce->add_option("--token-separator", a->token_separator,
                      "Each line is TOKEN<C>REST: REST is appended unless a record with TOKEN is in the window");
  produce->add_option("--transactional-id", a->transactional_id,
                      "Transactional: every --transaction-size lines commit atomically (line n carries sequence n)")
      ->excludes("--exclusive")
      ->excludes("--producer-id")
      ->excludes("--token-separator");
  produce->add_option("--transaction-size", a->transaction_size, "Lines per transaction (with --transactional-id)")
      ->needs("--transactional-id")
      ->capture_default_str();
  produce->add_option("--acks", a->acks, "memory, or durable: each batch waits until it is durable (group commit)")
      ->capture_default_str();
  set_action(produce, [a] { return run_produce(*a); });
}

}  // namespace shmlog::tools
