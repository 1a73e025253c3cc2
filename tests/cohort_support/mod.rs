//! Helpers shared by the cohort tests (local runs and SLURM).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use brainsam::cohort::journal::{Journal, STATE_DIR};
use brainsam::volume::Volume;

use crate::common::synthetic_head;

/// The `brainsam` binary.
pub fn brainsam() -> Command {
    Command::new(crate::common::brainsam_cli())
}

/// stdout and stderr of a finished command.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs brainsam and returns its output, panicking with it when it fails.
pub fn ok(args: &[&str]) -> String {
    let output = brainsam().args(args).output().expect("run brainsam");
    assert!(
        output.status.success(),
        "brainsam {args:?} failed:\n{}",
        text(&output)
    );
    text(&output)
}

/// Runs brainsam expecting failure; returns its output.
pub fn fails(args: &[&str]) -> String {
    let output = brainsam().args(args).output().expect("run brainsam");
    assert!(
        !output.status.success(),
        "brainsam {args:?} should fail:\n{}",
        text(&output)
    );
    text(&output)
}

/// Path as &str.
pub fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Fast segmentation settings on the tiny random model (accuracy does not matter here:
/// the checks are about which outputs exist, once, and that they are identical).
pub fn fast_args(model: &Path) -> Vec<String> {
    [
        "--model",
        s(model),
        "--device",
        "cpu",
        "--no-mirror",
        "--no-shift",
        "--threads",
        "1",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

/// `n` distinct small heads (the synthetic head with a different contrast and texture
/// each), written as `<dir>/scan<i>.nii.gz`.
pub fn write_scans(dir: &Path, n: usize) -> Vec<PathBuf> {
    let base = synthetic_head();
    (0..n)
        .map(|i| {
            let mut volume = base.clone();
            for (index, value) in volume.data_mut().iter_mut().enumerate() {
                *value = *value * (1.0 + 0.07 * i as f32) + ((index * (i + 3)) % 7) as f32;
            }
            let path = dir.join(format!("scan{i}.nii.gz"));
            volume.write(&path).expect("write scan");
            path
        })
        .collect()
}

/// A scan list naming `paths`.
pub fn write_list(path: &Path, scans: &[PathBuf]) {
    let text: String = scans.iter().map(|p| format!("{}\n", p.display())).collect();
    std::fs::write(path, text).expect("write list");
}

/// Checks that every scan in `ids` has exactly one done record in the journal of `out`,
/// that its outputs verify (present, same SHA-256), that the journal has no damaged
/// line, and that nothing is left in the staging area or as a temporary file.
pub fn assert_each_done_once(out: &Path, ids: &[String]) {
    let journal = Journal::open(out).expect("open journal");
    assert_eq!(journal.skipped_lines, 0, "damaged journal lines");
    for id in ids {
        assert_eq!(
            journal.done_count(id),
            1,
            "{id} done {} times",
            journal.done_count(id)
        );
        let fingerprint = &journal.latest(id).expect("record").fingerprint;
        assert!(
            journal.verified_done(out, id, fingerprint),
            "{id}: outputs do not verify"
        );
    }
    let staging: Vec<_> = std::fs::read_dir(out.join(STATE_DIR).join("staging"))
        .expect("staging folder")
        .collect();
    assert!(staging.is_empty(), "staging leftovers: {staging:?}");
    let mut stack = vec![out.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name == STATE_DIR {
                continue;
            }
            assert!(
                !name.starts_with('.'),
                "temporary file left: {}",
                path.display()
            );
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
}

/// The label map a cohort wrote for scan `id` (scan-list layout).
pub fn labels_of(out: &Path, id: &str) -> Vec<u8> {
    let path = out
        .join(id)
        .join(format!("{id}_desc-subcortical_dseg.nii.gz"));
    Volume::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .data()
        .iter()
        .map(|&v| v as u8)
        .collect()
}

/// Done records in the journal of `out` (all scans).
pub fn done_records(out: &Path) -> usize {
    std::fs::read_to_string(out.join(STATE_DIR).join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"status\":\"done\""))
        .count()
}

/// A tmpfs mounted for one test, unmounted when dropped; None (and a "skipped" line)
/// when this process may not mount (not root, no CAP_SYS_ADMIN).
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, size: &str, test: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                s(path),
            ])
            .output();
        match status {
            Ok(output) if output.status.success() => Some(Tmpfs {
                path: path.to_path_buf(),
            }),
            Ok(output) => {
                println!(
                    "skipped: cannot mount a tmpfs ({test}): {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                None
            }
            Err(error) => {
                println!("skipped: cannot run mount ({test}): {error}");
                None
            }
        }
    }

    pub fn remount(&self, options: &str) {
        crate::common::run(Command::new("mount").args([
            "-o",
            &format!("remount,{options}"),
            s(&self.path),
        ]));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}
