/* Robustness of the C API: every misuse gives its status and a message naming the
 * problem, and nothing crashes. Run by tests/c_api.rs under AddressSanitizer.
 * Usage: robustness CHECKPOINT */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainsam.h"
#include "phantom.h"

static int failures = 0;

/* Checks that `call` returns `expected` and that the thread's last error message
 * contains `needle` (the empty string for success). */
#define EXPECT(call, expected, needle)                                                  \
  do {                                                                                  \
    brainsam_status got_ = (call);                                                      \
    const char *message_ = brainsam_last_error_message();                               \
    if (got_ != (expected) || strstr(message_, (needle)) == NULL ||                     \
        ((expected) == BRAINSAM_STATUS_OK && message_[0] != '\0')) {                    \
      fprintf(stderr, "%s:%d: %s\n  gave %s \"%s\"\n  expected %s with \"%s\"\n",       \
              __FILE__, __LINE__, #call, brainsam_status_name(got_), message_,          \
              brainsam_status_name(expected), (needle));                                \
      failures++;                                                                       \
    }                                                                                   \
  } while (0)

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                            \
    }                                                                        \
  } while (0)

static int log_messages = 0;
static brainsam_status nested_set_status = BRAINSAM_STATUS_OK;

static void count_log(void *user_data, uint32_t level, const char *message) {
  (void)level;
  (void)message;
  (*(int *)user_data)++;
  /* Re-configuring logging from inside the callback is refused, not a deadlock. */
  nested_set_status = brainsam_set_log_callback(NULL, NULL);
}

/* A progress callback that calls back into its own session: refused as re-entrant. */
static brainsam_status reentrant_status = BRAINSAM_STATUS_OK;
static char reentrant_message[256];

static int reentrant_calls = 0;

static int call_back_in(void *user_data, uint64_t done, uint64_t total) {
  (void)done;
  (void)total;
  if (reentrant_calls++ == 0) {
    reentrant_status = brainsam_session_segment_all((brainsam_session *)user_data, NULL, NULL);
    snprintf(reentrant_message, sizeof reentrant_message, "%s", brainsam_last_error_message());
  }
  return 1;
}

static int cancel_at_two(void *user_data, uint64_t done, uint64_t total) {
  (void)user_data;
  (void)total;
  return done >= 2;
}

struct progress_log {
  uint64_t calls, last_done, last_total;
  int monotone;
};

static int record_progress(void *user_data, uint64_t done, uint64_t total) {
  struct progress_log *log = user_data;
  if (log->calls > 0 && done <= log->last_done) log->monotone = 0;
  log->calls++;
  log->last_done = done;
  log->last_total = total;
  return 0;
}

static void check_model_loading(const char *checkpoint) {
  brainsam_model_options options;
  memset(&options, 0, sizeof options);
  options.struct_size = sizeof options;
  options.checkpoint_path = checkpoint;
  options.device = BRAINSAM_DEVICE_CPU;
  brainsam_model *model = NULL;

  EXPECT(brainsam_model_load(NULL, &model), BRAINSAM_STATUS_NULL_POINTER, "`options`");
  EXPECT(brainsam_model_load(&options, NULL), BRAINSAM_STATUS_NULL_POINTER, "`out_model`");
  options.struct_size = 8;
  EXPECT(brainsam_model_load(&options, &model), BRAINSAM_STATUS_BUFFER_TOO_SMALL,
         "brainsam_model_options.struct_size is 8");
  options.struct_size = sizeof options;
  options.device = 7;
  EXPECT(brainsam_model_load(&options, &model), BRAINSAM_STATUS_INVALID_ARGUMENT, "device 7");
  options.device = BRAINSAM_DEVICE_CPU;
  options.checkpoint_path = "/nonexistent/brainsam/missing.safetensors";
  EXPECT(brainsam_model_load(&options, &model), BRAINSAM_STATUS_IO_ERROR, "missing.safetensors");
  options.checkpoint_path = "\xff\xfe";
  EXPECT(brainsam_model_load(&options, &model), BRAINSAM_STATUS_INVALID_ARGUMENT, "UTF-8");
  CHECK(model == NULL);

  /* Precision and CUDA device number (fields added in 0.2). */
  options.checkpoint_path = checkpoint;
  options.precision = 9;
  EXPECT(brainsam_model_load(&options, &model), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "precision 9");
  options.precision = BRAINSAM_PRECISION_BF16;
  EXPECT(brainsam_model_load(&options, &model), BRAINSAM_STATUS_OK, "");
  brainsam_model_free(model);
  model = NULL;
  options.precision = BRAINSAM_PRECISION_AUTO;
  struct brainsam_runtime info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  EXPECT(brainsam_runtime_info(&info), BRAINSAM_STATUS_OK, "");
  options.device = BRAINSAM_DEVICE_CUDA;
  options.device_index = (uint32_t)info.cuda_device_count + 1;
  EXPECT(brainsam_model_load(&options, &model),
         info.cuda_device_count == 0 ? BRAINSAM_STATUS_UNSUPPORTED
                                     : BRAINSAM_STATUS_INVALID_ARGUMENT,
         "cuda:");
  CHECK(model == NULL);

  /* A caller built against the 0.1 header (struct up to `device`, whose padding is where
   * the 0.2 fields start) still loads models: the later fields read as their defaults,
   * whatever lies in its padding or past its struct. */
  struct model_options_0_1 {
    uint32_t struct_size;
    const char *checkpoint_path;
    const char *adapter_path;
    uint32_t device;
  };
  struct {
    brainsam_model_options options;
    uint32_t poison[2];
  } old;
  memset(&old, 0xAB, sizeof old);
  old.options.struct_size = (uint32_t)sizeof(struct model_options_0_1);
  old.options.checkpoint_path = checkpoint;
  old.options.adapter_path = NULL;
  old.options.device = BRAINSAM_DEVICE_CPU;
  CHECK(sizeof(struct model_options_0_1) < sizeof(brainsam_model_options));
  EXPECT(brainsam_model_load(&old.options, &model), BRAINSAM_STATUS_OK, "");
  CHECK(model != NULL);
  brainsam_model_free(model);
}

/* Sessions with options: defaults for NULL, bad values named. */
static void check_session_options(brainsam_model *model) {
  brainsam_session *session = NULL;
  EXPECT(brainsam_session_create_with_options(model, NULL, &session), BRAINSAM_STATUS_OK, "");
  brainsam_session_free(session);
  session = NULL;
  brainsam_session_options options;
  memset(&options, 0, sizeof options);
  options.struct_size = 4;
  EXPECT(brainsam_session_create_with_options(model, &options, &session),
         BRAINSAM_STATUS_BUFFER_TOO_SMALL, "brainsam_session_options.struct_size is 4");
  options.struct_size = sizeof options;
  options.embedding_cache = 5;
  EXPECT(brainsam_session_create_with_options(model, &options, &session),
         BRAINSAM_STATUS_INVALID_ARGUMENT, "embedding_cache 5");
  EXPECT(brainsam_session_create_with_options(NULL, &options, &session),
         BRAINSAM_STATUS_NULL_POINTER, "`model`");
  CHECK(session == NULL);
  options.embedding_cache = 2;
  options.batch_size = 3;
  options.no_mirror_averaging = 1;
  options.no_cleanup = 1;
  options.no_shift_averaging = 1;
  EXPECT(brainsam_session_create_with_options(model, &options, &session), BRAINSAM_STATUS_OK,
         "");
  CHECK(session != NULL);
  brainsam_session_free(session);
  session = NULL;
  /* A caller built against the first 0.2 header (struct ending before no_shift_averaging). */
  options.struct_size = offsetof(brainsam_session_options, no_shift_averaging);
  EXPECT(brainsam_session_create_with_options(model, &options, &session), BRAINSAM_STATUS_OK,
         "");
  CHECK(session != NULL);
  brainsam_session_free(session);
}

/* Every session call with a NULL or stale handle. */
static void check_bad_session_handles(brainsam_session *stale) {
  const double ijk[3] = {1, 1, 1};
  uint8_t byte;
  uint32_t axis;
  brainsam_session *sessions[2] = {NULL, stale};
  const brainsam_status expected[2] = {BRAINSAM_STATUS_NULL_POINTER,
                                       BRAINSAM_STATUS_INVALID_HANDLE};
  const char *needle[2] = {"null pointer passed for `session`", "not a live brainsam_session"};
  for (int n = 0; n < 2; n++) {
    brainsam_session *s = sessions[n];
    brainsam_volume_desc desc = phantom_desc_ras(NULL);
    EXPECT(brainsam_session_set_volume(s, &desc), expected[n], needle[n]);
    EXPECT(brainsam_session_segment_all(s, NULL, NULL), expected[n], needle[n]);
    EXPECT(brainsam_session_add_point(s, 1, ijk, 1), expected[n], needle[n]);
    EXPECT(brainsam_session_add_box(s, 1, ijk, ijk), expected[n], needle[n]);
    EXPECT(brainsam_session_clear_prompts(s, 1, -1), expected[n], needle[n]);
    EXPECT(brainsam_session_segment_structure(s, 1, 0), expected[n], needle[n]);
    EXPECT(brainsam_session_slicing_axis(s, &axis), expected[n], needle[n]);
    EXPECT(brainsam_session_slice_range(s, NULL, NULL), expected[n], needle[n]);
    EXPECT(brainsam_session_copy_labels(s, &byte, 1), expected[n], needle[n]);
    EXPECT(brainsam_session_structure_stats(s, 1, NULL, NULL), expected[n], needle[n]);
  }
}

static void check_calls_before_a_volume(brainsam_session *session) {
  const double ijk[3] = {1, 1, 1};
  uint8_t byte;
  uint32_t axis;
  EXPECT(brainsam_session_segment_all(session, NULL, NULL), BRAINSAM_STATUS_INVALID_STATE,
         "set_volume");
  EXPECT(brainsam_session_add_point(session, 1, ijk, 1), BRAINSAM_STATUS_INVALID_STATE,
         "set_volume");
  EXPECT(brainsam_session_segment_structure(session, 1, 0), BRAINSAM_STATUS_INVALID_STATE,
         "set_volume");
  EXPECT(brainsam_session_slicing_axis(session, &axis), BRAINSAM_STATUS_INVALID_STATE,
         "set_volume");
  EXPECT(brainsam_session_slice_range(session, NULL, NULL), BRAINSAM_STATUS_INVALID_STATE,
         "set_volume");
  EXPECT(brainsam_session_copy_labels(session, &byte, 1), BRAINSAM_STATUS_INVALID_STATE,
         "set_volume");
  EXPECT(brainsam_session_structure_stats(session, 1, NULL, NULL),
         BRAINSAM_STATUS_INVALID_STATE, "set_volume");
}

static void check_volume_descriptors(brainsam_session *session, const float *data) {
  brainsam_volume_desc desc = phantom_desc_ras(data);
  EXPECT(brainsam_session_set_volume(session, NULL), BRAINSAM_STATUS_NULL_POINTER, "`volume`");

  desc.struct_size = 4;
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_BUFFER_TOO_SMALL,
         "brainsam_volume_desc.struct_size is 4");
  /* A buffer shorter than the dims need is refused before it is read (ASan would
   * report the read otherwise). */
  float *short_buffer = malloc(1000 * sizeof *short_buffer);
  memcpy(short_buffer, data, 1000 * sizeof *short_buffer);
  desc = phantom_desc_ras(short_buffer);
  desc.data_len = 1000 * sizeof *short_buffer;
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_BUFFER_TOO_SMALL,
         "data_len is 4000 bytes, but dims [80, 96, 88] of");
  free(short_buffer);
  desc = phantom_desc_ras(NULL);
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_NULL_POINTER,
         "`volume->data`");

  desc = phantom_desc_ras(data);
  desc.dtype = 8;
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "dtype 8");

  desc = phantom_desc_ras(data);
  desc.dims[1] = 0;
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "at least 1");
  desc = phantom_desc_ras(data);
  desc.dims[2] = (uint64_t)-1; /* a negative size converted by the caller */
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "too many voxels");
  desc = phantom_desc_ras(data);
  desc.dims[0] = desc.dims[1] = desc.dims[2] = (uint64_t)1 << 22; /* product overflows */
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "too many voxels");

  desc = phantom_desc_ras(data);
  desc.spacing[1] = NAN;
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "spacing[1] is NaN");
  desc = phantom_desc_ras(data);
  desc.spacing[0] = -2.0;
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "spacing");
  desc = phantom_desc_ras(data);
  desc.spacing[2] = 0.0;
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "spacing");
  desc = phantom_desc_ras(data);
  desc.origin[2] = INFINITY;
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "origin[2] is inf");
  desc = phantom_desc_ras(data);
  desc.direction[4] = NAN;
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "direction[4] is NaN");
  desc = phantom_desc_ras(data);
  memset(desc.direction, 0, sizeof desc.direction);
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "");
  desc = phantom_desc_ras(data);
  desc.coordinates = 5;
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "coordinates 5");

  /* Non-finite voxels are named by index. */
  float *bad = malloc(PHANTOM_VOXELS * sizeof *bad);
  memcpy(bad, data, PHANTOM_VOXELS * sizeof *bad);
  bad[1234] = NAN;
  desc = phantom_desc_ras(bad);
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "voxel 1234");
  /* A double too large for float becomes infinite: refused the same way. */
  double *wide = malloc(PHANTOM_VOXELS * sizeof *wide);
  for (size_t n = 0; n < PHANTOM_VOXELS; n++) wide[n] = data[n];
  wide[7] = 1e300;
  desc = phantom_desc_ras(NULL);
  desc.data = wide;
  desc.data_len = PHANTOM_VOXELS * sizeof *wide;
  desc.dtype = BRAINSAM_DTYPE_FLOAT64;
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "voxel 7");
  free(wide);
  free(bad);

  /* A one-voxel volume is valid input but has no head in it. */
  float one = 100.0f;
  desc = phantom_desc_ras(&one);
  desc.dims[0] = desc.dims[1] = desc.dims[2] = 1;
  brainsam_status status = brainsam_session_set_volume(session, &desc);
  CHECK(status != BRAINSAM_STATUS_OK && status != BRAINSAM_STATUS_INTERNAL_ERROR);
  CHECK(strlen(brainsam_last_error_message()) > 0);
}

static void check_prompts(brainsam_session *session) {
  uint32_t axis = 99;
  uint64_t first = 0, last = 0;
  EXPECT(brainsam_session_slicing_axis(session, NULL), BRAINSAM_STATUS_NULL_POINTER, "`axis`");
  EXPECT(brainsam_session_slicing_axis(session, &axis), BRAINSAM_STATUS_OK, "");
  CHECK(axis == 1); /* j runs posterior to anterior in the phantom */
  EXPECT(brainsam_session_slice_range(session, &first, &last), BRAINSAM_STATUS_OK, "");
  CHECK(first < last && last < PHANTOM_NJ);

  const uint64_t middle = (first + last) / 2;
  double point[3] = {30.0, 40.0, 40.0};
  point[axis] = (double)middle;
  double other_slice[3] = {point[0], point[1], point[2]};
  other_slice[axis] += 1.0;
  const double nan_point[3] = {NAN, 40.0, 40.0};
  const double outside[3] = {-5.0, 10.0, 10.0};
  double outside_roi[3] = {point[0], point[1], point[2]};
  outside_roi[axis] = 0.0;

  EXPECT(brainsam_session_add_point(session, 0, point, 1), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "structure 0");
  EXPECT(brainsam_session_add_point(session, 13, point, 1), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "structure 13");
  EXPECT(brainsam_session_add_point(session, 4000000000u, point, 1),
         BRAINSAM_STATUS_INVALID_ARGUMENT, "structure 4000000000");
  EXPECT(brainsam_session_add_point(session, 5, NULL, 1), BRAINSAM_STATUS_NULL_POINTER, "`ijk`");
  EXPECT(brainsam_session_add_point(session, 5, nan_point, 1), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "ijk[0] is NaN");
  EXPECT(brainsam_session_add_point(session, 5, outside, 1), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "outside the volume");
  EXPECT(brainsam_session_add_point(session, 5, outside_roi, 1),
         BRAINSAM_STATUS_INVALID_ARGUMENT, "region of interest");
  EXPECT(brainsam_session_add_box(session, 5, point, NULL), BRAINSAM_STATUS_NULL_POINTER,
         "`ijk_b`");
  EXPECT(brainsam_session_add_box(session, 5, point, other_slice),
         BRAINSAM_STATUS_INVALID_ARGUMENT, "different");
  EXPECT(brainsam_session_segment_structure(session, 5, -1), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "slice -1 is negative");
  EXPECT(brainsam_session_segment_structure(session, 5, (int64_t)last + 1),
         BRAINSAM_STATUS_INVALID_ARGUMENT, "region of interest");
  EXPECT(brainsam_session_clear_prompts(session, 77, -1), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "structure 77");
  EXPECT(brainsam_session_structure_stats(session, 13, NULL, NULL),
         BRAINSAM_STATUS_INVALID_ARGUMENT, "structure 13");

  /* Valid prompts work and change at most the prompted slice. */
  double corner[3] = {point[0], point[1], point[2]};
  corner[(axis + 2) % 3] += 6.0;
  EXPECT(brainsam_session_add_point(session, 5, point, 1), BRAINSAM_STATUS_OK, "");
  EXPECT(brainsam_session_add_box(session, 5, point, corner), BRAINSAM_STATUS_OK, "");
  uint8_t *before = malloc(PHANTOM_VOXELS), *after = malloc(PHANTOM_VOXELS);
  EXPECT(brainsam_session_copy_labels(session, before, PHANTOM_VOXELS), BRAINSAM_STATUS_OK, "");
  EXPECT(brainsam_session_segment_structure(session, 5, (int64_t)middle), BRAINSAM_STATUS_OK,
         "");
  EXPECT(brainsam_session_copy_labels(session, after, PHANTOM_VOXELS), BRAINSAM_STATUS_OK, "");
  size_t changed_elsewhere = 0;
  for (size_t n = 0; n < PHANTOM_VOXELS; n++) {
    const size_t ijk[3] = {n % PHANTOM_NI, (n / PHANTOM_NI) % PHANTOM_NJ,
                           n / (PHANTOM_NI * PHANTOM_NJ)};
    if (ijk[axis] != middle && before[n] != after[n]) changed_elsewhere++;
  }
  CHECK(changed_elsewhere == 0);
  free(before);
  free(after);
  EXPECT(brainsam_session_clear_prompts(session, 5, (int64_t)middle), BRAINSAM_STATUS_OK, "");
  EXPECT(brainsam_session_clear_prompts(session, 5, -1), BRAINSAM_STATUS_OK, "");

  /* At most 64 points per structure and slice. */
  for (int n = 0; n < 64; n++) {
    EXPECT(brainsam_session_add_point(session, 6, point, n % 2), BRAINSAM_STATUS_OK, "");
  }
  EXPECT(brainsam_session_add_point(session, 6, point, 1), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "already has 64 point prompts");
  EXPECT(brainsam_session_clear_prompts(session, 6, -1), BRAINSAM_STATUS_OK, "");
  EXPECT(brainsam_session_add_point(session, 6, point, 1), BRAINSAM_STATUS_OK, "");
  EXPECT(brainsam_session_clear_prompts(session, 6, -1), BRAINSAM_STATUS_OK, "");
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CHECKPOINT\n", argv[0]);
    return 2;
  }
  EXPECT(brainsam_set_log_callback(count_log, &log_messages), BRAINSAM_STATUS_OK, "");
  check_model_loading(argv[1]);

  brainsam_model *model = phantom_load_model(argv[1]);
  brainsam_session *session = NULL;
  EXPECT(brainsam_session_create(NULL, &session), BRAINSAM_STATUS_NULL_POINTER, "`model`");
  EXPECT(brainsam_session_create(model, NULL), BRAINSAM_STATUS_NULL_POINTER, "`out_session`");
  /* A pointer that never came from BrainSAM is refused without being read. */
  double not_a_model = 0.0;
  EXPECT(brainsam_session_create((brainsam_model *)&not_a_model, &session),
         BRAINSAM_STATUS_INVALID_HANDLE, "not a live brainsam_model");
  CHECK(session == NULL);
  EXPECT(brainsam_session_create(model, &session), BRAINSAM_STATUS_OK, "");
  check_bad_session_handles((brainsam_session *)&not_a_model);
  check_calls_before_a_volume(session);
  check_session_options(model);

  float *data = malloc(PHANTOM_VOXELS * sizeof *data);
  phantom_fill(data);
  check_volume_descriptors(session, data);
  /* A descriptor from a header before data_len existed is still accepted. */
  brainsam_volume_desc desc = phantom_desc_ras(data);
  desc.struct_size = (uint32_t)offsetof(brainsam_volume_desc, data_len);
  desc.data_len = 1; /* beyond the caller's struct: must not be read */
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_OK, "");
  desc = phantom_desc_ras(data);
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_OK, "");

  EXPECT(brainsam_session_segment_all(session, call_back_in, session), BRAINSAM_STATUS_CANCELLED,
         "cancel");
  CHECK(reentrant_status == BRAINSAM_STATUS_INVALID_STATE);
  CHECK(strstr(reentrant_message, "re-entrant call") != NULL);
  EXPECT(brainsam_session_segment_all(session, cancel_at_two, NULL), BRAINSAM_STATUS_CANCELLED,
         "cancel");
  struct progress_log progress = {0, 0, 0, 1};
  EXPECT(brainsam_session_segment_all(session, record_progress, &progress), BRAINSAM_STATUS_OK,
         "");
  CHECK(progress.calls > 0 && progress.monotone);
  CHECK(progress.last_done == progress.last_total);

  uint8_t *labels = malloc(PHANTOM_VOXELS);
  EXPECT(brainsam_session_copy_labels(session, NULL, PHANTOM_VOXELS),
         BRAINSAM_STATUS_NULL_POINTER, "`buffer`");
  EXPECT(brainsam_session_copy_labels(session, labels, PHANTOM_VOXELS - 1),
         BRAINSAM_STATUS_BUFFER_TOO_SMALL, "needs 675840");
  EXPECT(brainsam_session_copy_labels(session, labels, PHANTOM_VOXELS), BRAINSAM_STATUS_OK, "");
  size_t counts[BRAINSAM_NUM_CLASSES] = {0};
  int labels_in_range = 1;
  for (size_t n = 0; n < PHANTOM_VOXELS; n++) {
    if (labels[n] >= BRAINSAM_NUM_CLASSES) labels_in_range = 0;
    else counts[labels[n]]++;
  }
  CHECK(labels_in_range);
  double volume_mm3 = -1.0, confidence = -1.0;
  EXPECT(brainsam_session_structure_stats(session, 1, &volume_mm3, &confidence),
         BRAINSAM_STATUS_OK, "");
  CHECK(fabs(volume_mm3 - (double)counts[1] * 8.0) < 1e-6);
  CHECK(confidence >= 0.0 && confidence <= 1.0);
  EXPECT(brainsam_session_structure_stats(session, 2, NULL, NULL), BRAINSAM_STATUS_OK, "");
  free(labels);
  /* Input QC: per structure, and the union over all for structure 0. */
  uint32_t every = 0, flags = 0xdead;
  for (uint32_t s = 1; s <= 12; s++) {
    EXPECT(brainsam_session_structure_qc(session, s, &flags), BRAINSAM_STATUS_OK, "");
    CHECK((flags & ~(uint32_t)(BRAINSAM_QC_VOLUME_LOW | BRAINSAM_QC_VOLUME_HIGH |
                               BRAINSAM_QC_LOW_CONFIDENCE)) == 0);
    every |= flags;
  }
  EXPECT(brainsam_session_structure_qc(session, 0, &flags), BRAINSAM_STATUS_OK, "");
  CHECK(flags == every);
  EXPECT(brainsam_session_structure_qc(session, 13, &flags), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "structure 13");
  EXPECT(brainsam_session_structure_qc(session, 1, NULL), BRAINSAM_STATUS_NULL_POINTER,
         "`flags`");

  check_prompts(session);

  /* A failed set_volume forgets the previous volume: no stale labels afterwards. */
  desc = phantom_desc_ras(data);
  desc.spacing[0] = NAN;
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_INVALID_ARGUMENT,
         "spacing[0] is NaN");
  uint8_t stale[16];
  EXPECT(brainsam_session_copy_labels(session, stale, sizeof stale),
         BRAINSAM_STATUS_INVALID_STATE, "no volume set");
  EXPECT(brainsam_session_segment_all(session, NULL, NULL), BRAINSAM_STATUS_INVALID_STATE,
         "no volume set");
  desc = phantom_desc_ras(data);
  EXPECT(brainsam_session_set_volume(session, &desc), BRAINSAM_STATUS_OK, "");
  free(data); /* the session copied the voxels */

  /* Freeing the model only drops our reference: the session keeps it alive. */
  brainsam_model_free(model);
  brainsam_session *late = NULL;
  EXPECT(brainsam_session_create(model, &late), BRAINSAM_STATUS_INVALID_HANDLE,
         "not a live brainsam_model");
  brainsam_model_free(model); /* double free: ignored, with a warning in the log */
  CHECK(log_messages > 0);
  CHECK(nested_set_status == BRAINSAM_STATUS_INVALID_STATE);
  EXPECT(brainsam_session_segment_all(session, NULL, NULL), BRAINSAM_STATUS_OK, "");

  brainsam_session_free(session);
  check_bad_session_handles(session);
  brainsam_session_free(session);
  brainsam_session_free(NULL);
  brainsam_model_free(NULL);

  CHECK(strcmp(brainsam_status_name(BRAINSAM_STATUS_INVALID_HANDLE),
               "BRAINSAM_STATUS_INVALID_HANDLE") == 0);
  EXPECT(brainsam_set_log_callback(NULL, NULL), BRAINSAM_STATUS_OK, "");

  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("robustness: ok\n");
  return 0;
}
