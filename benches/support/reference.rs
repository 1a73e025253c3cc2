//! Running the PyTorch reference scripts (`benches/*_reference.py`, PyPI
//! segment-anything) in the same run as our code, so ratios compare like with like on
//! the same machine.
//!
//! The repository root is `$BRAINSAM_ROOT` when set (a copy of the tree on another
//! machine), else the source folder this benchmark was built from; the interpreter is
//! `$BRAINSAM_BENCH_PYTHON`, else the root's `.venv/bin/python`, else `python3`.

#![allow(dead_code)] // each benchmark uses part of this module

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The repository root holding `benches/`.
pub fn root() -> PathBuf {
    std::env::var_os("BRAINSAM_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("BRAINSAM_BENCH_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = root().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// One timing job of `encoder_reference.py`: model config (BrainSAM JSON), what to time
/// ("encoder" or "decoder": prompt encoder + mask decoder for one point), iterations,
/// device, bf16.
pub fn job(
    config_json: &str,
    what: &str,
    iters: usize,
    cuda: bool,
    bf16: bool,
) -> serde_json::Value {
    let config: serde_json::Value = serde_json::from_str(config_json).expect("config JSON");
    serde_json::json!({
        "config": config, "what": what, "iters": iters,
        "device": if cuda { "cuda" } else { "cpu" }, "bf16": bf16,
    })
}

/// Runs `benches/<script>` once with `jobs` (one JSON object per line on its stdin) and
/// returns its output lines, one per job; None where the reference is unavailable,
/// failed, or `BRAINSAM_BENCH_NO_REFERENCE` is set.
pub fn run(script: &str, jobs: &[serde_json::Value]) -> Option<Vec<String>> {
    if std::env::var_os("BRAINSAM_BENCH_NO_REFERENCE").is_some() || jobs.is_empty() {
        return None;
    }
    let python = python();
    let mut child = match Command::new(&python)
        .arg(root().join("benches").join(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => {
            eprintln!("no reference: cannot run {}: {error}", python.display());
            return None;
        }
    };
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        for job in jobs {
            writeln!(stdin, "{job}").expect("write job");
        }
    }
    let output = child.wait_with_output().expect("reference output");
    let lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    (lines.len() == jobs.len()).then_some(lines)
}

/// Milliseconds per call of each `encoder_reference.py` job; NaN where unavailable.
pub fn times(jobs: &[serde_json::Value]) -> Vec<f64> {
    match run("encoder_reference.py", jobs) {
        Some(lines) => lines
            .iter()
            .map(|l| l.trim().parse().unwrap_or(f64::NAN))
            .collect(),
        None => vec![f64::NAN; jobs.len()],
    }
}
