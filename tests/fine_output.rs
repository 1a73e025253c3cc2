//! The mask decoder's fine output stage (`MaskDecoderConfig::fine_output`, issue 19):
//! logits at 8x the embedding grid, old files load unchanged, a freshly added stage
//! reproduces the decoder's own logits bilinearly upsampled, and the stage learns.

use std::collections::HashMap;

use brainsam::model::{Prompts, Sam, SamConfig};
use tch::nn::{self, OptimizerConfig, VarStore};
use tch::{Device, Kind, Tensor};

fn model(config: &SamConfig, seed: i64) -> (VarStore, Sam) {
    tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let sam = Sam::new(&vs.root(), config).unwrap();
    (vs, sam)
}

/// Copies every tensor of `from` onto the tensor of the same name in `to`.
fn copy_shared(from: &VarStore, to: &VarStore) -> usize {
    let targets = to.variables();
    let mut copied = 0;
    tch::no_grad(|| {
        for (name, tensor) in from.variables() {
            if let Some(target) = targets.get(&name) {
                target.shallow_clone().copy_(&tensor);
                copied += 1;
            }
        }
    });
    copied
}

fn embedding(sam: &Sam) -> Tensor {
    tch::manual_seed(7);
    let image = Tensor::rand([1, 3, 64, 64], (Kind::Float, Device::Cpu));
    tch::no_grad(|| sam.encode_images(&image).unwrap())
}

#[test]
fn fine_output_doubles_the_logit_resolution_and_names_its_tensors() {
    let coarse_config = SamConfig::tiny().with_num_classes(12);
    let fine_config = coarse_config.clone().with_fine_output(true);
    assert_eq!(coarse_config.low_res_size(), 16);
    assert_eq!(fine_config.low_res_size(), 32);
    assert_eq!(fine_config.mask_input_size(), 16);
    let (vs, sam) = model(&fine_config, 1);
    let out = tch::no_grad(|| sam.decode(&embedding(&sam), &Prompts::none())).unwrap();
    assert_eq!(out.low_res_logits.size(), [1, 13, 32, 32]);
    let built: HashMap<String, Vec<i64>> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.size()))
        .collect();
    let analytic: HashMap<String, Vec<i64>> = fine_config
        .parameter_shapes()
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(built, analytic);
    assert!(built.contains_key("mask_decoder.fine_upscaling.0.weight"));
    assert!(built.contains_key("mask_decoder.fine_upscaling.2.bias"));
    // The interactive head gets the same stage.
    let (vs, _) = model(&fine_config.clone().with_interactive(true), 1);
    assert!(vs
        .variables()
        .contains_key("interactive.mask_decoder.fine_upscaling.0.weight"));
}

#[test]
fn configurations_written_before_the_field_load_without_the_stage() {
    let mut json: serde_json::Value = serde_json::from_str(&SamConfig::small().to_json()).unwrap();
    json["mask_decoder"]
        .as_object_mut()
        .unwrap()
        .remove("fine_output")
        .expect("the field is written");
    let config = SamConfig::from_json(&json.to_string()).unwrap();
    assert!(!config.mask_decoder.fine_output);
    assert_eq!(config, SamConfig::small());
    // The published SAM configurations have no fine stage (parity unaffected).
    for name in ["vit_b", "vit_l", "vit_h", "small", "tiny"] {
        let config = SamConfig::by_name(name).unwrap();
        assert!(!config.mask_decoder.fine_output, "{name}");
        assert!(!config
            .parameter_shapes()
            .unwrap()
            .iter()
            .any(|(n, _)| n.contains("fine_upscaling")));
    }
}

#[test]
fn an_added_stage_starts_as_bilinear_upsampling_of_the_old_logits() {
    let coarse_config = SamConfig::tiny().with_num_classes(12);
    let (coarse_vs, coarse) = model(&coarse_config, 3);
    let (fine_vs, fine) = model(&coarse_config.clone().with_fine_output(true), 4);
    let shared = copy_shared(&coarse_vs, &fine_vs);
    assert_eq!(shared, coarse_vs.variables().len());
    let emb = embedding(&coarse);
    let prompts =
        Prompts::from_boxes(Tensor::from_slice(&[10.0f32, 12.0, 40.0, 50.0]).view([1, 4]));
    let (old, new) = tch::no_grad(|| {
        (
            coarse.decode(&emb, &prompts).unwrap().low_res_logits,
            fine.decode(&emb, &prompts).unwrap().low_res_logits,
        )
    });
    let expected = old.upsample_bilinear2d([32, 32], false, None, None);
    let diff = (&new - &expected).abs().max().double_value(&[]);
    let scale = expected.abs().max().double_value(&[]);
    assert!(scale > 0.0);
    assert!(
        diff <= 1e-4 * scale.max(1.0),
        "max diff {diff} (scale {scale})"
    );
}

#[test]
fn fine_logits_are_accepted_back_as_mask_prompt() {
    let config = SamConfig::tiny()
        .with_num_classes(12)
        .with_fine_output(true);
    let (_vs, sam) = model(&config, 5);
    let emb = embedding(&sam);
    tch::manual_seed(9);
    let fine_mask = Tensor::randn([1, 1, 32, 32], (Kind::Float, Device::Cpu));
    let pooled = fine_mask.adaptive_avg_pool2d([16, 16]);
    let with = |mask: &Tensor| {
        let prompts = Prompts {
            mask_input: Some(mask.shallow_clone()),
            ..Prompts::none()
        };
        tch::no_grad(|| sam.decode(&emb, &prompts).unwrap().low_res_logits)
    };
    let diff = (with(&fine_mask) - with(&pooled))
        .abs()
        .max()
        .double_value(&[]);
    assert!(
        diff < 1e-5,
        "fine mask prompt differs from its pooled copy by {diff}"
    );
    // Any other size is refused with the expected shape named.
    let odd = Prompts {
        mask_input: Some(Tensor::zeros([1, 1, 24, 24], (Kind::Float, Device::Cpu))),
        ..Prompts::none()
    };
    let error = sam.decode(&emb, &odd).unwrap_err().to_string();
    assert!(
        error.contains("mask input") && error.contains("16"),
        "{error}"
    );
}

#[test]
fn the_fine_stage_learns() {
    let config = SamConfig::tiny()
        .with_num_classes(12)
        .with_fine_output(true);
    let (vs, sam) = model(&config, 6);
    let emb = embedding(&sam);
    let target = Tensor::zeros([1, 13, 32, 32], (Kind::Float, Device::Cpu));
    let _ = target
        .narrow(1, 1, 1)
        .narrow(2, 8, 9)
        .narrow(3, 5, 11)
        .fill_(1.0);
    let projection = vs
        .variables()
        .get("mask_decoder.fine_upscaling.2.weight")
        .map(Tensor::shallow_clone)
        .expect("the stage's projection");
    assert_eq!(projection.abs().sum(Kind::Float).double_value(&[]), 0.0);
    let loss_of = |sam: &Sam| {
        let logits = sam.decode(&emb, &Prompts::none()).unwrap().low_res_logits;
        logits.binary_cross_entropy_with_logits::<Tensor>(&target, None, None, tch::Reduction::Mean)
    };
    let before = tch::no_grad(|| loss_of(&sam)).double_value(&[]);
    let mut optimizer = nn::Adam::default().build(&vs, 1e-2).unwrap();
    for _ in 0..30 {
        let loss = loss_of(&sam);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
    }
    let after = tch::no_grad(|| loss_of(&sam)).double_value(&[]);
    assert!(after < before, "loss {before} -> {after}");
    assert!(projection.abs().sum(Kind::Float).double_value(&[]) > 0.0);
}
