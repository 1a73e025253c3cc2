//! Describe once: the module constructors are the only description of the state dict.
//!
//! Every component is built on a [`ParamPath`], which is either a VarStore path (real,
//! initialised tensors) or a [`ShapeRecorder`] (names and shapes only, as candle's
//! VarBuilder backends do). Recording allocates no parameter storage and draws no random
//! numbers, so [`SamConfig::validate`] can bound the parameter count of a hostile
//! configuration before anything is allocated, and checkpoint validation, adapters and
//! parameter counts all read the same description as the model itself.

use std::cell::RefCell;
use std::ops::Div;

use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

use super::config::{SamConfig, MAX_PARAMETERS};
use super::sam::Sam;
use crate::error::{Error, Result};

/// Names (official, dot-separated) and shapes of a model's tensors, in creation order.
pub type TensorShapes = Vec<(String, Vec<i64>)>;

/// Collects the names and shapes of the tensors a model would create.
#[derive(Debug, Default)]
pub struct ShapeRecorder {
    shapes: RefCell<TensorShapes>,
}

impl ShapeRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The root path: tensors created under it are recorded here.
    pub fn root(&self) -> ParamPath<'_> {
        ParamPath {
            target: Target::Record {
                recorder: self,
                path: Vec::new(),
            },
        }
    }

    /// The recorded names and shapes, in creation order.
    pub fn into_shapes(self) -> TensorShapes {
        self.shapes.into_inner()
    }

    fn record(&self, name: String, dims: &[i64]) {
        self.shapes.borrow_mut().push((name, dims.to_vec()));
    }
}

#[derive(Debug, Clone)]
enum Target<'a> {
    Store(nn::Path<'a>),
    Record {
        recorder: &'a ShapeRecorder,
        path: Vec<String>,
    },
}

/// Where a module's tensors go: a VarStore path or a shape recorder. Sub-paths are
/// made with `/` as on `tch::nn::Path` (`&path / "blocks" / 0`).
#[derive(Debug, Clone)]
pub struct ParamPath<'a> {
    target: Target<'a>,
}

impl<'a> From<&nn::Path<'a>> for ParamPath<'a> {
    fn from(path: &nn::Path<'a>) -> Self {
        Self {
            target: Target::Store(path.clone()),
        }
    }
}

impl<'a> From<nn::Path<'a>> for ParamPath<'a> {
    fn from(path: nn::Path<'a>) -> Self {
        Self {
            target: Target::Store(path),
        }
    }
}

impl<'a> ParamPath<'a> {
    /// The sub-path `name` (one component; no dots).
    pub fn sub<T: ToString>(&self, name: T) -> Self {
        let target = match &self.target {
            Target::Store(path) => Target::Store(path.sub(name)),
            Target::Record { recorder, path } => {
                let mut path = path.clone();
                path.push(name.to_string());
                Target::Record { recorder, path }
            }
        };
        Self { target }
    }

    /// Device of the tensors (the CPU when recording).
    pub fn device(&self) -> Device {
        match &self.target {
            Target::Store(path) => path.device(),
            Target::Record { .. } => Device::Cpu,
        }
    }

    /// Whether this path only records shapes (its tensors are placeholders that must
    /// not be computed with).
    pub fn is_recording(&self) -> bool {
        matches!(self.target, Target::Record { .. })
    }

    /// A trainable tensor `name` of shape `dims` initialised with `init`
    /// (exactly `tch::nn::Path::var` on a VarStore).
    pub fn var(&self, name: &str, dims: &[i64], init: Init) -> Tensor {
        match &self.target {
            Target::Store(path) => path.var(name, dims, init),
            Target::Record { recorder, path } => {
                recorder.record(full_name(path, name), dims);
                placeholder(dims)
            }
        }
    }

    /// A buffer `name` of shape `dims` (stored and loaded, never trained) whose values
    /// `make` computes on the given device; `make` is not called when recording, so
    /// recording draws no random numbers.
    pub fn buffer(&self, name: &str, dims: &[i64], make: impl FnOnce(Device) -> Tensor) -> Tensor {
        match &self.target {
            Target::Store(path) => path.add(name, make(path.device()), false),
            Target::Record { recorder, path } => {
                recorder.record(full_name(path, name), dims);
                placeholder(dims)
            }
        }
    }
}

impl<'a, T: ToString> Div<T> for &ParamPath<'a> {
    type Output = ParamPath<'a>;

    fn div(self, rhs: T) -> ParamPath<'a> {
        self.sub(rhs)
    }
}

impl<'a, T: ToString> Div<T> for ParamPath<'a> {
    type Output = ParamPath<'a>;

    fn div(self, rhs: T) -> ParamPath<'a> {
        self.sub(rhs)
    }
}

fn full_name(path: &[String], name: &str) -> String {
    let mut parts = path.to_vec();
    parts.push(name.to_string());
    parts.join(".")
}

/// One stored value broadcast to `dims`: the right shape without the storage.
fn placeholder(dims: &[i64]) -> Tensor {
    Tensor::zeros([], (Kind::Float, Device::Cpu)).expand(dims, false)
}

/// Names and shapes of every tensor of a model built from `config` (LoRA and interactive
/// tensors included when configured), recorded from the module constructors. Checks
/// only the fields that the constructors need; [`SamConfig::validate`] calls this last.
pub(crate) fn record_shapes(config: &SamConfig) -> TensorShapes {
    let recorder = ShapeRecorder::new();
    // Dropped at once: a recorded model holds placeholders only.
    drop(Sam::build(&recorder.root(), config));
    recorder.into_shapes()
}

impl SamConfig {
    /// Checks that the numbers fit together (see [`SamConfig::check_fields`]) and that
    /// the model they describe stays within [`MAX_PARAMETERS`], counted from the
    /// recorded module tree before anything is allocated. Every model constructor calls
    /// this.
    pub fn validate(&self) -> Result<()> {
        self.check_fields()?;
        let parameters = record_shapes(self)
            .iter()
            .map(|(_, shape)| shape.iter().product::<i64>())
            .sum::<i64>();
        if parameters > MAX_PARAMETERS {
            return Err(Error::invalid_argument(format!(
                "model config '{}': {parameters} parameters, above the largest supported {MAX_PARAMETERS}",
                self.name
            )));
        }
        Ok(())
    }

    /// Names and shapes of every tensor of a model built from this configuration, in
    /// the official naming, recorded from the module constructors (nothing allocated).
    pub fn parameter_shapes(&self) -> Result<TensorShapes> {
        self.validate()?;
        Ok(record_shapes(self))
    }
}
