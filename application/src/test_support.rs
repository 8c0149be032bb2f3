//! Builders shared by the use-case tests: a [`TokenWarden`] over `mockall`
//! mocks with a fixed clock and a deterministic random source, and sample
//! users, sessions, tokens and clients.
//!
//! Repository, hasher and signer mocks start without expectations, so any
//! call a test did not ask for fails it: a test only sets up the calls its
//! use case is supposed to make.

use std::sync::Arc;
use std::time::Duration;

use domain::{
    AccessTokenId, AnomalyPolicy, Generation, Lifetimes, NewSession, PasswordHash, RefreshSecret,
    RefreshToken, ReuseResponse, Role, Roles, Session, SessionId, Timestamp, User, UserId,
    Username,
};

use crate::ports::{
    AccessClaims, ClientInfo, CreatedSession, CryptoError, MockAccessTokenSigner, MockAuditTrail,
    MockClock, MockPasswordHasher, MockRandomSource, MockRevocationList, MockSessionRepository,
    MockUserRepository, StoreError,
};
use crate::{Ports, Principal, Settings, TokenWarden};

/// The instant the fixed clock always reads (2023-11-14T22:13:20Z).
pub(crate) const NOW: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// What the deterministic random source hands out for every refresh token.
pub(crate) const TOKEN_BYTES: [u8; 32] = [0x42; 32];

/// The refresh secret of [`settings`].
pub(crate) const SECRET: [u8; 32] = [0x5e; 32];

pub(crate) const DAY: Duration = Duration::from_secs(24 * 3600);

/// The `n`-th (1-based) identifier the deterministic random source hands out.
pub(crate) fn nth_id_bytes(n: u8) -> [u8; 16] {
    [n; 16]
}

/// Default lifetimes, `RevokeAll`, and [`SECRET`].
pub(crate) fn settings() -> Settings {
    Settings {
        lifetimes: Lifetimes::default(),
        reuse_response: ReuseResponse::RevokeAll,
        refresh_secret: RefreshSecret::from_bytes(SECRET),
        clock_leeway: Duration::ZERO,
        anomaly: AnomalyPolicy::default(),
        retry_window: domain::RotationPolicy::DEFAULT_RETRY_WINDOW,
    }
}

/// A clock that reads [`NOW`], as often as asked.
pub(crate) fn fixed_clock() -> MockClock {
    let mut clock = MockClock::new();
    clock.expect_now().return_const(NOW);
    clock
}

/// Refresh tokens are always [`TOKEN_BYTES`]; identifiers are
/// [`nth_id_bytes`]`(1)`, `(2)`, … in the order they are asked for.
pub(crate) fn deterministic_random() -> MockRandomSource {
    let mut random = MockRandomSource::new();
    random.expect_token_bytes().return_const(TOKEN_BYTES);
    let mut drawn = 0u8;
    random.expect_id_bytes().returning(move || {
        drawn = drawn.wrapping_add(1);
        nth_id_bytes(drawn)
    });
    random
}

/// The mocks behind every port, plus the settings, before they are wired.
pub(crate) struct Mocks {
    pub users: MockUserRepository,
    pub sessions: MockSessionRepository,
    pub hasher: MockPasswordHasher,
    pub signer: MockAccessTokenSigner,
    pub clock: MockClock,
    pub random: MockRandomSource,
    pub revocations: MockRevocationList,
    pub audit: MockAuditTrail,
    pub settings: Settings,
}

impl Mocks {
    /// Strict repositories, hasher and signer; [`fixed_clock`] and
    /// [`deterministic_random`]; a revocation list that has nothing on it
    /// and takes any entry ([`Mocks::strict_revocations`] when a test is
    /// about the list); [`settings`].
    pub fn new() -> Self {
        Self {
            clock: fixed_clock(),
            random: deterministic_random(),
            revocations: empty_revocation_list(),
            ..Self::untouchable()
        }
    }

    /// A revocation list without expectations: every call must be set up.
    pub fn strict_revocations(mut self) -> Self {
        self.revocations = MockRevocationList::new();
        self
    }

    /// Every port strict, the clock and random source included: for paths
    /// that must not touch any port at all.
    pub fn untouchable() -> Self {
        Self {
            users: MockUserRepository::new(),
            sessions: MockSessionRepository::new(),
            hasher: MockPasswordHasher::new(),
            signer: MockAccessTokenSigner::new(),
            clock: MockClock::new(),
            random: MockRandomSource::new(),
            revocations: MockRevocationList::new(),
            audit: MockAuditTrail::new(),
            settings: settings(),
        }
    }

    /// Makes the signer sign anything, answering [`access_token_for`].
    pub fn signing_anything(mut self) -> Self {
        self.signer
            .expect_sign()
            .returning(|claims| Ok(access_token_for(claims)));
        self
    }

    /// The service over these mocks. Unmet `times(..)` expectations are
    /// reported when it is dropped.
    pub fn build(self) -> TokenWarden {
        TokenWarden::new(
            Ports {
                users: Arc::new(self.users),
                sessions: Arc::new(self.sessions),
                hasher: Arc::new(self.hasher),
                signer: Arc::new(self.signer),
                clock: Arc::new(self.clock),
                random: Arc::new(self.random),
                revocations: Arc::new(self.revocations),
                audit: Arc::new(self.audit),
            },
            self.settings,
        )
    }
}

/// The access token text the permissive signer returns for `claims`.
pub(crate) fn access_token_for(claims: &AccessClaims) -> String {
    format!("at.{}.{}", claims.session_id, claims.token_id)
}

pub(crate) fn alice() -> User {
    User {
        id: UserId::from_random_bytes([0xa1; 16]),
        username: Username::parse("alice").expect("valid username"),
        roles: Roles::new([Role::user()]),
        created_at: NOW.minus(DAY * 100),
        disabled: false,
        last_login_at: None,
    }
}

pub(crate) fn alice_hash() -> PasswordHash {
    PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned())
}

pub(crate) const ALICE_PASSWORD: &str = "correct horse battery staple";

/// A live session of `user`, rotated an hour ago, started two days ago.
pub(crate) fn session_of(user: &User) -> Session {
    let created_at = NOW.minus(DAY * 2);
    Session {
        id: SessionId::from_random_bytes([0x5e; 16]),
        user_id: user.id,
        generation: Generation::new(3),
        device_name: Some("laptop".to_owned()),
        created_at,
        last_used_at: NOW.minus(Duration::from_secs(3600)),
        rotated_at: NOW.minus(Duration::from_secs(3600)),
        expires_at: created_at.plus(Lifetimes::default().max_lifetime),
        revoked_at: None,
        last_ip: Some("203.0.113.7".to_owned()),
        last_user_agent: Some("Firefox/130".to_owned()),
        dpop_jkt: None,
    }
}

/// A revocation list with nothing on it that accepts any entry.
pub(crate) fn empty_revocation_list() -> MockRevocationList {
    let mut list = MockRevocationList::new();
    list.expect_check().returning(|_, _, _| Ok(None));
    list.expect_revoke().returning(|_| Ok(()));
    list
}

/// What a repository answers for `new`: the session stored, nothing evicted.
pub(crate) fn stored(new: &NewSession) -> CreatedSession {
    CreatedSession {
        session: stored_session(new),
        evicted: Vec::new(),
    }
}

/// The session a repository stores for `new`: generation 0, just issued.
pub(crate) fn stored_session(new: &NewSession) -> Session {
    Session {
        id: new.id,
        user_id: new.user_id,
        generation: Generation::FIRST,
        device_name: new.device_name.clone(),
        created_at: new.created_at,
        last_used_at: new.created_at,
        rotated_at: new.created_at,
        expires_at: new.expires_at,
        revoked_at: None,
        last_ip: new.ip.clone(),
        last_user_agent: new.user_agent.clone(),
        dpop_jkt: new.dpop_jkt.clone(),
    }
}

/// The refresh token a client presents in the tests.
pub(crate) fn presented_token() -> RefreshToken {
    RefreshToken::from_random_bytes([0x7a; 32])
}

/// What the service derives from [`presented_token`] under [`SECRET`].
pub(crate) fn expected_successor() -> RefreshToken {
    presented_token().successor(&RefreshSecret::from_bytes(SECRET))
}

pub(crate) fn client() -> ClientInfo {
    ClientInfo {
        ip: Some("203.0.113.7".to_owned()),
        user_agent: Some("Firefox/130".to_owned()),
    }
}

pub(crate) fn principal_of(session: &Session, roles: Roles) -> Principal {
    Principal {
        user_id: session.user_id,
        session_id: session.id,
        roles,
    }
}

/// The claims of a genuine access token for `session`.
pub(crate) fn claims_for(user: &User, session: &Session) -> AccessClaims {
    AccessClaims {
        user_id: user.id,
        session_id: session.id,
        roles: user.roles.clone(),
        issued_at: NOW.minus(Duration::from_secs(60)),
        expires_at: NOW.plus(Duration::from_secs(14 * 60)),
        token_id: AccessTokenId::from_random_bytes([0x17; 16]).to_string(),
        confirmation: None,
    }
}

/// The `jti` of `claims` as an id.
pub(crate) fn jti_of(claims: &AccessClaims) -> AccessTokenId {
    claims.token_id.parse().expect("our jti is a UUID")
}

pub(crate) fn store_down() -> StoreError {
    StoreError("connection refused".to_owned())
}

pub(crate) fn crypto_broken() -> CryptoError {
    CryptoError("no usable key".to_owned())
}

/// The URI the DPoP tests' proofs are made for.
pub(crate) fn proof_uri() -> domain::HttpUri {
    domain::HttpUri::new("https", "auth.example", 443, "/auth/login").unwrap()
}

/// The thumbprint of the DPoP tests' proof key.
pub(crate) fn proof_key() -> domain::Jkt {
    domain::Jkt::of_canonical_jwk("{\"test\":\"key\"}")
}

/// A `DPoP` header for a POST to [`proof_uri`].
pub(crate) fn proof_input() -> crate::DpopInput {
    crate::DpopInput {
        proof: "the.proof.jws".to_owned(),
        method: "POST".to_owned(),
        uri: proof_uri(),
    }
}

/// A fresh proof by [`proof_key`] for a POST to [`proof_uri`].
pub(crate) fn proof_claims() -> domain::ProofClaims {
    domain::ProofClaims {
        jkt: proof_key(),
        htm: "POST".to_owned(),
        htu: Some(proof_uri()),
        htu_has_query_or_fragment: false,
        iat: NOW,
        jti: "jti-1".to_owned(),
        ath: None,
    }
}

/// [`proof_claims`] as checked, its `jti` still to be recorded.
pub(crate) fn checked_proof() -> crate::ports::CheckedProof {
    crate::ports::CheckedProof {
        key: proof_key(),
        jti: "jti-1".to_owned(),
        remember_until: NOW.plus(Duration::from_secs(60)),
    }
}

/// DPoP with a reader that reads every proof as `read` (the
/// [`proof_claims`] when `Ok(())`) and a replay store that must never be
/// asked: refresh and logout leave the `jti` to the store's transaction.
pub(crate) fn with_dpop_in_the_transaction(
    warden: TokenWarden,
    read: Result<(), domain::ProofRejection>,
) -> TokenWarden {
    use crate::ports::{MockDpopProofReader, MockDpopReplayStore};
    let mut reader = MockDpopProofReader::new();
    reader
        .expect_read()
        .return_const(read.map(|()| proof_claims()));
    let mut replay = MockDpopReplayStore::new();
    replay.expect_first_use().never();
    warden.with_dpop(crate::Dpop {
        reader: Arc::new(reader),
        replay: Arc::new(replay),
        settings: crate::DpopSettings {
            mode: domain::DpopMode::Optional,
            window: domain::ProofWindow {
                max_age: Duration::from_secs(60),
                leeway: Duration::ZERO,
            },
        },
    })
}

/// DPoP in `mode`, with a reader that reads every proof as `read` (the
/// [`proof_claims`] when `Ok(())`) and a replay store that has seen nothing.
pub(crate) fn with_dpop(
    warden: TokenWarden,
    mode: domain::DpopMode,
    read: Result<(), domain::ProofRejection>,
) -> TokenWarden {
    with_dpop_reading(warden, mode, read.map(|()| proof_claims()))
}

/// DPoP in `mode`, with a reader that reads every proof as `read` and a
/// replay store that has seen nothing.
pub(crate) fn with_dpop_reading(
    warden: TokenWarden,
    mode: domain::DpopMode,
    read: Result<domain::ProofClaims, domain::ProofRejection>,
) -> TokenWarden {
    use crate::ports::{MockDpopProofReader, MockDpopReplayStore};
    let mut reader = MockDpopProofReader::new();
    reader.expect_read().return_const(read);
    let mut replay = MockDpopReplayStore::new();
    replay.expect_first_use().return_const(Ok(true));
    warden.with_dpop(crate::Dpop {
        reader: Arc::new(reader),
        replay: Arc::new(replay),
        settings: crate::DpopSettings {
            mode,
            window: domain::ProofWindow {
                max_age: Duration::from_secs(60),
                leeway: Duration::ZERO,
            },
        },
    })
}
