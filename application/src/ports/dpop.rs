//! Ports of DPoP (RFC 9449): reading a proof, and remembering the proof
//! ids already accepted.
//!
//! A proof's `jti` is recorded where the proof is used: by the
//! [`DpopReplayStore`] for a login or a resource request, and inside the
//! transaction of a refresh or a logout of a bound session
//! ([`CheckedProof`]), so that a refused or rolled-back request and its
//! proof id agree.

use domain::{Jkt, ProofClaims, ProofRejection, Timestamp};

use super::StoreError;

/// A DPoP proof whose signature and claims passed, whose `jti` is not yet
/// recorded. The store that uses it ([`super::SessionRepository::rotate`],
/// [`super::SessionRepository::end_by_token`]) records the `jti` in the
/// same transaction, across instances like [`DpopReplayStore::first_use`],
/// and takes the proof's key only when the `jti` was new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedProof {
    /// The key that signed the proof.
    pub key: Jkt,
    /// The proof's `jti`, at most [`domain::MAX_JTI_LEN`] bytes.
    pub jti: String,
    /// Until when the `jti` must be remembered
    /// ([`domain::ProofWindow::remember_until`]).
    pub remember_until: Timestamp,
}

/// Reads a DPoP proof: the cryptography of RFC 9449 §4.3 that the domain's
/// rules ([`domain::check_proof`]) do not cover.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait DpopProofReader: Send + Sync + 'static {
    /// Parses the compact JWS `proof`, checks its header (`typ` `dpop+jwt`,
    /// `alg` ES256 or EdDSA, a public `jwk` of that algorithm and nothing
    /// private in it) and its signature by that key, and returns the claims
    /// with the key's RFC 7638 thumbprint.
    ///
    /// # Errors
    /// The [`ProofRejection`] that describes the first fault found
    /// (`Malformed`, `WrongType`, `WrongAlgorithm`, `BadKey`,
    /// `BadSignature`). Never a storage error: it does no I/O.
    fn read(&self, proof: &str) -> Result<ProofClaims, ProofRejection>;
}

/// Proof ids (`jti`) already accepted, shared by every instance. Records
/// past their `until` are deleted by the cleanup job.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait DpopReplayStore: Send + Sync + 'static {
    /// Atomically records that the proof `jti` of key `jkt` was accepted,
    /// to be remembered until `until`. `false` when it was already recorded
    /// and `until` of that record has not passed at `now` (a replay).
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be asked; the proof must then
    /// be refused (not waved through).
    fn first_use(
        &self,
        jkt: &Jkt,
        jti: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
}
