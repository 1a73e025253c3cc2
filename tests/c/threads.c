/* Concurrency of the C API on pthreads: two sessions sharing one model segment at the
 * same time and give exactly the sequential result; a session in use by one thread
 * refuses a second thread with BRAINSAM_STATUS_INVALID_STATE; freeing a session while
 * another thread is inside a call on it is safe; error messages are per thread; a job
 * polled to its end gives the sequential result.
 * Run by tests/c_api.rs under AddressSanitizer. Usage: threads CHECKPOINT */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainsam.h"
#include "phantom.h"

static int failures = 0;
#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, \
              __LINE__, #cond, brainsam_last_error_message());               \
      failures++;                                                            \
    }                                                                        \
  } while (0)

static brainsam_model *model;
static const float *phantom;

/* Segments the phantom in a new session; `lps` picks the descriptor's coordinates. */
static uint8_t *segment(int lps) {
  brainsam_session *session = NULL;
  uint8_t *labels = malloc(PHANTOM_VOXELS);
  brainsam_volume_desc desc = lps ? phantom_desc_lps(phantom) : phantom_desc_ras(phantom);
  int ok = brainsam_session_create(model, &session) == BRAINSAM_STATUS_OK &&
           brainsam_session_set_volume(session, &desc) == BRAINSAM_STATUS_OK &&
           brainsam_session_segment_all(session, NULL, NULL) == BRAINSAM_STATUS_OK &&
           brainsam_session_copy_labels(session, labels, PHANTOM_VOXELS) == BRAINSAM_STATUS_OK;
  if (!ok) {
    fprintf(stderr, "segmentation failed: %s\n", brainsam_last_error_message());
    free(labels);
    labels = NULL;
  }
  brainsam_session_free(session);
  return labels;
}

static void *segment_thread(void *lps) {
  /* Errors are per thread: the main thread's failure is not visible here. */
  if (brainsam_last_error_message()[0] != '\0') return NULL;
  return segment(lps != NULL);
}

/* A session busy in segment_all on a worker, held inside its progress callback until
 * the main thread has checked what other threads may do meanwhile. */
struct busy {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  int in_callback, release;
  brainsam_session *session;
  brainsam_status status;
};

static int hold_in_progress(void *user_data, uint64_t done, uint64_t total) {
  struct busy *busy = user_data;
  (void)done;
  (void)total;
  pthread_mutex_lock(&busy->lock);
  busy->in_callback = 1;
  pthread_cond_broadcast(&busy->changed);
  while (!busy->release) pthread_cond_wait(&busy->changed, &busy->lock);
  pthread_mutex_unlock(&busy->lock);
  return 0;
}

static void *busy_thread(void *user_data) {
  struct busy *busy = user_data;
  busy->status = brainsam_session_segment_all(busy->session, hold_in_progress, busy);
  return NULL;
}

static void check_busy_session(void) {
  struct busy busy;
  memset(&busy, 0, sizeof busy);
  pthread_mutex_init(&busy.lock, NULL);
  pthread_cond_init(&busy.changed, NULL);
  brainsam_volume_desc desc = phantom_desc_ras(phantom);
  CHECK(brainsam_session_create(model, &busy.session) == BRAINSAM_STATUS_OK);
  CHECK(brainsam_session_set_volume(busy.session, &desc) == BRAINSAM_STATUS_OK);

  pthread_t worker;
  pthread_create(&worker, NULL, busy_thread, &busy);
  pthread_mutex_lock(&busy.lock);
  while (!busy.in_callback) pthread_cond_wait(&busy.changed, &busy.lock);
  pthread_mutex_unlock(&busy.lock);

  /* The worker is inside segment_all: other threads are refused, not raced. */
  uint32_t axis;
  CHECK(brainsam_session_slicing_axis(busy.session, &axis) == BRAINSAM_STATUS_INVALID_STATE);
  CHECK(strstr(brainsam_last_error_message(), "another thread") != NULL);
  CHECK(brainsam_session_segment_all(busy.session, NULL, NULL) ==
        BRAINSAM_STATUS_INVALID_STATE);
  CHECK(brainsam_session_propagate_structure(busy.session, 1, 0, BRAINSAM_PROPAGATE_BOTH, 0, NULL,
                                             NULL, NULL) == BRAINSAM_STATUS_INVALID_STATE);
  /* Arguments are checked before the session is needed. */
  CHECK(brainsam_session_propagate_structure(busy.session, 1, 0, 7, 0, NULL, NULL, NULL) ==
        BRAINSAM_STATUS_INVALID_ARGUMENT);
  CHECK(strstr(brainsam_last_error_message(), "direction 7") != NULL);
  CHECK(brainsam_job_slice_range(NULL, NULL, NULL, NULL) == BRAINSAM_STATUS_NULL_POINTER);
  /* Freeing it now is safe: it is destroyed when the worker's call returns. */
  brainsam_session *freed = busy.session;
  brainsam_session_free(freed);
  CHECK(brainsam_session_slicing_axis(freed, &axis) == BRAINSAM_STATUS_INVALID_HANDLE);

  pthread_mutex_lock(&busy.lock);
  busy.release = 1;
  pthread_cond_broadcast(&busy.changed);
  pthread_mutex_unlock(&busy.lock);
  pthread_join(worker, NULL);
  CHECK(busy.status == BRAINSAM_STATUS_OK);
  pthread_cond_destroy(&busy.changed);
  pthread_mutex_destroy(&busy.lock);
}

/* The same segmentation as a library job, polled from this thread: it finishes with
 * BRAINSAM_JOB_FINISHED, all units done, and the sequential result. */
static void check_job(const uint8_t *sequential) {
  brainsam_session *session = NULL;
  brainsam_job *job = NULL;
  brainsam_volume_desc desc = phantom_desc_ras(phantom);
  CHECK(brainsam_session_create(model, &session) == BRAINSAM_STATUS_OK);
  CHECK(brainsam_session_set_volume(session, &desc) == BRAINSAM_STATUS_OK);
  CHECK(brainsam_session_segment_all_start(session, &job) == BRAINSAM_STATUS_OK);
  uint64_t done = 0, total = 0;
  uint32_t state = BRAINSAM_JOB_RUNNING;
  while (job && state == BRAINSAM_JOB_RUNNING) {
    CHECK(brainsam_job_progress(job, &done, &total, &state) == BRAINSAM_STATUS_OK);
  }
  CHECK(state == BRAINSAM_JOB_FINISHED);
  CHECK(total > 0 && done == total);
  CHECK(brainsam_job_wait(job) == BRAINSAM_STATUS_OK);
  brainsam_job_free(job);
  uint8_t *labels = malloc(PHANTOM_VOXELS);
  CHECK(brainsam_session_copy_labels(session, labels, PHANTOM_VOXELS) == BRAINSAM_STATUS_OK);
  if (sequential) CHECK(memcmp(labels, sequential, PHANTOM_VOXELS) == 0);
  free(labels);
  brainsam_session_free(session);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CHECKPOINT\n", argv[0]);
    return 2;
  }
  model = phantom_load_model(argv[1]);
  float *data = malloc(PHANTOM_VOXELS * sizeof *data);
  phantom_fill(data);
  phantom = data;

  uint8_t *sequential = segment(0);
  CHECK(sequential != NULL);
  size_t foreground = 0;
  for (size_t n = 0; sequential && n < PHANTOM_VOXELS; n++) foreground += sequential[n] != 0;
  printf("sequential: %zu foreground voxels\n", foreground);

  /* Leave an error on this thread: the workers must not see it. */
  CHECK(brainsam_session_create(NULL, NULL) == BRAINSAM_STATUS_NULL_POINTER);

  pthread_t threads[2];
  void *results[2] = {NULL, NULL};
  /* One worker describes the volume in RAS, the other in LPS: same voxels, same grid. */
  CHECK(pthread_create(&threads[0], NULL, segment_thread, NULL) == 0);
  CHECK(pthread_create(&threads[1], NULL, segment_thread, (void *)1) == 0);
  for (int t = 0; t < 2; t++) pthread_join(threads[t], &results[t]);
  /* ... and this thread's message is still its own. */
  CHECK(strstr(brainsam_last_error_message(), "`model`") != NULL);
  for (int t = 0; t < 2; t++) {
    CHECK(results[t] != NULL);
    if (results[t] && sequential) CHECK(memcmp(results[t], sequential, PHANTOM_VOXELS) == 0);
    free(results[t]);
  }

  check_busy_session();
  check_job(sequential);

  free(sequential);
  free(data);
  brainsam_model_free(model);
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("threads: ok\n");
  return 0;
}
