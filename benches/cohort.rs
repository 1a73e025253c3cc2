//! Cohort throughput benchmark (not a test): scans/minute of `brainsam cohort` (model
//! loaded once, the next volume read while the current one is segmented) next to a shell
//! loop calling `brainsam segment` once per scan, same scans, same run, same outputs
//! (label map, volumes table, overview PNG).
//!
//! `cargo bench --bench cohort --profile dev`. Scans: the nine FreeSurfer T1s from
//! `BRAINSAM_DATA` resampled to 2 mm (2×2×2 block means, 128³: a 20-scan run fits in
//! minutes on two loaded cores; `BRAINSAM_BENCH_FULL_RES=1` keeps them at 1 mm),
//! repeated to `BRAINSAM_BENCH_SCANS` (default 20); without
//! `BRAINSAM_DATA`, synthetic 2 mm heads. Model: the bundled default model (or
//! `BRAINSAM_MODEL`). `BRAINSAM_BENCH_VIEWS=1` segments one view per slice instead of the
//! default eight averaged views. `BRAINSAM_BENCH_DEVICE` (default `cpu`): `cuda` to
//! measure a GPU (with several GPUs the cohort rows use one worker per GPU).
//! `BRAINSAM_BENCH_JOBS` (default `1,2`): the `--jobs` values of the cohort rows.

#[path = "../tests/common/cli_binary.rs"]
mod cli_binary;
#[path = "support/head.rs"]
mod head;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use brainsam::volume::{Grid, Volume};

fn run(command: &mut Command) {
    let output = command.output().expect("start brainsam");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `volume` at half resolution: means of 2×2×2 voxel blocks, voxel size doubled.
fn half_resolution(volume: &Volume) -> Volume {
    let [nx, ny, nz] = volume.grid().dims();
    let dims = [nx / 2, ny / 2, nz / 2];
    let mut affine = *volume.grid().voxel_to_ras();
    for row in affine.iter_mut().take(3) {
        // Block (0, 0, 0) is centred half a (new) voxel in: shift the origin by half an old voxel.
        row[3] += 0.5 * (row[0] + row[1] + row[2]);
        for value in row.iter_mut().take(3) {
            *value *= 2.0;
        }
    }
    let grid = Grid::from_ras_affine(dims, affine).expect("half-resolution grid");
    let mut data = vec![0f32; grid.len()];
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            for i in 0..dims[0] {
                let mut sum = 0.0;
                for (di, dj, dk) in (0..8).map(|b| (b & 1, (b >> 1) & 1, b >> 2)) {
                    sum += volume.get(2 * i + di, 2 * j + dj, 2 * k + dk);
                }
                data[grid.linear_index(i, j, k)] = sum / 8.0;
            }
        }
    }
    Volume::new(grid, data).expect("half-resolution volume")
}

fn scans(dir: &Path, count: usize) -> (String, Vec<PathBuf>) {
    let full_resolution = std::env::var("BRAINSAM_BENCH_FULL_RES").is_ok_and(|v| v == "1");
    let mut sources = Vec::new();
    let mut what = "synthetic heads (2 mm)".to_string();
    if let Some(data) = std::env::var_os("BRAINSAM_DATA") {
        for subject in ["01", "02", "03", "04", "06", "07", "08", "09", "10"] {
            let path = PathBuf::from(&data)
                .join(format!("freesurfer_training_data/sub-{subject}/T1.nii.gz"));
            if !path.is_file() {
                continue;
            }
            if full_resolution {
                sources.push(path);
            } else {
                let small = dir.join(format!("sub-{subject}-2mm.nii.gz"));
                half_resolution(&Volume::read(&path).expect("read T1"))
                    .write(&small)
                    .expect("write T1");
                sources.push(small);
            }
        }
        what = format!(
            "the {} FreeSurfer T1s ({}) repeated",
            sources.len(),
            if full_resolution {
                "256³, 1 mm"
            } else {
                "resampled to 128³, 2 mm"
            }
        );
    }
    if sources.is_empty() {
        let path = dir.join("head.nii.gz");
        head::synthetic_head(2.0).write(&path).expect("write head");
        sources.push(path);
    }
    let scans = (0..count)
        .map(|i| {
            let link = dir.join(format!("scan{i:02}.nii.gz"));
            std::os::unix::fs::symlink(&sources[i % sources.len()], &link).expect("link");
            link
        })
        .collect();
    (what, scans)
}

fn main() {
    let count: usize = std::env::var("BRAINSAM_BENCH_SCANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let one_view = std::env::var("BRAINSAM_BENCH_VIEWS").is_ok_and(|v| v == "1");
    let device = std::env::var("BRAINSAM_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    let brainsam = cli_binary::brainsam_cli();
    let dir = tempfile::tempdir().expect("temporary folder");
    let (what, inputs) = scans(dir.path(), count);
    let list = dir.path().join("scans.txt");
    std::fs::write(
        &list,
        inputs
            .iter()
            .map(|p| format!("{}\n", p.display()))
            .collect::<String>(),
    )
    .unwrap();
    let views: &[&str] = if one_view {
        &["--no-mirror", "--no-shift"]
    } else {
        &[]
    };
    println!(
        "cohort benchmark: {count} scans ({what}), default model, {} per slice, CPU, {} cores",
        if one_view {
            "one view"
        } else {
            "eight averaged views"
        },
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let started = Instant::now();
    let looped = dir.path().join("loop");
    std::fs::create_dir_all(&looped).unwrap();
    for (i, input) in inputs.iter().enumerate() {
        let name = |suffix: &str| looped.join(format!("scan{i:02}_{suffix}"));
        run(Command::new(&brainsam)
            .args(["segment", "--device", &device, "--input"])
            .arg(input)
            .arg("--output")
            .arg(name("dseg.nii.gz"))
            .arg("--volumes")
            .arg(name("volumes.csv"))
            .arg("--overlay")
            .arg(name("overview.png"))
            .args(views));
    }
    let loop_seconds = started.elapsed().as_secs_f64();

    let mut rows = vec![("loop of `brainsam segment`".to_string(), loop_seconds)];
    let jobs_list: Vec<usize> = std::env::var("BRAINSAM_BENCH_JOBS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .filter_map(|j| j.trim().parse().ok())
        .collect();
    for jobs in jobs_list {
        let out = dir.path().join(format!("cohort{jobs}"));
        let started = Instant::now();
        run(Command::new(&brainsam)
            .args([
                "cohort",
                "--device",
                &device,
                "--jobs",
                &jobs.to_string(),
                "--list",
            ])
            .arg(&list)
            .arg("--out")
            .arg(&out)
            .args(views));
        rows.push((
            format!("`brainsam cohort --jobs {jobs}`"),
            started.elapsed().as_secs_f64(),
        ));
    }
    println!("| run | total s | s/scan | scans/minute | vs loop |");
    println!("|---|---|---|---|---|");
    for (name, seconds) in &rows {
        println!(
            "| {name} | {seconds:.1} | {:.2} | {:.2} | {:.2}x |",
            seconds / count as f64,
            count as f64 * 60.0 / seconds,
            loop_seconds / seconds
        );
    }
}
