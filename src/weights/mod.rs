//! Reading and writing model weights: official `.pth` checkpoints, `.pt`,
//! `.safetensors`, and BrainSAM adapter files.
