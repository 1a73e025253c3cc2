//! Scale-out on SLURM: a job array over the pending scans (a chunk of scans per array
//! task) and a group step that depends on it. Array tasks run `brainsam cohort-worker`
//! on a plan file and share the output folder's journal and scan locks with every other
//! run, so a resubmission after node failures or cancelled tasks only redoes what is
//! missing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::journal::{utc_now, Journal, STATE_DIR};
use super::runner::Settings;
use super::scans::Scan;
use crate::error::{Error, Result};
use crate::weights::atomic_write;

/// sbatch options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlurmOptions {
    /// Scans per array task.
    pub chunk_size: usize,
    /// Array tasks running at once (`--array=0-N%M`).
    pub max_concurrent: Option<usize>,
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time` (e.g. `02:00:00`).
    pub time: Option<String>,
    /// `--gpus-per-task`.
    pub gpus: Option<usize>,
    /// `--cpus-per-task` (also the torch threads of each task).
    pub cpus_per_task: Option<usize>,
    /// `--mem` (e.g. `8G`).
    pub mem: Option<String>,
    /// Further sbatch options passed through as they are (e.g. `--account=abc`).
    pub extra: Vec<String>,
}

/// What an array task or the group step needs: written by [`submit`] as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Output folder.
    pub output: PathBuf,
    /// Every scan of the cohort (the group step tabulates them all).
    pub scans: Vec<Scan>,
    /// Indices into `scans` of the scans pending at submission, in array order.
    pub pending: Vec<usize>,
    /// Scans per array task.
    pub chunk_size: usize,
    /// Segmentation settings.
    pub settings: Settings,
}

impl Plan {
    /// Reads a plan file.
    pub fn read(path: &Path) -> Result<Plan> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::invalid_file(path, format!("not a BrainSAM SLURM plan: {e}")))
    }

    /// Number of array tasks.
    pub fn tasks(&self) -> usize {
        self.pending.len().div_ceil(self.chunk_size.max(1))
    }

    /// The scans of array task `task`.
    pub fn chunk(&self, task: usize) -> Result<Vec<Scan>> {
        if task >= self.tasks() {
            return Err(Error::invalid_argument(format!(
                "array task {task} does not exist: the plan has tasks 0..{}",
                self.tasks()
            )));
        }
        let size = self.chunk_size.max(1);
        Ok(
            self.pending[task * size..((task + 1) * size).min(self.pending.len())]
                .iter()
                .map(|&i| self.scans[i].clone())
                .collect(),
        )
    }
}

/// A submission.
#[derive(Debug, Clone)]
pub struct Submission {
    /// Job id of the array (None when nothing was pending).
    pub array_job: Option<String>,
    /// Array tasks submitted.
    pub tasks: usize,
    /// Scans pending at submission.
    pub pending: usize,
    /// Job id of the group step.
    pub group_job: String,
    /// Folder with the plan, the scripts and the task logs.
    pub folder: PathBuf,
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The sbatch script of the array or (`task_argument` None) of the group step.
pub fn script(
    brainsam: &Path,
    plan: &Path,
    logs: &Path,
    options: &SlurmOptions,
    array: Option<(usize, Option<usize>)>,
) -> String {
    let mut lines = vec!["#!/bin/bash".to_string()];
    let mut directive = |text: String| lines.push(format!("#SBATCH {text}"));
    match array {
        Some((tasks, limit)) => {
            directive("--job-name=brainsam-cohort".into());
            directive(format!(
                "--array=0-{}{}",
                tasks.saturating_sub(1),
                limit.map_or(String::new(), |m| format!("%{m}"))
            ));
            directive(format!(
                "--output={}",
                logs.join("task-%A_%a.log").display()
            ));
            if let Some(gpus) = options.gpus {
                directive(format!("--gpus-per-task={gpus}"));
            }
            if let Some(cpus) = options.cpus_per_task {
                directive(format!("--cpus-per-task={cpus}"));
            }
            if let Some(mem) = &options.mem {
                directive(format!("--mem={mem}"));
            }
            if let Some(time) = &options.time {
                directive(format!("--time={time}"));
            }
        }
        None => {
            directive("--job-name=brainsam-group".into());
            directive(format!("--output={}", logs.join("group-%j.log").display()));
        }
    }
    directive("--ntasks=1".into());
    if let Some(partition) = &options.partition {
        directive(format!("--partition={partition}"));
    }
    for extra in &options.extra {
        directive(extra.clone());
    }
    lines.push("set -euo pipefail".into());
    let step = if array.is_some() {
        "--chunk \"$SLURM_ARRAY_TASK_ID\""
    } else {
        "--group"
    };
    lines.push(format!(
        "exec {} cohort-worker --plan {} {step}",
        quote(&brainsam.display().to_string()),
        quote(&plan.display().to_string())
    ));
    lines.join("\n") + "\n"
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    atomic_write(path, |file| {
        file.write_all(text.as_bytes())
            .map_err(|e| Error::io(path, e))
    })
}

/// Runs `sbatch --parsable` and returns the job id.
fn sbatch(arguments: &[String]) -> Result<String> {
    let output = Command::new("sbatch")
        .arg("--parsable")
        .args(arguments)
        .output()
        .map_err(|e| {
            Error::Unsupported(format!(
                "cannot run sbatch ({e}): is SLURM installed and on the PATH on this node?"
            ))
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(Error::InvalidState(format!(
            "sbatch {} failed: {}{}",
            arguments.join(" "),
            String::from_utf8_lossy(&output.stderr).trim(),
            stdout.trim()
        )));
    }
    let id = stdout
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::InvalidState(format!(
            "sbatch printed no job id: {stdout:?}"
        )));
    }
    Ok(id)
}

/// Writes the plan and scripts for the scans of `scans` not yet verified done in
/// `output` and submits them: an array job (`chunk_size` scans per task) and a group
/// step after it (`--dependency=afterany`, so it also runs after cancelled or failed
/// tasks and tabulates what is done). With nothing pending only the group step is
/// submitted.
pub fn submit(
    output: &Path,
    scans: &[Scan],
    settings: &Settings,
    options: &SlurmOptions,
) -> Result<Submission> {
    settings.validate()?;
    if options.chunk_size == 0 {
        return Err(Error::invalid_argument("--chunk-size must be at least 1"));
    }
    if options.max_concurrent == Some(0) {
        return Err(Error::invalid_argument(
            "--max-concurrent must be at least 1",
        ));
    }
    let output = std::path::absolute(output).map_err(|e| Error::io(output, e))?;
    let journal = Journal::open(&output)?;
    let (_, fingerprint) = settings.identity()?;
    let pending: Vec<usize> = (0..scans.len())
        .filter(|&i| !journal.verified_done(&output, &scans[i].id, &fingerprint))
        .collect();
    let mut settings = settings.clone();
    // Array tasks run on other nodes: absolute paths, explicit threads.
    for path in [&mut settings.model, &mut settings.adapter]
        .into_iter()
        .flatten()
    {
        *path = std::path::absolute(&*path).map_err(|e| Error::io(&*path, e))?;
    }
    if settings.threads.is_none() {
        settings.threads = options.cpus_per_task;
    }
    if settings.jobs == 0 {
        settings.jobs = 1;
    }
    let mut scans = scans.to_vec();
    for scan in &mut scans {
        scan.input = std::path::absolute(&scan.input).map_err(|e| Error::io(&scan.input, e))?;
    }
    let stamp = utc_now().replace([':', '-'], "");
    let folder = output
        .join(STATE_DIR)
        .join("slurm")
        .join(format!("{stamp}-{}", std::process::id()));
    let logs = folder.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| Error::io(&logs, e))?;
    let plan = Plan {
        output: output.clone(),
        scans,
        pending,
        chunk_size: options.chunk_size,
        settings,
    };
    let plan_path = folder.join("plan.json");
    write_text(
        &plan_path,
        &serde_json::to_string_pretty(&plan).map_err(|e| Error::Internal(e.to_string()))?,
    )?;
    let brainsam = std::env::current_exe().map_err(|e| Error::io("brainsam executable", e))?;
    let tasks = plan.tasks();
    let array_job = if tasks > 0 {
        let path = folder.join("array.sbatch");
        write_text(
            &path,
            &script(
                &brainsam,
                &plan_path,
                &logs,
                options,
                Some((tasks, options.max_concurrent)),
            ),
        )?;
        Some(sbatch(&[path.display().to_string()])?)
    } else {
        None
    };
    let group_path = folder.join("group.sbatch");
    write_text(
        &group_path,
        &script(&brainsam, &plan_path, &logs, options, None),
    )?;
    let mut arguments = Vec::new();
    if let Some(id) = &array_job {
        arguments.push(format!("--dependency=afterany:{id}"));
    }
    arguments.push(group_path.display().to_string());
    let group_job = sbatch(&arguments)?;
    Ok(Submission {
        array_job,
        tasks,
        pending: plan.pending.len(),
        group_job,
        folder,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_script_passes_options_through() {
        let options = SlurmOptions {
            chunk_size: 5,
            max_concurrent: Some(3),
            partition: Some("gpu".into()),
            time: Some("01:00:00".into()),
            gpus: Some(1),
            cpus_per_task: Some(4),
            mem: None,
            extra: vec!["--account=lab".into()],
        };
        let text = script(
            Path::new("/opt/brainsam"),
            Path::new("/o/plan.json"),
            Path::new("/o/logs"),
            &options,
            Some((7, Some(3))),
        );
        for expected in [
            "#SBATCH --array=0-6%3",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=01:00:00",
            "#SBATCH --gpus-per-task=1",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --account=lab",
            "exec '/opt/brainsam' cohort-worker --plan '/o/plan.json' --chunk \"$SLURM_ARRAY_TASK_ID\"",
        ] {
            assert!(text.contains(expected), "{expected} missing in\n{text}");
        }
        let group = script(
            Path::new("/opt/brainsam"),
            Path::new("/o/plan.json"),
            Path::new("/o/logs"),
            &options,
            None,
        );
        assert!(
            group.contains("--group") && !group.contains("--array"),
            "{group}"
        );
    }

    #[test]
    fn chunks_cover_the_pending_scans_once() {
        let scan = |n: usize| Scan {
            id: format!("s{n}"),
            input: PathBuf::from(format!("s{n}.nii")),
            folder: PathBuf::from(format!("s{n}")),
            subject: None,
            session: None,
        };
        let plan = Plan {
            output: PathBuf::from("/o"),
            scans: (0..7).map(scan).collect(),
            pending: vec![0, 2, 3, 5, 6],
            chunk_size: 2,
            settings: Settings::default(),
        };
        assert_eq!(plan.tasks(), 3);
        let ids: Vec<String> = (0..3)
            .flat_map(|t| plan.chunk(t).unwrap())
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, ["s0", "s2", "s3", "s5", "s6"]);
        assert!(plan.chunk(3).is_err());
    }
}
