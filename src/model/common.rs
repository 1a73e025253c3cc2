//! Building blocks shared by the components: PyTorch-default initialisation,
//! channel-first LayerNorm, the two MLP flavours of SAM.

use tch::nn::{self, Init, Module};
use tch::Tensor;

use super::recorder::ParamPath;

/// PyTorch's default initialisation of Linear/Conv weights: Kaiming-uniform with
/// a = sqrt(5), i.e. uniform in ±1/sqrt(fan_in). Also the LoRA A initialisation.
pub const TORCH_DEFAULT_INIT: Init = Init::Kaiming {
    dist: nn::init::NormalOrUniform::Uniform,
    fan: nn::init::FanInOut::FanIn,
    // gain = sqrt(2 / (1 + a^2)) with a = sqrt(5)
    non_linearity: nn::init::NonLinearity::ExplicitGain(0.577_350_269_189_625_8),
};

/// Uniform bias initialisation of PyTorch (±1/sqrt(fan_in)).
fn torch_bias_init(fan_in: i64) -> Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// A Linear layer (`weight` [out, in], `bias` [out]) initialised like PyTorch's
/// (tensors created in the order of `tch::nn::linear`, so seeded models are unchanged).
pub fn linear(path: ParamPath, in_dim: i64, out_dim: i64) -> nn::Linear {
    let bs = path.var("bias", &[out_dim], torch_bias_init(in_dim));
    let ws = path.var("weight", &[out_dim, in_dim], TORCH_DEFAULT_INIT);
    nn::Linear { ws, bs: Some(bs) }
}

/// A 2D convolution with square kernels, stride and padding (`weight`
/// [out, in, k, k], optional `bias` [out]).
#[derive(Debug)]
pub struct Conv2d {
    ws: Tensor,
    bs: Option<Tensor>,
    stride: i64,
    padding: i64,
}

/// A 2D convolution initialised like PyTorch's.
pub fn conv2d(
    path: ParamPath,
    in_chans: i64,
    out_chans: i64,
    kernel: i64,
    stride: i64,
    padding: i64,
    bias: bool,
) -> Conv2d {
    // Bias first, as `tch::nn::conv2d` does.
    let bs = bias.then(|| {
        path.var(
            "bias",
            &[out_chans],
            torch_bias_init(in_chans * kernel * kernel),
        )
    });
    let ws = path.var(
        "weight",
        &[out_chans, in_chans, kernel, kernel],
        TORCH_DEFAULT_INIT,
    );
    Conv2d {
        ws,
        bs,
        stride,
        padding,
    }
}

/// A 2D convolution (stride 1, padding keeping the size) whose weight and bias start at
/// zero: a learned refinement that starts as a no-op.
pub fn conv2d_zeros(path: ParamPath, in_chans: i64, out_chans: i64, kernel: i64) -> Conv2d {
    let bs = path.var("bias", &[out_chans], Init::Const(0.0));
    let ws = path.var(
        "weight",
        &[out_chans, in_chans, kernel, kernel],
        Init::Const(0.0),
    );
    Conv2d {
        ws,
        bs: Some(bs),
        stride: 1,
        padding: kernel / 2,
    }
}

impl Module for Conv2d {
    fn forward(&self, xs: &Tensor) -> Tensor {
        xs.conv2d(
            &self.ws,
            self.bs.as_ref(),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        )
    }
}

/// A 2D transposed convolution with kernel = stride = 2 (the 2x upscaling of SAM):
/// `weight` [in, out, 2, 2], `bias` [out].
#[derive(Debug)]
pub struct ConvTranspose2x2 {
    ws: Tensor,
    bs: Tensor,
}

/// A 2x2, stride-2 transposed convolution initialised like PyTorch's.
pub fn conv_transpose2x2(path: ParamPath, in_chans: i64, out_chans: i64) -> ConvTranspose2x2 {
    // PyTorch computes the fan-in of a transposed conv from weight dim 1.
    let bs = path.var("bias", &[out_chans], torch_bias_init(out_chans * 4));
    let ws = path.var("weight", &[in_chans, out_chans, 2, 2], TORCH_DEFAULT_INIT);
    ConvTranspose2x2 { ws, bs }
}

impl Module for ConvTranspose2x2 {
    fn forward(&self, xs: &Tensor) -> Tensor {
        xs.conv_transpose2d(&self.ws, Some(&self.bs), [2, 2], [0, 0], [0, 0], 1, [1, 1])
    }
}

/// A LayerNorm over the last dimension (`weight` ones, `bias` zeros).
#[derive(Debug)]
pub struct LayerNorm {
    ws: Tensor,
    bs: Tensor,
    eps: f64,
}

/// A LayerNorm over the last dimension of width `dim`.
pub fn layer_norm(path: ParamPath, dim: i64, eps: f64) -> LayerNorm {
    LayerNorm {
        ws: path.var("weight", &[dim], Init::Const(1.0)),
        bs: path.var("bias", &[dim], Init::Const(0.0)),
        eps,
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let dim = self.ws.size();
        xs.layer_norm(&dim, Some(&self.ws), Some(&self.bs), self.eps, true)
    }
}

/// An embedding table of `count` vectors (initialised N(0, 1) like PyTorch's).
pub fn embedding(path: ParamPath, count: i64, dim: i64) -> Tensor {
    path.var(
        "weight",
        &[count, dim],
        Init::Randn {
            mean: 0.0,
            stdev: 1.0,
        },
    )
}

/// LayerNorm over the channel axis of a [B, C, H, W] tensor (ConvNeXt's LayerNorm2d).
#[derive(Debug)]
pub struct LayerNorm2d {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm2d {
    /// Creates `weight` (ones) and `bias` (zeros) of `channels` values under `path`.
    pub fn new(path: ParamPath, channels: i64) -> Self {
        Self {
            weight: path.var("weight", &[channels], Init::Const(1.0)),
            bias: path.var("bias", &[channels], Init::Const(0.0)),
            eps: 1e-6,
        }
    }
}

impl Module for LayerNorm2d {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let mean = xs.mean_dim(1, true, None);
        let centred = xs - mean;
        let var = centred.square().mean_dim(1, true, None);
        let normed = centred / (var + self.eps).sqrt();
        normed * self.weight.view([-1, 1, 1]) + self.bias.view([-1, 1, 1])
    }
}

/// The two-layer MLP of transformer blocks (`lin1`, activation, `lin2`).
#[derive(Debug)]
pub struct MlpBlock {
    lin1: nn::Linear,
    lin2: nn::Linear,
    activation: Activation,
}

/// Activation functions used by SAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact (erf) GELU, as `nn.GELU()`.
    Gelu,
    /// ReLU.
    Relu,
}

impl Activation {
    /// Applies the activation.
    pub fn apply(self, xs: &Tensor) -> Tensor {
        match self {
            Activation::Gelu => xs.gelu("none"),
            Activation::Relu => xs.relu(),
        }
    }
}

impl MlpBlock {
    /// `lin1` (dim → hidden), activation, `lin2` (hidden → dim) under `path`.
    pub fn new(path: ParamPath, dim: i64, hidden: i64, activation: Activation) -> Self {
        Self {
            lin1: linear(&path / "lin1", dim, hidden),
            lin2: linear(&path / "lin2", hidden, dim),
            activation,
        }
    }
}

impl Module for MlpBlock {
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.lin2
            .forward(&self.activation.apply(&self.lin1.forward(xs)))
    }
}

/// The MaskFormer MLP of the decoder heads: `layers.{i}` Linear layers with ReLU
/// between them (none after the last).
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<nn::Linear>,
}

impl Mlp {
    /// `num_layers` Linear layers: input → hidden → ... → output.
    pub fn new(path: ParamPath, input: i64, hidden: i64, output: i64, num_layers: i64) -> Self {
        let layers_path = &path / "layers";
        let layers = (0..num_layers)
            .map(|i| {
                let inp = if i == 0 { input } else { hidden };
                let out = if i + 1 == num_layers { output } else { hidden };
                linear(&layers_path / i, inp, out)
            })
            .collect();
        Self { layers }
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let last = self.layers.len() - 1;
        let mut out = xs.shallow_clone();
        for (i, layer) in self.layers.iter().enumerate() {
            out = layer.forward(&out);
            if i < last {
                out = out.relu();
            }
        }
        out
    }
}
