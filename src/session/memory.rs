//! Device memory: how many slices one encoder batch takes, where embeddings are cached,
//! and the retry in halves when a batch runs out of device memory.

use tch::{Kind, Tensor};

use super::views::View;
use super::{ProgressFn, Session, VolumeState};
use crate::error::{Error, Result};

/// Where a session keeps its cached image embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmbeddingCache {
    /// On the model's device while it has room (keeping [`DEVICE_MEMORY_RESERVE_BYTES`]
    /// free), in host memory after that.
    #[default]
    Auto,
    /// Always on the model's device.
    Device,
    /// Always in host memory (uploaded again for each decode).
    Host,
}

/// Device memory a session leaves free when it sizes encoder batches and places
/// embeddings on a CUDA device (for the decoder, the clean-up, and other programs).
pub const DEVICE_MEMORY_RESERVE_BYTES: u64 = 2 << 30;

/// Largest automatic encoder batch: beyond 32 slices GPU throughput no longer improves.
pub(super) const MAX_AUTO_BATCH: usize = 32;

/// Device memory the encoder's attention may need besides the per-slice activations: the
/// relative-position bias of one chunk (bounded by the attention's budget) and the fused
/// kernel's and the einsums' temporaries.
pub(super) const ATTENTION_WORKSPACE_BYTES: u64 =
    3 * crate::model::attention::ATTENTION_BIAS_BUDGET_BYTES as u64;

/// Estimated device memory one slice needs while it goes through the image encoder in
/// weights of `kind`: the largest set of live token tensors of a block (input, norm,
/// q/k/v, attention output, MLP hidden layer), doubled for the allocator's slack.
pub(super) fn encoder_activation_bytes(config: &crate::model::SamConfig, kind: Kind) -> u64 {
    let grid = config.grid_size() as u64;
    let encoder = &config.image_encoder;
    let per_token = 7 * encoder.embed_dim as u64 + encoder.mlp_dim as u64;
    2 * grid * grid * per_token * kind.elt_size_in_bytes() as u64
}

impl Session {
    /// The encoder batch size: the configured one, or the automatic choice (see
    /// [`SessionOptions::batch_size`]).
    pub fn batch_size(&self) -> usize {
        if self.options.batch_size > 0 {
            return self.options.batch_size;
        }
        let config = self.model.config();
        match self.model.device() {
            tch::Device::Cuda(index) => match crate::runtime::cuda_memory(index) {
                Some(memory) => {
                    let usable = memory
                        .available_bytes()
                        .saturating_sub(DEVICE_MEMORY_RESERVE_BYTES + ATTENTION_WORKSPACE_BYTES);
                    let per_slice =
                        encoder_activation_bytes(config, self.model.sam().kind()).max(1);
                    ((usable / per_slice) as usize).clamp(1, MAX_AUTO_BATCH)
                }
                None => 8,
            },
            _ => 4,
        }
    }

    /// Whether the next embeddings may stay on the model's device.
    pub(super) fn cache_on_device(&self, embedding_bytes: u64) -> bool {
        match (self.options.embedding_cache, self.model.device()) {
            (EmbeddingCache::Device, _) | (_, tch::Device::Cpu) => true,
            (EmbeddingCache::Host, _) => false,
            (EmbeddingCache::Auto, tch::Device::Cuda(index)) => crate::runtime::cuda_memory(index)
                .is_none_or(|memory| {
                    memory.available_bytes() > embedding_bytes + DEVICE_MEMORY_RESERVE_BYTES
                }),
            (EmbeddingCache::Auto, _) => true,
        }
    }

    /// Encodes slices `batch`; a batch that runs out of device memory is split in halves
    /// (down to single slices) instead of failing.
    pub(super) fn encode_batch(
        &self,
        state: &VolumeState,
        batch: &[usize],
        view: View,
    ) -> Result<Tensor> {
        let input = self.input_batch(state, batch, view)?;
        let sam = self.model.sam();
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tch::no_grad(|| sam.encode_images(&input))
        }));
        let (message, error) = match attempt {
            Ok(Ok(embeddings)) => return Ok(embeddings),
            Ok(Err(error)) => (error.to_string(), Some(error)),
            Err(panic) => (
                crate::error::panic_message(panic.as_ref())
                    .unwrap_or("the image encoder failed")
                    .to_string(),
                None,
            ),
        };
        if batch.len() > 1 && message.contains("out of memory") {
            drop(input);
            crate::runtime::empty_cuda_cache();
            log::warn!(
                "encoding {} slices ran out of device memory; retrying in halves",
                batch.len()
            );
            let (first, second) = batch.split_at(batch.len() / 2);
            let first = self.encode_batch(state, first, view)?;
            let second = self.encode_batch(state, second, view)?;
            return Ok(Tensor::cat(&[first, second], 0));
        }
        Err(error.unwrap_or(Error::Torch(tch::TchError::Torch(message))))
    }

    /// Encodes the slices that have no cached embedding yet, in batches.
    pub(super) fn ensure_embeddings(
        &mut self,
        indices: &[usize],
        progress: &mut ProgressFn<'_>,
        done_before: usize,
        total: usize,
    ) -> Result<usize> {
        let state = self.state()?;
        let missing: Vec<usize> = indices
            .iter()
            .copied()
            .filter(|&i| state.embeddings[i].is_none())
            .collect();
        let mut done = done_before + (indices.len() - missing.len());
        let batch_size = self.batch_size();
        for batch in missing.chunks(batch_size) {
            let embeddings = self.encode_batch(self.state()?, batch, View::default())?;
            let bytes = (embeddings.numel() * embeddings.kind().elt_size_in_bytes()) as u64;
            let embeddings = if self.cache_on_device(bytes) {
                embeddings
            } else {
                embeddings.f_to_device(tch::Device::Cpu)?
            };
            let state = self.state_mut()?;
            for (position, &index) in batch.iter().enumerate() {
                state.embeddings[index] = Some(embeddings.get(position as i64).unsqueeze(0));
            }
            done += batch.len();
            if !progress(done, total) {
                return Err(Error::Cancelled);
            }
        }
        Ok(done)
    }
}
