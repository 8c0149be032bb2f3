//! Use case: log in with username and password, starting a new session.

use std::time::Duration;

use domain::{
    DpopMode, Jkt, NewSession, Password, ProofRejection, RefreshToken, SessionId, Username,
};

use crate::dpop::{DpopError, DpopInput};
use crate::ports::{ClientInfo, CreateSessionError, EndReason, EndRequest};
use crate::rate_limit::{ip_key, user_key, Admission};
use crate::{IssuedTokens, TokenWarden, Unexpected};

/// A login attempt as received. Username and password are checked here, not
/// at the edge, so that a malformed name gets the same answer (and the same
/// argon2 work) as a wrong password.
#[derive(Debug, Clone)]
pub struct LoginInput {
    pub username: String,
    pub password: String,
    pub device_name: Option<String>,
    /// A refresh token the client still carried (old cookie); a successful
    /// login ends its session.
    pub previous_token: Option<String>,
    pub client: ClientInfo,
    /// A `DPoP` proof: when valid, the new session is bound to its key.
    pub dpop: Option<DpopInput>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// Unknown user or wrong password: deliberately indistinguishable.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The right password of a disabled account (told only to whoever
    /// knows the password).
    #[error("account disabled")]
    AccountDisabled,
    /// Too many failures for this username, or attempts from this client:
    /// refused before the credentials are looked at.
    #[error("login rate limited")]
    RateLimited { retry_after: Duration },
    /// A proof was sent and is not valid for this request: refused before
    /// the credentials are looked at.
    #[error("invalid DPoP proof: {0}")]
    InvalidDpopProof(ProofRejection),
    /// `TOKENWARDEN_DPOP=required` and no proof was sent.
    #[error("a DPoP proof is required")]
    DpopRequired,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// A login that passed the checks that cost no password work (rate
/// limits, `DPoP` proof), ready for [`TokenWarden::complete_login`]. Its
/// attempt is counted.
#[derive(Debug)]
pub struct AdmittedLogin {
    input: LoginInput,
    username: Option<Username>,
    /// The key the username's failures count under.
    limit_key: Option<String>,
    dpop_jkt: Option<Jkt>,
}

impl TokenWarden {
    /// Verifies the credentials and starts a session:
    /// [`TokenWarden::admit_login`], then [`TokenWarden::complete_login`].
    ///
    /// # Errors
    /// As those two.
    pub fn login(&self, input: LoginInput) -> Result<IssuedTokens, LoginError> {
        let admitted = self.admit_login(input)?;
        self.complete_login(admitted)
    }

    /// The checks before any password work: counts the attempt against the
    /// rate limits (a reservation, see [`crate::rate_limit`]) and checks a
    /// `DPoP` proof. Cheap, so that the HTTP adapter can refuse before a
    /// request waits for password work.
    ///
    /// # Errors
    /// [`LoginError::RateLimited`] while the username or the client's address
    /// is over its budget, whatever the password;
    /// [`LoginError::InvalidDpopProof`], [`LoginError::DpopRequired`].
    pub fn admit_login(&self, input: LoginInput) -> Result<AdmittedLogin, LoginError> {
        let username = Username::parse(&input.username).ok();
        let limit_key = username.as_ref().map(user_key);
        let admission = self.login_limiter.reserve(
            limit_key.as_deref(),
            input.client.ip.as_deref().map(ip_key).as_deref(),
            self.ports.clock.now(),
        );
        if let Admission::Limited { retry_after } = admission {
            return Err(LoginError::RateLimited { retry_after });
        }
        let dpop_jkt = self.login_proof(input.dpop.as_ref())?;
        Ok(AdmittedLogin {
            input,
            username,
            limit_key,
            dpop_jkt,
        })
    }

    /// Gives back the username reservation of an admitted login that is
    /// refused before its password is checked (no password worker in time):
    /// it was no failed login.
    pub fn abandon_login(&self, admitted: AdmittedLogin) {
        if let Some(key) = &admitted.limit_key {
            self.login_limiter.release(key, self.ports.clock.now());
        }
    }

    /// Checks the password of an admitted login (the argon2 work) and
    /// starts the session.
    ///
    /// # Errors
    /// [`LoginError::InvalidCredentials`] for an unknown user, a wrong
    /// password, or a username or password that could never be valid.
    pub fn complete_login(&self, admitted: AdmittedLogin) -> Result<IssuedTokens, LoginError> {
        let AdmittedLogin {
            input,
            username,
            limit_key,
            dpop_jkt,
        } = admitted;
        let password = Password::parse(input.password).ok();
        // A failure before the password is checked is no failed login: its
        // reservation is given back.
        let unchecked = |e: Unexpected| {
            if let Some(key) = &limit_key {
                self.login_limiter.release(key, self.ports.clock.now());
            }
            LoginError::from(e)
        };
        let found = match &username {
            Some(name) => self
                .ports
                .users
                .find_credentials(name)
                .map_err(|e| unchecked(e.into()))?,
            None => None,
        };
        let verified = match &password {
            Some(p) => self
                .ports
                .hasher
                .verify(p, found.as_ref().map(|(_, hash)| hash))
                .map_err(|e| unchecked(e.into()))?,
            None => {
                // Spend the same work on a password that cannot be valid.
                let filler = Password::parse("x".repeat(Password::MIN_LEN))
                    .map_err(|_| LoginError::InvalidCredentials)?;
                let _ = self.ports.hasher.verify(&filler, None);
                false
            }
        };
        // A failure keeps the reservation made at admission: it is the count.
        let user = match found {
            Some((user, _)) if verified => user,
            _ => return Err(LoginError::InvalidCredentials),
        };
        // Checked again, under the user's lock, when the session is created.
        if user.disabled {
            return Err(LoginError::AccountDisabled);
        }
        if let Some(key) = &limit_key {
            self.login_limiter.reset(key);
        }

        let now = self.ports.clock.now();
        if let Some(previous) = input
            .previous_token
            .as_deref()
            .and_then(|t| RefreshToken::parse(t).ok())
        {
            let ended = self
                .ports
                .sessions
                .end_by_token(EndRequest {
                    token: previous.digest(),
                    reason: EndReason::ReplacedByLogin,
                    policy: self.settings.rotation_policy(),
                    client: input.client.clone(),
                    now,
                    // The login's own proof, recorded when it was admitted:
                    // a bound session ends only if it is by the session's
                    // key (the password may be another account's).
                    proof: None,
                    recorded_key: dpop_jkt.clone(),
                })
                .map_err(Unexpected::from)?;
            self.publish_ended(&ended, now);
        }

        let refresh_token = RefreshToken::from_random_bytes(self.ports.random.token_bytes());
        let new_session = NewSession {
            id: SessionId::from_random_bytes(self.ports.random.id_bytes()),
            user_id: user.id,
            device_name: input.device_name,
            created_at: now,
            expires_at: now.plus(self.settings.lifetimes.max_lifetime),
            ip: input.client.ip,
            user_agent: input.client.user_agent,
            dpop_jkt,
        };
        let created = self
            .ports
            .sessions
            .create(
                new_session,
                refresh_token.digest(),
                self.settings.lifetimes.max_sessions,
            )
            .map_err(|e| match e {
                CreateSessionError::AccountDisabled => LoginError::AccountDisabled,
                CreateSessionError::UserGone => LoginError::InvalidCredentials,
                CreateSessionError::Store(e) => Unexpected::from(e).into(),
            })?;
        self.publish_revoked_sessions(&created.evicted, now);
        Ok(self.issue(&created.session, user, refresh_token, now)?)
    }

    /// The key a login binds its session to: that of a valid proof, none
    /// without a proof (unless proofs are required).
    fn login_proof(&self, proof: Option<&DpopInput>) -> Result<Option<Jkt>, LoginError> {
        let Some(proof) = proof else {
            return match self.dpop_mode() {
                DpopMode::Required => Err(LoginError::DpopRequired),
                DpopMode::Optional => Ok(None),
            };
        };
        match self.accept_proof(proof, None, self.ports.clock.now()) {
            Ok(jkt) => Ok(Some(jkt)),
            Err(DpopError::Invalid(why)) => Err(LoginError::InvalidDpopProof(why)),
            Err(DpopError::Unexpected(e)) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use domain::{AccessTokenId, PasswordHash, ReuseResponse, TokenDigest};
    use mockall::Sequence;

    use super::*;
    use crate::ports::{EndOutcome, MockPasswordHasher};
    use crate::rate_limit::MockLoginRateLimiter;
    use crate::test_support::{
        access_token_for, alice, alice_hash, client, crypto_broken, nth_id_bytes, presented_token,
        proof_input, proof_key, session_of, store_down, stored, with_dpop, Mocks, ALICE_PASSWORD,
        DAY, NOW, TOKEN_BYTES,
    };

    fn alice_logs_in() -> LoginInput {
        LoginInput {
            username: "alice".to_owned(),
            password: ALICE_PASSWORD.to_owned(),
            device_name: Some("phone".to_owned()),
            previous_token: None,
            client: client(),
            dpop: None,
        }
    }

    fn with_previous(token: &str) -> LoginInput {
        LoginInput {
            previous_token: Some(token.to_owned()),
            ..alice_logs_in()
        }
    }

    fn finding_alice(m: &mut Mocks) {
        m.users
            .expect_find_credentials()
            .withf(|name| name.as_str() == "alice")
            .times(1)
            .returning(|_| Ok(Some((alice(), alice_hash()))));
    }

    fn finding_nobody(m: &mut Mocks) {
        m.users
            .expect_find_credentials()
            .times(1)
            .returning(|_| Ok(None));
    }

    /// The hasher answers `verdict` for the one verification it is asked for.
    fn verifying(hasher: &mut MockPasswordHasher, verdict: bool) {
        hasher
            .expect_verify()
            .times(1)
            .returning(move |_, _| Ok(verdict));
    }

    fn creating_sessions(m: &mut Mocks) {
        m.sessions
            .expect_create()
            .times(1)
            .returning(|new, _, _| Ok(stored(&new)));
    }

    /// A login of alice with the right password that gets as far as the
    /// session: everything but the session store is set up.
    fn valid_credentials() -> Mocks {
        let mut m = Mocks::new().signing_anything();
        finding_alice(&mut m);
        verifying(&mut m.hasher, true);
        m
    }

    fn no_session_is_started(m: &mut Mocks) {
        m.sessions.expect_create().never();
        m.sessions.expect_end_by_token().never();
        m.signer.expect_sign().never();
    }

    fn limited_by(limiter: MockLoginRateLimiter, m: Mocks) -> crate::TokenWarden {
        m.build().with_login_limiter(Arc::new(limiter))
    }

    /// A limiter that admits every attempt and expects no bookkeeping
    /// beyond what the test adds.
    fn admitting() -> MockLoginRateLimiter {
        let mut limiter = MockLoginRateLimiter::new();
        limiter
            .expect_reserve()
            .times(1)
            .return_const(Admission::Allowed);
        limiter
    }

    #[test]
    fn a_login_with_a_valid_proof_binds_the_session_to_its_key() {
        let mut m = valid_credentials();
        m.sessions
            .expect_create()
            .withf(|new, _, _| new.dpop_jkt == Some(proof_key()))
            .times(1)
            .returning(|new, _, _| Ok(stored(&new)));
        let warden = with_dpop(m.build(), DpopMode::Optional, Ok(()));

        let issued = warden
            .login(LoginInput {
                dpop: Some(proof_input()),
                ..alice_logs_in()
            })
            .unwrap();

        assert!(issued.dpop_bound);
    }

    #[test]
    fn a_login_with_a_proof_ends_its_old_cookies_session_with_the_proven_key() {
        for (proof, key) in [(Some(proof_input()), Some(proof_key())), (None, None)] {
            let mut m = valid_credentials();
            m.sessions
                .expect_end_by_token()
                .withf(move |r| r.recorded_key == key && r.proof.is_none())
                .times(1)
                .returning(|_| {
                    let old = session_of(&alice());
                    Ok(EndOutcome::DpopMismatch {
                        session: old.id,
                        user: old.user_id,
                    })
                });
            m.sessions
                .expect_create()
                .times(1)
                .returning(|new, _, _| Ok(stored(&new)));
            let warden = with_dpop(m.build(), DpopMode::Optional, Ok(()));

            // The old session kept for want of its key: the login itself
            // still succeeds.
            assert!(warden
                .login(LoginInput {
                    dpop: proof,
                    ..with_previous(presented_token().expose())
                })
                .is_ok());
        }
    }

    #[test]
    fn a_login_without_a_proof_stays_unbound_when_proofs_are_optional() {
        let mut m = valid_credentials();
        m.sessions
            .expect_create()
            .withf(|new, _, _| new.dpop_jkt.is_none())
            .times(1)
            .returning(|new, _, _| Ok(stored(&new)));
        let warden = with_dpop(m.build(), DpopMode::Optional, Ok(()));

        assert!(!warden.login(alice_logs_in()).unwrap().dpop_bound);
    }

    #[test]
    fn an_invalid_proof_is_refused_before_the_credentials_are_looked_at() {
        let mut m = Mocks::new();
        m.users.expect_find_credentials().never();
        m.hasher.expect_verify().never();
        no_session_is_started(&mut m);
        let warden = with_dpop(
            m.build(),
            DpopMode::Optional,
            Err(ProofRejection::BadSignature),
        );

        assert_eq!(
            warden
                .login(LoginInput {
                    dpop: Some(proof_input()),
                    ..alice_logs_in()
                })
                .unwrap_err(),
            LoginError::InvalidDpopProof(ProofRejection::BadSignature)
        );
    }

    #[test]
    fn a_login_without_a_proof_is_refused_when_proofs_are_required() {
        let mut m = Mocks::new();
        m.users.expect_find_credentials().never();
        m.hasher.expect_verify().never();
        no_session_is_started(&mut m);
        let warden = with_dpop(m.build(), DpopMode::Required, Ok(()));

        assert_eq!(
            warden.login(alice_logs_in()).unwrap_err(),
            LoginError::DpopRequired
        );
    }

    #[test]
    fn a_limited_login_is_refused_before_any_lookup_or_password_check() {
        let mut limiter = MockLoginRateLimiter::new();
        limiter
            .expect_reserve()
            .times(1)
            .return_const(Admission::Limited {
                retry_after: Duration::from_secs(42),
            });
        limiter.expect_reset().never();
        let mut m = Mocks::new();
        m.users.expect_find_credentials().never();
        m.hasher.expect_verify().never();
        no_session_is_started(&mut m);

        assert_eq!(
            limited_by(limiter, m).login(alice_logs_in()).unwrap_err(),
            LoginError::RateLimited {
                retry_after: Duration::from_secs(42)
            }
        );
    }

    #[test]
    fn the_limiter_sees_the_case_folded_username_and_the_client_address() {
        let mut limiter = MockLoginRateLimiter::new();
        limiter
            .expect_reserve()
            .withf(|user, ip, now| {
                *user == Some("alice") && *ip == Some("203.0.113.7") && *now == NOW
            })
            .times(1)
            .return_const(Admission::Allowed);
        limiter.expect_reset().times(1).return_const(());
        let mut m = Mocks::new().signing_anything();
        m.users
            .expect_find_credentials()
            .times(1)
            .returning(|_| Ok(Some((alice(), alice_hash()))));
        verifying(&mut m.hasher, true);
        creating_sessions(&mut m);

        let input = LoginInput {
            username: "ALICE".to_owned(),
            ..alice_logs_in()
        };
        assert!(limited_by(limiter, m).login(input).is_ok());
    }

    #[test]
    fn a_wrong_password_keeps_the_reserved_failure() {
        let mut limiter = admitting();
        limiter.expect_reset().never();
        let mut m = Mocks::new();
        finding_alice(&mut m);
        verifying(&mut m.hasher, false);
        no_session_is_started(&mut m);

        assert_eq!(
            limited_by(limiter, m).login(alice_logs_in()).unwrap_err(),
            LoginError::InvalidCredentials
        );
    }

    #[test]
    fn an_unknown_username_keeps_its_reservation_like_a_known_one() {
        let mut limiter = MockLoginRateLimiter::new();
        limiter
            .expect_reserve()
            .withf(|user, _, _| *user == Some("alice"))
            .times(1)
            .return_const(Admission::Allowed);
        limiter.expect_reset().never();
        let mut m = Mocks::new();
        finding_nobody(&mut m);
        verifying(&mut m.hasher, false);
        no_session_is_started(&mut m);

        assert_eq!(
            limited_by(limiter, m).login(alice_logs_in()).unwrap_err(),
            LoginError::InvalidCredentials
        );
    }

    #[test]
    fn a_login_that_fails_before_its_password_is_checked_gives_its_reservation_back() {
        let mut limiter = admitting();
        limiter
            .expect_release()
            .withf(|user, _| user == "alice")
            .times(1)
            .return_const(());
        limiter.expect_reset().never();
        let mut m = Mocks::new();
        m.users
            .expect_find_credentials()
            .times(1)
            .returning(|_| Err(store_down()));
        m.hasher.expect_verify().never();
        no_session_is_started(&mut m);

        assert_eq!(
            limited_by(limiter, m).login(alice_logs_in()).unwrap_err(),
            LoginError::Unexpected(Unexpected::Store(store_down()))
        );
    }

    #[test]
    fn an_abandoned_login_gives_its_reservation_back() {
        let mut limiter = admitting();
        limiter
            .expect_release()
            .withf(|user, _| user == "alice")
            .times(1)
            .return_const(());
        let warden = limited_by(limiter, Mocks::new());

        let admitted = warden.admit_login(alice_logs_in()).unwrap();
        warden.abandon_login(admitted);
    }

    #[test]
    fn a_successful_login_forgets_the_failures_of_the_username() {
        let mut limiter = admitting();
        limiter
            .expect_reset()
            .withf(|user| user == "alice")
            .times(1)
            .return_const(());
        let mut m = valid_credentials();
        creating_sessions(&mut m);

        assert!(limited_by(limiter, m).login(alice_logs_in()).is_ok());
    }

    #[test]
    fn a_malformed_username_counts_only_against_the_address() {
        let mut limiter = MockLoginRateLimiter::new();
        limiter
            .expect_reserve()
            .withf(|user, ip, _| user.is_none() && *ip == Some("203.0.113.7"))
            .times(1)
            .return_const(Admission::Allowed);
        limiter.expect_reset().never();
        let mut m = Mocks::new();
        verifying(&mut m.hasher, false);
        no_session_is_started(&mut m);

        let input = LoginInput {
            username: "no spaces allowed".to_owned(),
            ..alice_logs_in()
        };
        assert_eq!(
            limited_by(limiter, m).login(input).unwrap_err(),
            LoginError::InvalidCredentials
        );
    }

    #[test]
    fn the_password_is_checked_against_the_stored_hash() {
        let mut m = Mocks::new().signing_anything();
        finding_alice(&mut m);
        m.hasher
            .expect_verify()
            .withf(|p: &Password, h: &Option<&PasswordHash>| {
                p.expose() == ALICE_PASSWORD && *h == Some(&alice_hash())
            })
            .times(1)
            .returning(|_, _| Ok(true));
        creating_sessions(&mut m);

        assert!(m.build().login(alice_logs_in()).is_ok());
    }

    #[test]
    fn a_login_creates_a_session_that_ends_after_the_max_lifetime() {
        let mut m = valid_credentials();
        let max_lifetime = m.settings.lifetimes.max_lifetime;
        let max_sessions = m.settings.lifetimes.max_sessions;
        m.sessions
            .expect_create()
            .withf(move |new, _, limit| {
                *new == NewSession {
                    id: SessionId::from_random_bytes(nth_id_bytes(1)),
                    user_id: alice().id,
                    device_name: Some("phone".to_owned()),
                    created_at: NOW,
                    expires_at: NOW.plus(max_lifetime),
                    ip: client().ip,
                    user_agent: client().user_agent,
                    dpop_jkt: None,
                } && *limit == max_sessions
            })
            .times(1)
            .returning(|new, _, _| Ok(stored(&new)));

        let issued = m.build().login(alice_logs_in()).unwrap();

        assert_eq!(
            issued.session_id,
            SessionId::from_random_bytes(nth_id_bytes(1))
        );
        assert_eq!(issued.session_expires_in, 30 * DAY);
    }

    #[test]
    fn the_first_token_digest_stored_matches_the_returned_refresh_token() {
        let mut m = valid_credentials();
        let stored_digest: Arc<Mutex<Option<TokenDigest>>> = Arc::default();
        let record = Arc::clone(&stored_digest);
        m.sessions
            .expect_create()
            .times(1)
            .returning(move |new, digest, _| {
                *record.lock().unwrap() = Some(digest);
                Ok(stored(&new))
            });

        let issued = m.build().login(alice_logs_in()).unwrap();

        assert_eq!(
            *stored_digest.lock().unwrap(),
            Some(issued.refresh_token.digest())
        );
        assert_eq!(
            issued.refresh_token,
            RefreshToken::from_random_bytes(TOKEN_BYTES)
        );
    }

    #[test]
    fn a_login_returns_a_signed_access_token_for_the_new_session() {
        let mut m = Mocks::new();
        finding_alice(&mut m);
        verifying(&mut m.hasher, true);
        creating_sessions(&mut m);
        let access_ttl = m.settings.lifetimes.access_ttl;
        m.signer
            .expect_sign()
            .withf(move |c| {
                c.user_id == alice().id
                    && c.session_id == SessionId::from_random_bytes(nth_id_bytes(1))
                    && c.roles == alice().roles
                    && c.issued_at == NOW
                    && c.expires_at == NOW.plus(access_ttl)
                    && c.token_id == AccessTokenId::from_random_bytes(nth_id_bytes(2)).to_string()
            })
            .times(1)
            .returning(|c| Ok(access_token_for(c)));

        let issued = m.build().login(alice_logs_in()).unwrap();

        assert_eq!(
            issued.access_token,
            format!(
                "at.{}.{}",
                SessionId::from_random_bytes(nth_id_bytes(1)),
                AccessTokenId::from_random_bytes(nth_id_bytes(2))
            )
        );
        assert_eq!(issued.access_expires_in, access_ttl);
        assert_eq!(issued.refresh_expires_in, 7 * DAY);
        assert_eq!(issued.user, alice());
    }

    #[test]
    fn a_wrong_password_is_invalid_credentials_and_starts_no_session() {
        let mut m = Mocks::new();
        finding_alice(&mut m);
        verifying(&mut m.hasher, false);
        no_session_is_started(&mut m);

        assert_eq!(
            m.build().login(alice_logs_in()).unwrap_err(),
            LoginError::InvalidCredentials
        );
    }

    #[test]
    fn an_unknown_user_is_still_verified_against_the_dummy_hash() {
        let mut m = Mocks::new();
        finding_nobody(&mut m);
        m.hasher
            .expect_verify()
            .withf(|p: &Password, h: &Option<&PasswordHash>| {
                p.expose() == ALICE_PASSWORD && h.is_none()
            })
            .times(1)
            .returning(|_, _| Ok(false));
        no_session_is_started(&mut m);

        assert_eq!(
            m.build().login(alice_logs_in()).unwrap_err(),
            LoginError::InvalidCredentials
        );
    }

    #[test]
    fn an_unknown_user_is_refused_even_if_the_hasher_says_yes() {
        let mut m = Mocks::new();
        finding_nobody(&mut m);
        verifying(&mut m.hasher, true);
        no_session_is_started(&mut m);

        assert_eq!(
            m.build().login(alice_logs_in()).unwrap_err(),
            LoginError::InvalidCredentials
        );
    }

    #[test]
    fn a_malformed_username_still_spends_a_verify_without_a_user_lookup() {
        for bad in ["al", "alice smith", "' OR 1=1 --", &"a".repeat(65)] {
            let mut m = Mocks::new();
            m.users.expect_find_credentials().never();
            m.hasher
                .expect_verify()
                .withf(|p: &Password, h: &Option<&PasswordHash>| {
                    p.expose() == ALICE_PASSWORD && h.is_none()
                })
                .times(1)
                .returning(|_, _| Ok(true));
            no_session_is_started(&mut m);

            let input = LoginInput {
                username: bad.to_owned(),
                ..alice_logs_in()
            };
            assert_eq!(
                m.build().login(input).unwrap_err(),
                LoginError::InvalidCredentials
            );
        }
    }

    #[test]
    fn a_malformed_password_still_spends_a_verify_and_is_refused_whatever_it_says() {
        let mut m = Mocks::new();
        finding_alice(&mut m);
        m.hasher
            .expect_verify()
            .withf(|p: &Password, h: &Option<&PasswordHash>| {
                p.expose().chars().count() >= Password::MIN_LEN && h.is_none()
            })
            .times(1)
            .returning(|_, _| Ok(true));
        no_session_is_started(&mut m);

        let input = LoginInput {
            password: "short".to_owned(),
            ..alice_logs_in()
        };
        assert_eq!(
            m.build().login(input).unwrap_err(),
            LoginError::InvalidCredentials
        );
    }

    #[test]
    fn a_failing_dummy_verify_for_a_malformed_password_is_still_invalid_credentials() {
        let mut m = Mocks::new();
        finding_alice(&mut m);
        m.hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Err(crypto_broken()));
        no_session_is_started(&mut m);

        let input = LoginInput {
            password: "x".repeat(257),
            ..alice_logs_in()
        };
        assert_eq!(
            m.build().login(input).unwrap_err(),
            LoginError::InvalidCredentials
        );
    }

    #[test]
    fn a_hasher_failure_is_unexpected_crypto() {
        let mut m = Mocks::new();
        finding_alice(&mut m);
        m.hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Err(crypto_broken()));
        no_session_is_started(&mut m);

        assert_eq!(
            m.build().login(alice_logs_in()).unwrap_err(),
            LoginError::Unexpected(Unexpected::Crypto(crypto_broken()))
        );
    }

    #[test]
    fn a_store_failure_looking_up_the_user_is_unexpected_store() {
        let mut m = Mocks::new();
        m.users
            .expect_find_credentials()
            .times(1)
            .returning(|_| Err(store_down()));
        m.hasher.expect_verify().never();
        no_session_is_started(&mut m);

        assert_eq!(
            m.build().login(alice_logs_in()).unwrap_err(),
            LoginError::Unexpected(Unexpected::Store(store_down()))
        );
    }

    #[test]
    fn a_store_failure_creating_the_session_is_unexpected_store_and_signs_nothing() {
        let mut m = Mocks::new();
        finding_alice(&mut m);
        verifying(&mut m.hasher, true);
        m.sessions
            .expect_create()
            .times(1)
            .returning(|_, _, _| Err(store_down().into()));
        m.signer.expect_sign().never();

        assert_eq!(
            m.build().login(alice_logs_in()).unwrap_err(),
            LoginError::Unexpected(Unexpected::Store(store_down()))
        );
    }

    #[test]
    fn a_signer_failure_is_unexpected_crypto() {
        let mut m = Mocks::new();
        finding_alice(&mut m);
        verifying(&mut m.hasher, true);
        creating_sessions(&mut m);
        m.signer
            .expect_sign()
            .times(1)
            .returning(|_| Err(crypto_broken()));

        assert_eq!(
            m.build().login(alice_logs_in()).unwrap_err(),
            LoginError::Unexpected(Unexpected::Crypto(crypto_broken()))
        );
    }

    #[test]
    fn a_previous_token_is_ended_as_replaced_by_login_only_after_the_credentials_are_verified() {
        let mut m = Mocks::new().signing_anything();
        m.settings.reuse_response = ReuseResponse::RevokeFamily;
        let warden_policy = m.settings.rotation_policy();
        let mut seq = Sequence::new();
        m.users
            .expect_find_credentials()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(Some((alice(), alice_hash()))));
        m.hasher
            .expect_verify()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(true));
        m.sessions
            .expect_end_by_token()
            .withf(move |r| {
                r.token == presented_token().digest()
                    && r.reason == EndReason::ReplacedByLogin
                    && r.policy == warden_policy
                    && r.policy.reuse_response == ReuseResponse::RevokeFamily
                    && r.client == client()
                    && r.now == NOW
            })
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| {
                let old = session_of(&alice());
                Ok(EndOutcome::Ended {
                    session: old.id,
                    user: old.user_id,
                })
            });
        m.sessions
            .expect_create()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|new, _, _| Ok(stored(&new)));

        assert!(m
            .build()
            .login(with_previous(presented_token().expose()))
            .is_ok());
    }

    #[test]
    fn a_failed_login_never_ends_the_previous_session() {
        for found in [true, false] {
            let mut m = Mocks::new();
            if found {
                finding_alice(&mut m);
            } else {
                finding_nobody(&mut m);
            }
            verifying(&mut m.hasher, false);
            no_session_is_started(&mut m);

            let result = m.build().login(with_previous(presented_token().expose()));
            assert_eq!(result.unwrap_err(), LoginError::InvalidCredentials);
        }
    }

    #[test]
    fn a_previous_token_found_reused_does_not_stop_the_login() {
        let mut m = valid_credentials();
        m.sessions.expect_end_by_token().times(1).returning(|_| {
            let old = session_of(&alice());
            Ok(EndOutcome::Reused {
                session: old.id,
                user: old.user_id,
                revoked: vec![old.id],
            })
        });
        creating_sessions(&mut m);

        assert!(m
            .build()
            .login(with_previous(presented_token().expose()))
            .is_ok());
    }

    #[test]
    fn an_unknown_or_already_ended_previous_token_does_not_stop_the_login() {
        let old = session_of(&alice());
        for outcome in [
            EndOutcome::UnknownToken,
            EndOutcome::AlreadyEnded {
                session: old.id,
                user: old.user_id,
            },
        ] {
            let mut m = valid_credentials();
            m.sessions
                .expect_end_by_token()
                .times(1)
                .return_const(Ok(outcome));
            creating_sessions(&mut m);

            assert!(m
                .build()
                .login(with_previous(presented_token().expose()))
                .is_ok());
        }
    }

    #[test]
    fn a_malformed_previous_token_is_ignored() {
        let mut m = valid_credentials();
        m.sessions.expect_end_by_token().never();
        creating_sessions(&mut m);

        assert!(m
            .build()
            .login(with_previous("not-a-refresh-token"))
            .is_ok());
    }

    #[test]
    fn a_store_failure_ending_the_previous_session_is_unexpected_store_and_starts_no_session() {
        let mut m = Mocks::new();
        finding_alice(&mut m);
        verifying(&mut m.hasher, true);
        m.sessions
            .expect_end_by_token()
            .times(1)
            .returning(|_| Err(store_down()));
        m.sessions.expect_create().never();
        m.signer.expect_sign().never();

        assert_eq!(
            m.build()
                .login(with_previous(presented_token().expose()))
                .unwrap_err(),
            LoginError::Unexpected(Unexpected::Store(store_down()))
        );
    }

    #[test]
    fn sessions_evicted_by_a_login_go_on_the_revocation_list() {
        let mut m = valid_credentials().strict_revocations();
        let evicted = vec![session_of(&alice()).id];
        let listed = evicted.clone();
        m.sessions
            .expect_create()
            .times(1)
            .returning(move |new, _, _| {
                Ok(crate::ports::CreatedSession {
                    evicted: evicted.clone(),
                    ..stored(&new)
                })
            });
        m.revocations
            .expect_revoke()
            .withf(move |entries| {
                entries.len() == 1
                    && entries[0].key == crate::ports::RevocationKey::Session(listed[0])
            })
            .times(1)
            .return_const(Ok(()));

        assert!(m.build().login(alice_logs_in()).is_ok());
    }

    #[test]
    fn sessions_revoked_by_a_reused_previous_token_go_on_the_revocation_list() {
        let mut m = valid_credentials().strict_revocations();
        let old = session_of(&alice());
        let other = SessionId::from_random_bytes([0x0e; 16]);
        m.sessions
            .expect_end_by_token()
            .times(1)
            .return_const(Ok(EndOutcome::Reused {
                session: old.id,
                user: old.user_id,
                revoked: vec![old.id, other],
            }));
        m.revocations
            .expect_revoke()
            .withf(move |entries| {
                entries.iter().map(|e| e.key).eq([
                    crate::ports::RevocationKey::Session(old.id),
                    crate::ports::RevocationKey::Session(other),
                ])
            })
            .times(1)
            .return_const(Ok(()));
        creating_sessions(&mut m);

        assert!(m
            .build()
            .login(with_previous(presented_token().expose()))
            .is_ok());
    }

    #[test]
    fn the_right_password_of_a_disabled_account_starts_no_session() {
        let mut m = Mocks::new();
        m.users.expect_find_credentials().times(1).returning(|_| {
            Ok(Some((
                domain::User {
                    disabled: true,
                    ..alice()
                },
                alice_hash(),
            )))
        });
        verifying(&mut m.hasher, true);
        no_session_is_started(&mut m);

        assert_eq!(
            m.build().login(alice_logs_in()).unwrap_err(),
            LoginError::AccountDisabled
        );
    }

    #[test]
    fn an_account_disabled_or_deleted_during_the_login_starts_no_session() {
        for (answer, expected) in [
            (
                CreateSessionError::AccountDisabled,
                LoginError::AccountDisabled,
            ),
            (CreateSessionError::UserGone, LoginError::InvalidCredentials),
        ] {
            let mut m = valid_credentials();
            m.sessions
                .expect_create()
                .times(1)
                .return_const(Err(answer));
            assert_eq!(m.build().login(alice_logs_in()).unwrap_err(), expected);
        }
    }
}
