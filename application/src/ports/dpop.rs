//! Ports of DPoP (RFC 9449): reading a proof, and remembering the proof
//! ids already accepted.

use domain::{Jkt, ProofClaims, ProofRejection, Timestamp};

use super::StoreError;

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
