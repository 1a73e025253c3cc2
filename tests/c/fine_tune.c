/* Fine-tuning through the C API (driven by tests/c_api.rs, which writes a tiny phantom
 * dataset and the configurations into DIR): bad input, a run cancelled mid-way, a run
 * failing on missing data, and a short run trained to the end whose model is saved and
 * loaded into a session. Usage: fine_tune DIR */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brainsam.h"
#include "phantom.h"

static int failures = 0;

#define CHECK(condition)                                                             \
  do {                                                                               \
    if (!(condition)) {                                                              \
      fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, __LINE__, \
              #condition, brainsam_last_error_message());                            \
      failures++;                                                                    \
    }                                                                                \
  } while (0)

/* Checks that `status` is `expected` and that the last message contains `needle`. */
static void expect_status(brainsam_status status, brainsam_status expected, const char *needle,
                          int line) {
  const char *message = brainsam_last_error_message();
  if (status != expected || (needle != NULL && strstr(message, needle) == NULL)) {
    fprintf(stderr, "line %d: expected %s with \"%s\", got %s: %s\n", line,
            brainsam_status_name(expected), needle ? needle : "", brainsam_status_name(status),
            message);
    failures++;
  }
}
#define EXPECT(call, expected, needle) expect_status((call), (expected), (needle), __LINE__)

static char dir[1024];

static const char *path_in_dir(const char *name) {
  static char buffers[4][1200];
  static int next = 0;
  char *buffer = buffers[next];
  next = (next + 1) % 4;
  snprintf(buffer, sizeof buffers[0], "%s/%s", dir, name);
  return buffer;
}

static void sleep_ms(long ms) {
  struct timespec delay = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&delay, NULL);
}

static brainsam_fine_tune_status poll(const brainsam_fine_tune *run) {
  brainsam_fine_tune_status status;
  memset(&status, 0xab, sizeof status); /* the call must fill every field */
  status.struct_size = sizeof status;
  CHECK(brainsam_fine_tune_progress(run, &status) == BRAINSAM_STATUS_OK);
  return status;
}

/* Written on the training thread, read only after brainsam_fine_tune_wait (which joins
 * it). */
typedef struct {
  uint64_t calls;
  uint64_t last_iteration;
  uint64_t total;
  int bad_values;
} progress_log;

static int32_t on_progress(void *user_data, uint64_t iteration, uint64_t total, double loss,
                           double lr, double validation_dice) {
  progress_log *log = user_data;
  log->calls++;
  if (iteration != log->last_iteration + 1 || !isfinite(loss) || !(lr > 0.0) ||
      !isnan(validation_dice)) {
    log->bad_values++;
  }
  log->last_iteration = iteration;
  log->total = total;
  return 0;
}

static int file_exists(const char *path) {
  FILE *file = fopen(path, "rb");
  if (file == NULL) return 0;
  fclose(file);
  return 1;
}

static void bad_input(void) {
  brainsam_fine_tune *run = NULL;
  EXPECT(brainsam_fine_tune_start(NULL, NULL, &run), BRAINSAM_STATUS_NULL_POINTER,
         "config_toml_path");
  EXPECT(brainsam_fine_tune_start(path_in_dir("good.toml"), NULL, NULL),
         BRAINSAM_STATUS_NULL_POINTER, "`out`");
  EXPECT(brainsam_fine_tune_start("", NULL, &run), BRAINSAM_STATUS_INVALID_ARGUMENT, "empty");
  brainsam_fine_tune_options small = {4, 0, NULL, NULL, 0};
  EXPECT(brainsam_fine_tune_start(path_in_dir("good.toml"), &small, &run),
         BRAINSAM_STATUS_BUFFER_TOO_SMALL, "struct_size");
  EXPECT(brainsam_fine_tune_start(path_in_dir("missing.toml"), NULL, &run),
         BRAINSAM_STATUS_IO_ERROR, "missing.toml");
  EXPECT(brainsam_fine_tune_start(path_in_dir("invalid.toml"), NULL, &run),
         BRAINSAM_STATUS_INVALID_ARGUMENT, "run.iterations must be at least 1");
  EXPECT(brainsam_fine_tune_start(path_in_dir("malformed.toml"), NULL, &run),
         BRAINSAM_STATUS_INVALID_FILE, "malformed.toml");
  /* Checked in start, not later on the training thread: */
  EXPECT(brainsam_fine_tune_start(path_in_dir("empty.toml"), NULL, &run),
         BRAINSAM_STATUS_INVALID_ARGUMENT, "no training data");
  EXPECT(brainsam_fine_tune_start(path_in_dir("absent.toml"), NULL, &run),
         BRAINSAM_STATUS_INVALID_ARGUMENT, "nowhere_T1.nii.gz does not exist");
  EXPECT(brainsam_fine_tune_start(path_in_dir("batch.toml"), NULL, &run),
         BRAINSAM_STATUS_INVALID_ARGUMENT, "run.batch_size 1000000000");
  CHECK(run == NULL);
  brainsam_fine_tune_status status;
  status.struct_size = sizeof status;
  EXPECT(brainsam_fine_tune_progress(NULL, &status), BRAINSAM_STATUS_NULL_POINTER,
         "fine_tune");
  EXPECT(brainsam_fine_tune_cancel(NULL), BRAINSAM_STATUS_NULL_POINTER, "fine_tune");
  EXPECT(brainsam_fine_tune_wait(NULL), BRAINSAM_STATUS_NULL_POINTER, "fine_tune");
  EXPECT(brainsam_fine_tune_save(NULL, BRAINSAM_FINE_TUNE_OUTPUT_MODEL, "x"),
         BRAINSAM_STATUS_NULL_POINTER, "fine_tune");
  int not_a_handle = 0;
  EXPECT(brainsam_fine_tune_wait((const brainsam_fine_tune *)&not_a_handle),
         BRAINSAM_STATUS_INVALID_HANDLE, "not a live brainsam_fine_tune");
  brainsam_fine_tune_free(NULL);
}

/* A long run: refused save while running, then cancelled mid-way with a checkpoint. */
static void cancel_mid_way(void) {
  progress_log log = {0, 0, 0, 0};
  brainsam_fine_tune_options options = {sizeof options, 0, on_progress, &log, 0};
  brainsam_fine_tune *run = NULL;
  CHECK(brainsam_fine_tune_start(path_in_dir("long.toml"), &options, &run) ==
        BRAINSAM_STATUS_OK);
  if (run == NULL) return;
  EXPECT(brainsam_fine_tune_save(run, BRAINSAM_FINE_TUNE_OUTPUT_MODEL, path_in_dir("early")),
         BRAINSAM_STATUS_INVALID_STATE, "still running");
  EXPECT(brainsam_fine_tune_save(run, 7, path_in_dir("early")),
         BRAINSAM_STATUS_INVALID_ARGUMENT, "output 7");
  EXPECT(brainsam_fine_tune_save(run, BRAINSAM_FINE_TUNE_OUTPUT_MODEL, NULL),
         BRAINSAM_STATUS_NULL_POINTER, "path");
  EXPECT(brainsam_fine_tune_progress(run, NULL), BRAINSAM_STATUS_NULL_POINTER, "out");
  brainsam_fine_tune_status small;
  small.struct_size = 8;
  EXPECT(brainsam_fine_tune_progress(run, &small), BRAINSAM_STATUS_BUFFER_TOO_SMALL,
         "struct_size");

  brainsam_fine_tune_status status = poll(run);
  CHECK(status.state == BRAINSAM_FINE_TUNE_RUNNING);
  CHECK(status.total == 100000);
  CHECK(status.error_status == BRAINSAM_STATUS_OK && status.error_message[0] == '\0');
  for (int waited = 0; status.iteration < 3 && waited < 1200; waited++) {
    sleep_ms(50);
    status = poll(run);
  }
  CHECK(status.iteration >= 3);
  CHECK(isfinite(status.loss) && status.lr > 0.0 && isnan(status.best_validation_dice));

  CHECK(brainsam_fine_tune_cancel(run) == BRAINSAM_STATUS_OK);
  EXPECT(brainsam_fine_tune_wait(run), BRAINSAM_STATUS_CANCELLED, "cancelled");
  EXPECT(brainsam_fine_tune_wait(run), BRAINSAM_STATUS_CANCELLED, "cancelled");
  status = poll(run);
  CHECK(status.state == BRAINSAM_FINE_TUNE_CANCELLED);
  CHECK(status.iteration >= 3 && status.iteration < status.total);
  CHECK(log.calls == status.iteration && log.last_iteration == status.iteration);
  CHECK(log.total == 100000 && log.bad_values == 0);
  CHECK(file_exists(path_in_dir("long-out/checkpoint.safetensors")));
  EXPECT(brainsam_fine_tune_save(run, BRAINSAM_FINE_TUNE_OUTPUT_MODEL, path_in_dir("early")),
         BRAINSAM_STATUS_INVALID_STATE, "cancelled");
  CHECK(!file_exists(path_in_dir("early")));
  printf("cancelled after %llu iterations\n", (unsigned long long)status.iteration);
  brainsam_fine_tune_free(run);
  EXPECT(brainsam_fine_tune_cancel(run), BRAINSAM_STATUS_INVALID_HANDLE, "freed already");
  brainsam_fine_tune_free(run); /* double free: ignored */

  /* Resuming from that checkpoint, then freeing the running run: free cancels it and
   * waits for its thread. */
  brainsam_fine_tune_options resume = {sizeof resume, 1, NULL, NULL, 0};
  run = NULL;
  CHECK(brainsam_fine_tune_start(path_in_dir("long.toml"), &resume, &run) ==
        BRAINSAM_STATUS_OK);
  /* A second run into the same folder meanwhile is refused: the folder is locked. */
  brainsam_fine_tune *second = NULL;
  EXPECT(brainsam_fine_tune_start(path_in_dir("long.toml"), &resume, &second),
         BRAINSAM_STATUS_INVALID_STATE, "another fine-tuning run is writing into");
  CHECK(second == NULL);
  brainsam_fine_tune_free(run);
  CHECK(file_exists(path_in_dir("long-out/checkpoint.safetensors")));
}

/* Errors in the data's content show up in the run, not in start. */
static void failing_run(void) {
  brainsam_fine_tune *run = NULL;
  CHECK(brainsam_fine_tune_start(path_in_dir("failing.toml"), NULL, &run) ==
        BRAINSAM_STATUS_OK);
  if (run == NULL) return;
  brainsam_status result = brainsam_fine_tune_wait(run);
  CHECK(result != BRAINSAM_STATUS_OK && result != BRAINSAM_STATUS_CANCELLED);
  CHECK(strstr(brainsam_last_error_message(), "broken_T1.nii.gz") != NULL);
  brainsam_fine_tune_status status = poll(run);
  CHECK(status.state == BRAINSAM_FINE_TUNE_FAILED);
  CHECK(status.error_status == (uint32_t)result);
  CHECK(strstr(status.error_message, "broken_T1.nii.gz") != NULL);
  EXPECT(brainsam_fine_tune_save(run, BRAINSAM_FINE_TUNE_OUTPUT_MODEL, path_in_dir("x")),
         BRAINSAM_STATUS_INVALID_STATE, "failed");
  brainsam_fine_tune_free(run);
}

/* A short run to the end; its model is saved and segments a volume. */
static void train_save_and_load(void) {
  progress_log log = {0, 0, 0, 0};
  brainsam_fine_tune_options options = {sizeof options, 0, on_progress, &log, 0};
  brainsam_fine_tune *run = NULL;
  CHECK(brainsam_fine_tune_start(path_in_dir("good.toml"), &options, &run) ==
        BRAINSAM_STATUS_OK);
  if (run == NULL) return;
  brainsam_fine_tune_status status = poll(run);
  uint64_t seen = 0;
  for (int waited = 0; status.state == BRAINSAM_FINE_TUNE_RUNNING && waited < 2400; waited++) {
    CHECK(status.iteration >= seen); /* progress never goes back */
    seen = status.iteration;
    sleep_ms(50);
    status = poll(run);
  }
  CHECK(brainsam_fine_tune_wait(run) == BRAINSAM_STATUS_OK);
  status = poll(run);
  CHECK(status.state == BRAINSAM_FINE_TUNE_FINISHED);
  CHECK(status.iteration == 20 && status.total == 20);
  CHECK(isfinite(status.loss) && status.lr > 0.0);
  CHECK(status.error_status == BRAINSAM_STATUS_OK && status.error_message[0] == '\0');
  CHECK(log.calls == 20 && log.last_iteration == 20 && log.bad_values == 0);

  EXPECT(brainsam_fine_tune_save(run, BRAINSAM_FINE_TUNE_OUTPUT_ADAPTER, path_in_dir("a")),
         BRAINSAM_STATUS_INVALID_STATE, "no adapter");
  EXPECT(brainsam_fine_tune_save(run, BRAINSAM_FINE_TUNE_OUTPUT_BEST_MODEL, path_in_dir("b")),
         BRAINSAM_STATUS_INVALID_STATE, "no best model");
  EXPECT(brainsam_fine_tune_save(run, BRAINSAM_FINE_TUNE_OUTPUT_MODEL,
                                 path_in_dir("no-such-folder/model.safetensors")),
         BRAINSAM_STATUS_IO_ERROR, "no-such-folder");
  const char *saved = path_in_dir("saved.safetensors");
  CHECK(brainsam_fine_tune_save(run, BRAINSAM_FINE_TUNE_OUTPUT_MODEL, saved) ==
        BRAINSAM_STATUS_OK);
  brainsam_fine_tune_free(run);
  /* A fresh run over the finished one is refused (resume or overwrite it instead). */
  run = NULL;
  EXPECT(brainsam_fine_tune_start(path_in_dir("good.toml"), NULL, &run),
         BRAINSAM_STATUS_INVALID_ARGUMENT, "already holds an earlier run");
  CHECK(run == NULL);

  brainsam_model_options model_options = {.struct_size = sizeof model_options,
                                          .checkpoint_path = saved,
                                          .device = BRAINSAM_DEVICE_CPU};
  brainsam_model *model = NULL;
  CHECK(brainsam_model_load(&model_options, &model) == BRAINSAM_STATUS_OK);
  brainsam_session *session = NULL;
  CHECK(brainsam_session_create(model, &session) == BRAINSAM_STATUS_OK);
  float *voxels = malloc(PHANTOM_VOXELS * sizeof *voxels);
  if (voxels == NULL || session == NULL) {
    failures++;
  } else {
    phantom_fill(voxels);
    brainsam_volume_desc volume = phantom_desc_ras(voxels);
    CHECK(brainsam_session_set_volume(session, &volume) == BRAINSAM_STATUS_OK);
    /* One prompted slice (one forward pass) shows the model runs; the whole-volume
     * pipeline is tested elsewhere. */
    uint32_t axis = 0;
    uint64_t first = 0, last = 0;
    CHECK(brainsam_session_slicing_axis(session, &axis) == BRAINSAM_STATUS_OK);
    CHECK(brainsam_session_slice_range(session, &first, &last) == BRAINSAM_STATUS_OK);
    double a[3] = {PHANTOM_NI / 2 - 6, PHANTOM_NJ / 2 - 6, PHANTOM_NK / 2 - 6};
    double b[3] = {PHANTOM_NI / 2 + 6, PHANTOM_NJ / 2 + 6, PHANTOM_NK / 2 + 6};
    const uint64_t slice = (first + last) / 2;
    if (axis < 3) a[axis] = b[axis] = (double)slice;
    CHECK(brainsam_session_add_box(session, 1, a, b) == BRAINSAM_STATUS_OK);
    CHECK(brainsam_session_segment_structure(session, 1, (int64_t)slice) == BRAINSAM_STATUS_OK);
  }
  free(voxels);
  brainsam_session_free(session);
  brainsam_model_free(model);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  snprintf(dir, sizeof dir, "%s", argv[1]);
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  void (*phases[])(void) = {bad_input, cancel_mid_way, failing_run, train_save_and_load};
  const char *names[] = {"bad input", "cancel", "failing run", "train, save, load"};
  /* (Phase times help find what makes this test slow on a busy machine.) */
  for (size_t phase = 0; phase < sizeof phases / sizeof phases[0]; phase++) {
    phases[phase]();
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    printf("%s done at %.1f s\n", names[phase],
           (double)(now.tv_sec - start.tv_sec) + 1e-9 * (double)(now.tv_nsec - start.tv_nsec));
  }
  if (failures > 0) {
    fprintf(stderr, "fine_tune: %d failures\n", failures);
    return 1;
  }
  printf("fine_tune: ok\n");
  return 0;
}
