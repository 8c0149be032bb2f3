//! DPoP proofs (RFC 9449) as the use cases accept them: read by the
//! [`DpopProofReader`] port, checked by the domain's rules, and their `jti`
//! recorded once: in the [`DpopReplayStore`] for a login or a resource
//! request ([`TokenWarden::accept_proof`]), in the store's own transaction
//! for a refresh or a logout ([`TokenWarden::check_proof_input`] hands it a
//! [`CheckedProof`]).

use std::sync::Arc;

use domain::{
    check_proof, DpopMode, HttpUri, Jkt, ProofRejection, ProofRequest, ProofWindow, Timestamp,
};

use crate::ports::{CheckedProof, DpopProofReader, DpopReplayStore};
use crate::{TokenWarden, Unexpected};

/// A `DPoP` header as received, with the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopInput {
    /// The compact JWS of the header.
    pub proof: String,
    /// The request's method, as sent (`POST`).
    pub method: String,
    /// The URI the client addressed.
    pub uri: HttpUri,
}

/// How DPoP is enforced (`TOKENWARDEN_DPOP`, `TOKENWARDEN_DPOP_MAX_AGE`,
/// `TOKENWARDEN_CLOCK_LEEWAY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpopSettings {
    pub mode: DpopMode,
    pub window: ProofWindow,
}

/// The adapters and settings DPoP needs.
pub struct Dpop {
    pub reader: Arc<dyn DpopProofReader>,
    pub replay: Arc<dyn DpopReplayStore>,
    pub settings: DpopSettings,
}

/// Why a proof was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    /// Answered `invalid_dpop_proof`; the rejection goes to the log only.
    #[error("invalid DPoP proof: {0}")]
    Invalid(ProofRejection),
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl TokenWarden {
    /// Enables DPoP. Without it every proof is refused as invalid, and a
    /// login in `required` mode can never succeed.
    #[must_use]
    pub fn with_dpop(mut self, dpop: Dpop) -> Self {
        self.dpop = Some(dpop);
        self
    }

    /// Whether a login must carry a proof.
    pub fn dpop_mode(&self) -> DpopMode {
        self.dpop
            .as_ref()
            .map_or(DpopMode::Optional, |d| d.settings.mode)
    }

    /// Checks `input` as a proof for its request (with `access_token`,
    /// whose hash `ath` must carry, on resource requests): signature and
    /// claims. Does no I/O: the `jti` is left for the caller to record.
    ///
    /// # Errors
    /// The first fault of the proof; [`ProofRejection::Malformed`] when DPoP
    /// is not configured.
    pub(crate) fn check_proof_input(
        &self,
        input: &DpopInput,
        access_token: Option<&str>,
        now: Timestamp,
    ) -> Result<CheckedProof, ProofRejection> {
        let dpop = self.dpop.as_ref().ok_or(ProofRejection::Malformed)?;
        let claims = dpop.reader.read(&input.proof)?;
        let request = ProofRequest {
            method: &input.method,
            uri: &input.uri,
            access_token,
        };
        check_proof(&claims, &request, dpop.settings.window, now)?;
        Ok(CheckedProof {
            remember_until: dpop.settings.window.remember_until(claims.iat),
            key: claims.jkt,
            jti: claims.jti,
        })
    }

    /// [`TokenWarden::check_proof_input`] for the request of a refresh or a
    /// logout: a refused proof is no proof (logged, never an error).
    pub(crate) fn proof_or_none(
        &self,
        input: Option<&DpopInput>,
        what: &'static str,
        now: Timestamp,
    ) -> Option<CheckedProof> {
        match self.check_proof_input(input?, None, now) {
            Ok(proof) => Some(proof),
            Err(why) => {
                tracing::info!(reason = %why, "DPoP proof refused at {what}");
                None
            }
        }
    }

    /// Accepts `input` as a proof for its request
    /// ([`TokenWarden::check_proof_input`]) and records its `jti`, never
    /// seen before within the proof's lifetime, in the replay store.
    /// Returns the key's thumbprint.
    ///
    /// # Errors
    /// [`DpopError::Invalid`] for any fault of the proof, including a
    /// replayed `jti`; [`DpopError::Unexpected`] when the replay store
    /// cannot be asked.
    pub(crate) fn accept_proof(
        &self,
        input: &DpopInput,
        access_token: Option<&str>,
        now: Timestamp,
    ) -> Result<Jkt, DpopError> {
        let proof = self
            .check_proof_input(input, access_token, now)
            .map_err(DpopError::Invalid)?;
        let replay = &self
            .dpop
            .as_ref()
            .ok_or(DpopError::Invalid(ProofRejection::Malformed))?
            .replay;
        let first = replay
            .first_use(&proof.key, &proof.jti, proof.remember_until, now)
            .map_err(Unexpected::from)?;
        if !first {
            return Err(DpopError::Invalid(ProofRejection::Replayed));
        }
        Ok(proof.key)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ports::{MockDpopProofReader, MockDpopReplayStore};
    use crate::test_support::{
        proof_claims as claims, proof_input as input, proof_key as key, store_down, Mocks, NOW,
    };
    use domain::ProofClaims;

    const WINDOW: ProofWindow = ProofWindow {
        max_age: Duration::from_secs(60),
        leeway: Duration::ZERO,
    };

    fn warden(reader: MockDpopProofReader, replay: MockDpopReplayStore) -> TokenWarden {
        Mocks::new().build().with_dpop(Dpop {
            reader: Arc::new(reader),
            replay: Arc::new(replay),
            settings: DpopSettings {
                mode: DpopMode::Optional,
                window: WINDOW,
            },
        })
    }

    fn reading(claims: Result<ProofClaims, ProofRejection>) -> MockDpopProofReader {
        let mut reader = MockDpopProofReader::new();
        reader
            .expect_read()
            .withf(|p| p == "the.proof.jws")
            .times(1)
            .return_const(claims);
        reader
    }

    #[test]
    fn a_good_proof_yields_its_key_and_records_its_jti_for_its_lifetime() {
        let mut replay = MockDpopReplayStore::new();
        replay
            .expect_first_use()
            .withf(|jkt, jti, until, now| {
                *jkt == key() && jti == "jti-1" && *until == NOW.plus(WINDOW.max_age) && *now == NOW
            })
            .times(1)
            .return_const(Ok(true));

        let jkt = warden(reading(Ok(claims())), replay)
            .accept_proof(&input(), None, NOW)
            .unwrap();

        assert_eq!(jkt, key());
    }

    #[test]
    fn a_checked_proof_carries_its_key_jti_and_lifetime_and_records_nothing() {
        let mut replay = MockDpopReplayStore::new();
        replay.expect_first_use().never();

        let proof = warden(reading(Ok(claims())), replay)
            .check_proof_input(&input(), None, NOW)
            .unwrap();

        assert_eq!(
            proof,
            CheckedProof {
                key: key(),
                jti: "jti-1".to_owned(),
                remember_until: NOW.plus(WINDOW.max_age),
            }
        );
    }

    #[test]
    fn a_jti_seen_before_is_a_replay() {
        let mut replay = MockDpopReplayStore::new();
        replay.expect_first_use().times(1).return_const(Ok(false));

        assert_eq!(
            warden(reading(Ok(claims())), replay).accept_proof(&input(), None, NOW),
            Err(DpopError::Invalid(ProofRejection::Replayed))
        );
    }

    #[test]
    fn a_proof_the_reader_refuses_never_reaches_the_replay_store() {
        let mut replay = MockDpopReplayStore::new();
        replay.expect_first_use().never();

        assert_eq!(
            warden(reading(Err(ProofRejection::BadSignature)), replay).accept_proof(
                &input(),
                None,
                NOW
            ),
            Err(DpopError::Invalid(ProofRejection::BadSignature))
        );
    }

    #[test]
    fn a_proof_for_another_request_is_refused_before_its_jti_is_spent() {
        let mut replay = MockDpopReplayStore::new();
        replay.expect_first_use().never();
        let other = DpopInput {
            method: "GET".to_owned(),
            ..input()
        };

        assert_eq!(
            warden(reading(Ok(claims())), replay).accept_proof(&other, None, NOW),
            Err(DpopError::Invalid(ProofRejection::MethodMismatch))
        );
    }

    #[test]
    fn a_replay_store_that_cannot_be_asked_refuses_the_proof_as_unexpected() {
        let mut replay = MockDpopReplayStore::new();
        replay
            .expect_first_use()
            .times(1)
            .return_const(Err(store_down()));

        assert_eq!(
            warden(reading(Ok(claims())), replay).accept_proof(&input(), None, NOW),
            Err(DpopError::Unexpected(Unexpected::Store(store_down())))
        );
    }

    #[test]
    fn without_dpop_configured_every_proof_is_invalid() {
        assert_eq!(
            Mocks::new().build().accept_proof(&input(), None, NOW),
            Err(DpopError::Invalid(ProofRejection::Malformed))
        );
    }
}
