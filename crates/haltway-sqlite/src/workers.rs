//! Which workers of a database file are alive, told by the operating system: each registered
//! worker holds an exclusive lock on a file of its own beside the database, for as long as its
//! store is open. The lock goes when the process does, however it ends (`kill -9` included),
//! so another process, or the same program started again, can take a gone worker's running
//! jobs at once instead of waiting out their leases, and never takes those of a worker that is
//! alive, however slow.
//!
//! # Invariants
//! - A worker is registered here iff `<db>-workers/<hash of its id>.lock` exists; the file holds
//!   the worker's id.
//! - A lock file is locked by its worker's process for as long as that worker's store is open;
//!   a file that can be locked by anyone else belongs to a gone worker.
//! - A gone worker's file is removed only by the process that holds its lock, and only while
//!   the path still names the file it locked.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use haltway_core::{Error, Result, StoreErrorKind, kernel};
use parking_lot::Mutex;

/// The lock files of one database and the ones this store holds.
#[derive(Debug)]
pub(crate) struct Workers {
    dir: PathBuf,
    held: Mutex<Vec<(PathBuf, File)>>,
}

/// A gone worker's lock, held while its jobs are recovered.
#[derive(Debug)]
pub(crate) struct Gone {
    pub(crate) worker: String,
    path: PathBuf,
    file: File,
}

fn io(what: &str, path: &Path, e: &std::io::Error) -> Error {
    Error::store(
        StoreErrorKind::Other,
        format!("{what} {}: {e}", path.display()),
    )
}

impl Workers {
    pub(crate) fn new(db: &Path) -> Self {
        let mut dir = db.as_os_str().to_owned();
        dir.push("-workers");
        Workers {
            dir: PathBuf::from(dir),
            held: Mutex::new(Vec::new()),
        }
    }

    fn path_of(&self, worker: &str) -> PathBuf {
        self.dir.join(format!(
            "{:016x}.lock",
            kernel::stable_hash(worker.as_bytes())
        ))
    }

    /// Registers `worker` as alive in this process. Returns the lock of an earlier holder of
    /// the id if one left its file (it is gone: its lock was free), for its jobs to be
    /// recovered; the file then stays, held by this process.
    pub(crate) fn register(&self, worker: &str) -> Result<bool> {
        let path = self.path_of(worker);
        if self.held.lock().iter().any(|(p, _)| *p == path) {
            return Ok(false);
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| io("creating", &self.dir, &e))?;
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io("opening", &path, &e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::InvalidInput {
                    field: "worker",
                    reason: format!("a live worker already uses the id `{worker}`"),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io("locking", &path, &e)),
        }
        file.set_len(0).map_err(|e| io("writing", &path, &e))?;
        file.write_all(worker.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io("writing", &path, &e))?;
        self.held.lock().push((path, file));
        Ok(existed)
    }

    /// `true` when `worker` was registered here (by this store, in this process).
    pub(crate) fn holds(&self, worker: &str) -> bool {
        let path = self.path_of(worker);
        self.held.lock().iter().any(|(p, _)| *p == path)
    }

    /// The registered workers that are gone, each with its lock held.
    pub(crate) fn gone(&self) -> Vec<Gone> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let held: Vec<PathBuf> = self.held.lock().iter().map(|(p, _)| p.clone()).collect();
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "lock") || held.contains(&path) {
                continue;
            }
            let Ok(mut file) = OpenOptions::new().read(true).write(true).open(&path) else {
                continue;
            };
            if file.try_lock().is_err() {
                // Alive, or being looked at by another process right now.
                continue;
            }
            let mut worker = String::new();
            if file.read_to_string(&mut worker).is_err() || worker.is_empty() {
                // Created but not yet written by a worker that is registering: not gone.
                continue;
            }
            out.push(Gone { worker, path, file });
        }
        out
    }

    /// Removes a gone worker's file once its jobs are recovered.
    pub(crate) fn forget(gone: Gone) {
        let same = std::fs::metadata(&gone.path)
            .ok()
            .zip(gone.file.metadata().ok())
            .is_some_and(|(at_path, locked)| {
                at_path.ino() == locked.ino() && at_path.dev() == locked.dev()
            });
        if same {
            let _ = std::fs::remove_file(&gone.path);
        }
        drop(gone.file);
    }
}

#[cfg(test)]
mod tests {
    use super::Workers;

    #[test]
    fn a_worker_is_gone_once_its_holder_lets_go_and_never_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("h.db");
        let a = Workers::new(&db);
        assert!(!a.register("w-1").expect("register"), "a new id");
        assert!(a.register("w-1").is_ok(), "registering twice is a no-op");
        let b = Workers::new(&db);
        assert!(b.gone().is_empty(), "w-1 is alive in `a`");
        assert!(
            b.register("w-1").is_err(),
            "a live worker's id cannot be taken"
        );
        drop(a);
        let gone = b.gone();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].worker, "w-1");
        assert!(b.gone().is_empty(), "locked while being recovered");
        for g in gone {
            Workers::forget(g);
        }
        assert!(b.gone().is_empty(), "forgotten");
        assert!(
            !b.register("w-1").expect("register"),
            "the file was removed"
        );
    }

    #[test]
    fn a_restarted_worker_with_the_same_id_finds_its_predecessors_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("h.db");
        let first = Workers::new(&db);
        first.register("node-a").expect("register");
        drop(first);
        let again = Workers::new(&db);
        assert!(
            again.register("node-a").expect("register"),
            "the predecessor left its file"
        );
        assert!(
            Workers::new(&db).gone().is_empty(),
            "and now it is held again"
        );
    }
}
