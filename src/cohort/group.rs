//! The group step: one volumes table for the cohort, outliers by robust z-score per
//! structure and by low confidence, and a QC figure with the flagged scans marked.
//!
//! Estimated intracranial volume is not in the table: BrainSAM segments only the 12
//! subcortical structures (no brain mask, no skull), so there is no sound estimate to give.

use std::io::Write;
use std::path::{Path, PathBuf};

use image::RgbImage;

use super::journal::{sha256_file, Journal, Status};
use super::scans::Scan;
use crate::error::{Error, Result};
use crate::labels::STRUCTURES;
use crate::render::{draw_line, draw_text, put, save_png, text_height};
use crate::weights::atomic_write;

/// Robust z-score beyond which a structure's volume is flagged (Iglewicz and Hoaglin's
/// recommended cut-off for the MAD-based modified z-score).
pub const OUTLIER_Z: f64 = 3.5;
/// Mean model probability below which a structure's segmentation is flagged.
pub const LOW_CONFIDENCE: f64 = 0.5;
/// Fewest scans for which z-scores are computed (below, only confidence is flagged).
pub const MIN_SCANS_FOR_Z: usize = 5;

/// Volumes and confidences of one scan, in class order 1..=12.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanVolumes {
    /// Scan id.
    pub scan: String,
    /// BIDS participant and session labels (empty when unknown).
    pub subject: String,
    /// Session label.
    pub session: String,
    /// Volume in mm³ per structure.
    pub volumes: [f64; 12],
    /// Confidence per structure.
    pub confidence: [f64; 12],
}

/// One reason to look at a scan.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    /// Scan id.
    pub scan: String,
    /// Structure class id (1..=12).
    pub class: u8,
    /// `volume` (robust z beyond ±[`OUTLIER_Z`]) or `confidence` (below [`LOW_CONFIDENCE`]).
    pub kind: &'static str,
    /// The robust z-score or the confidence.
    pub value: f64,
}

/// Robust z-scores: (x − median) / (1.4826 · MAD); None where the MAD is 0.
pub fn robust_z(values: &[f64]) -> Vec<Option<f64>> {
    let median = |v: &mut Vec<f64>| -> f64 {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            f64::NAN
        } else if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    let centre = median(&mut values.to_vec());
    let mad = median(&mut values.iter().map(|v| (v - centre).abs()).collect());
    values
        .iter()
        .map(|v| (mad > 0.0).then(|| (v - centre) / (1.4826 * mad)))
        .collect()
}

/// Flags per structure: volumes with |robust z| > [`OUTLIER_Z`] (with at least
/// [`MIN_SCANS_FOR_Z`] scans) and confidences below [`LOW_CONFIDENCE`].
pub fn find_outliers(rows: &[ScanVolumes]) -> Vec<Flag> {
    let mut flags = Vec::new();
    for index in 0..12 {
        let class = index as u8 + 1;
        let values: Vec<f64> = rows.iter().map(|r| r.volumes[index]).collect();
        let z = if rows.len() >= MIN_SCANS_FOR_Z {
            robust_z(&values)
        } else {
            vec![None; rows.len()]
        };
        for (row, z) in rows.iter().zip(z) {
            if let Some(z) = z.filter(|z| z.abs() > OUTLIER_Z) {
                flags.push(Flag {
                    scan: row.scan.clone(),
                    class,
                    kind: "volume",
                    value: z,
                });
            }
            if row.confidence[index] < LOW_CONFIDENCE {
                flags.push(Flag {
                    scan: row.scan.clone(),
                    class,
                    kind: "confidence",
                    value: row.confidence[index],
                });
            }
        }
    }
    flags
}

/// Reads a scan's volumes table (as written by [`super::runner::volumes_table`] with tabs).
pub fn read_scan_volumes(path: &Path, scan: &Scan) -> Result<ScanVolumes> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut row = ScanVolumes {
        scan: scan.id.clone(),
        subject: scan.subject.clone().unwrap_or_default(),
        session: scan.session.clone().unwrap_or_default(),
        volumes: [0.0; 12],
        confidence: [0.0; 12],
    };
    let mut seen = [false; 12];
    for (number, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        let parsed = (fields.len() == 5)
            .then(|| {
                Some((
                    fields[0].parse::<u8>().ok()?,
                    fields[3].parse::<f64>().ok()?,
                    fields[4].parse::<f64>().ok()?,
                ))
            })
            .flatten()
            .filter(|(class, _, _)| (1..=12).contains(class));
        let Some((class, volume, confidence)) = parsed else {
            return Err(Error::invalid_file(
                path,
                format!(
                    "line {} is not `class\tstructure\tvoxels\tvolume_mm3\tconfidence`",
                    number + 1
                ),
            ));
        };
        let index = usize::from(class - 1);
        row.volumes[index] = volume;
        row.confidence[index] = confidence;
        seen[index] = true;
    }
    if seen.iter().any(|s| !s) {
        return Err(Error::invalid_file(
            path,
            "not all 12 structures are listed",
        ));
    }
    Ok(row)
}

/// What the group step wrote.
#[derive(Debug, Clone)]
pub struct GroupReport {
    /// Scans in the table.
    pub rows: usize,
    /// Scans of the cohort without verified outputs (left out of the table).
    pub missing: Vec<String>,
    /// Flags raised.
    pub flags: Vec<Flag>,
    /// The volumes table (TSV), the outliers table (TSV) and the QC figure (PNG).
    pub files: [PathBuf; 3],
}

/// The group step over the scans of `scans` that are done in `output`'s journal:
/// writes `group/desc-subcortical_volumes.tsv` (one row per scan: ids, volume in mm³
/// and confidence per structure, the number of flags), `group/desc-subcortical_outliers.tsv`
/// (one row per flag) and `group/desc-subcortical_qc.png`.
pub fn run_group(output: &Path, scans: &[Scan]) -> Result<GroupReport> {
    let journal = Journal::open(output)?;
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for scan in scans {
        // Only outputs the journal vouches for: a done record whose volumes table is
        // still the file it recorded.
        let relative = scan.outputs().volumes;
        let path = output.join(&relative);
        let verified = journal.latest(&scan.id).is_some_and(|record| {
            record.status == Status::Done
                && record.outputs.iter().any(|(file, hash)| {
                    file == &relative && sha256_file(&path).is_ok_and(|h| &h == hash)
                })
        });
        if verified {
            rows.push(read_scan_volumes(&path, scan)?);
        } else {
            missing.push(scan.id.clone());
        }
    }
    if rows.is_empty() {
        return Err(Error::InvalidState(format!(
            "no segmented scan in {}: run the participant level first",
            output.display()
        )));
    }
    let flags = find_outliers(&rows);
    let folder = output.join("group");
    std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
    let files = [
        folder.join("desc-subcortical_volumes.tsv"),
        folder.join("desc-subcortical_outliers.tsv"),
        folder.join("desc-subcortical_qc.png"),
    ];
    let mut table = String::from("scan_id\tparticipant_id\tsession_id");
    for s in &STRUCTURES {
        table.push_str(&format!("\t{}_mm3", s.short_name));
    }
    for s in &STRUCTURES {
        table.push_str(&format!("\t{}_confidence", s.short_name));
    }
    table.push_str("\tflags\n");
    for row in &rows {
        let subject = if row.subject.is_empty() {
            "n/a".to_string()
        } else {
            format!("sub-{}", row.subject)
        };
        let session = if row.session.is_empty() {
            "n/a".to_string()
        } else {
            format!("ses-{}", row.session)
        };
        table.push_str(&format!("{}\t{subject}\t{session}", row.scan));
        for v in row.volumes {
            table.push_str(&format!("\t{v:.3}"));
        }
        for c in row.confidence {
            table.push_str(&format!("\t{c:.4}"));
        }
        let count = flags.iter().filter(|f| f.scan == row.scan).count();
        table.push_str(&format!("\t{count}\n"));
    }
    write_text(&files[0], &table)?;
    let mut outliers = String::from("scan_id\tstructure\tkind\tvalue\n");
    for flag in &flags {
        outliers.push_str(&format!(
            "{}\t{}\t{}\t{:.3}\n",
            flag.scan,
            STRUCTURES[usize::from(flag.class - 1)].short_name,
            flag.kind,
            flag.value
        ));
    }
    write_text(&files[1], &outliers)?;
    draw_qc_figure(&files[2], &rows, &flags)?;
    Ok(GroupReport {
        rows: rows.len(),
        missing,
        flags,
        files,
    })
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    atomic_write(path, |file| {
        file.write_all(text.as_bytes())
            .map_err(|e| Error::io(path, e))
    })
}

/// Colour of scans flagged for the structure's volume.
pub const VOLUME_FLAG_COLOUR: [u8; 3] = [220, 30, 30];
/// Colour of scans flagged only for low confidence.
pub const CONFIDENCE_FLAG_COLOUR: [u8; 3] = [240, 150, 0];
/// Colour of unflagged scans.
pub const NORMAL_COLOUR: [u8; 3] = [40, 90, 200];

/// One column per structure: every scan's volume as a dot (jittered sideways), the median
/// as a grey bar, scans flagged for their volume in red, for low confidence in orange.
fn draw_qc_figure(path: &Path, rows: &[ScanVolumes], flags: &[Flag]) -> Result<()> {
    let (column, top, bottom, left) = (90i64, 40i64, 40i64, 10i64);
    let plot_height = 300i64;
    let width = left * 2 + column * 12;
    let height = top + plot_height + bottom;
    let mut canvas = RgbImage::from_pixel(width as u32, height as u32, image::Rgb([255, 255, 255]));
    draw_text(
        &mut canvas,
        left,
        6,
        "BrainSAM cohort QC: volume per structure (own scale)",
        [0, 0, 0],
        1,
    );
    draw_text(
        &mut canvas,
        left,
        6 + i64::from(text_height(1)) + 4,
        "red: |robust z| > 3.5   orange: confidence < 0.5   blue: ok   grey: median   under each name: largest volume, mm3",
        [90, 90, 90],
        1,
    );
    for (index, structure) in STRUCTURES.iter().enumerate() {
        let x0 = left + index as i64 * column;
        let values: Vec<f64> = rows.iter().map(|r| r.volumes[index]).collect();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let span = if max > min { max - min } else { 1.0 };
        let y_of =
            |v: f64| top + plot_height - 4 - ((v - min) / span * (plot_height - 8) as f64) as i64;
        let grey = [200, 200, 200];
        draw_line(
            &mut canvas,
            (x0 as f64, top as f64),
            (x0 as f64, (top + plot_height) as f64),
            grey,
        );
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let y = y_of(median) as f64;
        draw_line(
            &mut canvas,
            ((x0 + 15) as f64, y),
            ((x0 + column - 15) as f64, y),
            [150, 150, 150],
        );
        for (n, row) in rows.iter().enumerate() {
            let class = index as u8 + 1;
            let mine = |kind: &str| {
                flags
                    .iter()
                    .any(|f| f.scan == row.scan && f.class == class && f.kind == kind)
            };
            let (colour, radius) = if mine("volume") {
                (VOLUME_FLAG_COLOUR, 3)
            } else if mine("confidence") {
                (CONFIDENCE_FLAG_COLOUR, 2)
            } else {
                (NORMAL_COLOUR, 2)
            };
            // Deterministic sideways jitter so equal values stay visible.
            let x = x0 + column / 2 + ((n * 37) % 41) as i64 - 20;
            let y = y_of(row.volumes[index]);
            for dy in -radius..=radius {
                for dx in -radius..=radius {
                    put(&mut canvas, x + dx, y + dy, colour);
                }
            }
        }
        let name = structure.short_name;
        draw_text(
            &mut canvas,
            x0 + 8,
            top + plot_height + 8,
            name,
            [0, 0, 0],
            1,
        );
        draw_text(
            &mut canvas,
            x0 + 8,
            top + plot_height + 20,
            &format!("{max:.0}"),
            [90, 90, 90],
            1,
        );
    }
    save_png(&canvas, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robust_z_ignores_the_outlier_it_flags() {
        let z = robust_z(&[10.0, 11.0, 9.0, 10.5, 9.5, 10.0, 40.0]);
        assert!(z[6].unwrap() > 20.0, "{z:?}");
        assert!(z[..6].iter().all(|z| z.unwrap().abs() < 2.0), "{z:?}");
        assert!(robust_z(&[1.0, 1.0, 1.0])[0].is_none());
    }

    #[test]
    fn outliers_flag_volume_and_low_confidence() {
        let rows: Vec<ScanVolumes> = (0..8)
            .map(|n| ScanVolumes {
                scan: format!("s{n}"),
                subject: String::new(),
                session: String::new(),
                volumes: [1000.0 + 10.0 * n as f64; 12],
                confidence: [0.9; 12],
            })
            .collect();
        let mut rows = rows;
        rows[3].volumes[4] = 3000.0;
        rows[5].confidence[0] = 0.2;
        let flags = find_outliers(&rows);
        assert_eq!(flags.len(), 2, "{flags:?}");
        assert!(flags
            .iter()
            .any(|f| f.scan == "s3" && f.class == 5 && f.kind == "volume"));
        assert!(flags
            .iter()
            .any(|f| f.scan == "s5" && f.class == 1 && f.kind == "confidence"));
    }
}
