//! 3D volumes: NIfTI input/output, orientation, coronal slicing, resampling,
//! intensity normalisation and the subcortical region of interest.
