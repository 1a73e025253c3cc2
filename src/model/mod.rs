//! SAM (Segment Anything) in tch, one file per component as in the reference
//! implementation, plus the LoRA bypass of the paper.
