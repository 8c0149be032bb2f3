//! Recording refresh attempts that never reach the session store.
//!
//! Every request to the refresh endpoint leaves exactly one audit record.
//! Those that get as far as a rotation are recorded by the store inside the
//! rotation's transaction; this module records the rest with one standalone
//! insert each: requests refused before the use case could read a token
//! (origin, body) and tokens refused before any lookup.

use domain::{RefreshAttempt, RefreshOutcome, Timestamp, TokenFingerprint};

use crate::ports::ClientInfo;
use crate::{TokenWarden, Unexpected};

/// Why the HTTP adapter refused a refresh request before the use case ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRejection {
    /// The body is not JSON.
    MalformedRequest,
    /// The body is JSON of the wrong shape.
    InvalidRequest,
    /// The body is too large.
    PayloadTooLarge,
    /// The body did not arrive within the request timeout.
    RequestTimeout,
    /// The `Origin` is not allowed; nothing was spent.
    ForbiddenOrigin,
    /// Several refresh cookies; none was looked at.
    DuplicateCookies,
}

impl RefreshRejection {
    fn outcome(self) -> RefreshOutcome {
        match self {
            Self::MalformedRequest => RefreshOutcome::MalformedRequest,
            Self::InvalidRequest => RefreshOutcome::InvalidRequest,
            Self::PayloadTooLarge => RefreshOutcome::PayloadTooLarge,
            Self::RequestTimeout => RefreshOutcome::RequestTimeout,
            Self::ForbiddenOrigin => RefreshOutcome::ForbiddenOrigin,
            Self::DuplicateCookies => RefreshOutcome::DuplicateCookies,
        }
    }
}

impl TokenWarden {
    /// Records a refresh request that the HTTP adapter refused. `token` is
    /// whatever token the request carried that could still be read (say,
    /// the cookie of a request from a foreign origin); only its fingerprint
    /// is kept.
    ///
    /// # Errors
    /// Only [`Unexpected`]: the record could not be written.
    pub fn record_refresh_rejection(
        &self,
        rejection: RefreshRejection,
        token: Option<&str>,
        client: &ClientInfo,
    ) -> Result<(), Unexpected> {
        let now = self.ports.clock.now();
        self.record_refresh_attempt(
            rejection.outcome(),
            token.map(TokenFingerprint::of_presented),
            client,
            now,
        )
    }

    /// One standalone audit record of an attempt no user or session is
    /// known for.
    pub(crate) fn record_refresh_attempt(
        &self,
        outcome: RefreshOutcome,
        fingerprint: Option<TokenFingerprint>,
        client: &ClientInfo,
        now: Timestamp,
    ) -> Result<(), Unexpected> {
        self.ports.audit.record_refresh(RefreshAttempt {
            at: now,
            outcome,
            user_id: None,
            session_id: None,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            fingerprint,
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{client, presented_token, store_down, Mocks, NOW};

    #[test]
    fn a_rejected_request_is_recorded_with_the_client_and_a_fingerprint_only() {
        let mut m = Mocks::new();
        let fingerprint = TokenFingerprint::of_digest(&presented_token().digest());
        m.audit
            .expect_record_refresh()
            .withf(move |a| {
                *a == RefreshAttempt {
                    at: NOW,
                    outcome: RefreshOutcome::ForbiddenOrigin,
                    user_id: None,
                    session_id: None,
                    ip: client().ip,
                    user_agent: client().user_agent,
                    fingerprint: Some(fingerprint.clone()),
                }
            })
            .times(1)
            .return_const(Ok(()));

        assert_eq!(
            m.build().record_refresh_rejection(
                RefreshRejection::ForbiddenOrigin,
                Some(presented_token().expose()),
                &client()
            ),
            Ok(())
        );
    }

    #[test]
    fn each_rejection_has_its_own_outcome() {
        for (rejection, outcome) in [
            (
                RefreshRejection::MalformedRequest,
                RefreshOutcome::MalformedRequest,
            ),
            (
                RefreshRejection::InvalidRequest,
                RefreshOutcome::InvalidRequest,
            ),
            (
                RefreshRejection::PayloadTooLarge,
                RefreshOutcome::PayloadTooLarge,
            ),
            (
                RefreshRejection::RequestTimeout,
                RefreshOutcome::RequestTimeout,
            ),
        ] {
            let mut m = Mocks::new();
            m.audit
                .expect_record_refresh()
                .withf(move |a| a.outcome == outcome && a.fingerprint.is_none())
                .times(1)
                .return_const(Ok(()));
            assert_eq!(
                m.build()
                    .record_refresh_rejection(rejection, None, &client()),
                Ok(())
            );
        }
    }

    #[test]
    fn a_record_that_cannot_be_written_is_unexpected_store() {
        let mut m = Mocks::new();
        m.audit
            .expect_record_refresh()
            .times(1)
            .return_const(Err(store_down()));

        assert_eq!(
            m.build()
                .record_refresh_rejection(RefreshRejection::MalformedRequest, None, &client()),
            Err(Unexpected::Store(store_down()))
        );
    }
}
