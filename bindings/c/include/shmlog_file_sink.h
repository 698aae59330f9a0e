/* shmlog C API: exactly-once output to a file (shmlog/file_sink.h in C++).
 *
 * The output and the offsets it came from advance together, so a consumer
 * killed at any point and restarted writes every record once:
 *
 *   shmlog_file_sink_open("out.txt", log, SHMLOG_SURVIVES_HOST_CRASH, &sink);
 *   for each owned partition p: if (shmlog_file_sink_offset(sink, p, &at) == SHMLOG_OK) shmlog_seek(c, p, at);
 *   loop: shmlog_poll(c, fn, sink, ...)   where fn calls shmlog_file_sink_write
 *         for each owned partition p: shmlog_position(c, p, &at); shmlog_file_sink_advance(sink, p, at);
 *         shmlog_file_sink_checkpoint(sink);   (the data, then the offsets)
 *         shmlog_consumer_commit(c);
 *
 * FILE holds the output, FILE.offsets a journal of checkpoints. Opening
 * takes the newest whole checkpoint and cuts FILE back to its length:
 * what was written after it is read again.
 * Threading: one thread at a time per sink; one sink per file (a second
 * one, in any process, is refused). The sink does not keep the log
 * mapped: only its id and partition count are taken at open.
 */
#ifndef SHMLOG_FILE_SINK_H_
#define SHMLOG_FILE_SINK_H_

#include "shmlog.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shmlog_file_sink shmlog_file_sink;

/* What a checkpoint survives: a host crash (the output, then the journal,
 * synced with fdatasync), or only a process crash (no syncs). */
typedef enum shmlog_survives { SHMLOG_SURVIVES_HOST_CRASH = 0, SHMLOG_SURVIVES_PROCESS_CRASH = 1 } shmlog_survives;

/* Opens or creates FILE (`path`) and FILE.offsets for `log`, with the log's
 * file mode. Refuses, naming the file, a FILE with data but no journal or
 * no readable checkpoint, a journal of another log, or a FILE shorter
 * than its checkpoint. */
shmlog_status shmlog_file_sink_open(const char* path, const shmlog_log* log, shmlog_survives survives,
                                    shmlog_file_sink** sink);
void shmlog_file_sink_close(shmlog_file_sink* sink); /* NULL is fine; unsaved output is dropped */

/* Where reading of `partition` resumes (the last checkpoint's offset);
 * SHMLOG_EMPTY when no checkpoint names it yet. */
shmlog_status shmlog_file_sink_offset(const shmlog_file_sink* sink, uint32_t partition, uint64_t* offset);
/* Buffers output; it reaches FILE at the next checkpoint. */
shmlog_status shmlog_file_sink_write(shmlog_file_sink* sink, const void* data, size_t size);
/* Records that `partition` has been consumed up to `next_offset`. */
shmlog_status shmlog_file_sink_advance(shmlog_file_sink* sink, uint32_t partition, uint64_t next_offset);
/* Writes the buffered output, then a checkpoint naming the new file length
 * and the offsets. Does nothing when nothing changed. */
shmlog_status shmlog_file_sink_checkpoint(shmlog_file_sink* sink);
/* FILE's length up to the last checkpoint (0 for NULL). */
uint64_t shmlog_file_sink_length(const shmlog_file_sink* sink);
/* Bytes cut off FILE at open: output written after the last checkpoint. */
uint64_t shmlog_file_sink_truncated_at_open(const shmlog_file_sink* sink);

#ifdef __cplusplus
}
#endif

#endif /* SHMLOG_FILE_SINK_H_ */
