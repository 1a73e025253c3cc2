//! Weights I/O: torch.save zip reader, safetensors, strict loading, adapters, and
//! corrupt-file handling. Reference files come from tests/weights/make_checkpoints.py
//! run with the repository's .venv python.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use brainsam::weights::{
    atomic_write, detect_format, load_adapter, load_into_var_store, read_safetensors,
    read_state_dict, save_adapter, save_safetensors, sha256_file, AdapterMetadata, LoadOptions,
    WeightFormat,
};
use brainsam::Error;
use tch::{nn, Device, Kind, Tensor};

// ---------------------------------------------------------------- fixtures

fn python() -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if python.exists() {
        Some(python)
    } else {
        eprintln!(
            "skipped: {} not found (run scripts/setup)",
            python.display()
        );
        None
    }
}

fn run_script(folder: &Path, mode: &str) {
    let python = python().expect("checked by caller");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/weights/make_checkpoints.py");
    let output = Command::new(python)
        .arg(script)
        .arg(folder)
        .arg(mode)
        .output()
        .expect("run make_checkpoints.py");
    assert!(
        output.status.success(),
        "make_checkpoints.py {mode} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The small checkpoints, made once per test run.
fn small_fixtures() -> Option<&'static Path> {
    static FOLDER: OnceLock<tempfile::TempDir> = OnceLock::new();
    python()?;
    let folder = FOLDER.get_or_init(|| {
        let folder = tempfile::tempdir().expect("temp dir");
        run_script(folder.path(), "small");
        folder
    });
    Some(folder.path())
}

type Manifest = Vec<(String, String, Vec<i64>, f64)>;

fn read_manifest(path: &Path) -> Manifest {
    let text = std::fs::read_to_string(path).expect("manifest");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).expect("manifest json");
    rows.iter()
        .map(|row| {
            (
                row[0].as_str().unwrap().to_string(),
                row[1].as_str().unwrap().to_string(),
                row[2]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_i64().unwrap())
                    .collect(),
                row[3].as_f64().unwrap(),
            )
        })
        .collect()
}

fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Float => "float32",
        Kind::Half => "float16",
        Kind::BFloat16 => "bfloat16",
        Kind::Double => "float64",
        Kind::Int64 => "int64",
        Kind::Int => "int32",
        Kind::Int16 => "int16",
        Kind::Int8 => "int8",
        Kind::Uint8 => "uint8",
        Kind::Bool => "bool",
        _ => "other",
    }
}

fn assert_identical(name: &str, actual: &Tensor, expected: &Tensor) {
    assert_eq!(actual.kind(), expected.kind(), "{name}: dtype");
    assert_eq!(actual.size(), expected.size(), "{name}: shape");
    assert!(actual.equal(expected), "{name}: values differ");
}

fn err_text<T: std::fmt::Debug>(result: brainsam::Result<T>) -> String {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(error) => error.to_string(),
    }
}

// ---------------------------------------------------------------- torch.save zip

#[test]
fn official_ordered_dict_matches_plain_dict_read_by_libtorch() {
    let Some(folder) = small_fixtures() else {
        return;
    };
    let ours = read_state_dict(&folder.join("official.pth")).expect("read official.pth");
    let reference =
        Tensor::loadz_multi(folder.join("plain.pt")).expect("libtorch reads plain dict");
    let manifest = read_manifest(&folder.join("official.json"));

    let our_names: Vec<&str> = ours.iter().map(|(n, _)| n.as_str()).collect();
    let manifest_names: Vec<&str> = manifest.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(our_names, manifest_names, "names in file order");
    assert_eq!(ours.len(), reference.len());
    for (name, tensor) in &ours {
        let expected = &reference.iter().find(|(n, _)| n == name).expect(name).1;
        assert_identical(name, tensor, expected);
    }
    for (name, dtype, shape, _) in &manifest {
        let tensor = &ours.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(kind_label(tensor.kind()), dtype, "{name}");
        assert_eq!(&tensor.size(), shape, "{name}");
    }
    // Views keep their layout and share their storage, as torch.load returns them.
    let get = |name: &str| &ours.iter().find(|(n, _)| n == name).unwrap().1;
    assert!(!get("transposed").is_contiguous());
    assert_eq!(get("shared.every_third").stride(), vec![3]);
    assert_eq!(
        get("shared.a").data_ptr() as usize - 2 * 4,
        get("shared.b").data_ptr() as usize - (10 + 1) * 4,
        "shared.a and shared.b view one storage"
    );
}

#[test]
fn wrappers_and_protocol_4_give_the_same_tensors() {
    let Some(folder) = small_fixtures() else {
        return;
    };
    let official = read_state_dict(&folder.join("official.pth")).unwrap();
    for file in [
        "wrapped_model.pth",
        "wrapped_state_dict.pt",
        "protocol4.pth",
    ] {
        let other = read_state_dict(&folder.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(other.len(), official.len(), "{file}");
        for ((name, a), (other_name, b)) in official.iter().zip(&other) {
            assert_eq!(name, other_name, "{file}");
            assert_identical(&format!("{file}:{name}"), b, a);
        }
    }
    assert_eq!(
        detect_format(&folder.join("official.pth")).unwrap(),
        WeightFormat::TorchZip
    );
}

#[test]
fn foreign_torch_files_are_rejected_with_a_reason() {
    let Some(folder) = small_fixtures() else {
        return;
    };
    let cases = [
        ("legacy.pth", "legacy"),
        ("list.pt", "list, not a state dict"),
        ("mixed.pt", "entry 'epoch' is not a tensor (found int)"),
        ("scripted.pt", "TorchScript archive"),
        ("uint16.pt", "unsupported dtype torch.uint16"),
        ("complex.pt", "ComplexFloatStorage"),
    ];
    for (file, expected) in cases {
        let message = err_text(read_state_dict(&folder.join(file)));
        assert!(message.contains(expected), "{file}: {message}");
        assert!(
            message.contains(file),
            "{file}: message names the file: {message}"
        );
    }
}

// ---------------------------------------------------------------- corrupt files

#[test]
fn truncated_archives_are_errors() {
    let Some(folder) = small_fixtures() else {
        return;
    };
    let bytes = std::fs::read(folder.join("official.pth")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("cut.pth");
    for length in [
        0,
        1,
        4,
        30,
        100,
        bytes.len() / 3,
        bytes.len() / 2,
        bytes.len() - 30,
        bytes.len() - 1,
    ] {
        std::fs::write(&path, &bytes[..length]).unwrap();
        let message = err_text(read_state_dict(&path));
        assert!(message.contains("cut.pth"), "length {length}: {message}");
        if length == 0 {
            assert!(message.contains("empty"), "{message}");
        }
    }
}

#[test]
fn flipped_bytes_in_pickle_or_storage_are_errors() {
    let Some(folder) = small_fixtures() else {
        return;
    };
    let bytes = std::fs::read(folder.join("official.pth")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("flipped.pth");
    // The pickle follows the first local header (30 bytes + name + extra field).
    let find = |needle: &[u8]| {
        bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
    };
    let pickle_start = find(b"\x80\x02c");
    let targets = [
        pickle_start,
        pickle_start + 1,
        pickle_start + 40,
        pickle_start + 300,
    ];
    for position in targets {
        let mut corrupt = bytes.clone();
        corrupt[position] ^= 0x5a;
        std::fs::write(&path, &corrupt).unwrap();
        let message = err_text(read_state_dict(&path));
        assert!(message.contains("flipped.pth"), "{message}");
    }
    // A storage byte: the record's CRC-32 no longer matches.
    let reference = Tensor::loadz_multi(folder.join("plain.pt")).unwrap();
    let f32_tensor = &reference.iter().find(|(n, _)| n == "f32").unwrap().1;
    let first: Vec<f32> = Vec::try_from(f32_tensor.flatten(0, -1)).unwrap();
    let storage_start = find(&first[0].to_le_bytes());
    let mut corrupt = bytes.clone();
    corrupt[storage_start + 1] ^= 0x01;
    std::fs::write(&path, &corrupt).unwrap();
    let message = err_text(read_state_dict(&path));
    assert!(message.contains("tensor f32"), "{message}");

    // Any single flipped byte must give Ok or Err, never a crash.
    for position in (0..bytes.len()).step_by(7) {
        let mut corrupt = bytes.clone();
        corrupt[position] ^= 0xff;
        std::fs::write(&path, &corrupt).unwrap();
        let _ = read_state_dict(&path);
    }
}

/// One tensor entry of a hand-made pickle.
struct TensorRecord<'a> {
    storage_type: &'a str,
    key: &'a str,
    numel: i64,
    offset: i64,
    size: &'a [i64],
    stride: &'a [i64],
}

/// Six float32 values in storage "0", viewed as a 2x2 transposed matrix at offset 1.
const SMALL: TensorRecord<'static> = TensorRecord {
    storage_type: "FloatStorage",
    key: "0",
    numel: 6,
    offset: 1,
    size: &[2, 2],
    stride: &[1, 2],
};

/// Builds a pickle by hand (protocol 2 opcodes).
#[derive(Default)]
struct Pickle(Vec<u8>);

impl Pickle {
    fn op(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn text(mut self, text: &str) -> Self {
        self.0.push(b'X');
        self.0.extend_from_slice(&(text.len() as u32).to_le_bytes());
        self.0.extend_from_slice(text.as_bytes());
        self
    }
    fn global(self, module: &str, name: &str) -> Self {
        self.op(format!("c{module}\n{name}\n").as_bytes())
    }
    fn int(self, value: i64) -> Self {
        let mut bytes = vec![0x8a, 8];
        bytes.extend_from_slice(&value.to_le_bytes());
        self.op(&bytes)
    }
    /// `name: _rebuild_tensor_v2(storage(key, numel), offset, size, stride)` inside SETITEMS.
    fn tensor(self, name: &str, record: &TensorRecord) -> Self {
        let TensorRecord {
            storage_type,
            key,
            numel,
            offset,
            size,
            stride,
        } = record;
        let mut p = self
            .text(name)
            .global("torch._utils", "_rebuild_tensor_v2")
            .op(b"((")
            .text("storage")
            .global("torch", storage_type)
            .text(key)
            .text("cpu")
            .int(*numel)
            .op(b"tQ")
            .int(*offset)
            .op(b"(");
        for &s in *size {
            p = p.int(s);
        }
        p = p.op(b"t(");
        for &s in *stride {
            p = p.int(s);
        }
        p.op(b"t\x89")
            .global("collections", "OrderedDict")
            .op(b")Rt")
            .op(b"R")
    }
    fn state_dict(entries: impl FnOnce(Self) -> Self) -> Vec<u8> {
        let p = Pickle::default()
            .op(b"\x80\x02")
            .global("collections", "OrderedDict")
            .op(b")R(");
        entries(p).op(b"u.").0
    }
}

fn write_archive(path: &Path, pickle: &[u8], storages: &[(&str, &[u8])]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", options).unwrap();
    zip.write_all(pickle).unwrap();
    zip.start_file("archive/byteorder", options).unwrap();
    zip.write_all(b"little").unwrap();
    for (key, data) in storages {
        zip.start_file(format!("archive/data/{key}"), options)
            .unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn hand_made_archives_exercise_every_check() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("crafted.pt");
    let floats: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();

    // A valid one first, so that the failures below are due to the one change each.
    let good = Pickle::state_dict(|p| p.tensor("w", &SMALL));
    write_archive(&path, &good, &[("0", &floats)]);
    let tensors = read_state_dict(&path).expect("valid hand-made archive");
    let values: Vec<f32> = Vec::try_from(tensors[0].1.flatten(0, -1)).unwrap();
    assert_eq!(values, vec![1.0, 3.0, 2.0, 4.0]);

    // The _rebuild_tensor_v3 form: an untyped (byte) storage plus an explicit dtype.
    let v3 = Pickle::state_dict(|p| {
        p.text("v3")
            .global("torch._utils", "_rebuild_tensor_v3")
            .op(b"((")
            .text("storage")
            .global("torch.storage", "UntypedStorage")
            .text("0")
            .text("cpu")
            .int(24)
            .op(b"tQ")
            .int(1)
            .op(b"(")
            .int(2)
            .op(b"t(")
            .int(2)
            .op(b"t\x89")
            .global("collections", "OrderedDict")
            .op(b")R")
            .global("torch", "float32")
            .op(b"tR")
    });
    write_archive(&path, &v3, &[("0", &floats)]);
    let tensors = read_state_dict(&path).expect("v3 archive");
    let values: Vec<f32> = Vec::try_from(&tensors[0].1).unwrap();
    assert_eq!(values, vec![1.0, 3.0]);

    type Case<'a> = (&'a str, Vec<u8>, Vec<(&'a str, &'a [u8])>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "unknown opcode",
            good[..good.len() - 2]
                .iter()
                .copied()
                .chain(*b"\xffu.")
                .collect(),
            vec![("0", &floats)],
            "unknown or unsupported opcode 0xff",
        ),
        (
            "bad memo index",
            Pickle::state_dict(|p| p.text("w").op(b"h\x07")),
            vec![],
            "memo index 7 was never stored",
        ),
        (
            "setitems on a list",
            Pickle::default().op(b"\x80\x02](K\x01K\x02u.").0,
            vec![],
            "not a dict",
        ),
        (
            "reduce with int args",
            Pickle::default()
                .op(b"\x80\x02")
                .global("collections", "OrderedDict")
                .op(b"K\x01R.")
                .0,
            vec![],
            "instead of an argument tuple",
        ),
        (
            "no STOP",
            good[..good.len() - 1].to_vec(),
            vec![("0", &floats)],
            "STOP",
        ),
        (
            "tensor beyond storage",
            Pickle::state_dict(|p| p.tensor("w", &TensorRecord { offset: 3, ..SMALL })),
            vec![("0", &floats)],
            "tensor w (size [2, 2], stride [1, 2], offset 3) needs 28 bytes",
        ),
        (
            "storage record short",
            Pickle::state_dict(|p| {
                p.tensor(
                    "w",
                    &TensorRecord {
                        numel: 8,
                        offset: 0,
                        size: &[8],
                        stride: &[1],
                        ..SMALL
                    },
                )
            }),
            vec![("0", &floats)],
            "holds 24 bytes but 8 float32 elements need 32",
        ),
        (
            "missing storage record",
            good.clone(),
            vec![],
            "storage record archive/data/0 is missing",
        ),
        (
            "huge numel",
            Pickle::state_dict(|p| {
                p.tensor(
                    "w",
                    &TensorRecord {
                        numel: 1 << 60,
                        offset: 0,
                        size: &[1 << 58, 4],
                        stride: &[4, 1],
                        ..SMALL
                    },
                )
            }),
            vec![("0", &floats)],
            "too large for any tensor",
        ),
        (
            "negative stride",
            Pickle::state_dict(|p| {
                p.tensor(
                    "w",
                    &TensorRecord {
                        offset: 0,
                        size: &[2],
                        stride: &[-1],
                        ..SMALL
                    },
                )
            }),
            vec![("0", &floats)],
            "negative",
        ),
        (
            "unsupported dtype",
            Pickle::state_dict(|p| {
                p.tensor(
                    "w",
                    &TensorRecord {
                        storage_type: "ComplexDoubleStorage",
                        offset: 0,
                        size: &[1],
                        stride: &[1],
                        ..SMALL
                    },
                )
            }),
            vec![("0", &floats)],
            "unsupported storage type torch.ComplexDoubleStorage",
        ),
        (
            "storage as int",
            Pickle::state_dict(|p| {
                p.text("w")
                    .global("torch._utils", "_rebuild_tensor_v2")
                    .op(b"(K\x01K\x00)))\x89}tR")
            }),
            vec![],
            "instead of a storage",
        ),
        (
            "bad string length",
            Pickle::default().op(b"\x80\x02X\xff\xff\xff\x7f").0,
            vec![],
            "exceeds",
        ),
        (
            "stack underflow",
            Pickle::default().op(b"\x80\x02R.").0,
            vec![],
            "empty stack",
        ),
        (
            "path in storage key",
            Pickle::state_dict(|p| {
                p.tensor(
                    "w",
                    &TensorRecord {
                        key: "../0",
                        offset: 0,
                        size: &[1],
                        stride: &[1],
                        ..SMALL
                    },
                )
            }),
            vec![],
            "not a plain record name",
        ),
    ];
    for (label, pickle, storages, expected) in cases {
        write_archive(&path, &pickle, &storages);
        let message = err_text(read_state_dict(&path));
        assert!(message.contains(expected), "{label}: {message}");
        assert!(message.contains("crafted.pt"), "{label}: {message}");
    }

    // Deep nesting is refused instead of overflowing the stack.
    let mut deep = b"\x80\x02".to_vec();
    deep.push(b']');
    deep.extend(std::iter::repeat_n(0x85u8, 100_000));
    deep.push(b'.');
    write_archive(&path, &deep, &[]);
    assert!(err_text(read_state_dict(&path)).contains("nested deeper"));
}

#[test]
fn non_weight_files_are_rejected_with_a_reason() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("input.bin");
    let mut nifti = vec![0u8; 400];
    nifti[..4].copy_from_slice(&348i32.to_le_bytes());
    nifti[344..348].copy_from_slice(b"n+1\0");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "empty"),
        (
            b"hello, these are not weights\n".to_vec(),
            "unrecognised content starting with \"hello, these are",
        ),
        (nifti, "NIfTI"),
        (vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3], "gzip"),
        (b"\x80\x02}q\x00.".to_vec(), "bare pickle"),
    ];
    for (bytes, expected) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let message = err_text(read_state_dict(&path));
        assert!(
            message.contains(expected) && message.contains("input.bin"),
            "{message}"
        );
    }
    let missing = err_text(read_state_dict(&scratch.path().join("absent.pth")));
    assert!(
        missing.contains("absent.pth") && missing.contains("No such file"),
        "{missing}"
    );

    // A real NIfTI volume from the shared data, when available.
    if let Ok(data) = std::env::var("BRAINSAM_DATA") {
        let volume = find_file(Path::new(&data), &[".nii.gz", ".nii"]);
        if let Some(volume) = volume {
            let message = err_text(read_state_dict(&volume));
            assert!(
                message.contains("NIfTI") || message.contains("gzip"),
                "{message}"
            );
        }
    } else {
        eprintln!("skipped real NIfTI case: BRAINSAM_DATA not set");
    }
}

fn find_file(folder: &Path, suffixes: &[&str]) -> Option<PathBuf> {
    let mut pending = vec![folder.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if suffixes.iter().any(|s| path.to_string_lossy().ends_with(s)) {
                return Some(path);
            }
        }
    }
    None
}

// ---------------------------------------------------------------- safetensors

fn sample_tensors() -> Vec<(String, Tensor)> {
    let base = Tensor::arange(24, (Kind::Float, Device::Cpu)).view([4, 6]);
    vec![
        ("b.f32_transposed".into(), base.tr()),
        (
            "a.f16".into(),
            Tensor::randn([3, 5], (Kind::Half, Device::Cpu)),
        ),
        (
            "c.bf16".into(),
            Tensor::randn([7], (Kind::BFloat16, Device::Cpu)),
        ),
        (
            "d.i64".into(),
            Tensor::arange(10, (Kind::Int64, Device::Cpu)) * 1_000_000_007,
        ),
        (
            "e.bool".into(),
            Tensor::randn([9], (Kind::Float, Device::Cpu)).gt(0.0),
        ),
        ("f.u8".into(), Tensor::arange(5, (Kind::Uint8, Device::Cpu))),
        (
            "g.empty".into(),
            Tensor::zeros([0, 3], (Kind::Float, Device::Cpu)),
        ),
        (
            "h.scalar".into(),
            Tensor::scalar_tensor(2.5, (Kind::Double, Device::Cpu)),
        ),
    ]
}

#[test]
fn safetensors_round_trip_with_metadata() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("weights.safetensors");
    let tensors = sample_tensors();
    let metadata = BTreeMap::from([
        ("purpose".to_string(), "test".to_string()),
        ("epoch".into(), "3".into()),
    ]);
    save_safetensors(&path, &tensors, &metadata).unwrap();

    let (read, read_metadata) = read_safetensors(&path).unwrap();
    assert_eq!(read_metadata, metadata);
    let names: Vec<&str> = read.iter().map(|(n, _)| n.as_str()).collect();
    let expected: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, expected, "data order is the save order");
    for ((name, a), (_, b)) in tensors.iter().zip(&read) {
        assert_identical(name, b, a);
    }
    // The same via the generic entry point, and via the reference reader in tch.
    assert_eq!(read_state_dict(&path).unwrap().len(), tensors.len());
    for (name, tensor) in Tensor::read_safetensors(&path).unwrap() {
        let original = &tensors.iter().find(|(n, _)| *n == name).unwrap().1;
        assert_identical(&name, &tensor, original);
    }
    // Duplicate names are refused and leave no file behind.
    let twice = vec![tensors[0].clone_pair(), tensors[0].clone_pair()];
    let other = scratch.path().join("twice.safetensors");
    assert!(err_text(save_safetensors(&other, &twice, &BTreeMap::new())).contains("twice"));
    assert!(!other.exists());
}

trait ClonePair {
    fn clone_pair(&self) -> (String, Tensor);
}
impl ClonePair for (String, Tensor) {
    fn clone_pair(&self) -> (String, Tensor) {
        (self.0.clone(), self.1.shallow_clone())
    }
}

#[test]
fn corrupt_safetensors_are_errors() {
    let scratch = tempfile::tempdir().unwrap();
    let good_path = scratch.path().join("good.safetensors");
    save_safetensors(&good_path, &sample_tensors(), &BTreeMap::new()).unwrap();
    let good = std::fs::read(&good_path).unwrap();
    let header_length = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let path = scratch.path().join("bad.safetensors");

    let with_header = |header: &str, data: &[u8]| {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        bytes
    };
    let mut huge_length = good.clone();
    huge_length[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("huge header length", huge_length, "header length"),
        ("truncated data", good[..good.len() - 5].to_vec(), "outside"),
        (
            "truncated header",
            good[..8 + header_length / 2].to_vec(),
            "header length",
        ),
        (
            "not json",
            with_header("{not json at all}", &[]),
            "not valid JSON",
        ),
        (
            "not an object",
            with_header("[1, 2]", &[]),
            "unrecognised content",
        ),
        (
            "bad dtype",
            with_header(
                r#"{"x":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            "unsupported dtype C64",
        ),
        (
            "wrong byte count",
            with_header(
                r#"{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            "needs 12 bytes but its data_offsets span 8",
        ),
        (
            "overlap",
            with_header(
                r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                &[0; 8],
            ),
            "overlap",
        ),
        (
            "bad shape",
            with_header(
                r#"{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#,
                &[0; 4],
            ),
            "shape",
        ),
        (
            "bad metadata",
            with_header(r#"{"__metadata__":{"a":1}}"#, &[]),
            "metadata value of 'a'",
        ),
        (
            // The JSON still parses without its last padding space, but every tensor's
            // bytes would be read one byte off.
            "header length one short",
            {
                let mut bytes = with_header(
                    r#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}   "#,
                    &1.5f32.to_le_bytes(),
                );
                let short = u64::from_le_bytes(bytes[..8].try_into().unwrap()) - 1;
                bytes[..8].copy_from_slice(&short.to_le_bytes());
                bytes
            },
            "cover bytes 0..4 of the 5-byte data section",
        ),
        (
            "gap between tensors",
            with_header(
                r#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                &[0; 12],
            ),
            "4 unused bytes",
        ),
        (
            // Zero bytes in all, but libtorch would still compute with 2^62.
            "zero in a huge shape",
            with_header(
                r#"{"x":{"dtype":"F32","shape":[0,4611686018427387904,4],"data_offsets":[0,0]}}"#,
                &[],
            ),
            "too large",
        ),
        (
            "NaN weights",
            with_header(
                r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                &[1.0f32.to_le_bytes(), f32::NAN.to_le_bytes()].concat(),
            ),
            "tensor 'w' has 1 NaN or infinite values",
        ),
        (
            "infinite half-precision weights",
            with_header(
                r#"{"w":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}"#,
                &[0x00, 0x7c],
            ),
            "NaN or infinite",
        ),
    ];
    for (label, bytes, expected) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let message = err_text(read_state_dict(&path));
        assert!(
            message.contains(expected) && message.contains("bad.safetensors"),
            "{label}: {message}"
        );
        for trace in ["frame #", "Exception raised from"] {
            assert!(!message.contains(trace), "{label}: {message}");
        }
    }
}

// ---------------------------------------------------------------- atomic write

#[test]
fn atomic_write_replaces_whole_files_or_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("checkpoint.bin");
    std::fs::write(&path, b"old").unwrap();
    let failed = atomic_write(&path, |writer| {
        writer.write_all(b"partial new content").unwrap();
        Err(Error::Cancelled)
    });
    assert!(matches!(failed, Err(Error::Cancelled)));
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    atomic_write(&path, |writer| {
        writer.write_all(b"new").map_err(|e| Error::io("x", e))
    })
    .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
    let leftovers: Vec<_> = std::fs::read_dir(scratch.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left: {leftovers:?}");
}

// ---------------------------------------------------------------- strict loading

fn small_var_store() -> nn::VarStore {
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let _ = root.sub("encoder").zeros("weight", &[2, 3]);
    let _ = root.sub("encoder").zeros("bias", &[2]);
    let _ = root
        .sub("decoder")
        .sub("mask_tokens")
        .zeros("weight", &[13, 4]);
    let _ = root.sub("encoder").sub("lora_q_a").zeros("weight", &[1, 3]);
    vs
}

#[test]
fn strict_loading_reports_every_problem_at_once() {
    let vs = small_var_store();
    let tensors = vec![
        (
            "encoder.weight".to_string(),
            Tensor::ones([2, 3], (Kind::Half, Device::Cpu)),
        ),
        (
            "encoder.bias".to_string(),
            Tensor::ones([5], (Kind::Float, Device::Cpu)),
        ),
        (
            "decoder.mask_tokens.weight".to_string(),
            Tensor::ones([4, 4], (Kind::Float, Device::Cpu)),
        ),
        (
            "extra.running_mean".to_string(),
            Tensor::ones([1], (Kind::Float, Device::Cpu)),
        ),
    ];
    let message = err_text(load_into_var_store(&vs, &tensors, &LoadOptions::strict()));
    for expected in [
        "1 missing from the checkpoint: encoder.lora_q_a.weight",
        "1 unexpected in the checkpoint: extra.running_mean",
        "2 shape mismatches",
        "encoder.bias: checkpoint [5] vs model [2]",
        "decoder.mask_tokens.weight: checkpoint [4, 4] vs model [13, 4]",
    ] {
        assert!(
            message.contains(expected),
            "missing {expected:?} in {message}"
        );
    }
    // Nothing was copied.
    let weight = &vs.variables()["encoder.weight"];
    assert_eq!(weight.sum(Kind::Float).double_value(&[]), 0.0);

    // Allowed differences: LoRA missing, decoder head dropped by the caller, extra ignored.
    let adapted: Vec<(String, Tensor)> = tensors
        .iter()
        .filter(|(n, _)| !n.starts_with("decoder.") && n != "encoder.bias")
        .map(ClonePair::clone_pair)
        .collect();
    let options = LoadOptions::strict()
        .allowing_missing(["*.lora_*", "decoder.mask_tokens", "encoder.bias"])
        .allowing_unexpected(["extra"]);
    let report = load_into_var_store(&vs, &adapted, &options).unwrap();
    assert_eq!(report.loaded, vec!["encoder.weight"]);
    assert_eq!(
        report.missing,
        vec![
            "decoder.mask_tokens.weight",
            "encoder.bias",
            "encoder.lora_q_a.weight"
        ]
    );
    assert_eq!(report.unexpected, vec!["extra.running_mean"]);
    let weight = &vs.variables()["encoder.weight"];
    assert_eq!(
        weight.kind(),
        Kind::Float,
        "dtype converted to the variable's"
    );
    assert_eq!(weight.sum(Kind::Float).double_value(&[]), 6.0);
}

#[test]
fn long_problem_lists_are_truncated() {
    let vs = small_var_store();
    let tensors: Vec<(String, Tensor)> = (0..50)
        .map(|i| {
            (
                format!("stray.{i}"),
                Tensor::zeros([1], (Kind::Float, Device::Cpu)),
            )
        })
        .collect();
    let message = err_text(load_into_var_store(&vs, &tensors, &LoadOptions::strict()));
    assert!(
        message.contains("50 unexpected") && message.contains("... and 30 more"),
        "{message}"
    );
    assert!(message.len() < 2000, "{} characters", message.len());
}

// ---------------------------------------------------------------- adapters

#[test]
fn adapter_round_trip_and_base_check() {
    let scratch = tempfile::tempdir().unwrap();
    let base = scratch.path().join("base.pth");
    std::fs::write(&base, b"pretend base checkpoint").unwrap();
    let sha = sha256_file(&base).unwrap();
    assert_eq!(sha.len(), 64);
    let class_names: Vec<String> = (0..13).map(|i| format!("class{i}")).collect();
    let mut metadata = AdapterMetadata::new("vit_b@512", &sha, 16, 512, class_names);
    metadata.extra.insert("epochs".into(), "200".into());
    let tensors = vec![
        (
            "image_encoder.blocks.0.attn.lora_q_a.weight".to_string(),
            Tensor::randn([16, 768], (Kind::Float, Device::Cpu)),
        ),
        (
            "mask_decoder.mask_tokens.weight".to_string(),
            Tensor::randn([13, 256], (Kind::Float, Device::Cpu)),
        ),
    ];
    let path = scratch.path().join("adapter.safetensors");
    save_adapter(&path, &metadata, &tensors).unwrap();
    let (read_metadata, read_tensors) = load_adapter(&path).unwrap();
    assert_eq!(read_metadata, metadata);
    assert_eq!(read_metadata.num_classes, 13);
    for ((name, a), (read_name, b)) in tensors.iter().zip(&read_tensors) {
        assert_eq!(name, read_name);
        assert_identical(name, b, a);
    }
    read_metadata
        .check_base("vit_b@512", &sha.to_uppercase())
        .unwrap();
    let message = err_text(read_metadata.check_base("vit_l@512", &"0".repeat(64)));
    for expected in ["vit_b@512", "vit_l@512", sha.as_str(), &"0".repeat(64)] {
        assert!(message.contains(expected), "{expected}: {message}");
    }

    // A safetensors file without adapter metadata, and a wrong class count.
    let plain = scratch.path().join("plain.safetensors");
    save_safetensors(&plain, &tensors, &BTreeMap::new()).unwrap();
    assert!(err_text(load_adapter(&plain)).contains("metadata has no 'format' entry"));
    let mut wrong = metadata.clone();
    wrong.num_classes = 12;
    assert!(err_text(save_adapter(&path, &wrong, &tensors))
        .contains("num_classes is 12 but 13 class names"));
}

#[test]
fn sha256_of_a_known_file() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("abc.txt");
    std::fs::write(&path, b"abc").unwrap();
    assert_eq!(
        sha256_file(&path).unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

// ---------------------------------------------------------------- full-size SAM

#[test]
fn reads_a_full_size_sam_vit_b_state_dict() {
    if python().is_none() {
        return;
    }
    let folder = tempfile::tempdir().unwrap();
    let started = Instant::now();
    run_script(folder.path(), "sam");
    eprintln!(
        "python: built and saved SAM vit_b in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let manifest = read_manifest(&folder.path().join("sam_vit_b.json"));

    let started = Instant::now();
    let tensors = read_state_dict(&folder.path().join("sam_vit_b.pth")).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let values: usize = tensors.iter().map(|(_, t)| t.numel()).sum();
    eprintln!(
        "read_state_dict: {} tensors, {values} values in {seconds:.2} s",
        tensors.len()
    );

    assert_eq!(tensors.len(), manifest.len());
    assert!(
        (90_000_000..100_000_000).contains(&values),
        "{values} values"
    );
    for ((name, tensor), (expected_name, dtype, shape, sum)) in tensors.iter().zip(&manifest) {
        assert_eq!(name, expected_name);
        assert_eq!(kind_label(tensor.kind()), dtype, "{name}");
        assert_eq!(&tensor.size(), shape, "{name}");
        let our_sum = tensor
            .to_kind(Kind::Double)
            .sum(Kind::Double)
            .double_value(&[]);
        assert!(
            (our_sum - sum).abs() <= 1e-9 * sum.abs().max(1.0),
            "{name}: sum {our_sum} vs {sum}"
        );
    }
    assert!(tensors
        .iter()
        .any(|(n, _)| n == "image_encoder.blocks.11.attn.rel_pos_h"));
}
