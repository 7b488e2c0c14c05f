//! SQLite errors as portable store errors.

use haltway_core::{Error, StoreErrorKind};
use rusqlite::ErrorCode;

/// The portable kind of a SQLite error.
pub(crate) fn kind_of(e: &rusqlite::Error) -> StoreErrorKind {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreErrorKind::Unavailable,
        Some(ErrorCode::DiskFull | ErrorCode::OutOfMemory) => StoreErrorKind::Exhausted,
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreErrorKind::Incompatible,
        _ => StoreErrorKind::Other,
    }
}

/// A SQLite error as a store error.
pub(crate) fn sql(e: rusqlite::Error) -> Error {
    let kind = kind_of(&e);
    let hint = match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => " (the file is not a SQLite database)",
        Some(ErrorCode::DiskFull) => " (the disk is full)",
        Some(ErrorCode::ReadOnly) => " (the database or its folder is read-only)",
        Some(ErrorCode::CannotOpen) => " (check that the folder exists and is writable)",
        Some(ErrorCode::PermissionDenied) => " (permission denied)",
        _ => "",
    };
    Error::store_caused(kind, format!("sqlite{hint}"), e)
}

/// A SQLite error while doing `what`.
pub(crate) fn sql_at(e: rusqlite::Error, what: &str) -> Error {
    match sql(e) {
        Error::Store {
            kind,
            message,
            cause,
        } => Error::Store {
            kind,
            message: format!("{what}: {message}"),
            cause,
        },
        other => other,
    }
}
