/* BrainSAM C API example: segment a volume held in memory, refine one structure with
 * prompts, and read the results. Usage: segment CHECKPOINT
 *
 * The volume here is a synthetic head (an ellipsoid with brighter blobs) so that the
 * example runs anywhere; in an application the buffer and its geometry come from your
 * image reader (ITK, VTK, DCMTK, ...). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainsam.h"

enum { NI = 80, NJ = 96, NK = 88 };

/* Prints the failed call with its status and message, and returns 1. */
static int fail(const char *what, brainsam_status status) {
  fprintf(stderr, "%s failed: %s: %s\n", what, brainsam_status_name(status),
          brainsam_last_error_message());
  return 1;
}

/* Progress callback: print, and return 0 to continue (non-zero cancels). */
static int print_progress(void *user_data, uint64_t done, uint64_t total) {
  const char *name = user_data;
  printf("%s: %llu/%llu slices\n", name, (unsigned long long)done, (unsigned long long)total);
  return 0;
}

/* A 2 mm head-sized ellipsoid, i fastest, with brighter deep blobs. */
static void synthetic_head(float *voxels) {
  for (int k = 0; k < NK; k++)
    for (int j = 0; j < NJ; j++)
      for (int i = 0; i < NI; i++) {
        const double x = (i - 40) * 2.0, y = (j - 48) * 2.0, z = (k - 40) * 2.0;
        const double head = x * x / 4900.0 + y * y / 8100.0 + z * z / 5625.0;
        const double blob = (x - 20) * (x - 20) + y * y + (z + 5) * (z + 5);
        const double blob2 = (x + 20) * (x + 20) + y * y + (z + 5) * (z + 5);
        float value = head < 1.0 ? 100.0f : 0.0f;
        if (blob < 100.0 || blob2 < 100.0) value = 160.0f;
        voxels[i + NI * (j + NJ * k)] = value + (float)((i * 7 + j * 13 + k * 17) % 11);
      }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CHECKPOINT\n", argv[0]);
    return 2;
  }
  if (brainsam_abi_version() != BRAINSAM_ABI_VERSION) {
    fprintf(stderr, "libbrainsam ABI %u, header ABI %u\n", brainsam_abi_version(),
            BRAINSAM_ABI_VERSION);
    return 1;
  }
  printf("BrainSAM %s\n", brainsam_version());

  /* 1. Load the model (once; sessions on any thread can share it). */
  brainsam_model_options options;
  memset(&options, 0, sizeof options);
  options.struct_size = sizeof options;
  options.checkpoint_path = argv[1];
  options.device = BRAINSAM_DEVICE_AUTO;
  brainsam_model *model = NULL;
  brainsam_status status = brainsam_model_load(&options, &model);
  if (status != BRAINSAM_STATUS_OK) return fail("brainsam_model_load", status);

  /* 2. A session per volume. */
  brainsam_session *session = NULL;
  status = brainsam_session_create(model, &session);
  /* The session holds its own reference: the model handle can go now. */
  brainsam_model_free(model);
  if (status != BRAINSAM_STATUS_OK) return fail("brainsam_session_create", status);

  /* 3. Hand over the voxels and their geometry (copied; RAS here, LPS for ITK). */
  const size_t voxel_count = (size_t)NI * NJ * NK;
  float *voxels = malloc(voxel_count * sizeof *voxels);
  uint8_t *labels = malloc(voxel_count);
  if (!voxels || !labels) return 1;
  synthetic_head(voxels);
  brainsam_volume_desc volume;
  memset(&volume, 0, sizeof volume);
  volume.struct_size = sizeof volume;
  volume.data = voxels;
  volume.data_len = voxel_count * sizeof *voxels;
  volume.dtype = BRAINSAM_DTYPE_FLOAT32;
  volume.dims[0] = NI;
  volume.dims[1] = NJ;
  volume.dims[2] = NK;
  volume.spacing[0] = volume.spacing[1] = volume.spacing[2] = 2.0;
  volume.origin[0] = -80.0;
  volume.origin[1] = -96.0;
  volume.origin[2] = -80.0;
  volume.direction[0] = volume.direction[4] = volume.direction[8] = 1.0;
  volume.coordinates = BRAINSAM_COORDINATES_RAS;
  status = brainsam_session_set_volume(session, &volume);
  free(voxels);
  if (status != BRAINSAM_STATUS_OK) return fail("brainsam_session_set_volume", status);

  /* 4. Automatic segmentation of the 12 structures, with progress. */
  status = brainsam_session_segment_all(session, print_progress, "segment_all");
  if (status != BRAINSAM_STATUS_OK) return fail("brainsam_session_segment_all", status);
  for (uint32_t structure = 1; structure < BRAINSAM_NUM_CLASSES; structure++) {
    double volume_mm3 = 0.0, confidence = 0.0;
    status = brainsam_session_structure_stats(session, structure, &volume_mm3, &confidence);
    if (status != BRAINSAM_STATUS_OK) return fail("brainsam_session_structure_stats", status);
    printf("structure %2u: %8.1f mm3, confidence %.2f\n", structure, volume_mm3, confidence);
  }

  /* 5. Refine the left putamen (5) on the middle slice of the region of interest. */
  uint32_t axis = 0;
  uint64_t first = 0, last = 0;
  status = brainsam_session_slicing_axis(session, &axis);
  if (status == BRAINSAM_STATUS_OK) status = brainsam_session_slice_range(session, &first, &last);
  if (status != BRAINSAM_STATUS_OK) return fail("slicing axis and range", status);
  const uint64_t slice = (first + last) / 2;
  double point[3] = {30.0, 40.0, 40.0};
  point[axis] = (double)slice;
  status = brainsam_session_add_point(session, 5, point, 1);
  if (status == BRAINSAM_STATUS_OK)
    status = brainsam_session_segment_structure(session, 5, (int64_t)slice);
  if (status != BRAINSAM_STATUS_OK) return fail("prompting", status);

  /* Errors name the problem and leave the session usable. */
  status = brainsam_session_add_point(session, 13, point, 1);
  printf("expected error: %s: %s\n", brainsam_status_name(status), brainsam_last_error_message());

  /* 6. The label map, in the input's voxel order. */
  status = brainsam_session_copy_labels(session, labels, voxel_count);
  if (status != BRAINSAM_STATUS_OK) return fail("brainsam_session_copy_labels", status);
  size_t foreground = 0;
  for (size_t n = 0; n < voxel_count; n++) foreground += labels[n] != 0;
  printf("%zu of %zu voxels labelled\n", foreground, voxel_count);

  free(labels);
  brainsam_session_free(session);
  printf("example c: ok\n");
  return 0;
}
