/* The C API from a C11 program: round trips across two processes, the
 * zero-copy claim, and the error paths. Exits non-zero on the first
 * failure, naming it. Usage: c_api_test DIR */
#include <shmlog.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "c_test_util.h"

enum { kRecords = 10000 };

struct seen {
  int count;
  int in_order;
};

static void on_record(void* context, const shmlog_record* r) {
  struct seen* s = context;
  char expected[32];
  int n = snprintf(expected, sizeof expected, "record %d", s->count);
  if ((size_t)n != r->value_size || memcmp(expected, r->value, r->value_size) != 0) s->in_order = 0;
  s->count++;
}

/* Sets *context when the record is key "k1", value "hello", plain data. */
static void on_claimed(void* context, const shmlog_record* r) {
  *(int*)context = r->key_size == 2 && memcmp(r->key, "k1", 2) == 0 && r->value_size == 5 &&
                   memcmp(r->value, "hello", 5) == 0 && r->type == 1 && r->transactional == 0;
}

static int produce(const char* path) {
  shmlog_log* log = NULL;
  shmlog_producer* producer = NULL;
  if (shmlog_open(path, &log) != SHMLOG_OK) return 2;
  if (shmlog_producer_open(log, NULL, &producer) != SHMLOG_OK) return 3;
  for (int i = 0; i < kRecords; ++i) {
    char value[32];
    int n = snprintf(value, sizeof value, "record %d", i);
    if (shmlog_append(producer, value, (size_t)n, NULL) != SHMLOG_OK) return 4;
  }
  shmlog_producer_close(producer);
  shmlog_close(log);
  return 0;
}

static void print_record(void* context, const shmlog_record* r) {
  (void)context;
  printf("%.*s\n", (int)r->value_size, (const char*)r->value);
}

/* Peer mode: appends N records "c i" to log OUT, then prints N records
 * read (group "c") from log IN. A C++ process does the other side. */
static int peer(const char* out_path, const char* in_path, int n) {
  shmlog_log* out = NULL;
  shmlog_log* in = NULL;
  shmlog_producer* producer = NULL;
  shmlog_consumer* consumer = NULL;
  CHECK(shmlog_open(out_path, &out) == SHMLOG_OK && shmlog_open(in_path, &in) == SHMLOG_OK, "peer: open");
  CHECK(shmlog_producer_open(out, NULL, &producer) == SHMLOG_OK, "peer: producer");
  for (int i = 0; i < n; ++i) {
    char value[32];
    int len = snprintf(value, sizeof value, "c %d", i);
    CHECK(shmlog_append(producer, value, (size_t)len, NULL) == SHMLOG_OK, "peer: append");
  }
  shmlog_consumer_options co;
  shmlog_consumer_options_init(&co);
  co.group = "c";
  CHECK(shmlog_consumer_open(in, &co, &consumer) == SHMLOG_OK, "peer: consumer");
  size_t total = 0;
  for (int idle = 0; total < (size_t)n && idle < 200;) {
    size_t got = 0;
    shmlog_poll(consumer, print_record, NULL, (size_t)n - total, 100, &got);
    total += got;
    idle = got == 0 ? idle + 1 : 0;
  }
  shmlog_consumer_close(consumer);
  shmlog_producer_close(producer);
  shmlog_close(in);
  shmlog_close(out);
  return total == (size_t)n ? 0 : 1;
}

static void count_record(void* context, const shmlog_record* r) {
  (void)r;
  ++*(int*)context;
}

/* A durable log: appends acknowledged once durable, and the errors. */
static int durable(const char* dir) {
  char path[600];
  snprintf(path, sizeof path, "%s/durable-%d", dir, (int)getpid());
  shmlog_log_options lo;
  shmlog_log_options_init(&lo);
  lo.segment_size = 64 * 1024;
  lo.ring_segments = 2;
  lo.max_record_size = 1024;
  lo.durability = 7;
  shmlog_log* log = NULL;
  CHECK(shmlog_create(path, &lo, &log) == SHMLOG_INVALID_ARGUMENT, "bad durability refused");
  lo.durability = 2;
  CHECK(shmlog_create(path, &lo, &log) == SHMLOG_OK, "create durable (fsync)");
  shmlog_producer_options po;
  shmlog_producer_options_init(&po);
  po.acks_durable = 1;
  shmlog_producer* p = NULL;
  CHECK(shmlog_producer_open(log, &po, &p) == SHMLOG_OK, "durable producer");
  uint64_t offset = 0;
  for (int i = 0; i < 3000; ++i) CHECK(shmlog_append(p, "durable", 7, &offset) == SHMLOG_OK, "durable append");
  CHECK(shmlog_wait_durable(p, 0, offset + 1, 1000) == SHMLOG_OK, "wait_durable");
  CHECK(shmlog_wait_durable(p, 3, 1, 1000) == SHMLOG_BAD_PARTITION && strstr(shmlog_last_error(), "partition 3") != NULL,
        "wait_durable of a partition the log lacks");
  CHECK(offset > 2 * 64 * 1024, "three segments written (%llu)", (unsigned long long)offset);
  shmlog_producer_close(p);
  shmlog_close(log);
  /* The first segment's file goes: a reader from the start is told what it skipped. */
  char first[700];
  snprintf(first, sizeof first, "%s/partition-0/00000000000000000000.seg", path);
  CHECK(unlink(first) == 0, "remove %s", first);
  CHECK(shmlog_open(path, &log) == SHMLOG_OK, "reopen durable");
  shmlog_consumer* c = NULL;
  CHECK(shmlog_consumer_open(log, NULL, &c) == SHMLOG_OK, "reader");
  int n = 0;
  for (size_t got = 1; got > 0;) shmlog_poll(c, count_record, &n, 1024, 50, &got);
  shmlog_damage damage[4];
  CHECK(shmlog_take_damage(c, damage, 4) == 1, "one damaged region");
  CHECK(damage[0].partition == 0 && damage[0].from == 0 && damage[0].to == 64 * 1024, "offsets %llu..%llu",
        (unsigned long long)damage[0].from, (unsigned long long)damage[0].to);
  CHECK(strstr(damage[0].what, first) != NULL && strstr(damage[0].what, "No such file") != NULL, "what: %s",
        damage[0].what);
  CHECK(n > 0 && n < 3000, "the records of the other segments (%d)", n);
  CHECK(shmlog_take_damage(c, damage, 4) == 0, "taken once");
  shmlog_consumer_close(c);
  shmlog_close(log);
  CHECK(shmlog_delete(path) == SHMLOG_OK, "delete durable log");
  return 0;
}

/* Producer ids, fencing, tokens and transactions through the C API. */
static int exactly_once(const char* dir) {
  char path[600];
  snprintf(path, sizeof path, "%s/eo-%d", dir, (int)getpid());
  shmlog_log_options lo;
  shmlog_log_options_init(&lo);
  lo.segment_size = 64 * 1024;
  lo.ring_segments = 4;
  lo.max_record_size = 1024;
  lo.token_window = 16;
  shmlog_log* log = NULL;
  CHECK(shmlog_create(path, &lo, &log) == SHMLOG_OK, "create with tokens");
  shmlog_producer_options po;
  shmlog_producer_options_init(&po);
  po.producer_id = "c-feed";
  shmlog_producer* p = NULL;
  CHECK(shmlog_producer_open(log, &po, &p) == SHMLOG_OK, "named producer");
  uint64_t last = 0;
  CHECK(shmlog_last_sequence(p, &last) == SHMLOG_EMPTY, "no last sequence yet");
  CHECK(shmlog_append(p, "a", 1, NULL) == SHMLOG_OK, "append a");
  shmlog_set_next_sequence(p, 0);
  CHECK(shmlog_append(p, "a", 1, NULL) == SHMLOG_DUPLICATE, "re-sent record is a duplicate");
  shmlog_producer* newer = NULL;
  CHECK(shmlog_producer_open(log, &po, &newer) == SHMLOG_OK, "second instance");
  CHECK(shmlog_last_sequence(newer, &last) == SHMLOG_OK && last == 0, "last sequence learned");
  CHECK(shmlog_append(p, "stale", 5, NULL) == SHMLOG_FENCED, "older instance fenced");
  CHECK(shmlog_append_unique(newer, "t", 1, "b", 1, NULL) == SHMLOG_OK, "token kept");
  CHECK(shmlog_append_unique(newer, "t", 1, "c", 1, NULL) == SHMLOG_DUPLICATE, "token duplicate");
  shmlog_producer* tx = open_transactional(log, "c-tx");
  CHECK(shmlog_begin_transaction(tx) == SHMLOG_OK, "begin");
  CHECK(shmlog_append(tx, "d", 1, NULL) == SHMLOG_OK, "append in transaction");
  shmlog_consumer_options co;
  shmlog_consumer_options_init(&co);
  co.read_committed = 1;
  shmlog_consumer* c = NULL;
  CHECK(shmlog_consumer_open(log, &co, &c) == SHMLOG_OK, "read_committed consumer");
  int n = 0;
  shmlog_poll(c, count_record, &n, 64, 10, NULL);
  CHECK(n == 2, "a and b before the commit, got %d", n);
  CHECK(shmlog_commit_transaction(tx) == SHMLOG_OK, "commit");
  shmlog_poll(c, count_record, &n, 64, 10, NULL);
  CHECK(n == 3, "d after the commit, got %d", n);
  CHECK(shmlog_commit_transaction(tx) == SHMLOG_INVALID_ARGUMENT, "commit without a transaction refused");
  shmlog_consumer_close(c);
  shmlog_producer_close(tx);
  shmlog_producer_close(newer);
  shmlog_producer_close(p);
  shmlog_close(log);
  CHECK(shmlog_delete(path) == SHMLOG_OK, "delete");
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 5 && strcmp(argv[1], "--peer") == 0) return peer(argv[2], argv[3], atoi(argv[4]));
  CHECK(argc == 2, "usage: c_api_test DIR | c_api_test --peer OUT_LOG IN_LOG N");
  char dir[512];
  snprintf(dir, sizeof dir, "%s/shmlog-c-api-XXXXXX", argv[1]);
  CHECK(mkdtemp(dir) != NULL, "mkdtemp in %s", argv[1]);  /* unique: runs may overlap */
  char path[600];
  snprintf(path, sizeof path, "%s/log", dir);
  CHECK(strcmp(shmlog_version(), "0.1.0") == 0 && SHMLOG_VERSION_MAJOR == 0, "version");

  shmlog_log_options options;
  shmlog_log_options_init(&options);
  options.segment_size = 64 * 1024;
  options.ring_segments = 4;
  options.max_record_size = 1024;
  shmlog_log* log = NULL;
  CHECK(shmlog_create(path, &options, &log) == SHMLOG_OK, "create");

  /* A consumer group exists before the other process produces. */
  shmlog_consumer_options co;
  shmlog_consumer_options_init(&co);
  co.group = "c-readers";
  shmlog_consumer* consumer = NULL;
  CHECK(shmlog_consumer_open(log, &co, &consumer) == SHMLOG_OK, "consumer open");

  pid_t child = fork();
  CHECK(child >= 0, "fork");
  if (child == 0) _exit(produce(path));
  struct seen s = {0, 1};
  for (int idle = 0; s.count < kRecords && idle < 100;) {
    size_t got = 0;
    shmlog_status st = shmlog_poll(consumer, on_record, &s, 256, 100, &got);
    CHECK(st == SHMLOG_OK || st == SHMLOG_EMPTY, "poll: %s", shmlog_status_name(st));
    idle = got == 0 ? idle + 1 : 0;
  }
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
        "producer process failed (%d)", WEXITSTATUS(status));
  CHECK(s.count == kRecords && s.in_order, "received %d records, in order: %d", s.count, s.in_order);

  /* Zero-copy claim, commit, abort. */
  shmlog_producer* producer = NULL;
  CHECK(shmlog_producer_open(log, NULL, &producer) == SHMLOG_OK, "producer open");
  shmlog_claim claim;
  CHECK(shmlog_claim_space(producer, 5, 2, &claim) == SHMLOG_OK, "claim");
  memcpy(claim.key, "k1", 2);
  memcpy(claim.value, "hello", 5);
  shmlog_claim second;
  CHECK(shmlog_claim_space(producer, 5, 0, &second) == SHMLOG_BAD_STATE, "second open claim refused");
  CHECK(shmlog_commit(producer, &claim) == SHMLOG_OK, "commit");
  CHECK(shmlog_commit(producer, &claim) == SHMLOG_BAD_STATE, "double commit refused");
  int claimed = 0;
  CHECK(shmlog_poll(consumer, on_claimed, &claimed, 1, 1000, NULL) == SHMLOG_OK && claimed,
        "the claimed record read back with its key and value");
  CHECK(shmlog_claim_space(producer, 3, 0, &claim) == SHMLOG_OK, "claim to abort");
  shmlog_abort(producer, &claim);

  /* Batch append. */
  const void* values[3] = {"a", "bb", "ccc"};
  size_t sizes[3] = {1, 2, 3};
  size_t appended = 0;
  CHECK(shmlog_append_batch(producer, values, sizes, 3, &appended) == SHMLOG_OK && appended == 3, "batch");

  /* Errors carry a message naming the problem. */
  char big[2048];
  memset(big, 'x', sizeof big);
  CHECK(shmlog_append(producer, big, sizeof big, NULL) == SHMLOG_TOO_LARGE, "oversize refused");
  CHECK(strstr(shmlog_last_error(), "max record size") != NULL, "oversize message: %s", shmlog_last_error());
  char plain[600];
  snprintf(plain, sizeof plain, "%s/not-a-log", dir);
  mkdir(plain, 0700);
  shmlog_log* bad = NULL;
  CHECK(shmlog_open(plain, &bad) == SHMLOG_NOT_FOUND && bad == NULL, "non-log directory refused");
  CHECK(strstr(shmlog_last_error(), "is not a shmlog log") != NULL, "message: %s", shmlog_last_error());
  CHECK(shmlog_create(path, NULL, &bad) == SHMLOG_ALREADY_EXISTS, "create over a log refused");
  CHECK(shmlog_append(NULL, "x", 1, NULL) == SHMLOG_INVALID_ARGUMENT, "NULL producer refused");
  co.mode = (shmlog_mode)42;
  CHECK(shmlog_consumer_open(log, &co, &consumer) == SHMLOG_INVALID_ARGUMENT, "bad mode refused");

  uint64_t end = 0;
  CHECK(shmlog_end_offset(log, 0, &end) == SHMLOG_OK && end > 0, "end offset");
  shmlog_producer_close(producer);
  shmlog_consumer_close(consumer);
  shmlog_close(log);
  CHECK(shmlog_delete(path) == SHMLOG_OK, "delete");
  CHECK(exactly_once(dir) == 0, "exactly-once calls");
  CHECK(durable(dir) == 0, "durable log calls");
  rmdir(plain);
  rmdir(dir);
  printf("c_api_test: all checks passed\n");
  return 0;
}
