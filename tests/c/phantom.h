/* A synthetic head for the C tests: the same phantom as tests/session.rs (a 2 mm grid
 * of a head-sized ellipsoid with brighter blobs where deep grey matter would be), so
 * the C and Rust tests exercise the same pipeline. */
#ifndef BRAINSAM_TEST_PHANTOM_H
#define BRAINSAM_TEST_PHANTOM_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brainsam.h"

#define PHANTOM_NI 80
#define PHANTOM_NJ 96
#define PHANTOM_NK 88
#define PHANTOM_VOXELS ((size_t)PHANTOM_NI * PHANTOM_NJ * PHANTOM_NK)

/* Fills `data` (PHANTOM_VOXELS floats, i fastest). */
static inline void phantom_fill(float *data) {
  const double spacing = 2.0, ci = 40.0, cj = 48.0, ck = 40.0;
  const double blobs[3][3] = {{-20.0, 0.0, -5.0}, {20.0, 0.0, -5.0}, {0.0, -10.0, -15.0}};
  for (size_t k = 0; k < PHANTOM_NK; k++) {
    for (size_t j = 0; j < PHANTOM_NJ; j++) {
      for (size_t i = 0; i < PHANTOM_NI; i++) {
        const double p[3] = {((double)i - ci) * spacing, ((double)j - cj) * spacing,
                             ((double)k - ck) * spacing};
        const double head = (p[0] / 70.0) * (p[0] / 70.0) + (p[1] / 90.0) * (p[1] / 90.0) +
                            (p[2] / 75.0) * (p[2] / 75.0);
        double value = head < 1.0 ? 100.0 : 0.0;
        for (int b = 0; b < 3; b++) {
          double d = 0.0;
          for (int a = 0; a < 3; a++) d += (p[a] - blobs[b][a]) * (p[a] - blobs[b][a]);
          if (d < 100.0) value = 160.0;
        }
        value += (double)((i * 7 + j * 13 + k * 17) % 11);
        data[i + PHANTOM_NI * (j + PHANTOM_NJ * k)] = (float)value;
      }
    }
  }
}

/* A descriptor of the phantom in RAS coordinates (identity direction, 2 mm voxels,
 * origin at minus the centre), as the Rust test's affine. */
static inline brainsam_volume_desc phantom_desc_ras(const float *data) {
  brainsam_volume_desc desc;
  memset(&desc, 0, sizeof desc);
  desc.struct_size = sizeof desc;
  desc.data = data;
  desc.data_len = PHANTOM_VOXELS * sizeof(float);
  desc.dtype = BRAINSAM_DTYPE_FLOAT32;
  desc.dims[0] = PHANTOM_NI;
  desc.dims[1] = PHANTOM_NJ;
  desc.dims[2] = PHANTOM_NK;
  for (int a = 0; a < 3; a++) desc.spacing[a] = 2.0;
  desc.origin[0] = -80.0;
  desc.origin[1] = -96.0;
  desc.origin[2] = -80.0;
  desc.direction[0] = desc.direction[4] = desc.direction[8] = 1.0;
  desc.coordinates = BRAINSAM_COORDINATES_RAS;
  return desc;
}

/* The same volume described in LPS, as ITK would: origin and the first two direction
 * rows negated. */
static inline brainsam_volume_desc phantom_desc_lps(const float *data) {
  brainsam_volume_desc desc = phantom_desc_ras(data);
  desc.origin[0] = 80.0;
  desc.origin[1] = 96.0;
  desc.direction[0] = -1.0;
  desc.direction[4] = -1.0;
  desc.coordinates = BRAINSAM_COORDINATES_LPS;
  return desc;
}

/* Loads the checkpoint at `path` on the CPU; exits on failure. */
static inline brainsam_model *phantom_load_model(const char *path) {
  brainsam_model_options options;
  memset(&options, 0, sizeof options);
  options.struct_size = sizeof options;
  options.checkpoint_path = path;
  options.device = BRAINSAM_DEVICE_CPU;
  brainsam_model *model = NULL;
  if (brainsam_model_load(&options, &model) != BRAINSAM_STATUS_OK) {
    fprintf(stderr, "cannot load %s: %s\n", path, brainsam_last_error_message());
    exit(2);
  }
  return model;
}

#endif /* BRAINSAM_TEST_PHANTOM_H */
