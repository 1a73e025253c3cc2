//! Timing the PyTorch reference (`benches/encoder_reference.py`, PyPI segment-anything)
//! in the same run as our code, so ratios compare like with like on this machine.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// One reference timing job: model config (BrainSAM JSON), what to time ("encoder" or
/// "decoder": prompt encoder + mask decoder for one point), iterations, device, bf16.
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

/// Milliseconds per call of each job, measured by the Python reference in one process;
/// NaN where it is unavailable or `BRAINSAM_BENCH_NO_REFERENCE` is set.
pub fn times(jobs: &[serde_json::Value]) -> Vec<f64> {
    let nan = vec![f64::NAN; jobs.len()];
    if std::env::var_os("BRAINSAM_BENCH_NO_REFERENCE").is_some() || jobs.is_empty() {
        return nan;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    let Ok(mut child) = Command::new(&python)
        .arg(root.join("benches/encoder_reference.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    else {
        eprintln!("no reference: cannot run {}", python.display());
        return nan;
    };
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        for job in jobs {
            writeln!(stdin, "{job}").expect("write job");
        }
    }
    let output = child.wait_with_output().expect("reference output");
    let times: Vec<f64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.trim().parse().unwrap_or(f64::NAN))
        .collect();
    if times.len() == jobs.len() {
        times
    } else {
        nan
    }
}
