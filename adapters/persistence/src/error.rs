//! Driver errors stop here: they become [`StoreError`]s whose text is for
//! the log only. No message built here contains a token, a digest or a
//! password hash (Diesel's `Display` of a database error is the server's
//! message, without the offending values).

use application::ports::StoreError;

/// Anything that went wrong inside the adapter.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("no database connection: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    /// A wait that reached its bound (the request's deadline or the
    /// configured wait): the answer is 503, never a verdict.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// The SQLite group commit could not commit a batch (the reason is
    /// the first error's text): nothing of it was written.
    #[error("group commit: {0}")]
    Batch(String),
    /// A stored value that the domain does not accept.
    #[error("corrupt row: {0}")]
    Corrupt(&'static str),
}

impl DbError {
    /// The port's error, naming the operation that failed.
    pub(crate) fn into_store(self, operation: &'static str) -> StoreError {
        StoreError(format!("{operation}: {self}"))
    }
}

/// `map_err` helper: `.map_err(store("rotate"))`.
pub(crate) fn store(operation: &'static str) -> impl FnOnce(DbError) -> StoreError {
    move |e| e.into_store(operation)
}
