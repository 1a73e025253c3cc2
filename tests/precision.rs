//! The inference paths made for GPUs, checked on whatever this machine has: device
//! selection, the bf16/fp16 image encoder with an fp32 decoder, the chunked attention
//! that bounds memory, batch sizes and embedding-cache placement. On a CUDA machine the
//! same tests also run on the GPU (`gpu_` tests), where they are not skipped silently:
//! they say when no GPU is present.

mod common;

use std::sync::Arc;

use brainsam::metrics::evaluate;
use brainsam::model::attention::Attention;
use brainsam::model::{set_image_encoder_kind, Prompts, Sam, SamConfig};
use brainsam::session::{
    DeviceChoice, EmbeddingCache, Model, ModelOptions, Precision, Session, SessionOptions,
};
use brainsam::volume::{LabelVolume, Volume};
use brainsam::Error;
use tch::nn::Module;
use tch::{nn, Device, Kind, Tensor};

fn bundled_model(device: DeviceChoice, precision: Precision) -> Arc<Model> {
    Model::load(&ModelOptions {
        checkpoint: Some(common::repo_root().join("models/brainsam-default.safetensors")),
        device,
        precision,
        ..ModelOptions::default()
    })
    .unwrap()
}

fn segment(model: Arc<Model>, options: SessionOptions, volume: &Volume) -> LabelVolume {
    let mut session = Session::new(model, options).unwrap();
    session.set_volume(volume.clone()).unwrap();
    session.segment_all(&mut |_, _| true).unwrap().clone()
}

/// Dice of every structure present in `reference`, and their count.
fn agreement(predicted: &LabelVolume, reference: &LabelVolume) -> (f64, usize) {
    let evaluation = evaluate(predicted, reference).unwrap();
    let dices: Vec<f64> = evaluation
        .structures
        .iter()
        .filter(|s| s.reference_voxels > 0)
        .map(|s| s.dice.unwrap_or(0.0))
        .collect();
    let worst = dices.iter().copied().fold(1.0, f64::min);
    (worst, dices.len())
}

#[test]
fn device_names_parse_and_missing_devices_are_named() {
    assert_eq!(DeviceChoice::parse("auto").unwrap(), DeviceChoice::Auto);
    assert_eq!(DeviceChoice::parse("CPU").unwrap(), DeviceChoice::Cpu);
    assert_eq!(DeviceChoice::parse("cuda").unwrap(), DeviceChoice::Cuda(0));
    assert_eq!(
        DeviceChoice::parse("cuda:3").unwrap(),
        DeviceChoice::Cuda(3)
    );
    assert_eq!(DeviceChoice::Cuda(3).to_string(), "cuda:3");
    for bad in ["cuda:", "cuda:x", "cuda:-1", "tpu", ""] {
        let message = DeviceChoice::parse(bad).unwrap_err().to_string();
        assert!(message.contains("cuda:N"), "{bad:?}: {message}");
    }
    let count = tch::Cuda::device_count().max(0) as usize;
    let message = DeviceChoice::Cuda(count).resolve().unwrap_err().to_string();
    assert!(message.contains(&format!("cuda:{count}")), "{message}");
    if count == 0 {
        assert!(message.contains("no CUDA device"), "{message}");
        assert_eq!(DeviceChoice::Auto.resolve().unwrap(), Device::Cpu);
    } else {
        assert!(message.contains("does not exist"), "{message}");
    }
}

#[test]
fn precision_names_parse_and_resolve_per_device() {
    assert_eq!(Precision::parse("bf16").unwrap(), Precision::Bf16);
    assert_eq!(Precision::parse("BFloat16").unwrap(), Precision::Bf16);
    assert_eq!(Precision::parse("half").unwrap(), Precision::Fp16);
    assert_eq!(Precision::parse("fp32").unwrap(), Precision::Fp32);
    let message = Precision::parse("int8").unwrap_err().to_string();
    assert!(message.contains("auto, fp32, bf16 or fp16"), "{message}");
    // The CPU gains nothing from reduced precision: auto means fp32 there.
    assert_eq!(Precision::Auto.encoder_kind(Device::Cpu), Kind::Float);
    assert_eq!(Precision::Bf16.encoder_kind(Device::Cpu), Kind::BFloat16);
    assert_eq!(Precision::Fp16.encoder_kind(Device::Cpu), Kind::Half);
    if tch::Cuda::is_available() {
        let kind = Precision::Auto.encoder_kind(Device::Cuda(0));
        assert!(matches!(kind, Kind::BFloat16 | Kind::Half), "{kind:?}");
    }
}

#[test]
fn chunked_attention_equals_one_pass() {
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let attention = Attention::new(&(vs.root() / "attn").into(), 32, 4, 6, None);
    // Non-zero relative position tables, so the bias matters.
    tch::no_grad(|| {
        for (_, mut tensor) in vs.variables() {
            tensor.copy_(&(Tensor::randn_like(&tensor) * 0.5));
        }
    });
    let xs = Tensor::randn([5, 6, 6, 32], (Kind::Float, Device::Cpu));
    let whole = tch::no_grad(|| attention.forward(&xs));
    // A budget of one image's bias: five chunks of one.
    let one_image = 4 * 36 * 36 * 4;
    for budget in [1, one_image, 2 * one_image + 1] {
        let chunked = tch::no_grad(|| attention.forward_within(&xs, budget));
        let diff = (&chunked - &whole).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "budget {budget}: max difference {diff}");
    }
}

#[test]
fn reduced_precision_encoder_keeps_the_decoder_in_fp32() {
    tch::manual_seed(5);
    let config = SamConfig::tiny().with_num_classes(12);
    let vs = nn::VarStore::new(Device::Cpu);
    let sam = Sam::new(&vs.root(), &config).unwrap();
    let image = Tensor::rand([2, 3, 64, 64], (Kind::Float, Device::Cpu));
    let run = |sam: &Sam| {
        tch::no_grad(|| {
            let embeddings = sam.encode_images(&image).unwrap();
            let out = sam.decode(&embeddings, &Prompts::none()).unwrap();
            (embeddings.kind(), out.low_res_logits)
        })
    };
    let (fp32_kind, fp32) = run(&sam);
    assert_eq!(fp32_kind, Kind::Float);
    for kind in [Kind::BFloat16, Kind::Half] {
        set_image_encoder_kind(&vs, kind).unwrap();
        assert_eq!(sam.kind(), kind);
        assert_eq!(sam.decoder_kind(), Kind::Float);
        let (embedding_kind, logits) = run(&sam);
        assert_eq!(embedding_kind, kind);
        assert_eq!(logits.kind(), Kind::Float, "masks are computed in fp32");
        let scale = fp32.abs().max().double_value(&[]);
        let diff = (&logits - &fp32).abs().max().double_value(&[]);
        assert!(
            diff < 0.05 * scale,
            "{kind:?}: {diff} against scale {scale}"
        );
        for (name, tensor) in vs.variables() {
            let expected = if name.starts_with("image_encoder.") {
                kind
            } else {
                Kind::Float
            };
            assert_eq!(tensor.kind(), expected, "{name}");
        }
    }
    let message = set_image_encoder_kind(&vs, Kind::Int64)
        .unwrap_err()
        .to_string();
    assert!(message.contains("floating point"), "{message}");
}

/// bf16 masks must agree with fp32 ones (Dice >= 0.99 per structure) with the bundled
/// model; on the CPU here, and on the GPU in `gpu_bf16_masks_agree_with_fp32`.
fn check_bf16_agrees(device: DeviceChoice, volume: &Volume, what: &str) {
    let fp32 = segment(
        bundled_model(device, Precision::Fp32),
        SessionOptions::default(),
        volume,
    );
    let bf16 = segment(
        bundled_model(device, Precision::Bf16),
        SessionOptions::default(),
        volume,
    );
    let (worst, present) = agreement(&bf16, &fp32);
    println!("{what} on {device}: worst structure Dice bf16 vs fp32 {worst:.4} over {present}");
    assert!(present >= 6, "{what}: only {present} structures segmented");
    assert!(worst >= 0.99, "{what}: bf16 vs fp32 Dice {worst:.4}");
}

#[test]
fn bf16_masks_agree_with_fp32_on_real_volumes() {
    let Some(data) = common::data_dir("bf16_masks_agree_with_fp32_on_real_volumes") else {
        return;
    };
    for path in [
        "freesurfer_training_data/sub-09/T1.nii.gz",
        "mne_testing_sample/T1_3mm.nii.gz",
    ] {
        let volume = Volume::read(data.join(path)).unwrap();
        check_bf16_agrees(DeviceChoice::Cpu, &volume, path);
    }
}

#[test]
fn batch_size_and_embedding_cache_do_not_change_the_result() {
    let volume = common::synthetic_head();
    let model = bundled_model(DeviceChoice::Cpu, Precision::Fp32);
    let reference = segment(Arc::clone(&model), SessionOptions::default(), &volume);
    let session = Session::new(Arc::clone(&model), SessionOptions::default()).unwrap();
    assert_eq!(session.batch_size(), 4, "automatic batch on the CPU");
    for (batch_size, embedding_cache) in [
        (1, EmbeddingCache::Host),
        (7, EmbeddingCache::Device),
        (64, EmbeddingCache::Auto),
    ] {
        let options = SessionOptions {
            batch_size,
            embedding_cache,
            ..SessionOptions::default()
        };
        let labels = segment(Arc::clone(&model), options, &volume);
        assert_eq!(
            labels.data(),
            reference.data(),
            "batch {batch_size}, cache {embedding_cache:?}"
        );
    }
}

#[test]
fn prompts_work_with_host_cached_embeddings() {
    let volume = common::synthetic_head();
    let model = bundled_model(DeviceChoice::Cpu, Precision::Fp32);
    let mut results = Vec::new();
    for embedding_cache in [EmbeddingCache::Device, EmbeddingCache::Host] {
        let options = SessionOptions {
            embedding_cache,
            ..SessionOptions::default()
        };
        let mut session = Session::new(Arc::clone(&model), options).unwrap();
        session.set_volume(volume.clone()).unwrap();
        session.segment_all(&mut |_, _| true).unwrap();
        let geometry = session.geometry().unwrap();
        let plane = geometry.slice_voxel_indices()[geometry.n_slices() / 2];
        let axis = geometry.frame().coronal_axis;
        let mut ijk = [40.0, 48.0, 40.0];
        ijk[axis] = plane as f64;
        session.add_point(1, ijk, true).unwrap();
        session.segment_structure(1, plane).unwrap();
        results.push(session.labels().unwrap().data().to_vec());
    }
    assert_eq!(results[0], results[1]);
}

fn cuda_or_skip(test: &str) -> bool {
    if tch::Cuda::is_available() {
        true
    } else {
        println!("skipped: no CUDA device on this machine ({test})");
        false
    }
}

#[test]
fn gpu_bf16_masks_agree_with_fp32() {
    if !cuda_or_skip("gpu_bf16_masks_agree_with_fp32") {
        return;
    }
    check_bf16_agrees(
        DeviceChoice::Cuda(0),
        &common::synthetic_head(),
        "synthetic head",
    );
    if let Some(data) = common::data_dir("gpu_bf16_masks_agree_with_fp32") {
        let volume = Volume::read(data.join("freesurfer_training_data/sub-09/T1.nii.gz")).unwrap();
        check_bf16_agrees(DeviceChoice::Cuda(0), &volume, "sub-09");
    }
}

#[test]
fn gpu_and_cpu_results_agree() {
    if !cuda_or_skip("gpu_and_cpu_results_agree") {
        return;
    }
    let volume = common::synthetic_head();
    let cpu = segment(
        bundled_model(DeviceChoice::Cpu, Precision::Fp32),
        SessionOptions::default(),
        &volume,
    );
    let gpu = segment(
        bundled_model(DeviceChoice::Cuda(0), Precision::Fp32),
        SessionOptions::default(),
        &volume,
    );
    let (worst, _) = agreement(&gpu, &cpu);
    assert!(worst >= 0.99, "GPU fp32 vs CPU fp32 Dice {worst:.4}");
    let memory = brainsam::runtime::cuda_memory(0);
    println!("GPU memory after the run: {memory:?}");
}

#[test]
fn unknown_device_is_a_clear_error_when_loading() {
    let count = tch::Cuda::device_count().max(0) as usize;
    let error = Model::load(&ModelOptions {
        device: DeviceChoice::Cuda(count + 1),
        ..ModelOptions::default()
    })
    .unwrap_err();
    assert!(
        matches!(error, Error::Unsupported(_) | Error::InvalidArgument(_)),
        "{error}"
    );
    assert!(
        error.to_string().contains(&format!("cuda:{}", count + 1)),
        "{error}"
    );
}
