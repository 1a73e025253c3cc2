//! Cohorts: segmenting hundreds to tens of thousands of scans, resumably.
//!
//! * [`scans`]: the scans of a BIDS dataset or a scan list, and their derivative names.
//! * [`journal`]: the manifest (JSON-lines journal) and per-scan locks.
//! * [`runner`]: the worker pool (model loaded once, volumes read ahead).
//! * [`group`]: the cohort's volumes table, outliers and QC figure.
//! * [`slurm`]: job arrays on SLURM over the same journal.
//!
//! A scan counts as done only when the journal has a done record for the current model
//! and settings and every output it lists is present with the recorded SHA-256; anything
//! else (never run, failed, killed midway, outputs deleted or damaged) is redone by the
//! next run. Outputs are staged and renamed into place, so no half-written file is ever
//! visible under its final name.

pub mod group;
pub mod journal;
pub mod runner;
pub mod scans;
pub mod slurm;

use std::io::Write;
use std::path::Path;

pub use group::{run_group, GroupReport};
pub use runner::{label_table, run, volumes_table, Event, Settings, Summary};
pub use scans::{discover_bids, read_scan_list, Scan};

use crate::error::{Error, Result};
use crate::weights::atomic_write;

/// Refuses an output folder that is the BIDS folder itself or lies inside it anywhere
/// but under its `derivatives/` folder (the BIDS App convention).
pub fn check_bids_output(bids: &Path, output: &Path) -> Result<()> {
    let absolute = |p: &Path| std::path::absolute(p).map_err(|e| Error::io(p, e));
    let (bids_abs, output_abs) = (absolute(bids)?, absolute(output)?);
    if let Ok(inside) = output_abs.strip_prefix(&bids_abs) {
        if !inside.starts_with("derivatives") || inside.as_os_str() == "derivatives" {
            return Err(Error::invalid_argument(format!(
                "output folder {} lies inside the BIDS dataset {}: use a folder outside it or \
                 under its derivatives/ folder",
                output.display(),
                bids.display()
            )));
        }
    }
    Ok(())
}

/// Writes the BIDS-Derivatives `dataset_description.json` of `output` (atomically):
/// name, BIDS version, `DatasetType` derivative, `GeneratedBy` BrainSAM with its version
/// and the model, and the source dataset.
pub fn write_dataset_description(output: &Path, source: &Path, model: &str) -> Result<()> {
    std::fs::create_dir_all(output).map_err(|e| Error::io(output, e))?;
    let source = std::path::absolute(source).map_err(|e| Error::io(source, e))?;
    let json = serde_json::json!({
        "Name": "BrainSAM subcortical segmentation",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{
            "Name": "BrainSAM",
            "Version": env!("CARGO_PKG_VERSION"),
            "Description": format!("SAM + LoRA segmentation of 12 subcortical structures; model {model}")
        }],
        "SourceDatasets": [{ "URL": format!("file://{}", source.display()) }]
    });
    let path = output.join("dataset_description.json");
    let text = serde_json::to_string_pretty(&json).expect("serialisable") + "\n";
    atomic_write(&path, |file| {
        file.write_all(text.as_bytes())
            .map_err(|e| Error::io(&path, e))
    })
}
