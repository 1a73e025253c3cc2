//! The cohort manifest: an append-only JSON-lines journal (`.brainsam/journal.jsonl` in
//! the output folder) with one record per event (scan started, done, failed), and
//! per-scan lock files that let several processes (workers, SLURM array tasks, a second
//! `brainsam cohort` on the same folder) share one output folder without doing a scan
//! twice.
//!
//! Why JSON lines and not SQLite: appends of one short line are atomic on local and
//! network file systems, a process killed mid-write leaves at most one torn last line
//! (skipped with a warning when read), the file is readable with `grep`/`jq`/pandas
//! without a driver, and there is no C library to build or database lock that breaks on
//! NFS (SQLite's documented weak spot, and where cluster outputs live).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Folder (inside the output folder) of the journal, locks, staging area and SLURM files.
pub const STATE_DIR: &str = ".brainsam";

/// What happened to a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A worker began segmenting it.
    Started,
    /// All outputs were written (their SHA-256 are in the record).
    Done,
    /// It failed; the record has the error.
    Failed,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Scan id.
    pub scan: String,
    /// Input file.
    pub input: PathBuf,
    /// Event.
    pub status: Status,
    /// UTC time, ISO 8601.
    pub time: String,
    /// Seconds the scan took (reading, segmenting, writing), for done and failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Error message, for failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `brainsam <version>`.
    pub software: String,
    /// Model file, adapter and their SHA-256, and the segmentation settings.
    pub model: String,
    /// Fingerprint of model and settings: a done record only counts for the same one.
    pub fingerprint: String,
    /// Device the scan ran on.
    pub device: String,
    /// Host name and process id.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// For done: output path (relative to the output folder) → SHA-256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<(PathBuf, String)>,
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// SHA-256 of a string, hex.
pub fn sha256_text(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// Current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// This machine's host name.
pub fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let ok = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    if ok {
        String::from_utf8_lossy(&buffer[..end]).into_owned()
    } else {
        "unknown".to_string()
    }
}

/// `flock` on an open file; `Ok(false)` when another process holds it and `wait` is false.
fn flock(file: &File, path: &Path, wait: bool) -> Result<bool> {
    crate::file_lock::lock_exclusive(file, wait).map_err(|e| Error::io(path, e))
}

/// Exclusive claim on one scan, held until dropped (or the process dies: the kernel then
/// releases it, so a killed worker never blocks a rerun).
#[derive(Debug)]
pub struct ScanLock {
    _file: File,
}

/// The journal of an output folder.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    locks: PathBuf,
    /// Bytes already read.
    offset: u64,
    /// Latest done or failed record per scan, and the started records without a later end.
    latest: HashMap<String, Record>,
    /// Done records per scan (to check that no scan was done twice).
    done_counts: HashMap<String, usize>,
    /// Lines that did not parse (a torn last line after a crash or a full disk).
    pub skipped_lines: usize,
}

impl Journal {
    /// Opens (creating when missing) the journal of `output`, creating the output folder
    /// and its state folder; an output folder that cannot be written is an error that
    /// says so before any work starts.
    pub fn open(output: &Path) -> Result<Journal> {
        let state = output.join(STATE_DIR);
        let locks = state.join("locks");
        for folder in [output, &state, &locks, &state.join("staging")] {
            std::fs::create_dir_all(folder).map_err(|e| not_writable(output, folder, e))?;
        }
        let path = state.join("journal.jsonl");
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| not_writable(output, &path, e))?;
        // A probe: a read-only mount lets root open existing files but not create any.
        let probe = state.join(format!(".probe-{}", std::process::id()));
        File::create(&probe).map_err(|e| not_writable(output, &probe, e))?;
        let _ = std::fs::remove_file(&probe);
        let mut journal = Journal {
            path,
            locks,
            offset: 0,
            latest: HashMap::new(),
            done_counts: HashMap::new(),
            skipped_lines: 0,
        };
        journal.refresh()?;
        Ok(journal)
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the records appended since the last read (by this or other processes).
    pub fn refresh(&mut self) -> Result<()> {
        let mut file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        file.seek(SeekFrom::Start(self.offset))
            .map_err(|e| Error::io(&self.path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io(&self.path, e))?;
        // Only complete lines; a line still being appended is read next time.
        let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        for line in bytes[..end].split(|&b| b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Record>(line) {
                Ok(record) => self.apply(record),
                Err(error) => {
                    self.skipped_lines += 1;
                    log::warn!(
                        "{}: skipping an unreadable line ({error})",
                        self.path.display()
                    );
                }
            }
        }
        self.offset += end as u64;
        Ok(())
    }

    fn apply(&mut self, record: Record) {
        if record.status == Status::Done {
            *self.done_counts.entry(record.scan.clone()).or_insert(0) += 1;
        }
        if record.status == Status::Started {
            // A start does not hide an earlier done/failed (the start may have been killed).
            self.latest.entry(record.scan.clone()).or_insert(record);
        } else {
            self.latest.insert(record.scan.clone(), record);
        }
    }

    /// The latest record of `scan` (done or failed; started only if nothing ended).
    pub fn latest(&self, scan: &str) -> Option<&Record> {
        self.latest.get(scan)
    }

    /// How many done records `scan` has.
    pub fn done_count(&self, scan: &str) -> usize {
        self.done_counts.get(scan).copied().unwrap_or(0)
    }

    /// Whether `scan` is done with `fingerprint` and every output it recorded is present
    /// under `output` with the recorded SHA-256 (so a deleted, truncated or replaced file
    /// makes the scan pending again).
    pub fn verified_done(&self, output: &Path, scan: &str, fingerprint: &str) -> bool {
        let Some(record) = self.latest(scan) else {
            return false;
        };
        record.status == Status::Done
            && record.fingerprint == fingerprint
            && !record.outputs.is_empty()
            && record
                .outputs
                .iter()
                .all(|(path, hash)| sha256_file(&output.join(path)).is_ok_and(|h| &h == hash))
    }

    /// Appends one record (one `write` of one line, under an exclusive lock, synced). A
    /// torn last line (a write cut short by a full disk) is first closed with a newline,
    /// so it cannot swallow the new record.
    pub fn append(&self, record: &Record) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let mut line = serde_json::to_string(record)
            .map_err(|e| Error::Internal(format!("journal record: {e}")))?;
        line.push('\n');
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        flock(&file, &self.path, true)?;
        let length = file.metadata().map_err(|e| Error::io(&self.path, e))?.len();
        let mut last = [b'\n'];
        if length > 0 {
            file.read_exact_at(&mut last, length - 1)
                .map_err(|e| Error::io(&self.path, e))?;
        }
        if last[0] != b'\n' {
            line.insert(0, '\n');
        }
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Claims `scan` for this process, or None when another process holds it.
    pub fn try_claim(&self, scan: &str) -> Result<Option<ScanLock>> {
        let path = self.locks.join(format!("{scan}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(flock(&file, &path, false)?.then_some(ScanLock { _file: file }))
    }
}

fn not_writable(output: &Path, path: &Path, error: std::io::Error) -> Error {
    Error::io(
        path,
        std::io::Error::new(
            error.kind(),
            format!(
                "output folder {} is not writable: {error}",
                output.display()
            ),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(scan: &str, status: Status) -> Record {
        Record {
            scan: scan.into(),
            input: PathBuf::from("in.nii"),
            status,
            time: utc_now(),
            seconds: None,
            error: None,
            software: "brainsam test".into(),
            model: "m".into(),
            fingerprint: "f".into(),
            device: "cpu".into(),
            host: host_name(),
            pid: 1,
            outputs: vec![],
        }
    }

    #[test]
    fn torn_lines_are_skipped_and_later_records_win() {
        let dir = std::env::temp_dir().join(format!("brainsam-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let journal = Journal::open(&dir).unwrap();
        journal.append(&record("a", Status::Failed)).unwrap();
        journal.append(&record("a", Status::Started)).unwrap();
        let mut file = OpenOptions::new()
            .append(true)
            .open(journal.path())
            .unwrap();
        file.write_all(b"{\"scan\": \"torn").unwrap();
        journal.append(&record("b", Status::Done)).unwrap();
        let journal = Journal::open(&dir).unwrap();
        assert_eq!(journal.skipped_lines, 1);
        assert_eq!(journal.latest("a").unwrap().status, Status::Failed);
        assert_eq!(journal.latest("b").unwrap().status, Status::Done);
        assert_eq!(journal.done_count("b"), 1);
        // Done without outputs never counts as verified.
        assert!(!journal.verified_done(&dir, "b", "f"));
        let lock = journal.try_claim("a").unwrap();
        assert!(lock.is_some());
        assert!(
            journal.try_claim("a").unwrap().is_none(),
            "flock is per open file"
        );
        drop(lock);
        assert!(journal.try_claim("a").unwrap().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn utc_time_is_iso_8601() {
        let now = utc_now();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'), "{now}");
    }
}
