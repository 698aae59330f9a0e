/* shmlog C API: logs, producers and consumers through opaque handles.
 *
 * Every function returns a shmlog_status; on failure shmlog_last_error()
 * gives a message naming what is wrong (thread-local, valid until the next
 * failing call on this thread). No C++ exception crosses this boundary.
 * Threading: a log handle may be shared; a producer or consumer belongs to
 * one thread at a time. A producer or consumer keeps its log mapped, so it
 * may outlive the log handle it came from.
 *
 * Option structs are filled by their *_init function, then changed field
 * by field: fields are added at their end as the library grows, so a
 * program compiled against an older header is rebuilt, not relinked.
 * The file sink is in shmlog_file_sink.h.
 */
#ifndef SHMLOG_H_
#define SHMLOG_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHMLOG_VERSION_MAJOR 0
#define SHMLOG_VERSION_MINOR 1
#define SHMLOG_VERSION_PATCH 0

typedef enum shmlog_status {
  SHMLOG_OK = 0,
  SHMLOG_EMPTY = 1,                /* nothing to read */
  SHMLOG_TOO_LARGE = 2,            /* key + value exceed the log's max record size */
  SHMLOG_BAD_PARTITION = 3,
  SHMLOG_BACKPRESSURE_TIMEOUT = 4, /* the ring stayed full */
  SHMLOG_REVOKED = 5,              /* the claim stalled past the claim timeout */
  SHMLOG_BAD_STATE = 6,            /* e.g. a claim committed twice */
  SHMLOG_INVALID_ARGUMENT = 7,
  SHMLOG_NOT_FOUND = 8,
  SHMLOG_ALREADY_EXISTS = 9,
  SHMLOG_CORRUPT = 10,
  SHMLOG_VERSION_MISMATCH = 11,
  SHMLOG_NO_SPACE = 12,
  SHMLOG_IO_ERROR = 13,
  SHMLOG_TIMEOUT = 14,
  SHMLOG_BUSY = 15,
  SHMLOG_PERMISSION_DENIED = 16,
  SHMLOG_INTERNAL = 17,            /* an unexpected failure inside shmlog */
  SHMLOG_FENCED = 18,              /* a newer instance of this producer id took over */
  SHMLOG_DUPLICATE = 19,           /* the sequence already reached the log; nothing written */
  SHMLOG_DISK_FULL = 20,           /* durable log: the segment files cannot grow, the ring is full */
  SHMLOG_NOT_DURABLE = 21          /* not durable in time (or the log has no durability) */
} shmlog_status;

const char* shmlog_last_error(void);
const char* shmlog_status_name(shmlog_status status);
/* The library's version at run time, "MAJOR.MINOR.PATCH". */
const char* shmlog_version(void);

typedef struct shmlog_log shmlog_log;
typedef struct shmlog_producer shmlog_producer;
typedef struct shmlog_consumer shmlog_consumer;

typedef enum shmlog_policy { SHMLOG_OVERWRITE = 1, SHMLOG_BACKPRESSURE = 2 } shmlog_policy;
/* Pages backing the ring: normal, transparent huge pages (a tmpfs mounted
 * with huge=), or explicit huge pages (a hugetlbfs mount, reserved pages). */
typedef enum shmlog_pages { SHMLOG_PAGES_NORMAL = 0, SHMLOG_PAGES_THP = 1, SHMLOG_PAGES_HUGE = 2 } shmlog_pages;
/* What a thread does while it waits (for records, or for ring space). */
typedef enum shmlog_wait { SHMLOG_WAIT_BACKOFF = 0, SHMLOG_WAIT_SPIN = 1, SHMLOG_WAIT_YIELD = 2, SHMLOG_WAIT_BLOCK = 3 } shmlog_wait;

typedef struct shmlog_log_options {
  uint32_t partitions;
  uint64_t segment_size;   /* power of two, >= 64 KiB */
  uint32_t ring_segments;
  shmlog_policy policy;
  uint32_t max_record_size;
  uint32_t max_producers;
  uint32_t max_groups;
  uint32_t max_members;
  uint32_t claim_timeout_ms;
  uint32_t mode;           /* permission bits, e.g. 0600 */
  int checksums;
  uint64_t token_window;   /* uniqueness tokens remembered (0: none) */
  uint32_t durability;     /* 0 none, 1 flush (segment files), 2 fsync (and fdatasync) */
  /* Placement: where the log's memory lives. */
  shmlog_pages pages;
  const char* memory_dir;  /* NULL or "": /dev/shm (the first hugetlbfs mount for SHMLOG_PAGES_HUGE) */
  int numa_node;           /* >= 0: bound to this NUMA node and pre-faulted from it; -1: the kernel's policy */
  uint64_t token_window_ms;      /* tokens are also forgotten once this old (0: by count only) */
  /* Durable logs: */
  uint64_t fsync_interval_bytes; /* fsync: sync once this many bytes are unsynced (0: no byte limit) ... */
  uint64_t fsync_interval_us;    /* ... or the oldest unsynced write is this old (0: no limit); both 0: every flush */
  uint64_t retention_bytes;      /* delete a partition's oldest segment files past this many bytes (0: no limit) */
  uint64_t retention_ms;         /* ... or once last written this long ago (0: no limit); the ring's are kept */
} shmlog_log_options;

/* Fills `options` with the defaults (those of `shmlog create`). */
void shmlog_log_options_init(shmlog_log_options* options);
/* `options` may be NULL for the defaults. */
shmlog_status shmlog_create(const char* path, const shmlog_log_options* options, shmlog_log** log);
/* A log in this process's memory only (no files, no durability): for tests
 * and embedding. */
shmlog_status shmlog_create_in_memory(const shmlog_log_options* options, shmlog_log** log);

typedef struct shmlog_open_options {
  /* Durable logs: run the keeper (flushing, syncing, retention) in a thread
   * of this process while no live process holds its lease, and stand by to
   * take it over. 0: this process never keeps (see shmlog_keeper_start). */
  int keeper;
  /* While another process holds the log's lock to make its memory anew
   * (from the segment files after a host crash, which takes minutes for a
   * large log), open waits this long, then fails with SHMLOG_BUSY. */
  uint64_t maker_patience_ms;
} shmlog_open_options;
void shmlog_open_options_init(shmlog_open_options* options);
shmlog_status shmlog_open(const char* path, shmlog_log** log);
/* shmlog_open with options (NULL: the defaults, those of shmlog_open). */
shmlog_status shmlog_open_with(const char* path, const shmlog_open_options* options, shmlog_log** log);
/* Maps an existing log read-only, for tools that watch it: nothing is
 * written, no process is reaped; opening producers and consumers fails. */
shmlog_status shmlog_attach(const char* path, shmlog_log** log);
void shmlog_close(shmlog_log* log); /* NULL is fine */
shmlog_status shmlog_delete(const char* path);

typedef struct shmlog_log_info {
  uint32_t partitions;
  uint64_t segment_size;
  uint32_t ring_segments;
  shmlog_policy policy;
  uint32_t max_record_size;
  uint64_t log_id;        /* random, names the log's shared memory */
  uint32_t durability;    /* as in shmlog_log_options */
  shmlog_pages pages;
  int numa_node;
  uint32_t keeper_pid;    /* durable logs: the process holding the keeper lease (0: none yet) */
  int keeper_alive;
} shmlog_log_info;
shmlog_status shmlog_info(const shmlog_log* log, shmlog_log_info* info);
/* The end offset (tail) of a partition. */
shmlog_status shmlog_end_offset(const shmlog_log* log, uint32_t partition, uint64_t* offset);

typedef struct shmlog_partition_info {
  uint64_t earliest_offset; /* oldest record still in the ring */
  uint64_t end_offset;      /* where the next record goes */
  uint32_t writers;         /* producers attached */
  /* Durable logs: */
  uint64_t written_offset;  /* written to the segment files */
  uint64_t durable_offset;  /* durable as the log's durability says */
  uint64_t disk_start;      /* first offset still on disk */
  uint64_t disk_bytes;
  /* Records and bytes (key + value) appended since the log was created, by
   * every producer (0 with counted = 0: memory made by an older binary). */
  int counted;
  uint64_t appends;
  uint64_t bytes;
} shmlog_partition_info;
/* A snapshot of one partition (read without locks). */
shmlog_status shmlog_info_partition(const shmlog_log* log, uint32_t partition, shmlog_partition_info* info);

/* Deletes consumer group `group`: its offsets go, and the ring no longer
 * waits for it. SHMLOG_BUSY while it has live members unless `force`
 * (they are released: they read and commit no more); SHMLOG_NOT_FOUND
 * when there is no such group. */
shmlog_status shmlog_delete_group(const shmlog_log* log, const char* group, int force);
/* Where shmlog_reset_group moves a group's committed offsets: the oldest
 * retained record, the end, a record boundary, or the first record at or
 * after a time (CLOCK_REALTIME ns). */
typedef enum shmlog_reset_to {
  SHMLOG_RESET_EARLIEST = 0,
  SHMLOG_RESET_LATEST = 1,
  SHMLOG_RESET_OFFSET = 2,
  SHMLOG_RESET_TIME = 3
} shmlog_reset_to;
/* Moves group `group`'s committed offset in every partition (`value`: the
 * offset or the time). SHMLOG_BUSY while it has live members. The new
 * offsets, by partition: up to `max` in `offsets`; *count (may be NULL)
 * says how many partitions there are. */
shmlog_status shmlog_reset_group(const shmlog_log* log, const char* group, shmlog_reset_to to, uint64_t value,
                                 uint64_t* offsets, size_t max, size_t* count);
/* Reaps dead producers, members and stalled claims now (open does too). */
shmlog_status shmlog_sweep(const shmlog_log* log);

/* A keeper of a durable log in a thread of its own, for a process that
 * opened the log with keeper = 0 and keeps on purpose (`shmlog keeper`
 * does this): it waits for the lease (checking every 100 ms), then
 * flushes, syncs, applies retention and checkpoints offsets until
 * stopped. Start and stop it in the same process and thread; it keeps
 * the log mapped, so the log handle may be closed first. */
typedef struct shmlog_keeper shmlog_keeper;
/* SHMLOG_INVALID_ARGUMENT for a log that is not durable. */
shmlog_status shmlog_keeper_start(const shmlog_log* log, shmlog_keeper** keeper);
/* Stops the keeper (it writes and syncs what is committed, and gives up
 * the lease), waits for its thread and frees it; returns how keeping
 * ended (an error if io_uring was refused, for example). NULL is fine. */
shmlog_status shmlog_keeper_stop(shmlog_keeper* keeper);

/* ---------------------------------------------------------------- producers */
typedef struct shmlog_producer_options {
  uint32_t partition;              /* for records without a key */
  int exclusive;                   /* the only writer of the log */
  uint32_t backpressure_timeout_ms;
  int timestamps;                  /* stamp records with CLOCK_REALTIME (read through the TSC) */
  const char* name;                /* may be NULL */
  const char* producer_id;         /* NULL or "": anonymous; else idempotent, fences older instances */
  int transactional;               /* with a producer_id: begin/commit/abort_transaction */
  int acks_durable;                /* durable logs: append returns once the record is durable */
  shmlog_wait wait;                /* how append waits for ring space */
  int core;                        /* >= 0: pin the opening thread to this CPU first */
  uint32_t transaction_timeout_ms; /* an open transaction older than this may be aborted by a reader */
  uint32_t durable_timeout_ms;     /* acks_durable: then SHMLOG_NOT_DURABLE (the record stays appended) */
} shmlog_producer_options;

void shmlog_producer_options_init(shmlog_producer_options* options);
shmlog_status shmlog_producer_open(shmlog_log* log, const shmlog_producer_options* options,
                                   shmlog_producer** producer);
void shmlog_producer_close(shmlog_producer* producer);

/* Copies a record into the producer's partition; `offset` may be NULL. */
shmlog_status shmlog_append(shmlog_producer* producer, const void* value, size_t size, uint64_t* offset);
/* A keyed record goes to the partition its key hashes to. */
shmlog_status shmlog_append_keyed(shmlog_producer* producer, const void* key, size_t key_size, const void* value,
                                  size_t value_size, uint32_t* partition, uint64_t* offset);
/* Into `partition`, with a key (key may be NULL when key_size is 0). */
shmlog_status shmlog_append_to(shmlog_producer* producer, uint32_t partition, const void* key, size_t key_size,
                               const void* value, size_t value_size, uint64_t* offset);
/* As shmlog_append_to, but the record carries `timestamp_ns` (nanoseconds
 * since the Unix epoch) rather than the clock's time. */
shmlog_status shmlog_append_at(shmlog_producer* producer, uint32_t partition, const void* key, size_t key_size,
                               const void* value, size_t value_size, uint64_t timestamp_ns, uint64_t* offset);
/* The partition a keyed record goes to. */
shmlog_status shmlog_partition_for(const shmlog_producer* producer, const void* key, size_t key_size,
                                   uint32_t* partition);
/* Appends `count` values in order; `appended` (may be NULL) says how many. */
shmlog_status shmlog_append_batch(shmlog_producer* producer, const void* const* values, const size_t* sizes,
                                  size_t count, size_t* appended);

/* Zero-copy: write `value` (and `key`) in place, then commit or abort. */
typedef struct shmlog_claim {
  void* key;
  size_t key_size;
  void* value;
  size_t value_size;
  uint32_t partition;
  uint64_t offset;
} shmlog_claim;
shmlog_status shmlog_claim_space(shmlog_producer* producer, size_t value_size, size_t key_size, shmlog_claim* claim);
/* The same in `partition`. */
shmlog_status shmlog_claim_in(shmlog_producer* producer, uint32_t partition, size_t value_size, size_t key_size,
                              shmlog_claim* claim);

/* Durable logs: waits until the partition's records below `end` (an
 * append's offset + 1) are durable; SHMLOG_NOT_DURABLE after `timeout_ms`. */
shmlog_status shmlog_wait_durable(shmlog_producer* producer, uint32_t partition, uint64_t end, uint32_t timeout_ms);

/* Exactly-once (see the C++ API). A re-sent record of a named producer
 * returns SHMLOG_DUPLICATE, a fenced instance SHMLOG_FENCED. */
void shmlog_set_next_sequence(shmlog_producer* producer, uint64_t sequence);
/* The sequence number the next record carries. */
shmlog_status shmlog_next_sequence(const shmlog_producer* producer, uint64_t* sequence);
/* The last sequence that reached the log; SHMLOG_EMPTY when none. */
shmlog_status shmlog_last_sequence(const shmlog_producer* producer, uint64_t* sequence);
/* The producer's id in the log and its epoch (a named producer's epoch
 * grows each time it is opened again). Either pointer may be NULL. */
shmlog_status shmlog_producer_identity(const shmlog_producer* producer, uint16_t* id, uint16_t* epoch);
/* Appends unless a record with `token` is in the log's token window
 * (SHMLOG_DUPLICATE, nothing written). */
shmlog_status shmlog_append_unique(shmlog_producer* producer, const void* token, size_t token_size, const void* value,
                                   size_t value_size, uint64_t* offset);
/* The same into `partition`, with a key. */
shmlog_status shmlog_append_unique_to(shmlog_producer* producer, uint32_t partition, const void* token,
                                      size_t token_size, const void* key, size_t key_size, const void* value,
                                      size_t value_size, uint64_t* offset);
shmlog_status shmlog_begin_transaction(shmlog_producer* producer);
shmlog_status shmlog_commit_transaction(shmlog_producer* producer);
shmlog_status shmlog_abort_transaction(shmlog_producer* producer);
/* *open = 1 while a transaction is open, else 0. */
shmlog_status shmlog_in_transaction(const shmlog_producer* producer, int* open);
/* Consume-process-produce: consumer offsets committed with the open
 * transaction, recorded in this log. After a restart,
 * shmlog_committed_offsets gives those of the last committed transaction. */
shmlog_status shmlog_add_offsets(shmlog_producer* producer, const char* group, uint32_t partition, uint64_t offset);
typedef struct shmlog_partition_offset {
  uint32_t partition;
  uint64_t offset;
} shmlog_partition_offset;
/* Writes up to `max` of them to `out`; *count says how many there are. */
shmlog_status shmlog_committed_offsets(const shmlog_producer* producer, const char* group,
                                       shmlog_partition_offset* out, size_t max, size_t* count);
/* A transaction spanning several logs: each producer transactional, one
 * per log, the same producer_id in each, a transaction begun on each.
 * Commits (or aborts) them together: read_committed readers of every log
 * see all of it or none, also when this process dies half-way (the first
 * log holds the decision; whoever finds it abandoned finishes it as
 * decided, undecided means abort). A commit that fails aborts everywhere
 * and returns SHMLOG_FENCED with the reason. */
shmlog_status shmlog_commit_transactions(shmlog_producer* const* producers, size_t count);
shmlog_status shmlog_abort_transactions(shmlog_producer* const* producers, size_t count);
shmlog_status shmlog_commit(shmlog_producer* producer, shmlog_claim* claim);
void shmlog_abort(shmlog_producer* producer, shmlog_claim* claim);

/* ---------------------------------------------------------------- consumers */
typedef enum shmlog_mode { SHMLOG_AT_LEAST_ONCE = 0, SHMLOG_AT_MOST_ONCE = 1, SHMLOG_MANUAL = 2 } shmlog_mode;
typedef enum shmlog_from { SHMLOG_FROM_EARLIEST = 0, SHMLOG_FROM_LATEST = 1, SHMLOG_FROM_OFFSET = 2 } shmlog_from;

typedef struct shmlog_consumer_options {
  const char* group;  /* NULL or "": a private reader of every partition, no commits */
  shmlog_mode mode;
  uint32_t commit_every;
  shmlog_from from;
  uint64_t from_offset;
  shmlog_wait wait;
  int read_committed;  /* transactional records only once committed */
  int read_durable;    /* durable logs: only records already durable (what is acted on survives a host crash) */
  int drop_duplicates; /* skip a record whose (producer, epoch, sequence) is not above the last one seen */
  const uint32_t* partitions; /* private readers: only these partitions (NULL: all); copied at open */
  size_t partition_count;
  int core;            /* >= 0: pin the opening thread to this CPU first */
  /* shmlog_poll: after a call that handed out fewer than `max` records, the
   * next call first waits this long (capped by its timeout), so that a
   * streaming producer runs ahead; trades latency for throughput. 0: none. */
  uint64_t short_poll_backoff_ns;
} shmlog_consumer_options;

/* A record as C++ has it, field for field (the library checks this when
 * it is built), so handing one to C is a single copy. */
typedef struct shmlog_record {
  uint32_t partition;
  uint64_t offset;
  uint64_t next_offset;
  uint64_t timestamp_ns;
  uint16_t producer_id;
  uint16_t producer_epoch;
  uint64_t sequence;
  uint8_t transactional; /* written inside a transaction */
  uint8_t type;          /* 1: data (the only type handed to callbacks) */
  const void* key; /* views into shared memory, valid during the callback */
  size_t key_size;
  const void* value;
  size_t value_size;
} shmlog_record;

typedef void (*shmlog_record_fn)(void* context, const shmlog_record* record);

void shmlog_consumer_options_init(shmlog_consumer_options* options);
shmlog_status shmlog_consumer_open(shmlog_log* log, const shmlog_consumer_options* options,
                                   shmlog_consumer** consumer);
/* Commits as the mode says and leaves the group. */
void shmlog_consumer_close(shmlog_consumer* consumer);
/* Hands up to `max` records to `fn`, waiting up to `timeout_ms` for the
 * first; SHMLOG_EMPTY when none came. `delivered` may be NULL. */
shmlog_status shmlog_poll(shmlog_consumer* consumer, shmlog_record_fn fn, void* context, size_t max,
                          uint32_t timeout_ms, size_t* delivered);
/* Commits every owned partition's position. */
shmlog_status shmlog_consumer_commit(shmlog_consumer* consumer);
/* Commits `offset` for an owned `partition` (at most its position). */
shmlog_status shmlog_commit_offset(shmlog_consumer* consumer, uint32_t partition, uint64_t offset);
shmlog_status shmlog_seek(shmlog_consumer* consumer, uint32_t partition, uint64_t offset);
/* Moves to the first record whose timestamp is at or after `time_ns`
 * (CLOCK_REALTIME), searching the segment files and the ring; past the
 * last record: the end. `offset` (may be NULL) is the new position. */
shmlog_status shmlog_seek_time(shmlog_consumer* consumer, uint32_t partition, uint64_t time_ns, uint64_t* offset);
shmlog_status shmlog_position(const shmlog_consumer* consumer, uint32_t partition, uint64_t* offset);
/* The partitions this consumer reads now (they change as group members
 * come and go): up to `max` in `out`; *count says how many there are. */
shmlog_status shmlog_assignment(const shmlog_consumer* consumer, uint32_t* out, size_t max, size_t* count);
/* Bytes skipped because the ring lapped this consumer (overwrite logs). */
shmlog_status shmlog_lost_bytes(const shmlog_consumer* consumer, uint64_t* bytes);

/* Damage a consumer stepped over (a missing or damaged segment file of a
 * durable log, a record that failed its checksum): offsets [from, to) of
 * `partition` were skipped; `what` says where and why in one line (cut to
 * fit, NUL-terminated). */
typedef struct shmlog_damage {
  uint32_t partition;
  uint64_t from;
  uint64_t to;
  char what[512];
} shmlog_damage;
/* Moves up to `max` of the damage reports gathered since the last call
 * into `out` (oldest first) and returns how many; the rest wait for the
 * next call. */
size_t shmlog_take_damage(shmlog_consumer* consumer, shmlog_damage* out, size_t max);

#ifdef __cplusplus
}
#endif

#endif /* SHMLOG_H_ */
