//! Which scans a cohort holds and where each scan's derivatives go: BIDS discovery and
//! validation (`sub-*/[ses-*/]anat/*_T1w.nii[.gz]`), scan lists (one path per line),
//! and the BIDS-Derivatives file names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Description of the outputs, the `desc-` entity of every derivative file.
pub const DESC: &str = "desc-subcortical";

/// One input volume of a cohort and the names of its outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scan {
    /// Unique name in the cohort (the BIDS entities before `_T1w`, e.g. `sub-01_ses-1`,
    /// or the file name without extension for scan lists).
    pub id: String,
    /// The T1 volume.
    pub input: PathBuf,
    /// Folder of the outputs, relative to the output folder.
    pub folder: PathBuf,
    /// BIDS participant label (without `sub-`), when known.
    pub subject: Option<String>,
    /// BIDS session label (without `ses-`), when known.
    pub session: Option<String>,
}

/// The four outputs of a scan, relative to the output folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOutputs {
    /// Label map (class ids 0..12 on the input's grid): `<id>_desc-subcortical_dseg.nii.gz`.
    pub labels: PathBuf,
    /// The label table of the label map (BIDS `dseg.tsv`: index, name, abbreviation, colour).
    pub label_table: PathBuf,
    /// Per-structure volumes (mm³) and confidences: `<id>_desc-subcortical_volumes.tsv`.
    pub volumes: PathBuf,
    /// Overview PNG (three views with the structures coloured).
    pub overview: PathBuf,
}

impl ScanOutputs {
    /// All four, in a fixed order.
    pub fn all(&self) -> [&Path; 4] {
        [
            &self.labels,
            &self.label_table,
            &self.volumes,
            &self.overview,
        ]
    }
}

impl Scan {
    /// Output file names (relative to the output folder).
    pub fn outputs(&self) -> ScanOutputs {
        let name = |suffix: &str| self.folder.join(format!("{}_{DESC}_{suffix}", self.id));
        ScanOutputs {
            labels: name("dseg.nii.gz"),
            label_table: name("dseg.tsv"),
            volumes: name("volumes.tsv"),
            overview: name("overview.png"),
        }
    }
}

/// Whether `path` names a NIfTI file by its extension.
fn nifti_stem(name: &str) -> Option<&str> {
    name.strip_suffix(".nii.gz")
        .or_else(|| name.strip_suffix(".nii"))
}

/// The label of a `key-label` folder or entity (`sub-01` → `01`), if it has that form.
fn entity_label<'a>(name: &'a str, key: &str) -> Option<&'a str> {
    name.strip_prefix(key)
        .and_then(|rest| rest.strip_prefix('-'))
        .filter(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric()))
}

fn read_dir_sorted(folder: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|e| Error::io(folder, e))?
        .map(|entry| entry.map(|e| e.path()).map_err(|e| Error::io(folder, e)))
        .collect::<Result<_>>()?;
    entries.sort();
    Ok(entries)
}

/// Labels given on the command line, with or without their `sub-`/`ses-` prefix.
fn normalise_labels(labels: &[String], key: &str) -> BTreeSet<String> {
    labels
        .iter()
        .map(|l| {
            l.trim()
                .strip_prefix(&format!("{key}-"))
                .unwrap_or(l.trim())
                .to_string()
        })
        .collect()
}

/// Finds the T1w scans of a BIDS dataset: `sub-*/[ses-*/]anat/*_T1w.nii[.gz]`, limited to
/// `participants` and `sessions` when they are not empty (labels with or without their
/// `sub-`/`ses-` prefix). A folder that is not a BIDS dataset (no
/// `dataset_description.json`, no `sub-*` folders), an unknown participant or session
/// label, or a selection without any T1w image are errors that say so.
pub fn discover_bids(
    root: &Path,
    participants: &[String],
    sessions: &[String],
) -> Result<Vec<Scan>> {
    if !root.is_dir() {
        return Err(Error::invalid_argument(format!(
            "BIDS folder {} does not exist or is not a folder",
            root.display()
        )));
    }
    if !root.join("dataset_description.json").is_file() {
        return Err(Error::invalid_argument(format!(
            "{} is not a BIDS dataset: it has no dataset_description.json (see \
             https://bids-specification.readthedocs.io)",
            root.display()
        )));
    }
    let mut subjects = BTreeMap::new();
    for path in read_dir_sorted(root)? {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if let Some(label) = entity_label(&name, "sub") {
            if path.is_dir() {
                subjects.insert(label.to_string(), path);
            }
        }
    }
    if subjects.is_empty() {
        return Err(Error::invalid_argument(format!(
            "{} is not a BIDS dataset: it has no sub-<label> folders",
            root.display()
        )));
    }
    let wanted = normalise_labels(participants, "sub");
    let unknown: Vec<&String> = wanted
        .iter()
        .filter(|l| !subjects.contains_key(*l))
        .collect();
    if !unknown.is_empty() {
        return Err(Error::invalid_argument(format!(
            "participant label(s) {} not found in {} (it has {})",
            unknown
                .iter()
                .map(|l| format!("sub-{l}"))
                .collect::<Vec<_>>()
                .join(", "),
            root.display(),
            subjects
                .keys()
                .map(|l| format!("sub-{l}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let wanted_sessions = normalise_labels(sessions, "ses");
    let mut seen_sessions = BTreeSet::new();
    let mut scans = Vec::new();
    for (subject, subject_dir) in &subjects {
        if !wanted.is_empty() && !wanted.contains(subject) {
            continue;
        }
        // (session label, anat folder, output folder)
        let mut anat_dirs: Vec<(Option<String>, PathBuf, PathBuf)> = Vec::new();
        let sub_folder = PathBuf::from(format!("sub-{subject}"));
        for path in read_dir_sorted(subject_dir)? {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if name == "anat" && path.is_dir() {
                anat_dirs.push((None, path.clone(), sub_folder.join("anat")));
            } else if let Some(session) = entity_label(&name, "ses") {
                seen_sessions.insert(session.to_string());
                if path.join("anat").is_dir()
                    && (wanted_sessions.is_empty() || wanted_sessions.contains(session))
                {
                    anat_dirs.push((
                        Some(session.to_string()),
                        path.join("anat"),
                        sub_folder.join(&name).join("anat"),
                    ));
                }
            }
        }
        for (session, anat, folder) in anat_dirs {
            if session.is_none() && !wanted_sessions.is_empty() {
                continue;
            }
            for path in read_dir_sorted(&anat)? {
                let name = path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                let Some(id) = nifti_stem(&name).and_then(|s| s.strip_suffix("_T1w")) else {
                    continue;
                };
                if !id.starts_with(&format!("sub-{subject}")) {
                    return Err(Error::invalid_file(
                        &path,
                        format!("a T1w image in sub-{subject} must be named sub-{subject}_..._T1w.nii[.gz]"),
                    ));
                }
                scans.push(Scan {
                    id: id.to_string(),
                    input: path.clone(),
                    folder: folder.clone(),
                    subject: Some(subject.clone()),
                    session: session.clone(),
                });
            }
        }
    }
    let unknown: Vec<&String> = wanted_sessions
        .iter()
        .filter(|l| !seen_sessions.contains(*l))
        .collect();
    if !unknown.is_empty() {
        return Err(Error::invalid_argument(format!(
            "session label(s) {} not found in {}",
            unknown
                .iter()
                .map(|l| format!("ses-{l}"))
                .collect::<Vec<_>>()
                .join(", "),
            root.display()
        )));
    }
    if scans.is_empty() {
        return Err(Error::invalid_argument(format!(
            "no T1w image (sub-*/[ses-*/]anat/*_T1w.nii[.gz]) in {} for the selected participants \
             and sessions",
            root.display()
        )));
    }
    ensure_unique(&scans)?;
    Ok(scans)
}

/// Reads a scan list: one NIfTI path per line (blank lines and `#` comments ignored;
/// relative paths are relative to the list's folder). Each scan is named after its file
/// (without `.nii`/`.nii.gz`); files with the same name in different folders get the
/// parent folder names prefixed until the names differ. Non-NIfTI names and duplicate
/// paths are errors naming the line. Missing files are not: they fail as scans (recorded
/// in the journal) so that one bad line does not stop a cohort.
pub fn read_scan_list(list: &Path) -> Result<Vec<Scan>> {
    let text = std::fs::read_to_string(list).map_err(|e| Error::io(list, e))?;
    let base = list.parent().unwrap_or(Path::new("."));
    let mut inputs: Vec<PathBuf> = Vec::new();
    let mut seen = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let path = if Path::new(line).is_absolute() {
            PathBuf::from(line)
        } else {
            base.join(line)
        };
        let path = std::path::absolute(&path).map_err(|e| Error::io(&path, e))?;
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if nifti_stem(&name).is_none() {
            return Err(Error::invalid_file(
                list,
                format!("line {}: {line} is not a .nii or .nii.gz file", number + 1),
            ));
        }
        if let Some(first) = seen.insert(path.clone(), number + 1) {
            return Err(Error::invalid_file(
                list,
                format!(
                    "line {}: {line} is listed twice (first on line {first})",
                    number + 1
                ),
            ));
        }
        inputs.push(path);
    }
    if inputs.is_empty() {
        return Err(Error::invalid_file(list, "the scan list names no scans"));
    }
    let scans = name_scans(&inputs);
    ensure_unique(&scans)?;
    Ok(scans)
}

/// Names scans after their files, prefixing parent folder names where names collide.
fn name_scans(inputs: &[PathBuf]) -> Vec<Scan> {
    let component_names = |path: &Path| -> Vec<String> {
        path.components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .filter(|c| c != "/" && c != "." && c != "..")
            .collect()
    };
    let sanitise = |text: &str| -> String {
        text.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let name_with = |path: &Path, parents: usize| -> String {
        let parts = component_names(path);
        let file = parts.last().cloned().unwrap_or_default();
        let stem = nifti_stem(&file).unwrap_or(&file).to_string();
        let start = parts.len().saturating_sub(1 + parents);
        let mut pieces: Vec<String> = parts[start..parts.len().saturating_sub(1)].to_vec();
        pieces.push(stem);
        sanitise(&pieces.join("_"))
    };
    let mut depth = vec![0usize; inputs.len()];
    loop {
        let names: Vec<String> = inputs
            .iter()
            .zip(&depth)
            .map(|(p, &d)| name_with(p, d))
            .collect();
        let mut counts = BTreeMap::new();
        for name in &names {
            *counts.entry(name.clone()).or_insert(0) += 1;
        }
        let mut changed = false;
        for (index, name) in names.iter().enumerate() {
            if counts[name] > 1 && depth[index] + 1 < component_names(&inputs[index]).len() {
                depth[index] += 1;
                changed = true;
            }
        }
        if !changed {
            return inputs
                .iter()
                .zip(names)
                .map(|(input, id)| Scan {
                    folder: PathBuf::from(&id),
                    id,
                    input: input.clone(),
                    subject: None,
                    session: None,
                })
                .collect();
        }
    }
}

fn ensure_unique(scans: &[Scan]) -> Result<()> {
    let mut seen = BTreeSet::new();
    for scan in scans {
        if !seen.insert(scan.id.as_str()) {
            return Err(Error::invalid_argument(format!(
                "two scans would share the output name {} (one is {})",
                scan.id,
                scan.input.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_file_names_get_their_folders_prefixed() {
        let scans = name_scans(&[
            PathBuf::from("/data/a/T1.nii.gz"),
            PathBuf::from("/data/b/T1.nii.gz"),
            PathBuf::from("/data/c/other.nii"),
        ]);
        let ids: Vec<&str> = scans.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a_T1", "b_T1", "other"]);
        assert_eq!(
            scans[0].outputs().labels,
            PathBuf::from("a_T1/a_T1_desc-subcortical_dseg.nii.gz")
        );
    }

    #[test]
    fn bids_names_keep_the_entities_before_t1w() {
        let scan = Scan {
            id: "sub-01_ses-2_run-1".into(),
            input: PathBuf::from("x"),
            folder: PathBuf::from("sub-01/ses-2/anat"),
            subject: Some("01".into()),
            session: Some("2".into()),
        };
        assert_eq!(
            scan.outputs().volumes,
            PathBuf::from("sub-01/ses-2/anat/sub-01_ses-2_run-1_desc-subcortical_volumes.tsv")
        );
        assert_eq!(entity_label("sub-01", "sub"), Some("01"));
        assert_eq!(entity_label("sub-0_1", "sub"), None);
    }
}
