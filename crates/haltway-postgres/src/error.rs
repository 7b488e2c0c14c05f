//! PostgreSQL errors as portable store errors.

use haltway_core::{Error, StoreErrorKind};
use tokio_postgres::error::SqlState;

/// The portable kind of a driver error.
pub(crate) fn kind_of(e: &tokio_postgres::Error) -> StoreErrorKind {
    if e.is_closed() {
        return StoreErrorKind::Unavailable;
    }
    match e.code() {
        Some(c) if retryable(c) => StoreErrorKind::Unavailable,
        Some(c) if *c == SqlState::DISK_FULL || *c == SqlState::OUT_OF_MEMORY => {
            StoreErrorKind::Exhausted
        }
        Some(c) if *c == SqlState::UNDEFINED_TABLE || *c == SqlState::INVALID_SCHEMA_NAME => {
            StoreErrorKind::Incompatible
        }
        Some(_) => StoreErrorKind::Other,
        // No SQL state: an I/O or protocol failure, i.e. the connection.
        None => StoreErrorKind::Unavailable,
    }
}

/// States after which the same transaction may succeed if run again.
pub(crate) fn retryable(c: &SqlState) -> bool {
    *c == SqlState::T_R_DEADLOCK_DETECTED
        || *c == SqlState::T_R_SERIALIZATION_FAILURE
        || *c == SqlState::UNIQUE_VIOLATION
        || *c == SqlState::ADMIN_SHUTDOWN
        || *c == SqlState::CRASH_SHUTDOWN
        || *c == SqlState::CANNOT_CONNECT_NOW
}

/// A driver error as a store error.
pub(crate) fn pg(e: tokio_postgres::Error) -> Error {
    let kind = kind_of(&e);
    let detail = e
        .as_db_error()
        .map(|d| format!("{} ({})", d.message(), d.code().code()))
        .unwrap_or_else(|| e.to_string());
    Error::store(kind, format!("postgres: {detail}"))
}
