//! Cohorts end to end with the `brainsam` CLI: the BIDS App (participant and group
//! levels), scan lists with a manifest, resuming, and faults: a corrupt input among good
//! ones, kill -9 of a worker mid-scan, a full output disk, a read-only output folder, and
//! two processes on one output folder.

mod cohort_support;
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use brainsam::cohort::journal::Journal;
use cohort_support::*;
use common::{scratch_dir, test_checkpoint};

fn args<'a>(head: &[&'a str], tail: &'a [String]) -> Vec<&'a str> {
    head.iter()
        .copied()
        .chain(tail.iter().map(String::as_str))
        .collect()
}

/// A BIDS dataset: sub-01 without sessions, sub-02 with two sessions.
fn write_bids(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(
        root.join("dataset_description.json"),
        r#"{"Name": "test", "BIDSVersion": "1.9.0"}"#,
    )
    .unwrap();
    let scans = write_scans(root, 3);
    for (scan, target) in scans.iter().zip([
        "sub-01/anat/sub-01_T1w.nii.gz",
        "sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz",
        "sub-02/ses-2/anat/sub-02_ses-2_T1w.nii.gz",
    ]) {
        let target = root.join(target);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::rename(scan, target).unwrap();
    }
}

#[test]
fn bids_app_writes_derivatives_skips_verified_scans_and_tabulates_the_group() {
    let dir = scratch_dir("cohort_bids");
    let (bids, out) = (dir.join("bids"), dir.join("derivatives"));
    write_bids(&bids);
    let fast = fast_args(test_checkpoint());
    let printed = ok(&args(&["bids", s(&bids), s(&out), "participant"], &fast));
    assert!(printed.contains("3 done now"), "{printed}");
    for prefix in [
        "sub-01/anat/sub-01",
        "sub-02/ses-1/anat/sub-02_ses-1",
        "sub-02/ses-2/anat/sub-02_ses-2",
    ] {
        for suffix in ["dseg.nii.gz", "dseg.tsv", "volumes.tsv", "overview.png"] {
            let path = out.join(format!("{prefix}_desc-subcortical_{suffix}"));
            assert!(path.is_file(), "{} missing", path.display());
        }
    }
    let labels = out.join("sub-01/anat/sub-01_desc-subcortical_dseg.nii.gz");
    let image = brainsam::volume::Volume::read(bids.join("sub-01/anat/sub-01_T1w.nii.gz")).unwrap();
    assert_eq!(
        brainsam::volume::Volume::read(&labels)
            .unwrap()
            .grid()
            .dims(),
        image.grid().dims()
    );
    let table =
        std::fs::read_to_string(out.join("sub-01/anat/sub-01_desc-subcortical_dseg.tsv")).unwrap();
    assert!(
        table.starts_with("index\tname\tabbreviation\tcolor\n0\tBackground"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 14);
    let description: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("dataset_description.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(description["DatasetType"], "derivative");
    assert_eq!(description["GeneratedBy"][0]["Name"], "BrainSAM");
    assert_eq!(
        description["GeneratedBy"][0]["Version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_each_done_once(
        &out,
        &[
            "sub-01".into(),
            "sub-02_ses-1".into(),
            "sub-02_ses-2".into(),
        ],
    );

    // A rerun verifies and skips everything; a damaged output makes its scan pending.
    let printed = ok(&args(&["bids", s(&bids), s(&out), "participant"], &fast));
    assert!(printed.contains("0 done now, 3 already done"), "{printed}");
    let volumes = out.join("sub-02/ses-1/anat/sub-02_ses-1_desc-subcortical_volumes.tsv");
    std::fs::write(&volumes, "damaged").unwrap();
    let printed = ok(&args(
        &[
            "bids",
            s(&bids),
            s(&out),
            "participant",
            "--participant-label",
            "sub-02",
            "--session-label",
            "1",
        ],
        &fast,
    ));
    assert!(
        printed.contains("1 scans") && printed.contains("1 done now"),
        "{printed}"
    );
    assert!(std::fs::read_to_string(&volumes)
        .unwrap()
        .starts_with("class\tstructure"));

    let printed = ok(&["bids", s(&bids), s(&out), "group"]);
    assert!(printed.contains("group: 3 scans tabulated"), "{printed}");
    let group = std::fs::read_to_string(out.join("group/desc-subcortical_volumes.tsv")).unwrap();
    let lines: Vec<&str> = group.lines().collect();
    assert_eq!(lines.len(), 4, "{group}");
    assert!(
        lines[0].starts_with("scan_id\tparticipant_id\tsession_id\tL-Thal_mm3"),
        "{}",
        lines[0]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("sub-02_ses-2\tsub-02\tses-2\t")),
        "{group}"
    );
    assert_eq!(lines[1].split('\t').count(), 3 + 24 + 1);
    // The random model is unsure everywhere: every structure is flagged low-confidence.
    let outliers =
        std::fs::read_to_string(out.join("group/desc-subcortical_outliers.tsv")).unwrap();
    assert_eq!(
        outliers
            .lines()
            .filter(|l| l.contains("\tconfidence\t"))
            .count(),
        36,
        "{outliers}"
    );
    let qc = image::open(out.join("group/desc-subcortical_qc.png"))
        .unwrap()
        .to_rgb8();
    assert!(qc.width() > 1000 && qc.height() > 300);
    assert!(
        qc.pixels()
            .any(|p| p.0 == brainsam::cohort::group::CONFIDENCE_FLAG_COLOUR),
        "flagged scans are not marked in the QC figure"
    );
}

#[test]
fn bids_app_errors_name_the_problem() {
    let dir = scratch_dir("cohort_bids_errors");
    let not_bids = dir.join("plain");
    std::fs::create_dir_all(not_bids.join("sub-01/anat")).unwrap();
    let out = dir.join("out");
    let message = fails(&["bids", s(&not_bids), s(&out), "participant"]);
    assert!(
        message.contains("is not a BIDS dataset: it has no dataset_description.json"),
        "{message}"
    );
    let bids = dir.join("bids");
    write_bids(&bids);
    let message = fails(&[
        "bids",
        s(&bids),
        s(&out),
        "participant",
        "--participant-label",
        "07",
    ]);
    assert!(
        message.contains("participant label(s) sub-07 not found")
            && message.contains("sub-01, sub-02"),
        "{message}"
    );
    let message = fails(&[
        "bids",
        s(&bids),
        s(&out),
        "participant",
        "--session-label",
        "9",
    ]);
    assert!(
        message.contains("session label(s) ses-9 not found"),
        "{message}"
    );
    let message = fails(&["bids", s(&bids), s(&bids.join("out")), "participant"]);
    assert!(
        message.contains("lies inside the BIDS dataset"),
        "{message}"
    );
    let message = fails(&["bids", s(&dir.join("nowhere")), s(&out), "participant"]);
    assert!(message.contains("does not exist"), "{message}");
    let message = fails(&["bids", s(&bids), s(&dir.join("empty")), "group"]);
    assert!(
        message.contains("run the participant level first"),
        "{message}"
    );
}

#[test]
fn a_corrupt_input_is_recorded_and_a_rerun_retries_only_failures() {
    let dir = scratch_dir("cohort_corrupt");
    let mut scans = write_scans(&dir, 3);
    let corrupt = dir.join("corrupt.nii.gz");
    std::fs::write(&corrupt, b"\x1f\x8b this is not gzip").unwrap();
    scans.insert(1, corrupt.clone());
    let (list, out) = (dir.join("scans.txt"), dir.join("out"));
    write_list(&list, &scans);
    let fast = fast_args(test_checkpoint());
    let message = fails(&args(
        &[
            "cohort",
            "--list",
            s(&list),
            "--out",
            s(&out),
            "--jobs",
            "2",
        ],
        &fast,
    ));
    assert!(
        message.contains("corrupt: FAILED: ") && message.contains("corrupt.nii.gz"),
        "{message}"
    );
    assert!(
        message.contains("3 done now") && message.contains("1 failed"),
        "{message}"
    );
    assert!(
        message.contains("1 scan(s) failed") && message.contains("a rerun retries them"),
        "{message}"
    );
    let journal = Journal::open(&out).unwrap();
    let failed = journal.latest("corrupt").unwrap();
    assert!(
        failed.error.as_deref().unwrap().contains("corrupt.nii.gz"),
        "{failed:?}"
    );
    assert!(failed.software.starts_with("brainsam ") && failed.model.contains("sha256:"));
    assert!(
        !out.join("corrupt").exists(),
        "no outputs for a failed scan"
    );
    // The group table of what is done was written anyway.
    let group = std::fs::read_to_string(out.join("group/desc-subcortical_volumes.tsv")).unwrap();
    assert_eq!(group.lines().count(), 4);

    // Fixed input: only it is segmented.
    std::fs::copy(&scans[0], &corrupt).unwrap();
    let printed = ok(&args(
        &["cohort", "--list", s(&list), "--out", s(&out)],
        &fast,
    ));
    assert!(
        printed.contains("1 done now, 3 already done, 0 left to another process, 0 failed"),
        "{printed}"
    );
    let ids: Vec<String> = ["scan0", "corrupt", "scan1", "scan2"]
        .map(String::from)
        .to_vec();
    assert_each_done_once(&out, &ids);
    assert_eq!(labels_of(&out, "corrupt"), labels_of(&out, "scan0"));
    // Two workers give the same labels as one.
    let single = dir.join("single");
    ok(&args(
        &[
            "cohort",
            "--list",
            s(&list),
            "--out",
            s(&single),
            "--jobs",
            "1",
        ],
        &fast,
    ));
    for id in &ids {
        assert_eq!(labels_of(&out, id), labels_of(&single, id), "{id}");
    }
}

#[test]
fn scan_list_errors_name_the_line() {
    let dir = scratch_dir("cohort_list_errors");
    let list = dir.join("scans.txt");
    std::fs::write(&list, "# comment\n\na.nii.gz\nnotes.txt\n").unwrap();
    let message = fails(&["cohort", "--list", s(&list), "--out", s(&dir.join("out"))]);
    assert!(
        message.contains("line 4: notes.txt is not a .nii or .nii.gz file"),
        "{message}"
    );
    std::fs::write(&list, "a.nii.gz\n./a.nii.gz\n").unwrap();
    let message = fails(&["cohort", "--list", s(&list), "--out", s(&dir.join("out"))]);
    assert!(
        message.contains("line 2") && message.contains("listed twice"),
        "{message}"
    );
    let message = fails(&[
        "cohort",
        "--list",
        s(&dir.join("none.txt")),
        "--out",
        s(&dir.join("out")),
    ]);
    assert!(message.contains("none.txt"), "{message}");
}

/// Waits until the journal of `out` shows a scan started and not finished.
fn wait_mid_scan(out: &Path, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let journal =
            std::fs::read_to_string(out.join(".brainsam/journal.jsonl")).unwrap_or_default();
        let started = journal.matches("\"status\":\"started\"").count();
        let ended = journal.matches("\"status\":\"done\"").count()
            + journal.matches("\"status\":\"failed\"").count();
        if started > ended && ended >= 1 {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "cohort ended before it could be killed"
        );
        assert!(Instant::now() < deadline, "no scan started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_9_mid_scan_then_a_rerun_completes_every_scan_once() {
    let dir = scratch_dir("cohort_kill");
    let scans = write_scans(&dir, 4);
    let (list, out) = (dir.join("scans.txt"), dir.join("out"));
    write_list(&list, &scans);
    // Full test-time augmentation: slow enough per scan to be killed midway.
    let model = test_checkpoint();
    let mut child = brainsam()
        .args([
            "cohort",
            "--list",
            s(&list),
            "--out",
            s(&out),
            "--model",
            s(model),
            "--device",
            "cpu",
            "--threads",
            "1",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_mid_scan(&out, &mut child);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = done_records(&out);
    assert!(
        (1..4).contains(&before),
        "{before} scans done before the kill"
    );
    let printed = ok(&[
        "cohort",
        "--list",
        s(&list),
        "--out",
        s(&out),
        "--model",
        s(model),
        "--device",
        "cpu",
        "--threads",
        "1",
    ]);
    assert!(
        printed.contains(&format!("{} done now, {before} already done", 4 - before)),
        "{printed}"
    );
    assert_each_done_once(
        &out,
        &["scan0", "scan1", "scan2", "scan3"].map(String::from),
    );
}

#[test]
fn two_processes_on_one_output_never_do_a_scan_twice() {
    let dir = scratch_dir("cohort_two");
    let scans = write_scans(&dir, 6);
    let (list, out) = (dir.join("scans.txt"), dir.join("out"));
    write_list(&list, &scans);
    let fast = fast_args(test_checkpoint());
    let spawn = || {
        brainsam()
            .args(args(
                &["cohort", "--list", s(&list), "--out", s(&out)],
                &fast,
            ))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    let (first, second) = (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    );
    assert!(first.status.success(), "{}", text(&first));
    assert!(second.status.success(), "{}", text(&second));
    let done_now = |o: &std::process::Output| -> usize {
        let t = text(o);
        let line = t
            .lines()
            .find(|l| l.contains(" done now, "))
            .expect("summary line")
            .to_string();
        line.split(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(
        done_now(&first) + done_now(&second),
        6,
        "{}\n{}",
        text(&first),
        text(&second)
    );
    assert_eq!(done_records(&out), 6);
    assert_each_done_once(
        &out,
        &(0..6).map(|i| format!("scan{i}")).collect::<Vec<_>>(),
    );
}

#[test]
fn a_full_output_disk_stops_the_run_cleanly_and_a_rerun_completes() {
    let dir = scratch_dir("cohort_full");
    // Five scans: more than the workers and the read-ahead queue hold, so the reader
    // must notice that the workers stopped.
    let scans = write_scans(&dir, 5);
    let list = dir.join("scans.txt");
    write_list(&list, &scans);
    let Some(disk) = Tmpfs::mount(&dir.join("disk"), "8M", "full disk") else {
        return;
    };
    let out = disk.path.join("out");
    let fast = fast_args(test_checkpoint());
    // One scan done, then the disk filled up.
    write_list(&dir.join("first.txt"), &scans[..1]);
    ok(&args(
        &[
            "cohort",
            "--list",
            s(&dir.join("first.txt")),
            "--out",
            s(&out),
        ],
        &fast,
    ));
    let filler = disk.path.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut file, &chunk).is_ok() {}
    drop(file);
    let message = fails(&args(
        &["cohort", "--list", s(&list), "--out", s(&out)],
        &fast,
    ));
    assert!(message.contains("No space left on device"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    // Nothing half-written under a final name; what was done is intact.
    assert_eq!(done_records(&out), 1, "no scan can be done on a full disk");
    for id in ["scan1", "scan2", "scan3", "scan4"] {
        assert!(
            !out.join(id).exists(),
            "{id}: output folder created on a full disk"
        );
    }
    assert_each_done_once(&out, &["scan0".to_string()]);
    std::fs::remove_file(&filler).unwrap();
    let printed = ok(&args(
        &["cohort", "--list", s(&list), "--out", s(&out)],
        &fast,
    ));
    assert!(printed.contains("4 done now, 1 already done"), "{printed}");
    assert_each_done_once(
        &out,
        &(0..5).map(|i| format!("scan{i}")).collect::<Vec<_>>(),
    );
}

#[test]
fn a_read_only_output_folder_is_refused_before_any_work_and_keeps_its_results() {
    let dir = scratch_dir("cohort_read_only");
    let scans = write_scans(&dir, 2);
    let list = dir.join("scans.txt");
    write_list(&list, &scans[..1]);
    let Some(disk) = Tmpfs::mount(&dir.join("disk"), "16M", "read-only output") else {
        return;
    };
    let out = disk.path.join("out");
    let fast = fast_args(test_checkpoint());
    ok(&args(
        &["cohort", "--list", s(&list), "--out", s(&out)],
        &fast,
    ));
    let before = std::fs::read(out.join("scan0/scan0_desc-subcortical_dseg.nii.gz")).unwrap();
    disk.remount("ro");
    write_list(&list, &scans);
    let message = fails(&args(
        &["cohort", "--list", s(&list), "--out", s(&out)],
        &fast,
    ));
    assert!(
        message.contains("is not writable") && message.contains("Read-only file system"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(out.join("scan0/scan0_desc-subcortical_dseg.nii.gz")).unwrap(),
        before
    );
    disk.remount("rw");
    ok(&args(
        &["cohort", "--list", s(&list), "--out", s(&out)],
        &fast,
    ));
    assert_each_done_once(&out, &["scan0", "scan1"].map(String::from));
}
