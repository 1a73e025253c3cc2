//! Unit tests of the model on the tiny configuration (parity with the reference
//! implementation is in tests/parity.rs).

use std::collections::HashMap;

use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use super::*;
use crate::weights::{load_into_var_store, LoadOptions};

fn tiny_model(config: &SamConfig) -> (nn::VarStore, Sam) {
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let sam = Sam::new(&vs.root(), config).unwrap();
    (vs, sam)
}

fn shapes_of(vs: &nn::VarStore) -> HashMap<String, Vec<i64>> {
    vs.variables()
        .into_iter()
        .map(|(n, t)| (n, t.size()))
        .collect()
}

#[test]
fn recorded_parameter_shapes_match_the_built_model() {
    for config in [
        SamConfig::tiny().with_num_classes(12).with_lora_rank(4),
        SamConfig::small().with_input_size(128),
        SamConfig::tiny().with_input_size(48),
        SamConfig::tiny()
            .with_num_classes(12)
            .with_interactive(true),
    ] {
        let (vs, _sam) = tiny_model(&config);
        let analytic: HashMap<String, Vec<i64>> =
            config.parameter_shapes().unwrap().into_iter().collect();
        assert_eq!(shapes_of(&vs), analytic, "config {}", config.name);
    }
}

#[test]
fn tiny_model_produces_all_mask_tokens_at_four_times_the_grid() {
    let config = SamConfig::tiny().with_num_classes(12);
    let (_vs, sam) = tiny_model(&config);
    tch::no_grad(|| {
        let image = Tensor::rand([3, 50, 64], (Kind::Float, Device::Cpu)) * 255.0;
        let input = sam.preprocess(&image).unwrap();
        assert_eq!(input.size(), [1, 3, 64, 64]);
        // zero padding below the 50 image rows
        assert_eq!(input.narrow(2, 50, 14).abs().max().double_value(&[]), 0.0);
        let emb = sam.encode_images(&input).unwrap();
        assert_eq!(emb.size(), [1, 32, 4, 4]);
        let prompts = Prompts::from_points(
            Tensor::from_slice(&[10.0f32, 12.0, 40.0, 30.0]).view([1, 2, 2]),
            Tensor::from_slice(&[1i64, 0]).view([1, 2]),
        );
        let out = sam.decode(&emb, &prompts).unwrap();
        assert_eq!(out.low_res_logits.size(), [1, 13, 16, 16]);
        assert_eq!(out.iou.size(), [1, 13]);
        let masks = sam
            .postprocess_masks(&out.low_res_logits, (50, 64), (100, 128))
            .unwrap();
        assert_eq!(masks.size(), [1, 13, 100, 128]);
        // two images, no prompt: one unprompted decode per image
        let emb2 = Tensor::cat(&[&emb, &emb], 0);
        let out2 = sam.decode(&emb2, &Prompts::none()).unwrap();
        assert_eq!(out2.low_res_logits.size(), [2, 13, 16, 16]);
        let single = sam.decode(&emb, &Prompts::none()).unwrap();
        let diff = (out2.low_res_logits.get(1) - single.low_res_logits.get(0))
            .abs()
            .max();
        assert!(diff.double_value(&[]) < 1e-5);
    });
}

#[test]
fn wrong_prompt_shapes_are_errors_not_panics() {
    let (_vs, sam) = tiny_model(&SamConfig::tiny());
    let emb = Tensor::zeros([1, 32, 4, 4], (Kind::Float, Device::Cpu));
    let bad_points = Prompts::from_points(
        Tensor::zeros([1, 2, 3], (Kind::Float, Device::Cpu)),
        Tensor::zeros([1, 2], (Kind::Float, Device::Cpu)),
    );
    let err = sam.decode(&emb, &bad_points).unwrap_err();
    assert!(err.to_string().contains("point coords"), "{err}");
    let bad_labels = Prompts::from_points(
        Tensor::zeros([1, 2, 2], (Kind::Float, Device::Cpu)),
        Tensor::zeros([1, 3], (Kind::Float, Device::Cpu)),
    );
    assert!(sam
        .decode(&emb, &bad_labels)
        .unwrap_err()
        .to_string()
        .contains("labels"));
    let bad_box = Prompts::from_boxes(Tensor::zeros([1, 3], (Kind::Float, Device::Cpu)));
    assert!(sam
        .decode(&emb, &bad_box)
        .unwrap_err()
        .to_string()
        .contains("boxes"));
    let bad_mask = Prompts {
        mask_input: Some(Tensor::zeros([1, 1, 8, 8], (Kind::Float, Device::Cpu))),
        ..Prompts::none()
    };
    assert!(sam
        .decode(&emb, &bad_mask)
        .unwrap_err()
        .to_string()
        .contains("mask input"));
    let bad_emb = Tensor::zeros([1, 16, 4, 4], (Kind::Float, Device::Cpu));
    assert!(sam.decode(&bad_emb, &Prompts::none()).is_err());
    let three = Tensor::zeros([3, 32, 4, 4], (Kind::Float, Device::Cpu));
    let two_points = Prompts::from_points(
        Tensor::zeros([2, 1, 2], (Kind::Float, Device::Cpu)),
        Tensor::ones([2, 1], (Kind::Float, Device::Cpu)),
    );
    assert!(sam.decode(&three, &two_points).is_err());
    let too_big = Tensor::zeros([3, 65, 10], (Kind::Float, Device::Cpu));
    assert!(sam.preprocess(&too_big).is_err());
    assert!(sam.encode_images(&too_big).is_err());
    assert!(sam.postprocess_masks(&emb, (70, 10), (10, 10)).is_err());
}

#[test]
fn fresh_lora_leaves_the_encoder_unchanged() {
    let base = SamConfig::tiny();
    let (vs_base, sam_base) = tiny_model(&base);
    let (vs_lora, sam_lora) = tiny_model(&base.clone().with_lora_rank(4));
    let weights: Vec<(String, Tensor)> = vs_base.variables().into_iter().collect();
    let options = LoadOptions::strict().allowing_missing(["*.lora_*"]);
    let report = load_into_var_store(&vs_lora, &weights, &options).unwrap();
    assert!(report.missing.iter().all(|n| is_lora(n)) && report.missing.len() == 2 * 4);
    tch::no_grad(|| {
        let x = Tensor::randn([1, 3, 64, 64], (Kind::Float, Device::Cpu));
        let a = sam_base.encode_images(&x).unwrap();
        let b = sam_lora.encode_images(&x).unwrap();
        assert!((a - b).abs().max().double_value(&[]) < 1e-6);
    });
}

#[test]
fn lora_mode_trains_lora_prompt_encoder_and_decoder_only() {
    let config = SamConfig::tiny().with_num_classes(12).with_lora_rank(4);
    let (vs, sam) = tiny_model(&config);
    let counts = apply_training_mode(&vs, TrainingMode::Lora);
    let analytic = ParameterCounts::from_shapes(
        config
            .parameter_shapes()
            .unwrap()
            .iter()
            .map(|(n, s)| (n.as_str(), s.as_slice())),
        TrainingMode::Lora,
    );
    assert_eq!(counts, analytic);
    let trainable = trainable_parameters(&vs);
    assert!(trainable
        .iter()
        .all(|(n, _)| !n.starts_with("image_encoder.") || is_lora(n)));
    assert!(trainable
        .iter()
        .any(|(n, _)| n.starts_with("prompt_encoder.")));
    assert!(frozen_parameters(&vs)
        .iter()
        .all(|(n, _)| n.starts_with("image_encoder.")));

    // One optimiser step: frozen tensors unchanged, LoRA B moves away from zero.
    let before: HashMap<String, Tensor> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.copy()))
        .collect();
    let mut opt = nn::AdamW::default().build(&vs, 1e-2).unwrap();
    let x = Tensor::randn([2, 3, 64, 64], (Kind::Float, Device::Cpu));
    let emb = sam.encode_images(&x).unwrap();
    let out = sam.decode(&emb, &Prompts::none()).unwrap();
    let loss = out.low_res_logits.square().mean(Kind::Float) + out.iou.square().mean(Kind::Float);
    opt.backward_step(&loss);
    for (name, tensor) in vs.variables() {
        let changed = (&tensor - &before[&name]).abs().max().double_value(&[]) > 0.0;
        let should =
            TrainingMode::Lora.is_trainable(&name) && name != "mask_decoder.mask_tokens.weight"; // may get no gradient here
        if !TrainingMode::Lora.is_trainable(&name) {
            assert!(!changed, "frozen tensor {name} changed");
        } else if should && name.contains("lora_q_b") {
            assert!(changed, "LoRA tensor {name} did not change");
        }
    }

    let decoder = apply_training_mode(&vs, TrainingMode::Decoder);
    assert!(trainable_parameters(&vs)
        .iter()
        .all(|(n, _)| n.starts_with("mask_decoder.")));
    let full = apply_training_mode(&vs, TrainingMode::Full);
    assert_eq!(full.frozen, 0);
    assert_eq!(decoder.total(), full.total());
}

/// Parameter counts of the paper's setting: vit_b, 512 input, LoRA rank 16,
/// 13 mask tokens (12 structures + background).
///
/// - trainable 5,917,273 = LoRA 589,824 (12 blocks x 4 x 768 x 16) + prompt
///   encoder 6,220 + mask decoder 5,321,229 — the paper's 5.92 M;
/// - frozen 87,278,848 = the image encoder at 512 input (pos_embed 32x32 and global
///   rel_pos of 63 rows instead of 64x64 and 127 at 1024);
/// - the paper's 92.61 M is the model *without* LoRA: 87,278,848 + 6,220 +
///   5,321,229 = 92,606,297 (5.92 / 92.61 = 6.39 %). With LoRA the total is
///   93,196,121. The prompt encoder's 256-value Fourier matrix is a buffer and
///   counted in neither.
#[test]
fn vit_b_paper_setting_parameter_counts() {
    let config = SamConfig::vit_b()
        .with_input_size(512)
        .with_num_classes(12)
        .with_lora_rank(16);
    // Counted on the recorded module tree (the same constructors; see
    // recorded_parameter_shapes_match_the_built_model): building the 94 M-parameter
    // model here would draw random numbers for seconds while seeded tests run.
    let shapes = config.parameter_shapes().unwrap();
    let counts = ParameterCounts::from_shapes(
        shapes.iter().map(|(n, s)| (n.as_str(), s.as_slice())),
        TrainingMode::Lora,
    );
    println!(
        "vit_b 512, LoRA r16, 13 masks: trainable {} ({:.2} M, paper 5.92 M), frozen {} ({:.2} M), \
         total {} ({:.2} M); without LoRA {} ({:.2} M, paper 92.61 M); buffers {}",
        counts.trainable,
        counts.trainable as f64 / 1e6,
        counts.frozen,
        counts.frozen as f64 / 1e6,
        counts.total(),
        counts.total() as f64 / 1e6,
        counts.total() - 589_824,
        (counts.total() - 589_824) as f64 / 1e6,
        counts.buffers
    );
    assert_eq!(counts.trainable, 5_917_273);
    assert_eq!(counts.frozen, 87_278_848);
    assert_eq!(counts.buffers, 256);
    assert_eq!(counts.total() - 12 * 4 * 768 * 16, 92_606_297);
}

#[test]
fn bfloat16_model_runs_and_stays_close_to_fp32() {
    let config = SamConfig::tiny();
    let (mut vs, sam) = tiny_model(&config);
    let image = Tensor::rand([1, 3, 64, 64], (Kind::Float, Device::Cpu)) * 255.0;
    let prompts =
        || Prompts::from_boxes(Tensor::from_slice(&[5.0f32, 6.0, 40.0, 50.0]).view([1, 4]));
    let run = |sam: &Sam| {
        tch::no_grad(|| {
            let emb = sam.encode_images(&sam.preprocess(&image).unwrap()).unwrap();
            sam.decode(&emb, &prompts()).unwrap()
        })
    };
    let fp32 = run(&sam);
    vs.bfloat16();
    assert_eq!(sam.kind(), Kind::BFloat16);
    let bf16 = run(&sam);
    assert_eq!(bf16.low_res_logits.kind(), Kind::BFloat16);
    let diff = (bf16.low_res_logits.to_kind(Kind::Float) - &fp32.low_res_logits)
        .abs()
        .max();
    let scale = fp32.low_res_logits.abs().max().double_value(&[]);
    assert!(
        diff.double_value(&[]) <= 0.1 * scale.max(1.0),
        "{diff:?} vs {scale}"
    );
}

#[test]
fn full_mode_backpropagates_into_relative_position_tables() {
    let config = SamConfig::tiny();
    let (vs, sam) = tiny_model(&config);
    apply_training_mode(&vs, TrainingMode::Full);
    let x = Tensor::randn([1, 3, 64, 64], (Kind::Float, Device::Cpu));
    let emb = sam.encode_images(&x).unwrap();
    emb.square().sum(Kind::Float).backward();
    let variables = vs.variables();
    for name in [
        "image_encoder.blocks.0.attn.rel_pos_h", // windowed block
        "image_encoder.blocks.1.attn.rel_pos_w", // global block
        "image_encoder.pos_embed",
        "image_encoder.blocks.0.attn.qkv.weight",
    ] {
        let grad = variables[name].grad();
        assert!(grad.defined(), "{name} has no gradient");
        assert!(
            grad.abs().sum(Kind::Float).double_value(&[]) > 0.0,
            "{name}: zero gradient"
        );
    }
}

#[test]
fn model_and_prompts_can_move_to_a_worker_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<Sam>();
    assert_send::<Prompts>();
    assert_send::<DecoderOutput>();
}

#[test]
fn the_interactive_head_starts_as_the_automatic_one_and_leaves_it_alone() {
    let plain = SamConfig::tiny().with_num_classes(12);
    let (plain_vs, plain_sam) = tiny_model(&plain);
    let (vs, sam) = tiny_model(&plain.clone().with_interactive(true));
    assert!(sam.has_interactive_head() && !plain_sam.has_interactive_head());
    // The head is created last, so the automatic tensors draw the same random numbers as
    // without it (initialised exactly alike for a seed). Checked on the creation order the
    // shape recorder sees: comparing two seeded builds would race with other test threads
    // drawing from libtorch's global generator.
    let plain_order = plain.parameter_shapes().unwrap();
    let with_head = plain
        .clone()
        .with_interactive(true)
        .parameter_shapes()
        .unwrap();
    assert_eq!(with_head[..plain_order.len()], plain_order[..]);
    for (name, _) in &with_head[plain_order.len()..] {
        assert!(name.starts_with(INTERACTIVE_PREFIX), "{name}");
    }
    let plain_variables = plain_vs.variables();
    assert_eq!(vs.variables().len(), with_head.len());
    assert_eq!(plain_variables.len(), plain_order.len());
    copy_automatic_to_interactive(&vs).unwrap();
    tch::no_grad(|| {
        let embeddings = Tensor::randn([2, 32, 4, 4], (Kind::Float, Device::Cpu));
        let automatic = sam.decode(&embeddings, &Prompts::none()).unwrap();
        let interactive = sam
            .decode_interactive(&embeddings, &Prompts::none(), &[3, 11])
            .unwrap();
        assert_eq!(interactive.size(), [2, 1, 16, 16]);
        // Unprompted, the copied head gives the automatic softmax's log-odds.
        let probabilities = automatic.low_res_logits.softmax(1, Kind::Float);
        for (b, class) in [(0, 3), (1, 11)] {
            let p = probabilities.get(b).get(class);
            let expected = (&p / (p.ones_like() - &p)).log();
            let got = interactive.get(b).get(0);
            assert!(
                (got - expected).abs().max().double_value(&[]) < 1e-3,
                "class {class}"
            );
        }
        // A prompt changes the interactive result.
        let boxed = sam
            .decode_interactive(
                &embeddings.get(0).unsqueeze(0),
                &Prompts::from_boxes(Tensor::from_slice(&[4.0f32, 4.0, 30.0, 30.0]).view([1, 4])),
                &[3],
            )
            .unwrap();
        assert!(!boxed.allclose(&interactive.get(0).unsqueeze(0), 1e-4, 1e-4, false));
        let err = sam
            .decode_interactive(&embeddings, &Prompts::none(), &[0, 13])
            .unwrap_err();
        assert!(err.to_string().contains("not a mask token"), "{err}");
        let err = plain_sam
            .decode_interactive(&embeddings, &Prompts::none(), &[1, 1])
            .unwrap_err();
        assert!(err.to_string().contains("no interactive head"), "{err}");
    });
}

#[test]
fn configs_written_before_the_interactive_head_load_without_it() {
    let mut json: serde_json::Value = serde_json::from_str(&SamConfig::small().to_json()).unwrap();
    json.as_object_mut().unwrap().remove("interactive");
    let config = SamConfig::from_json(&json.to_string()).unwrap();
    assert!(!config.interactive);
    assert!(!config
        .parameter_shapes()
        .unwrap()
        .iter()
        .any(|(name, _)| name.starts_with(INTERACTIVE_PREFIX)));
}
