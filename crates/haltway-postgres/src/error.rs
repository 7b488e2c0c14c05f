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

/// A driver error as a store error, the driver's error its cause (a server error's message
/// and SQL state are the cause's own cause).
pub(crate) fn pg(e: tokio_postgres::Error) -> Error {
    let kind = kind_of(&e);
    let what = match e.code() {
        Some(state) => format!("postgres (SQL state {})", state.code()),
        None => "postgres".to_owned(),
    };
    Error::store_caused(kind, what, e)
}
