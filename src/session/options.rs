//! Session settings as the C ABI and the C++ API pass them (numbers and switches), and
//! the region-of-interest slice range they report: one mapping for every layer.

use crate::cleanup::CleanupOptions;
use crate::error::{Error, Result};
use crate::session::{EmbeddingCache, Session, SessionOptions};

impl EmbeddingCache {
    /// The place numbered `code`: 0 automatic, 1 device, 2 host (the numbers of
    /// `brainsam_session_options.embedding_cache`).
    pub fn from_code(code: u32) -> Result<Self> {
        match code {
            0 => Ok(EmbeddingCache::Auto),
            1 => Ok(EmbeddingCache::Device),
            2 => Ok(EmbeddingCache::Host),
            other => Err(Error::invalid_argument(format!(
                "embedding_cache {other} is not 0 (auto), 1 (device) or 2 (host)"
            ))),
        }
    }
}

/// Session options as switches; all false / zero are the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionSwitches {
    /// Slices per image-encoder pass; 0: automatic.
    pub batch_size: u32,
    /// Skip mirror averaging in automatic segmentation.
    pub no_mirror_averaging: bool,
    /// Skip the 3D clean-up of automatic segmentation.
    pub no_cleanup: bool,
    /// Embedding-cache place (see [`EmbeddingCache::from_code`]).
    pub embedding_cache: u32,
    /// Skip shift averaging in automatic segmentation.
    pub no_shift_averaging: bool,
    /// Skip the models of other slice orientations in automatic segmentation.
    pub no_view_averaging: bool,
}

impl SessionSwitches {
    /// The session options these switches select.
    pub fn to_options(&self) -> Result<SessionOptions> {
        Ok(SessionOptions {
            batch_size: self.batch_size as usize,
            embedding_cache: EmbeddingCache::from_code(self.embedding_cache)?,
            mirror_averaging: !self.no_mirror_averaging,
            shift_averaging: !self.no_shift_averaging,
            view_averaging: !self.no_view_averaging,
            cleanup: if self.no_cleanup {
                CleanupOptions::none()
            } else {
                CleanupOptions::default()
            },
            ..SessionOptions::default()
        })
    }
}

impl Session {
    /// First and last slice (voxel indices along the slicing axis) of the region of
    /// interest: where automatic segmentation works and prompts may go.
    pub fn roi_slice_range(&self) -> Result<(usize, usize)> {
        let geometry = self
            .geometry()
            .ok_or_else(|| Error::InvalidState("no volume set: call set_volume first".into()))?;
        let planes = geometry.slice_voxel_indices();
        match (planes.iter().min(), planes.iter().max()) {
            (Some(&low), Some(&high)) => Ok((low, high)),
            _ => Err(Error::Internal("the slice stack is empty".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_switches_are_the_default_options() {
        let options = SessionSwitches::default().to_options().unwrap();
        let default = SessionOptions::default();
        assert_eq!(options.batch_size, default.batch_size);
        assert_eq!(options.embedding_cache, default.embedding_cache);
        assert!(options.mirror_averaging && options.shift_averaging && options.view_averaging);
        let options = SessionSwitches {
            batch_size: 3,
            no_mirror_averaging: true,
            no_cleanup: true,
            embedding_cache: 2,
            no_shift_averaging: true,
            no_view_averaging: true,
        }
        .to_options()
        .unwrap();
        assert_eq!(options.batch_size, 3);
        assert_eq!(options.embedding_cache, EmbeddingCache::Host);
        assert!(!options.mirror_averaging && !options.shift_averaging && !options.view_averaging);
        let wrong = SessionSwitches {
            embedding_cache: 7,
            ..SessionSwitches::default()
        };
        assert!(wrong
            .to_options()
            .unwrap_err()
            .to_string()
            .contains("embedding_cache 7"));
    }
}
