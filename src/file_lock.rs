//! Exclusive advisory file locks (`flock`), shared by the fine-tuning run lock and the
//! cohort journal. The kernel releases a lock when its file is closed or the process
//! dies, so a killed process never blocks a rerun.

use std::fs::File;

/// Takes an exclusive advisory lock on `file`. With `wait`, blocks until it is free;
/// without, returns Ok(false) at once when another open file (in this process or
/// another) holds it. Held until the file is closed.
#[cfg(unix)]
pub(crate) fn lock_exclusive(file: &File, wait: bool) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let operation = libc::LOCK_EX | if wait { 0 } else { libc::LOCK_NB };
    loop {
        // SAFETY: flock on a file descriptor this `File` owns; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            return Ok(true);
        }
        let error = std::io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EWOULDBLOCK) if !wait => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(error),
        }
    }
}

/// Without flock, nothing is locked (a warning says so).
#[cfg(not(unix))]
pub(crate) fn lock_exclusive(_file: &File, _wait: bool) -> std::io::Result<bool> {
    log::warn!("this platform has no flock: concurrent runs into one folder are not detected");
    Ok(true)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_file_cannot_take_a_held_lock() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("lock");
        let first = File::create(&path).unwrap();
        let second = File::open(&path).unwrap();
        assert!(lock_exclusive(&first, false).unwrap());
        assert!(!lock_exclusive(&second, false).unwrap());
        drop(first);
        assert!(lock_exclusive(&second, true).unwrap());
    }
}
