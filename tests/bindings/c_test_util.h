/* What the C API's test programs share. CHECK: on failure, prints the
 * line, the message and shmlog_last_error(), and exits 1. */
#ifndef SHMLOG_TESTS_C_TEST_UTIL_H_
#define SHMLOG_TESTS_C_TEST_UTIL_H_

#include <shmlog.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond, ...)                                             \
  do {                                                               \
    if (!(cond)) {                                                   \
      fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                \
      fprintf(stderr, __VA_ARGS__);                                  \
      fprintf(stderr, " (last error: %s)\n", shmlog_last_error());   \
      exit(1);                                                       \
    }                                                                \
  } while (0)

/* A transactional producer with producer id `id`, or the test fails. */
static inline shmlog_producer* open_transactional(shmlog_log* log, const char* id) {
  shmlog_producer_options o;
  shmlog_producer_options_init(&o);
  o.producer_id = id;
  o.transactional = 1;
  shmlog_producer* p = NULL;
  CHECK(shmlog_producer_open(log, &o, &p) == SHMLOG_OK, "transactional producer %s", id);
  return p;
}

#endif /* SHMLOG_TESTS_C_TEST_UTIL_H_ */
