/* The C API's calls that mirror the rest of the C++ API, from a C11
 * program, each with its failure paths (status and a message naming the
 * problem). One section per run, so that ctest names them:
 *   c_api_calls_test SECTION DIR
 * SECTION: log_options, producers_and_consumers, transactions_across_logs,
 * durable_reads, file_sink. Exits non-zero on the first failure. */
#include <shmlog.h>
#include <shmlog_file_sink.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "c_test_util.h"

/* ------------------------------------------------------------- helpers */

static char g_dir[512];

/* DIR/NAME, in a static buffer per call site's `out`. */
static void path_of(char* out, size_t size, const char* name) { snprintf(out, size, "%s/%s", g_dir, name); }

static int error_says(const char* words) { return strstr(shmlog_last_error(), words) != NULL; }

static void sleep_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

/* Whether the file holds `needle`. */
static int file_contains(const char* file, const char* needle) {
  char text[8192];
  FILE* f = fopen(file, "rb");
  if (f == NULL) return 0;
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  return strstr(text, needle) != NULL;
}

/* Whether directory `dir` has an entry whose name starts with `prefix`. */
static int dir_has(const char* dir, const char* prefix) {
  DIR* d = opendir(dir);
  if (d == NULL) return 0;
  int found = 0;
  for (struct dirent* e; !found && (e = readdir(d)) != NULL;) found = strncmp(e->d_name, prefix, strlen(prefix)) == 0;
  closedir(d);
  return found;
}

static int meta_says(const char* log_path, const char* line) {
  char meta[700];
  snprintf(meta, sizeof meta, "%s/shmlog.meta", log_path);
  return file_contains(meta, line);
}

/* A small log's options: 64 KiB segments, 1 KiB records. */
static shmlog_log_options small(uint32_t partitions) {
  shmlog_log_options o;
  shmlog_log_options_init(&o);
  o.partitions = partitions;
  o.segment_size = 64 * 1024;
  o.ring_segments = 4;
  o.max_record_size = 1024;
  return o;
}

/* What a poll handed out: values joined by ',', and each record's place. */
struct got {
  char text[4096];
  size_t len;
  int count;
  uint32_t partitions[256];
  uint64_t offsets[256];
  uint64_t next_offsets[256];
  uint64_t stamps[256];
  int transactional[256];
};

static void collect(void* context, const shmlog_record* r) {
  struct got* g = context;
  if (g->count < 256) {
    g->partitions[g->count] = r->partition;
    g->offsets[g->count] = r->offset;
    g->next_offsets[g->count] = r->next_offset;
    g->stamps[g->count] = r->timestamp_ns;
    g->transactional[g->count] = r->transactional;
  }
  g->count++;
  if (g->len + r->value_size + 2 < sizeof g->text) {
    if (g->len > 0) g->text[g->len++] = ',';
    memcpy(g->text + g->len, r->value, r->value_size);
    g->len += r->value_size;
    g->text[g->len] = '\0';
  }
}

/* Polls until `want` records came or ~`patience_ms` passed without any. */
static struct got read_all(shmlog_consumer* c, int want, int patience_ms) {
  struct got g;
  memset(&g, 0, sizeof g);
  for (int idle = 0; g.count < want && idle * 10 < patience_ms;) {
    size_t n = 0;
    shmlog_poll(c, collect, &g, 256, 10, &n);
    idle = n == 0 ? idle + 1 : 0;
  }
  return g;
}

static void append_text(shmlog_producer* p, const char* text) {
  CHECK(shmlog_append(p, text, strlen(text), NULL) == SHMLOG_OK, "append %s", text);
}

/* ---------------------------------------------------------- log options */

/* Placement and durability options reach the log (its meta file says
 * them); open options, the keeper, attach, in-memory logs, groups. */
static void log_options(void) {
  char path[600], memory[600];
  path_of(path, sizeof path, "log");
  path_of(memory, sizeof memory, "memory");
  CHECK(mkdir(memory, 0700) == 0, "mkdir %s", memory);
  shmlog_log* log = NULL;

  shmlog_log_options o = small(1);
  o.pages = (shmlog_pages)7;
  CHECK(shmlog_create(path, &o, &log) == SHMLOG_INVALID_ARGUMENT && error_says("pages must be"), "bad pages refused");
  o = small(1);
  o.numa_node = 4000;
  CHECK(shmlog_create(path, &o, &log) == SHMLOG_INVALID_ARGUMENT && error_says("NUMA node 4000 does not exist"),
        "a NUMA node that does not exist refused");
  o = small(1);
  o.memory_dir = "relative/dir";
  CHECK(shmlog_create(path, &o, &log) == SHMLOG_INVALID_ARGUMENT && error_says("absolute path"),
        "a relative memory directory refused");
  o = small(1);
  o.retention_ms = UINT64_MAX;
  CHECK(shmlog_create(path, &o, &log) == SHMLOG_INVALID_ARGUMENT && error_says("retention_ms must be at most a year"),
        "a retention past a year refused");

  o = small(1);
  o.memory_dir = memory;
  o.numa_node = 0;
  o.durability = 2;
  o.checksums = 1;
  o.fsync_interval_bytes = 1 << 20;
  o.fsync_interval_us = 5000;
  o.retention_bytes = 1 << 30;
  o.retention_ms = 3600 * 1000;
  o.token_window = 8;
  o.token_window_ms = 60000;
  CHECK(shmlog_create(path, &o, &log) == SHMLOG_OK, "create with placement and durability options");
  CHECK(meta_says(path, "numa_node=0\n") && meta_says(path, "fsync_interval_bytes=1048576\n") &&
            meta_says(path, "fsync_interval_us=5000\n") && meta_says(path, "retention_bytes=1073741824\n") &&
            meta_says(path, "retention_ms=3600000\n") && meta_says(path, "token_window_ms=60000\n"),
        "the options are in %s/shmlog.meta", path);
  char memory_line[700];
  snprintf(memory_line, sizeof memory_line, "memory_dir=%s\n", memory);
  CHECK(meta_says(path, memory_line), "memory_dir in the meta file");
  shmlog_log_info info;
  CHECK(shmlog_info(log, &info) == SHMLOG_OK && info.numa_node == 0 && info.pages == SHMLOG_PAGES_NORMAL &&
            info.durability == 2 && info.log_id != 0,
        "info: numa node %d, pages %d, durability %u", info.numa_node, (int)info.pages, info.durability);
  char object[64];
  snprintf(object, sizeof object, "shmlog-%016llx", (unsigned long long)info.log_id);
  CHECK(dir_has(memory, object), "the log's memory (%s...) is in %s", object, memory);
  shmlog_close(log);

  /* Open without a keeper: nothing reaches the segment files until a
   * keeper thread is started, which then writes everything. */
  shmlog_open_options oo;
  shmlog_open_options_init(&oo);
  CHECK(oo.keeper == 1 && oo.maker_patience_ms == 300000, "open defaults");
  oo.maker_patience_ms = UINT64_MAX;
  CHECK(shmlog_open_with(path, &oo, &log) == SHMLOG_INVALID_ARGUMENT && error_says("maker_patience_ms"),
        "a patience past a year refused");
  oo.maker_patience_ms = 1000;
  oo.keeper = 0;
  CHECK(shmlog_open_with(path, &oo, &log) == SHMLOG_OK, "open without a keeper");
  shmlog_producer* p = NULL;
  CHECK(shmlog_producer_open(log, NULL, &p) == SHMLOG_OK, "producer");
  for (int i = 0; i < 100; ++i) append_text(p, "kept");
  shmlog_partition_info pi;
  sleep_ms(50);
  CHECK(shmlog_info_partition(log, 0, &pi) == SHMLOG_OK && pi.end_offset > 0 && pi.written_offset == 0,
        "no keeper: nothing written (end %llu, written %llu)", (unsigned long long)pi.end_offset,
        (unsigned long long)pi.written_offset);
  CHECK(pi.counted && pi.appends == 100 && pi.bytes == 400, "counted: %llu appends, %llu bytes",
        (unsigned long long)pi.appends, (unsigned long long)pi.bytes);
  CHECK(shmlog_info_partition(log, 9, &pi) == SHMLOG_BAD_PARTITION && error_says("partition 9 is out of range"),
        "info of a partition the log lacks");
  shmlog_keeper* keeper = NULL;
  CHECK(shmlog_keeper_start(log, &keeper) == SHMLOG_OK, "keeper start");
  for (int i = 0; i < 500 && (shmlog_info_partition(log, 0, &pi), pi.durable_offset < pi.end_offset); ++i) sleep_ms(10);
  CHECK(pi.written_offset == pi.end_offset && pi.durable_offset == pi.end_offset && pi.disk_bytes > 0,
        "the keeper wrote and synced it (end %llu, durable %llu)", (unsigned long long)pi.end_offset,
        (unsigned long long)pi.durable_offset);
  CHECK(shmlog_info(log, &info) == SHMLOG_OK && info.keeper_pid == (uint32_t)getpid() && info.keeper_alive,
        "this process holds the lease (%u)", info.keeper_pid);
  CHECK(shmlog_keeper_stop(keeper) == SHMLOG_OK, "keeper stop");
  CHECK(shmlog_keeper_stop(NULL) == SHMLOG_OK, "stopping NULL");
  shmlog_producer_close(p);
  shmlog_close(log);

  /* Read-only attachment: reads info, opens no producer. */
  CHECK(shmlog_attach(path, &log) == SHMLOG_OK, "attach");
  CHECK(shmlog_producer_open(log, NULL, &p) == SHMLOG_PERMISSION_DENIED && error_says("read-only"),
        "no producer on a read-only attachment");
  uint64_t end = 0;
  CHECK(shmlog_end_offset(log, 0, &end) == SHMLOG_OK && end == pi.end_offset, "attached: the same end offset");
  shmlog_close(log);
  CHECK(shmlog_delete(path) == SHMLOG_OK, "delete");

  /* A keeper needs a durable log. */
  o = small(1);
  CHECK(shmlog_create_in_memory(&o, &log) == SHMLOG_OK, "in-memory log");
  CHECK(shmlog_keeper_start(log, &keeper) == SHMLOG_INVALID_ARGUMENT && error_says("not durable"),
        "no keeper for a log without durability");
  CHECK(shmlog_producer_open(log, NULL, &p) == SHMLOG_OK, "in-memory producer");
  append_text(p, "in memory");

  /* Groups: deleted once nobody reads them (or by force). */
  shmlog_consumer_options co;
  shmlog_consumer_options_init(&co);
  co.group = "g";
  shmlog_consumer* c = NULL;
  CHECK(shmlog_consumer_open(log, &co, &c) == SHMLOG_OK, "group member");
  struct got g = read_all(c, 1, 100);
  CHECK(g.count == 1 && strcmp(g.text, "in memory") == 0, "in-memory round trip: %s", g.text);
  CHECK(shmlog_delete_group(log, "g", 0) == SHMLOG_BUSY && error_says("1"), "a group with a live member is kept");
  uint64_t offsets[2] = {7, 7};
  size_t count = 0;
  CHECK(shmlog_reset_group(log, "g", SHMLOG_RESET_EARLIEST, 0, offsets, 2, &count) == SHMLOG_BUSY && error_says("1"),
        "nor is it reset");
  CHECK(shmlog_delete_group(log, "g", 1) == SHMLOG_OK, "unless forced");
  CHECK(shmlog_delete_group(log, "g", 0) == SHMLOG_NOT_FOUND, "deleted once");
  CHECK(shmlog_delete_group(log, NULL, 0) == SHMLOG_INVALID_ARGUMENT && error_says("group is NULL"), "NULL group");
  CHECK(shmlog_sweep(log) == SHMLOG_OK && shmlog_sweep(NULL) == SHMLOG_INVALID_ARGUMENT, "sweep");
  shmlog_consumer_close(c);

  /* A short poll makes the next one wait the back-off first (a log of its own). */
  shmlog_log* blog = NULL;
  shmlog_producer* bp = NULL;
  CHECK(shmlog_create_in_memory(&o, &blog) == SHMLOG_OK && shmlog_producer_open(blog, NULL, &bp) == SHMLOG_OK,
        "a log for the back-off");
  append_text(bp, "first");
  shmlog_consumer_options bo;
  shmlog_consumer_options_init(&bo);
  CHECK(bo.short_poll_backoff_ns == 0, "no back-off by default");
  bo.short_poll_backoff_ns = 50 * 1000 * 1000;
  shmlog_consumer* bc = NULL;
  CHECK(shmlog_consumer_open(blog, &bo, &bc) == SHMLOG_OK, "reader with a back-off");
  size_t handed = 0;
  struct got backed;
  memset(&backed, 0, sizeof backed);
  struct timespec t0, t1;  /* from before the short poll: the back-off runs from its end */
  clock_gettime(CLOCK_MONOTONIC, &t0);
  CHECK(shmlog_poll(bc, collect, &backed, 256, 1000, &handed) == SHMLOG_OK && handed == 1, "a short poll (%zu)", handed);
  append_text(bp, "later");
  CHECK(shmlog_poll(bc, collect, &backed, 256, 1000, &handed) == SHMLOG_OK && handed == 1, "the next poll (%zu)", handed);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  const long long waited = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
  CHECK(waited >= 50 * 1000 * 1000, "it waited the back-off first (%lld ns)", waited);
  shmlog_consumer_close(bc);
  shmlog_producer_close(bp);
  shmlog_close(blog);

  /* A group nobody reads now is reset: to the start, it reads again. */
  co.group = "r";
  CHECK(shmlog_consumer_open(log, &co, &c) == SHMLOG_OK && read_all(c, 1, 100).count == 1, "group r reads");
  shmlog_consumer_close(c);
  CHECK(shmlog_end_offset(log, 0, &end) == SHMLOG_OK, "end");
  CHECK(shmlog_reset_group(log, "r", SHMLOG_RESET_EARLIEST, 0, offsets, 2, &count) == SHMLOG_OK && count == 1 &&
            offsets[0] == 0,
        "reset to the earliest: %zu partitions, %llu", count, (unsigned long long)offsets[0]);
  CHECK(shmlog_consumer_open(log, &co, &c) == SHMLOG_OK && read_all(c, 1, 100).count == 1, "read again");
  shmlog_consumer_close(c);
  CHECK(shmlog_reset_group(log, "r", SHMLOG_RESET_LATEST, 0, offsets, 2, NULL) == SHMLOG_OK && offsets[0] == end,
        "reset to the end");
  CHECK(shmlog_reset_group(log, "r", SHMLOG_RESET_TIME, 0, NULL, 0, &count) == SHMLOG_OK && count == 1,
        "reset to a time (offsets not wanted)");
  CHECK(shmlog_reset_group(log, "r", SHMLOG_RESET_OFFSET, 3, offsets, 2, NULL) == SHMLOG_INVALID_ARGUMENT &&
            error_says("boundary"),
        "an offset that is no record boundary");
  CHECK(shmlog_reset_group(log, "nobody", SHMLOG_RESET_LATEST, 0, offsets, 2, NULL) == SHMLOG_NOT_FOUND, "no group");
  CHECK(shmlog_reset_group(log, "r", (shmlog_reset_to)9, 0, offsets, 2, NULL) == SHMLOG_INVALID_ARGUMENT &&
            error_says("unknown reset target 9"),
        "a bad target");
  shmlog_producer_close(p);
  shmlog_close(log);
  rmdir(memory);
}

/* ------------------------------------------------ producers and consumers */

static void producers_and_consumers(void) {
  char path[600];
  path_of(path, sizeof path, "log");
  shmlog_log_options o = small(2);
  o.token_window = 16;
  shmlog_log* log = NULL;
  CHECK(shmlog_create(path, &o, &log) == SHMLOG_OK, "create");

  shmlog_producer_options po;
  shmlog_producer_options_init(&po);
  shmlog_producer* p = NULL;
  po.wait = (shmlog_wait)9;
  CHECK(shmlog_producer_open(log, &po, &p) == SHMLOG_INVALID_ARGUMENT && error_says("unknown wait strategy 9"),
        "bad wait strategy refused");
  shmlog_producer_options_init(&po);
  po.core = 4000;
  CHECK(shmlog_producer_open(log, &po, &p) != SHMLOG_OK && error_says("4000"), "a CPU that does not exist refused");
  shmlog_producer_options_init(&po);
  po.wait = SHMLOG_WAIT_YIELD;
  po.durable_timeout_ms = 10;
  po.transaction_timeout_ms = 1000;
  CHECK(shmlog_producer_open(log, &po, &p) == SHMLOG_OK, "producer with a wait strategy and timeouts");

  /* Explicit partitions, keys, claims. */
  uint64_t offset = 99;
  CHECK(shmlog_append_to(p, 1, "k", 1, "one", 3, &offset) == SHMLOG_OK && offset == 0, "append_to partition 1");
  CHECK(shmlog_append_to(p, 7, NULL, 0, "x", 1, NULL) == SHMLOG_BAD_PARTITION &&
            error_says("partition 7 is out of range (the log has 2)"),
        "append_to a partition the log lacks");
  CHECK(shmlog_append_to(p, 0, NULL, 3, "x", 1, NULL) == SHMLOG_INVALID_ARGUMENT && error_says("key or value is NULL"),
        "a NULL key with a size");
  uint32_t hashed = 9, keyed = 8;
  CHECK(shmlog_partition_for(p, "user-42", 7, &hashed) == SHMLOG_OK && hashed < 2, "partition_for");
  CHECK(shmlog_append_keyed(p, "user-42", 7, "two", 3, &keyed, NULL) == SHMLOG_OK && keyed == hashed,
        "a keyed append goes where partition_for says (%u, %u)", keyed, hashed);
  CHECK(shmlog_partition_for(p, NULL, 7, &hashed) == SHMLOG_INVALID_ARGUMENT, "NULL key");
  shmlog_claim claim;
  CHECK(shmlog_claim_in(p, 1, 5, 0, &claim) == SHMLOG_OK && claim.partition == 1, "claim in partition 1");
  memcpy(claim.value, "three", 5);
  CHECK(shmlog_commit(p, &claim) == SHMLOG_OK, "commit the claim");
  CHECK(shmlog_claim_in(p, 2, 5, 0, &claim) == SHMLOG_BAD_PARTITION && error_says("partition 2 is out of range"),
        "claim in a partition the log lacks");

  /* A private reader of partition 1 only. */
  shmlog_consumer_options co;
  shmlog_consumer_options_init(&co);
  co.partition_count = 1;
  shmlog_consumer* c = NULL;
  CHECK(shmlog_consumer_open(log, &co, &c) == SHMLOG_INVALID_ARGUMENT && error_says("partitions is NULL"),
        "a partition count without partitions");
  const uint32_t second[1] = {1};
  co.partitions = second;
  CHECK(shmlog_consumer_open(log, &co, &c) == SHMLOG_OK, "reader of partition 1");
  uint32_t owned[4] = {9, 9, 9, 9};
  size_t count = 0;
  CHECK(shmlog_assignment(c, owned, 4, &count) == SHMLOG_OK && count == 1 && owned[0] == 1, "assignment: [1]");
  CHECK(shmlog_assignment(c, NULL, 4, &count) == SHMLOG_INVALID_ARGUMENT, "NULL out");
  const int in_second = 2 + (hashed == 1);
  struct got g = read_all(c, in_second, 100);
  CHECK(g.count == in_second && g.partitions[0] == 1 && g.partitions[in_second - 1] == 1 &&
            strncmp(g.text, "one,", 4) == 0 && strstr(g.text, "three") != NULL,
        "partition 1's records only: %s", g.text);
  uint64_t lost = 1;
  CHECK(shmlog_lost_bytes(c, &lost) == SHMLOG_OK && lost == 0, "nothing lost");
  shmlog_consumer_close(c);

  /* Identity and sequences. */
  uint16_t id = 9999, epoch = 0;
  CHECK(shmlog_producer_identity(p, &id, NULL) == SHMLOG_OK && id < 256, "identity (id %u)", id);
  uint64_t next = 0;
  CHECK(shmlog_next_sequence(p, &next) == SHMLOG_OK && next == 3, "three records so far: next sequence %llu",
        (unsigned long long)next);
  shmlog_set_next_sequence(p, 1);
  CHECK(shmlog_next_sequence(p, &next) == SHMLOG_OK && next == 1, "set_next_sequence");
  CHECK(shmlog_next_sequence(NULL, &next) == SHMLOG_INVALID_ARGUMENT && error_says("producer is NULL"),
        "NULL producer");
  /* A retry of "two" (sequence 1), where "two" went. */
  CHECK(shmlog_append_to(p, hashed, NULL, 0, "two-again", 9, NULL) == SHMLOG_OK, "the retry");
  shmlog_producer_options named;
  shmlog_producer_options_init(&named);
  named.producer_id = "named";
  shmlog_producer *n1 = NULL, *n2 = NULL;
  uint16_t epoch2 = 0, id2 = 0;
  CHECK(shmlog_producer_open(log, &named, &n1) == SHMLOG_OK && shmlog_producer_open(log, &named, &n2) == SHMLOG_OK,
        "a named producer, twice");
  CHECK(shmlog_producer_identity(n1, &id, &epoch) == SHMLOG_OK && shmlog_producer_identity(n2, &id2, &epoch2) == SHMLOG_OK &&
            id == id2 && epoch2 == epoch + 1,
        "the second instance: same id, next epoch (%u, %u)", epoch, epoch2);

  /* Tokens with a key, in a partition. */
  CHECK(shmlog_append_unique_to(p, 1, "t", 1, "k", 1, "four", 4, NULL) == SHMLOG_OK, "append_unique_to");
  CHECK(shmlog_append_unique_to(p, 0, "t", 1, NULL, 0, "again", 5, NULL) == SHMLOG_DUPLICATE, "the token again");
  CHECK(shmlog_append_unique_to(p, 5, "u", 1, NULL, 0, "x", 1, NULL) == SHMLOG_BAD_PARTITION, "bad partition");

  /* Duplicates dropped: the retry of sequence 1. */
  const uint32_t retried[1] = {hashed};
  co.partitions = retried;
  co.drop_duplicates = 1;
  CHECK(shmlog_consumer_open(log, &co, &c) == SHMLOG_OK, "reader dropping duplicates");
  g = read_all(c, 64, 50);
  CHECK(strstr(g.text, "two") != NULL && strstr(g.text, "two-again") == NULL, "the retry is dropped: %s", g.text);
  shmlog_consumer_close(c);

  /* A group member commits an offset of its choosing. */
  shmlog_consumer_options_init(&co);
  co.group = "g";
  co.mode = SHMLOG_MANUAL;
  CHECK(shmlog_consumer_open(log, &co, &c) == SHMLOG_OK, "group member");
  g = read_all(c, 5, 100);
  CHECK(g.count == 5, "the group reads both partitions (%d): %s", g.count, g.text);
  uint64_t position = 0;
  CHECK(shmlog_position(c, 1, &position) == SHMLOG_OK && shmlog_commit_offset(c, 1, position) == SHMLOG_OK,
        "commit partition 1 at its position");
  CHECK(shmlog_commit_offset(c, 1, position + 64) == SHMLOG_INVALID_ARGUMENT && error_says("beyond the position"),
        "past the position refused");
  CHECK(shmlog_commit_offset(c, 5, 0) == SHMLOG_INVALID_ARGUMENT && error_says("partition 5 is not assigned"),
        "a partition not owned refused");
  shmlog_consumer_close(c);

  /* Transactional offsets (consume-process-produce). */
  shmlog_producer* tx = open_transactional(log, "tx");
  CHECK(shmlog_add_offsets(tx, "g", 0, 5) == SHMLOG_BAD_STATE && error_says("no transaction is open"),
        "offsets need an open transaction");
  int open = 9;
  CHECK(shmlog_in_transaction(tx, &open) == SHMLOG_OK && open == 0, "not in a transaction");
  CHECK(shmlog_begin_transaction(tx) == SHMLOG_OK && shmlog_in_transaction(tx, &open) == SHMLOG_OK && open == 1,
        "in a transaction");
  CHECK(shmlog_add_offsets(tx, "g", 0, 5) == SHMLOG_OK && shmlog_add_offsets(tx, "g", 3, 7) == SHMLOG_OK,
        "offsets added");
  CHECK(shmlog_commit_transaction(tx) == SHMLOG_OK && shmlog_in_transaction(tx, &open) == SHMLOG_OK && open == 0,
        "committed");
  shmlog_producer_close(tx);
  tx = open_transactional(log, "tx");  /* again */
  shmlog_partition_offset offsets[1];
  CHECK(shmlog_committed_offsets(tx, "g", offsets, 1, &count) == SHMLOG_OK && count == 2 && offsets[0].partition == 0 &&
            offsets[0].offset == 5,
        "committed offsets: %zu, first (%u, %llu)", count, offsets[0].partition, (unsigned long long)offsets[0].offset);
  CHECK(shmlog_committed_offsets(tx, "other", NULL, 0, &count) == SHMLOG_OK && count == 0, "none for another group");
  CHECK(shmlog_committed_offsets(tx, NULL, NULL, 0, &count) == SHMLOG_INVALID_ARGUMENT, "NULL group");
  shmlog_producer_close(tx);
  shmlog_producer_close(n2);
  shmlog_producer_close(n1);
  shmlog_producer_close(p);
  shmlog_close(log);
  CHECK(shmlog_delete(path) == SHMLOG_OK, "delete");

  /* An overwrite ring laps an idle reader, which is told what it lost. */
  o = small(1);
  o.policy = SHMLOG_OVERWRITE;
  o.ring_segments = 2;
  CHECK(shmlog_create(path, &o, &log) == SHMLOG_OK, "overwrite log");
  CHECK(shmlog_consumer_open(log, NULL, &c) == SHMLOG_OK && shmlog_producer_open(log, NULL, &p) == SHMLOG_OK,
        "reader and writer");
  char value[500];
  memset(value, 'v', sizeof value);
  for (int i = 0; i < 1000; ++i) CHECK(shmlog_append(p, value, sizeof value, NULL) == SHMLOG_OK, "append");
  g = read_all(c, 1000, 50);
  CHECK(shmlog_lost_bytes(c, &lost) == SHMLOG_OK && lost > 0, "lapped: %llu bytes lost", (unsigned long long)lost);
  CHECK(shmlog_lost_bytes(c, NULL) == SHMLOG_INVALID_ARGUMENT, "NULL bytes");
  shmlog_consumer_close(c);
  shmlog_producer_close(p);
  shmlog_close(log);
  CHECK(shmlog_delete(path) == SHMLOG_OK, "delete");
}

/* ---------------------------------------------- transactions across logs */

static shmlog_consumer* committed_reader(shmlog_log* log) {
  shmlog_consumer_options co;
  shmlog_consumer_options_init(&co);
  co.read_committed = 1;
  shmlog_consumer* c = NULL;
  CHECK(shmlog_consumer_open(log, &co, &c) == SHMLOG_OK, "read_committed reader");
  return c;
}

static void transactions_across_logs(void) {
  char a_path[600], b_path[600];
  path_of(a_path, sizeof a_path, "a");
  path_of(b_path, sizeof b_path, "b");
  shmlog_log_options o = small(2);
  shmlog_log *a = NULL, *b = NULL;
  CHECK(shmlog_create(a_path, &o, &a) == SHMLOG_OK && shmlog_create(b_path, &o, &b) == SHMLOG_OK, "two logs");
  shmlog_producer* pa = open_transactional(a, "multi");
  shmlog_producer* pb = open_transactional(b, "multi");
  shmlog_producer* plain = NULL;
  CHECK(shmlog_producer_open(b, NULL, &plain) == SHMLOG_OK, "a plain producer");
  shmlog_producer* both[2] = {pa, pb};
  shmlog_consumer* ca = committed_reader(a);
  shmlog_consumer* cb = committed_reader(b);

  CHECK(shmlog_begin_transaction(pa) == SHMLOG_OK && shmlog_begin_transaction(pb) == SHMLOG_OK, "begin both");
  CHECK(shmlog_append_to(pa, 1, NULL, 0, "a1", 2, NULL) == SHMLOG_OK && shmlog_append(pb, "b0", 2, NULL) == SHMLOG_OK,
        "append in both");
  CHECK(read_all(ca, 1, 30).count == 0 && read_all(cb, 1, 30).count == 0, "nothing visible before the commit");
  CHECK(shmlog_commit_transactions(both, 2) == SHMLOG_OK, "commit both");
  struct got ga = read_all(ca, 1, 1000), gb = read_all(cb, 1, 1000);
  CHECK(ga.count == 1 && strcmp(ga.text, "a1") == 0 && ga.transactional[0] && gb.count == 1 &&
            strcmp(gb.text, "b0") == 0 && gb.transactional[0],
        "both visible after the commit, marked transactional: %s / %s", ga.text, gb.text);

  CHECK(shmlog_begin_transaction(pa) == SHMLOG_OK && shmlog_begin_transaction(pb) == SHMLOG_OK, "begin again");
  append_text(pa, "a-aborted");
  append_text(pb, "b-aborted");
  CHECK(shmlog_abort_transactions(both, 2) == SHMLOG_OK, "abort both");
  int open = 1;
  CHECK(shmlog_in_transaction(pa, &open) == SHMLOG_OK && open == 0 && shmlog_in_transaction(pb, &open) == SHMLOG_OK &&
            open == 0,
        "both closed");
  append_text(plain, "after");
  gb = read_all(cb, 1, 1000);
  CHECK(read_all(ca, 1, 30).count == 0 && gb.count == 1 && strcmp(gb.text, "after") == 0,
        "the aborted records never appear: %s", gb.text);

  /* Failure paths, each naming the problem. */
  CHECK(shmlog_commit_transactions(NULL, 2) == SHMLOG_INVALID_ARGUMENT && error_says("producers is NULL"), "NULL array");
  shmlog_producer* with_null[2] = {pa, NULL};
  CHECK(shmlog_commit_transactions(with_null, 2) == SHMLOG_INVALID_ARGUMENT && error_says("producers[1] is NULL"),
        "a NULL entry");
  shmlog_producer* twice[2] = {pa, pa};
  CHECK(shmlog_abort_transactions(twice, 2) == SHMLOG_INVALID_ARGUMENT && error_says("same producer"), "one twice");
  CHECK(shmlog_commit_transactions(both, 0) == SHMLOG_INVALID_ARGUMENT && error_says("no producers"), "none");
  CHECK(shmlog_commit_transactions(both, 2) == SHMLOG_INVALID_ARGUMENT && error_says("no transaction is open"),
        "a commit with no transaction open");
  shmlog_producer* mixed[2] = {pa, plain};
  CHECK(shmlog_begin_transaction(pa) == SHMLOG_OK, "begin");
  CHECK(shmlog_commit_transactions(mixed, 2) == SHMLOG_INVALID_ARGUMENT && error_says("transactional"),
        "a producer that is not transactional");
  CHECK(shmlog_abort_transaction(pa) == SHMLOG_OK, "abort");

  shmlog_consumer_close(ca);
  shmlog_consumer_close(cb);
  shmlog_producer_close(plain);
  shmlog_producer_close(pa);
  shmlog_producer_close(pb);
  shmlog_close(a);
  shmlog_close(b);
  CHECK(shmlog_delete(a_path) == SHMLOG_OK && shmlog_delete(b_path) == SHMLOG_OK, "delete");
}

/* ------------------------------------------------ durable reads, seek_time */

static void durable_reads(void) {
  char path[600];
  path_of(path, sizeof path, "log");
  shmlog_log_options o = small(1);
  shmlog_log* log = NULL;
  CHECK(shmlog_create(path, &o, &log) == SHMLOG_OK, "log without durability");
  shmlog_consumer_options co;
  shmlog_consumer_options_init(&co);
  co.read_durable = 1;
  shmlog_consumer* c = NULL;
  CHECK(shmlog_consumer_open(log, &co, &c) == SHMLOG_INVALID_ARGUMENT && error_says("read_durable needs a durable log"),
        "read_durable refused without durability");
  shmlog_close(log);
  CHECK(shmlog_delete(path) == SHMLOG_OK, "delete");

  o.durability = 1;
  o.checksums = 1;
  CHECK(shmlog_create(path, &o, &log) == SHMLOG_OK, "durable log");
  shmlog_close(log);
  shmlog_open_options oo;
  shmlog_open_options_init(&oo);
  oo.keeper = 0;  /* nothing becomes durable until a keeper runs */
  CHECK(shmlog_open_with(path, &oo, &log) == SHMLOG_OK, "open without a keeper");
  shmlog_producer* p = NULL;
  CHECK(shmlog_producer_open(log, NULL, &p) == SHMLOG_OK, "producer");
  shmlog_consumer* durable = NULL;
  shmlog_consumer* plain = NULL;
  CHECK(shmlog_consumer_open(log, &co, &durable) == SHMLOG_OK && shmlog_consumer_open(log, NULL, &plain) == SHMLOG_OK,
        "a durable reader and a plain one");
  for (int i = 0; i < 3; ++i) {
    char v[8];
    snprintf(v, sizeof v, "r%d", i);
    append_text(p, v);
    sleep_ms(2);  /* distinct timestamps */
  }
  struct got g = read_all(durable, 3, 50);
  CHECK(g.count == 0, "not durable yet: the durable reader gets nothing (%d)", g.count);
  g = read_all(plain, 3, 1000);
  CHECK(g.count == 3 && strcmp(g.text, "r0,r1,r2") == 0, "the plain reader gets all: %s", g.text);
  shmlog_keeper* keeper = NULL;
  CHECK(shmlog_keeper_start(log, &keeper) == SHMLOG_OK, "keeper");
  struct got d = read_all(durable, 3, 5000);
  CHECK(d.count == 3 && strcmp(d.text, "r0,r1,r2") == 0, "durable now: %s", d.text);
  CHECK(shmlog_keeper_stop(keeper) == SHMLOG_OK, "keeper stop");

  /* seek_time: to the first record at or after a time. */
  uint64_t at = 0;
  CHECK(shmlog_seek_time(plain, 0, g.stamps[1], &at) == SHMLOG_OK && at == g.offsets[1], "to r1's time: %llu",
        (unsigned long long)at);
  struct got again = read_all(plain, 2, 1000);
  CHECK(strcmp(again.text, "r1,r2") == 0, "reads from r1: %s", again.text);
  CHECK(shmlog_seek_time(plain, 0, g.stamps[0] - 1, NULL) == SHMLOG_OK, "before the first (no offset wanted)");
  again = read_all(plain, 3, 1000);
  CHECK(strcmp(again.text, "r0,r1,r2") == 0, "reads from r0: %s", again.text);
  uint64_t end = 0;
  CHECK(shmlog_seek_time(plain, 0, UINT64_MAX, &at) == SHMLOG_OK && shmlog_end_offset(log, 0, &end) == SHMLOG_OK &&
            at == end,
        "past the last record: the end (%llu, %llu)", (unsigned long long)at, (unsigned long long)end);
  CHECK(shmlog_seek_time(plain, 3, 0, &at) == SHMLOG_INVALID_ARGUMENT && error_says("partition 3 is not assigned"),
        "a partition not read");
  CHECK(shmlog_seek_time(NULL, 0, 0, &at) == SHMLOG_INVALID_ARGUMENT && error_says("consumer is NULL"), "NULL");

  /* append_at: a record keeps the time it is given (the plain reader is at the end). */
  CHECK(shmlog_append_at(p, 0, "k", 1, "old", 3, 1234567, &at) == SHMLOG_OK && at == end, "append_at at the end");
  again = read_all(plain, 1, 1000);
  CHECK(again.count == 1 && strcmp(again.text, "old") == 0 && again.stamps[0] == 1234567,
        "the record carries the given time: %s at %llu", again.text, (unsigned long long)again.stamps[0]);
  CHECK(shmlog_append_at(p, 5, NULL, 0, "x", 1, 1, NULL) == SHMLOG_BAD_PARTITION && error_says("partition 5"),
        "append_at a partition the log lacks");
  shmlog_consumer_close(durable);
  shmlog_consumer_close(plain);
  shmlog_producer_close(p);
  shmlog_close(log);
  CHECK(shmlog_delete(path) == SHMLOG_OK, "delete");
}

/* ------------------------------------------------------------ file sink */

static void sink_record(void* context, const shmlog_record* r) {
  shmlog_file_sink* sink = context;
  CHECK(shmlog_file_sink_write(sink, r->value, r->value_size) == SHMLOG_OK &&
            shmlog_file_sink_write(sink, "\n", 1) == SHMLOG_OK,
        "sink write");
}

/* Consumes up to `max` records of group "sink" into `sink`, resuming where
 * it says, checkpointing after each poll; returns how many. */
static int drain(shmlog_log* log, shmlog_file_sink* sink, int max) {
  shmlog_consumer_options co;
  shmlog_consumer_options_init(&co);
  co.group = "sink";
  co.mode = SHMLOG_MANUAL;
  shmlog_consumer* c = NULL;
  CHECK(shmlog_consumer_open(log, &co, &c) == SHMLOG_OK, "sink's consumer");
  uint64_t at = 0;
  if (shmlog_file_sink_offset(sink, 0, &at) == SHMLOG_OK) CHECK(shmlog_seek(c, 0, at) == SHMLOG_OK, "resume");
  int n = 0;
  while (n < max) {
    size_t got = 0;
    shmlog_poll(c, sink_record, sink, (size_t)(max - n < 7 ? max - n : 7), 10, &got);
    CHECK(shmlog_position(c, 0, &at) == SHMLOG_OK && shmlog_file_sink_advance(sink, 0, at) == SHMLOG_OK, "advance");
    CHECK(shmlog_file_sink_checkpoint(sink) == SHMLOG_OK, "checkpoint");
    CHECK(shmlog_consumer_commit(c) == SHMLOG_OK, "commit");
    if (got == 0) break;
    n += (int)got;
  }
  shmlog_consumer_close(c);
  return n;
}

static void file_sink(void) {
  char path[600], out[600], journal[700];
  path_of(path, sizeof path, "log");
  path_of(out, sizeof out, "out.txt");
  snprintf(journal, sizeof journal, "%s.offsets", out);
  shmlog_log_options o = small(1);
  shmlog_log* log = NULL;
  CHECK(shmlog_create(path, &o, &log) == SHMLOG_OK, "create");
  shmlog_producer* p = NULL;
  CHECK(shmlog_producer_open(log, NULL, &p) == SHMLOG_OK, "producer");
  char expected[4096] = "";
  for (int i = 0; i < 100; ++i) {
    char v[16];
    snprintf(v, sizeof v, "%d", i);
    append_text(p, v);
    strcat(expected, v);
    strcat(expected, "\n");
  }

  shmlog_file_sink* sink = NULL;
  CHECK(shmlog_file_sink_open(out, log, (shmlog_survives)5, &sink) == SHMLOG_INVALID_ARGUMENT &&
            error_says("survives must be"),
        "bad survives refused");
  CHECK(shmlog_file_sink_open(out, NULL, SHMLOG_SURVIVES_HOST_CRASH, &sink) == SHMLOG_INVALID_ARGUMENT &&
            error_says("log is NULL"),
        "NULL log");
  CHECK(shmlog_file_sink_open(out, log, SHMLOG_SURVIVES_HOST_CRASH, &sink) == SHMLOG_OK, "open");
  uint64_t at = 0;
  CHECK(shmlog_file_sink_offset(sink, 0, &at) == SHMLOG_EMPTY, "no checkpoint yet");
  CHECK(shmlog_file_sink_offset(sink, 1, &at) == SHMLOG_BAD_PARTITION && error_says("partition 1 is out of range"),
        "offset of a partition the log lacks");
  CHECK(shmlog_file_sink_advance(sink, 4, 0) == SHMLOG_BAD_PARTITION && error_says("partition 4 is out of range"),
        "advance of a partition the log lacks");
  shmlog_file_sink* second = NULL;
  CHECK(shmlog_file_sink_open(out, log, SHMLOG_SURVIVES_HOST_CRASH, &second) == SHMLOG_BUSY && error_says(out),
        "one sink per file");
  CHECK(drain(log, sink, 40) == 40, "40 records");
  CHECK(shmlog_file_sink_length(sink) == 110 && shmlog_file_sink_truncated_at_open(sink) == 0, "length %llu",
        (unsigned long long)shmlog_file_sink_length(sink));
  shmlog_file_sink_close(sink);

  /* Output past the last checkpoint (a kill between the two) is cut at
   * open, and the rest is written once. */
  FILE* f = fopen(out, "ab");
  CHECK(f != NULL && fwrite("40\n41\n", 1, 6, f) == 6 && fclose(f) == 0, "append to %s", out);
  CHECK(shmlog_file_sink_open(out, log, SHMLOG_SURVIVES_PROCESS_CRASH, &sink) == SHMLOG_OK, "open again");
  CHECK(shmlog_file_sink_truncated_at_open(sink) == 6 && shmlog_file_sink_length(sink) == 110, "cut 6 bytes (%llu)",
        (unsigned long long)shmlog_file_sink_truncated_at_open(sink));
  CHECK(shmlog_file_sink_offset(sink, 0, &at) == SHMLOG_OK && at > 0, "resumes at %llu", (unsigned long long)at);
  CHECK(drain(log, sink, 1000) == 60, "the other 60");
  shmlog_file_sink_close(sink);
  CHECK(file_contains(out, expected), "every record once, in order");

  /* A file with output but no journal is refused, naming the file. */
  CHECK(unlink(journal) == 0, "remove the journal");
  CHECK(shmlog_file_sink_open(out, log, SHMLOG_SURVIVES_HOST_CRASH, &sink) != SHMLOG_OK && error_says(out),
        "output without a journal refused");
  CHECK(shmlog_file_sink_write(NULL, "x", 1) == SHMLOG_INVALID_ARGUMENT && error_says("sink is NULL"), "NULL sink");
  CHECK(shmlog_file_sink_checkpoint(NULL) == SHMLOG_INVALID_ARGUMENT, "NULL sink checkpoint");
  CHECK(shmlog_file_sink_length(NULL) == 0, "NULL sink length");
  shmlog_file_sink_close(NULL);
  unlink(out);
  shmlog_producer_close(p);
  shmlog_close(log);
  CHECK(shmlog_delete(path) == SHMLOG_OK, "delete");
}

int main(int argc, char** argv) {
  CHECK(argc == 3, "usage: c_api_calls_test SECTION DIR");
  snprintf(g_dir, sizeof g_dir, "%s/shmlog-c-calls-XXXXXX", argv[2]);
  CHECK(mkdtemp(g_dir) != NULL, "mkdtemp in %s", argv[2]);
  const char* section = argv[1];
  if (strcmp(section, "log_options") == 0) {
    log_options();
  } else if (strcmp(section, "producers_and_consumers") == 0) {
    producers_and_consumers();
  } else if (strcmp(section, "transactions_across_logs") == 0) {
    transactions_across_logs();
  } else if (strcmp(section, "durable_reads") == 0) {
    durable_reads();
  } else if (strcmp(section, "file_sink") == 0) {
    file_sink();
  } else {
    CHECK(0, "unknown section %s", section);
  }
  CHECK(rmdir(g_dir) == 0, "%s left empty", g_dir);
  printf("c_api_calls_test %s: all checks passed\n", section);
  return 0;
}
