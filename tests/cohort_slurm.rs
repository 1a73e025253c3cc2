//! `brainsam cohort --slurm` against a real SLURM: a one-node cluster (slurmctld, slurmd,
//! munge from Debian's slurm-wlm and munge packages, installed by scripts/setup) started
//! by the test in a temporary folder. It submits a cohort, cancels one array task
//! mid-scan, resubmits, and checks that every scan was done exactly once and that the
//! outputs are identical to a local run.

mod cohort_support;
mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cohort_support::*;
use common::{repo_root, run, scratch_dir, test_checkpoint};

/// The cluster, stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command.env("SLURM_CONF", self.conf());
        command
    }

    /// Lines of `squeue` (job id and state) for this cluster.
    fn queue(&self) -> Vec<String> {
        run(self.command("squeue").args(["-h", "-o", "%i %T"]))
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn wait_until_empty(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(600);
        while !self.queue().is_empty() {
            assert!(
                Instant::now() < deadline,
                "{what}: jobs still queued after 10 minutes: {:?}\n{}",
                self.queue(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn logs(&self) -> String {
        ["slurmctld.log", "slurmd.log"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.path().join("log").join(name))
                    .unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                format!(
                    "--- {name}\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", self.dir.path().to_str().unwrap()])
            .status();
    }
}

fn script() -> PathBuf {
    repo_root().join("tests/slurm/cluster.sh")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the cluster, or None with a "skipped" line saying why it cannot run here.
fn start_cluster() -> Option<Cluster> {
    let missing: Vec<&str> = [
        "slurmctld",
        "slurmd",
        "munged",
        "sbatch",
        "squeue",
        "scancel",
    ]
    .into_iter()
    .filter(|program| {
        !Command::new("sh")
            .args([
                "-c",
                &format!("command -v {program} || test -x /usr/sbin/{program}"),
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    })
    .collect();
    if !missing.is_empty() {
        // scripts/test sets this where scripts/setup installed them: never skip there.
        assert!(
            std::env::var_os("BRAINSAM_REQUIRE_SLURM").is_none(),
            "BRAINSAM_REQUIRE_SLURM is set but {} are missing (run scripts/setup)",
            missing.join(", ")
        );
        println!(
            "skipped: SLURM test: {} not installed (scripts/setup installs slurm-wlm and munge)",
            missing.join(", ")
        );
        return None;
    }
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if uid.as_deref().ok() != Some("0") {
        println!("skipped: SLURM test: slurmd must run as root to start jobs (uid {uid:?})");
        return None;
    }
    // The folder name is short: the folder name is short (munge's socket path must fit 108 bytes).
    let dir = tempfile::Builder::new()
        .prefix("bsam-slurm")
        .tempdir_in("/tmp")
        .unwrap();
    let cluster = Cluster { dir };
    let (ctld, slurmd) = (free_port(), free_port());
    run(Command::new(script()).args([
        "start",
        cluster.dir.path().to_str().unwrap(),
        &ctld.to_string(),
        &slurmd.to_string(),
    ]));
    Some(cluster)
}

fn submitted_array(printed: &str) -> String {
    printed
        .lines()
        .find_map(|l| l.strip_prefix("submitted array job "))
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("no array job in:\n{printed}"))
        .to_string()
}

fn journal_text(out: &Path) -> String {
    std::fs::read_to_string(out.join(".brainsam/journal.jsonl")).unwrap_or_default()
}

#[test]
fn slurm_array_survives_a_cancelled_task_and_a_resubmission_redoes_only_what_is_missing() {
    let Some(cluster) = start_cluster() else {
        return;
    };
    let dir = scratch_dir("cohort_slurm");
    let scans = write_scans(&dir, 4);
    let (list, out, local) = (dir.join("scans.txt"), dir.join("out"), dir.join("local"));
    write_list(&list, &scans);
    let model = test_checkpoint();
    // Full test-time augmentation (slow enough to cancel a task mid-scan), one thread.
    let settings = ["--model", s(model), "--device", "cpu", "--threads", "1"];
    let mut submit: Vec<&str> = vec!["cohort", "--list", s(&list), "--out", s(&out)];
    submit.extend(settings);
    submit.extend([
        "--slurm",
        "--chunk-size",
        "2",
        "--max-concurrent",
        "2",
        "--cpus-per-task",
        "1",
    ]);
    let printed = String::from_utf8(
        cluster
            .command(common::brainsam_cli())
            .args(&submit)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let job = submitted_array(&printed);
    assert!(
        printed.contains("4 scans pending in 2 task(s)"),
        "{printed}"
    );

    // Array task 0 has scan0 and scan1: cancel it while it segments scan0.
    let deadline = Instant::now() + Duration::from_secs(300);
    while !journal_text(&out).contains("\"scan\":\"scan0\",\"input\"") {
        assert!(
            Instant::now() < deadline,
            "task 0 never started\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    run(cluster.command("scancel").arg(format!("{job}_0")));
    cluster.wait_until_empty("first submission");
    let journal = brainsam::cohort::journal::Journal::open(&out).unwrap();
    assert_eq!(
        journal.done_count("scan0"),
        0,
        "task 0 was cancelled mid-scan"
    );
    assert_eq!(
        journal.done_count("scan2") + journal.done_count("scan3"),
        2,
        "task 1 ran"
    );
    // The group step ran after the array (afterany) on what was done.
    let group = std::fs::read_to_string(out.join("group/desc-subcortical_volumes.tsv")).unwrap();
    assert_eq!(
        group.lines().count(),
        1 + 2 + journal.done_count("scan1"),
        "{group}"
    );

    let printed = String::from_utf8(
        cluster
            .command(common::brainsam_cli())
            .args(&submit)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    submitted_array(&printed);
    let missing = 4 - 2 - journal.done_count("scan1");
    assert!(
        printed.contains(&format!("{missing} scans pending in 1 task(s)")),
        "{printed}"
    );
    cluster.wait_until_empty("resubmission");
    let ids: Vec<String> = (0..4).map(|i| format!("scan{i}")).collect();
    assert_each_done_once(&out, &ids);
    let group = std::fs::read_to_string(out.join("group/desc-subcortical_volumes.tsv")).unwrap();
    assert_eq!(group.lines().count(), 5, "{group}");

    // Identical to a local run with the same settings.
    let mut local_run: Vec<&str> = vec!["cohort", "--list", s(&list), "--out", s(&local)];
    local_run.extend(settings);
    ok(&local_run);
    for id in &ids {
        assert_eq!(
            labels_of(&out, id),
            labels_of(&local, id),
            "{id}: labels differ"
        );
        let volumes = |root: &Path| {
            std::fs::read_to_string(
                root.join(id)
                    .join(format!("{id}_desc-subcortical_volumes.tsv")),
            )
            .unwrap()
        };
        assert_eq!(volumes(&out), volumes(&local), "{id}: volumes differ");
    }
    drop(cluster);
}
