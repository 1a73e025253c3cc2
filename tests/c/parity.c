/* What the C++ API can do, the C API can do (issue 14): the slice a prompt landed on,
 * voxel counts in structure statistics, the structure table, and device and precision
 * names parsed by the library. Usage: parity CHECKPOINT */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainsam.h"
#include "phantom.h"

static int failures = 0;
#define CHECK(cond)                                                               \
  do {                                                                            \
    if (!(cond)) {                                                                \
      fprintf(stderr, "%s:%d: check failed: %s (%s)\n", __FILE__, __LINE__, #cond, \
              brainsam_last_error_message());                                     \
      failures++;                                                                 \
    }                                                                             \
  } while (0)

static void tables(void) {
  CHECK(brainsam_structure_count() == BRAINSAM_NUM_CLASSES - 1);
  brainsam_structure_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  CHECK(brainsam_get_structure_info(9, &info) == BRAINSAM_STATUS_OK);
  CHECK(info.class_id == 9 && info.freesurfer_code == 17);
  CHECK(strcmp(info.freesurfer_name, "Left-Hippocampus") == 0);
  CHECK(strcmp(info.name, "Left hippocampus") == 0);
  CHECK(info.colour[0] == 220 && info.colour[1] == 216 && info.colour[2] == 20);
  CHECK(brainsam_get_structure_info(13, &info) == BRAINSAM_STATUS_INVALID_ARGUMENT);
  CHECK(strstr(brainsam_last_error_message(), "13") != NULL);
  CHECK(brainsam_get_structure_info(1, NULL) == BRAINSAM_STATUS_NULL_POINTER);

  uint32_t device = 99, index = 99, precision = 99;
  CHECK(brainsam_parse_device("cuda:3", &device, &index) == BRAINSAM_STATUS_OK);
  CHECK(device == BRAINSAM_DEVICE_CUDA && index == 3);
  CHECK(brainsam_parse_device("cpu", &device, NULL) == BRAINSAM_STATUS_OK);
  CHECK(device == BRAINSAM_DEVICE_CPU);
  CHECK(brainsam_parse_device("tpu", &device, &index) == BRAINSAM_STATUS_INVALID_ARGUMENT);
  CHECK(strstr(brainsam_last_error_message(), "cuda:N") != NULL);
  CHECK(brainsam_parse_precision("bf16", &precision) == BRAINSAM_STATUS_OK);
  CHECK(precision == BRAINSAM_PRECISION_BF16);
  CHECK(brainsam_parse_precision("int8", &precision) == BRAINSAM_STATUS_INVALID_ARGUMENT);
}

static void session_parity(brainsam_model *model, const float *data) {
  brainsam_session *session = NULL;
  CHECK(brainsam_session_create(model, &session) == BRAINSAM_STATUS_OK);
  brainsam_volume_desc desc = phantom_desc_ras(data);
  CHECK(brainsam_session_set_volume(session, &desc) == BRAINSAM_STATUS_OK);
  CHECK(brainsam_session_segment_all(session, NULL, NULL) == BRAINSAM_STATUS_OK);

  uint8_t *labels = malloc(PHANTOM_VOXELS);
  CHECK(brainsam_session_copy_labels(session, labels, PHANTOM_VOXELS) == BRAINSAM_STATUS_OK);
  for (uint32_t structure = 1; structure <= 12; structure++) {
    uint64_t counted = 0;
    for (size_t n = 0; n < PHANTOM_VOXELS; n++) counted += labels[n] == structure;
    brainsam_structure_stats stats;
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    CHECK(brainsam_session_get_structure_stats(session, structure, &stats) == BRAINSAM_STATUS_OK);
    CHECK(stats.voxels == counted);
    double volume = -1, confidence = -1;
    uint32_t qc = 0;
    CHECK(brainsam_session_structure_stats(session, structure, &volume, &confidence) ==
          BRAINSAM_STATUS_OK);
    CHECK(brainsam_session_structure_qc(session, structure, &qc) == BRAINSAM_STATUS_OK);
    CHECK(stats.volume_mm3 == volume && stats.confidence == confidence && stats.qc == qc);
  }
  free(labels);
  brainsam_structure_stats small;
  memset(&small, 0, sizeof small);
  small.struct_size = 8;
  CHECK(brainsam_session_get_structure_stats(session, 1, &small) ==
        BRAINSAM_STATUS_BUFFER_TOO_SMALL);

  /* Prompts say which slice they landed on: the voxel index along the slicing axis. */
  uint32_t axis = 9;
  uint64_t first = 0, last = 0, slice = 0;
  CHECK(brainsam_session_slicing_axis(session, &axis) == BRAINSAM_STATUS_OK);
  CHECK(brainsam_session_slice_range(session, &first, &last) == BRAINSAM_STATUS_OK);
  double point[3] = {PHANTOM_NI / 2.0, PHANTOM_NJ / 2.0, PHANTOM_NK / 2.0};
  const uint64_t middle = (first + last) / 2;
  point[axis] = (double)middle + 0.3; /* on the middle slice */
  CHECK(brainsam_session_add_point_with_slice(session, 5, point, 1, &slice) ==
        BRAINSAM_STATUS_OK);
  CHECK(slice == middle);
  double corner_a[3] = {point[0] - 4, point[1] - 4, point[2] - 4};
  double corner_b[3] = {point[0] + 4, point[1] + 4, point[2] + 4};
  corner_a[axis] = corner_b[axis] = (double)first;
  slice = 12345;
  CHECK(brainsam_session_add_box_with_slice(session, 3, corner_a, corner_b, &slice) ==
        BRAINSAM_STATUS_OK);
  CHECK(slice == first);
  CHECK(brainsam_session_add_point_with_slice(session, 5, point, 1, NULL) == BRAINSAM_STATUS_OK);
  CHECK(brainsam_session_add_point_with_slice(session, 13, point, 1, &slice) ==
        BRAINSAM_STATUS_INVALID_ARGUMENT);
  brainsam_session_free(session);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CHECKPOINT\n", argv[0]);
    return 2;
  }
  tables();
  brainsam_model *model = phantom_load_model(argv[1]);
  float *data = malloc(PHANTOM_VOXELS * sizeof *data);
  phantom_fill(data);
  session_parity(model, data);
  free(data);
  brainsam_model_free(model);
  if (failures) {
    fprintf(stderr, "parity: %d failures\n", failures);
    return 1;
  }
  printf("parity: ok\n");
  return 0;
}
