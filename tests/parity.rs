//! Parity of the Rust SAM port with the reference `segment-anything` package.
//!
//! `tests/parity/make_fixtures.py` (run with `<repo>/.venv/bin/python`) builds
//! reference models with randomised weights and records inputs and outputs under
//! `<target>/parity-fixtures`; it is rerun only when the script changes. Every
//! comparison must agree within 1e-4 (max abs difference, fp32, CPU).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use brainsam::model::{adapt_state_dict, LoraConfig, PointPrompts, Prompts, Sam, SamConfig};
use brainsam::weights::{load_into_var_store, read_state_dict, LoadOptions};
use tch::{nn, Device, Kind, Tensor};

const TOLERANCE: f64 = 1e-4;
const SCRIPT: &str = "tests/parity/make_fixtures.py";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `<target>` from the test executable's path (`<target>/debug/deps/parity-*`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// FNV-1a hash of the fixture script: the stamp that decides regeneration.
fn script_hash() -> String {
    let bytes = std::fs::read(repo_root().join(SCRIPT)).expect("read the fixture script");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The fixture folder, generated once per script version; None (test skipped) when
/// the repository has no `.venv/bin/python`.
fn fixtures() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let python = repo_root().join(".venv/bin/python");
        if !python.exists() {
            return None;
        }
        let dir = target_dir().join("parity-fixtures");
        let stamp = script_hash();
        if std::fs::read_to_string(dir.join("stamp")).ok().as_deref() == Some(stamp.as_str()) {
            return Some(dir);
        }
        let tmp = target_dir().join(format!("parity-fixtures.tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let status = std::process::Command::new(&python)
            .arg(repo_root().join(SCRIPT))
            .arg(&tmp)
            .arg("--stamp")
            .arg(&stamp)
            .status()
            .expect("run the fixture script");
        assert!(status.success(), "fixture script failed: {status}");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).expect("move fixtures into place");
        Some(dir)
    })
    .as_deref()
}

fn load(path: &Path) -> HashMap<String, Tensor> {
    Tensor::loadz_multi(path)
        .unwrap_or_else(|e| panic!("load {}: {e}", path.display()))
        .into_iter()
        .collect()
}

fn get<'a>(map: &'a HashMap<String, Tensor>, key: &str) -> &'a Tensor {
    map.get(key)
        .unwrap_or_else(|| panic!("fixture lacks '{key}'"))
}

fn assert_close(what: &str, ours: &Tensor, reference: &Tensor) {
    assert_eq!(ours.size(), reference.size(), "{what}: shapes differ");
    if reference.numel() == 0 {
        println!("{what:<28} empty on both sides");
        return;
    }
    let diff = (ours.to_kind(Kind::Double) - reference.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[]);
    let scale = reference
        .abs()
        .max()
        .to_kind(Kind::Double)
        .double_value(&[]);
    println!("{what:<28} max|diff| {diff:.2e}  (max|ref| {scale:.2e})");
    assert!(
        diff <= TOLERANCE,
        "{what}: max abs difference {diff:e} > {TOLERANCE:e}"
    );
}

/// Builds the model of `config` and loads the official-format (OrderedDict) checkpoint
/// `file` into it through BrainSAM's own torch.save reader, strictly (only LoRA tensors,
/// absent from official checkpoints, may be missing).
fn model_with_weights(config: &SamConfig, file: &Path) -> (nn::VarStore, Sam) {
    let vs = nn::VarStore::new(Device::Cpu);
    let sam = Sam::new(&vs.root(), config).expect("build model");
    let weights = read_state_dict(file).expect("read official checkpoint");
    load_into_var_store(
        &vs,
        &weights,
        &LoadOptions::strict().allowing_missing(["*.lora_*"]),
    )
    .expect("all tensors loaded");
    (vs, sam)
}

const CASES: [&str; 7] = [
    "none",
    "one_point",
    "three_points",
    "box",
    "box_points",
    "mask",
    "two_prompts",
];

fn prompts_of(fx: &HashMap<String, Tensor>, case: &str) -> Prompts {
    let opt = |k: &str| fx.get(&format!("{case}.{k}")).map(|t| t.shallow_clone());
    Prompts {
        points: opt("point_coords").map(|coords| PointPrompts {
            coords,
            labels: opt("point_labels").expect("labels with points"),
        }),
        boxes: opt("boxes"),
        mask_input: opt("mask_inputs"),
    }
}

fn check_model(size: i64) {
    let Some(dir) = fixtures() else {
        println!("skipped: .venv/bin/python not found");
        return;
    };
    let weights = if size == 1024 {
        "weights_vit_b_1024.pth"
    } else {
        "weights_vit_b_256.pth"
    };
    let config = SamConfig::vit_b().with_input_size(size);
    let (_vs, sam) = model_with_weights(&config, &dir.join(weights));
    let fx = load(&dir.join(format!("cases_{size}.pt")));
    tch::no_grad(|| {
        let image = get(&fx, "image");
        let preprocessed = sam.preprocess(image).unwrap();
        assert_close("preprocess", &preprocessed, get(&fx, "preprocessed"));
        let embeddings = sam.encode_images(&preprocessed).unwrap();
        assert_close(
            "image embeddings",
            &embeddings,
            get(&fx, "image_embeddings"),
        );
        assert_close("dense pe", &sam.dense_pe(), get(&fx, "dense_pe"));
        let (ih, iw) = (image.size()[1], image.size()[2]);
        let original = Vec::<i64>::try_from(get(&fx, "original_size")).unwrap();
        for case in CASES {
            let prompts = prompts_of(&fx, case);
            let (sparse, dense) = sam.encode_prompts(&prompts).unwrap();
            assert_close(
                &format!("{case}: sparse"),
                &sparse,
                get(&fx, &format!("{case}.sparse")),
            );
            assert_close(
                &format!("{case}: dense"),
                &dense,
                get(&fx, &format!("{case}.dense")),
            );
            let out = sam.decode(&embeddings, &prompts).unwrap();
            assert_close(
                &format!("{case}: low-res"),
                &out.low_res_logits,
                get(&fx, &format!("{case}.low_res")),
            );
            assert_close(
                &format!("{case}: iou"),
                &out.iou,
                get(&fx, &format!("{case}.iou")),
            );
            let masks = sam
                .postprocess_masks(&out.low_res_logits, (ih, iw), (original[0], original[1]))
                .unwrap();
            assert_close(
                &format!("{case}: masks"),
                &masks,
                get(&fx, &format!("{case}.masks")),
            );
        }
    });
}

#[test]
fn vit_b_256_matches_reference() {
    check_model(256);
}

#[test]
fn vit_b_1024_matches_reference() {
    check_model(1024);
}

#[test]
fn lora_encoder_matches_independent_python_lora() {
    let Some(dir) = fixtures() else {
        println!("skipped: .venv/bin/python not found");
        return;
    };
    let fx = load(&dir.join("lora_256.pt"));
    let rank = get(&fx, "rank").int64_value(&[]);
    let alpha = get(&fx, "alpha").double_value(&[]);
    let config = SamConfig::vit_b()
        .with_input_size(256)
        .with_lora(Some(LoraConfig {
            rank,
            alpha: Some(alpha),
        }));
    let (vs, sam) = model_with_weights(&config, &dir.join("weights_vit_b_256.pth"));
    let lora: Vec<(String, Tensor)> = fx
        .iter()
        .filter(|(n, _)| n.contains(".lora_"))
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    assert_eq!(lora.len(), 48, "4 LoRA tensors per block");
    let report =
        load_into_var_store(&vs, &lora, &LoadOptions::strict().allowing_missing(["*"])).unwrap();
    assert_eq!(report.loaded.len(), 48);
    tch::no_grad(|| {
        let embeddings = sam.encode_images(get(&fx, "input")).unwrap();
        assert_close(
            "LoRA image embeddings",
            &embeddings,
            get(&fx, "image_embeddings"),
        );
    });
}

#[test]
fn adapt_state_dict_resizes_like_samed_and_drops_class_tensors() {
    let Some(dir) = fixtures() else {
        println!("skipped: .venv/bin/python not found");
        return;
    };
    let full = Tensor::loadz_multi(dir.join("weights_vit_b_1024.pt")).unwrap();
    let reference = load(&dir.join("weights_vit_b_256.pt"));

    // Same class count: everything kept, pos_embed and the 8 global rel_pos resized.
    let config = SamConfig::vit_b().with_input_size(256);
    let report = adapt_state_dict(&config, full).unwrap();
    assert_eq!(report.resized.len(), 1 + 8, "{:?}", report.resized);
    assert!(report.dropped.is_empty() && report.unexpected.is_empty() && report.missing.is_empty());
    for (name, tensor) in &report.tensors {
        let want = get(&reference, name);
        assert_eq!(tensor.size(), want.size(), "{name}");
        let diff = (tensor - want).abs().max().double_value(&[]);
        assert!(diff <= 1e-6, "{name}: {diff:e}");
    }

    // 12 classes + LoRA: class-dependent tensors dropped, LoRA missing.
    let full = Tensor::loadz_multi(dir.join("weights_vit_b_1024.pt")).unwrap();
    let config = SamConfig::vit_b()
        .with_input_size(512)
        .with_num_classes(12)
        .with_lora_rank(16);
    let report = adapt_state_dict(&config, full).unwrap();
    let dropped: Vec<&str> = report.dropped.iter().map(|d| d.name.as_str()).collect();
    // mask_tokens (1) + 4 hypernetwork MLPs x 3 layers x 2 + IoU head 3 x 2
    assert_eq!(dropped.len(), 1 + 24 + 6, "{dropped:?}");
    assert!(dropped.contains(&"mask_decoder.mask_tokens.weight"));
    let lora_missing = report
        .missing
        .iter()
        .filter(|n| n.contains(".lora_"))
        .count();
    assert_eq!(lora_missing, 48);
    // missing = LoRA + the fresh class tensors of 13 tokens
    assert_eq!(report.missing.len(), 48 + 1 + 13 * 6 + 6);
    let vs = nn::VarStore::new(Device::Cpu);
    let _sam = Sam::new(&vs.root(), &config).unwrap();
    let options = LoadOptions::strict().allowing_missing(report.missing.iter().cloned());
    let loaded = load_into_var_store(&vs, &report.tensors, &options).unwrap();
    let mut expected_missing = report.missing.clone();
    expected_missing.sort();
    assert_eq!(loaded.missing, expected_missing);
}

/// Describe once: the names and shapes recorded from BrainSAM's module tree (no hand-kept
/// list) equal the reference `Sam(...).state_dict()` built from the same numbers, for the
/// published ViT-B, ViT-B at BrainSAM's input size and class count, and the small config.
#[test]
fn recorded_shapes_equal_the_reference_state_dict() {
    let python = repo_root().join(".venv/bin/python");
    if !python.exists() {
        println!("skipped: .venv/bin/python not found");
        return;
    }
    let configs = [
        SamConfig::vit_b(),
        SamConfig::vit_b().with_input_size(512).with_num_classes(12),
        SamConfig::small(),
        SamConfig::small().with_num_classes(12),
    ];
    let request = format!(
        "[{}]",
        configs
            .iter()
            .map(SamConfig::to_json)
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut child = std::process::Command::new(&python)
        .arg(repo_root().join("tests/parity/state_dict_shapes.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run state_dict_shapes.py");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), request.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "state_dict_shapes.py failed");
    let reference: Vec<HashMap<String, Vec<i64>>> =
        serde_json::from_slice(&output.stdout).expect("JSON from state_dict_shapes.py");
    assert_eq!(reference.len(), configs.len());
    for (config, reference) in configs.iter().zip(reference) {
        let recorded = config.parameter_shapes().unwrap();
        let count = recorded.len();
        let recorded: HashMap<String, Vec<i64>> = recorded.into_iter().collect();
        assert_eq!(
            recorded.len(),
            count,
            "{}: a name recorded twice",
            config.name
        );
        for (name, shape) in &reference {
            assert_eq!(
                recorded.get(name),
                Some(shape),
                "{} ({} input, {} tokens): {name}",
                config.name,
                config.input_size,
                config.mask_decoder.num_mask_tokens
            );
        }
        let extra: Vec<&String> = recorded
            .keys()
            .filter(|name| !reference.contains_key(*name))
            .collect();
        assert!(
            extra.is_empty(),
            "{}: not in the reference: {extra:?}",
            config.name
        );
        println!(
            "{:<6} input {:>4}, {:>2} tokens: {} tensors equal the reference",
            config.name,
            config.input_size,
            config.mask_decoder.num_mask_tokens,
            reference.len()
        );
    }
}
