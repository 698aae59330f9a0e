/* CHECK for the C API's test programs: on failure, prints the line, the
 * message and shmlog_last_error(), and exits 1. */
#ifndef SHMLOG_TESTS_C_CHECK_H_
#define SHMLOG_TESTS_C_CHECK_H_

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

#endif /* SHMLOG_TESTS_C_CHECK_H_ */
