//! Ports: what the use cases need from the outside world.
//!
//! Every port is synchronous: the adapters behind them (Diesel, r2d2,
//! argon2) block anyway, so the HTTP adapter runs a whole use case inside one
//! call on a blocking thread. Atomicity belongs to the adapter: each method
//! documented as "one transaction" must be exactly that.

use std::time::Duration;

use domain::{
    AccountChange, AccountRuleError, Actor, EndVia, Generation, Jkt, NewSession, NewUser, Password,
    PasswordHash, RefreshOutcome, Roles, RotationDecision, RotationPolicy, SecurityEventKind,
    Session, SessionId, SessionStatus, Timestamp, TokenDigest, User, UserId, Username,
    UsernamePrefix,
};

#[cfg(any(test, feature = "mocks"))]
pub use crate::cleanup::MockExpiredDataStore;
pub use crate::cleanup::{CleanupCutoffs, CleanupReport, ExpiredDataStore};
#[cfg(any(test, feature = "mocks"))]
pub use crate::revocation::MockRevocationList;
pub use crate::revocation::{Consistency, Revocation, RevocationKey, RevocationList};
mod audit;
mod dpop;
mod webhooks;
#[cfg(any(test, feature = "mocks"))]
pub use audit::MockAuditTrail;
pub use audit::{AuditTrail, RevokeReason};
pub use dpop::{CheckedProof, DpopProofReader, DpopReplayStore};
#[cfg(any(test, feature = "mocks"))]
pub use dpop::{MockDpopProofReader, MockDpopReplayStore};
#[cfg(any(test, feature = "mocks"))]
pub use webhooks::MockWebhookOutbox;
pub use webhooks::{Claim, Delivery, WebhookOutbox};

/// The storage failed or could not be reached. Carries a description for the
/// log only; it never reaches a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage unavailable: {0}")]
pub struct StoreError(pub String);

/// A cryptographic operation failed unexpectedly (not a verification failure).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("crypto failure: {0}")]
pub struct CryptoError(pub String);

/// Reads the current time. The only clock the use cases see.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// Cryptographically secure random bytes.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait RandomSource: Send + Sync + 'static {
    /// 32 bytes for a refresh token.
    fn token_bytes(&self) -> [u8; 32];
    /// 16 bytes for an identifier.
    fn id_bytes(&self) -> [u8; 16];
}

/// Password hashing (argon2id in production).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait PasswordHasher: Send + Sync + 'static {
    /// Hashes a new password.
    ///
    /// # Errors
    /// [`CryptoError`] when the hasher fails (never for a valid password).
    fn hash(&self, password: &Password) -> Result<PasswordHash, CryptoError>;

    /// Checks `password` against `hash`. With `None` (unknown user) it checks
    /// against a dummy hash made with the same parameters and returns
    /// `false`, so both cases take comparable time.
    ///
    /// The lifetime is spelled out only because `mockall` cannot mock an
    /// elided lifetime inside `Option`; implementations may still elide it.
    ///
    /// # Errors
    /// [`CryptoError`] when the stored hash cannot be read.
    #[allow(
        clippy::needless_lifetimes,
        reason = "mockall needs the lifetime named"
    )]
    fn verify<'a>(
        &self,
        password: &Password,
        hash: Option<&'a PasswordHash>,
    ) -> Result<bool, CryptoError>;
}

/// The claims of an access token, as the use cases see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub roles: Roles,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    /// Unique token id (`jti`).
    pub token_id: String,
    /// `cnf.jkt` (RFC 9449 §6.1): the proof key the token is bound to,
    /// as its session is. Such a token is accepted only with a proof by it.
    pub confirmation: Option<Jkt>,
}

/// Why an access token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("access token expired")]
    Expired,
    #[error("access token invalid")]
    Invalid,
}

/// Signs and verifies access tokens.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait AccessTokenSigner: Send + Sync + 'static {
    /// Signs `claims` with the current key.
    ///
    /// # Errors
    /// [`CryptoError`] when no key is usable.
    fn sign(&self, claims: &AccessClaims) -> Result<String, CryptoError>;

    /// Verifies signature, algorithm, `typ`, `iss`, `aud`, `exp` and `nbf`
    /// at `now` (with the configured leeway) and returns the claims.
    ///
    /// # Errors
    /// [`VerifyError::Expired`] past `exp`, [`VerifyError::Invalid`] for
    /// anything else.
    fn verify(&self, token: &str, now: Timestamp) -> Result<AccessClaims, VerifyError>;
}

/// Why a user could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateUserError {
    #[error("username taken")]
    UsernameTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait UserRepository: Send + Sync + 'static {
    /// Stores a new user.
    ///
    /// # Errors
    /// [`CreateUserError::UsernameTaken`] when the username exists in any
    /// letter case; [`CreateUserError::Store`] otherwise.
    fn create(&self, user: NewUser) -> Result<User, CreateUserError>;

    /// The user with this username (compared case-insensitively) and their
    /// password hash.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<(User, PasswordHash)>, StoreError>;

    /// # Errors
    /// [`StoreError`] when storage fails.
    fn find(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// Users by canonical (lower-case) username, ascending: those whose
    /// name starts with `query.prefix` (everyone without one), strictly
    /// after `query.after` (a canonical username), at most `query.limit`.
    /// Served by an index: a page costs the same among 100 000 users.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn list(&self, query: &UserQuery) -> Result<Vec<User>, StoreError>;

    /// One transaction: locks the user, plans `update.changes` with
    /// [`domain::account::plan`] against the user as stored, and executes
    /// the plan: the new password hash, roles or state, the revocation of
    /// the sessions it names, deletion (sessions and tokens with the user;
    /// audit rows and security events stay), and its security events, each
    /// with `details.actor`.
    ///
    /// # Errors
    /// [`UpdateAccountError::NotFound`] for an unknown user,
    /// [`UpdateAccountError::Refused`] when a rule refuses a change (then
    /// nothing changes), [`UpdateAccountError::Store`] when storage fails.
    fn update(&self, update: AccountUpdate) -> Result<AccountUpdated, UpdateAccountError>;
}

/// A page of users to read (see [`UserRepository::list`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    pub prefix: Option<UsernamePrefix>,
    /// A canonical username: the page starts after it.
    pub after: Option<String>,
    pub limit: u32,
}

/// Changes to one account (see [`UserRepository::update`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountUpdate {
    pub user: UserId,
    pub actor: Actor,
    pub changes: Vec<AccountChange>,
    pub now: Timestamp,
}

/// The result of [`UserRepository::update`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountUpdated {
    /// The user as it now is; `None` once deleted.
    pub user: Option<User>,
    /// The sessions the update revoked (or deleted), for the revocation list.
    pub revoked: Vec<SessionId>,
}

/// Why [`UserRepository::update`] changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateAccountError {
    #[error("no such user")]
    NotFound,
    #[error(transparent)]
    Refused(#[from] AccountRuleError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why [`SessionRepository::create`] started no session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateSessionError {
    /// The user was disabled meanwhile (after their password was checked).
    #[error("account disabled")]
    AccountDisabled,
    /// The user was deleted meanwhile.
    #[error("no such user")]
    UserGone,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who is asking, as far as the network tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Where a presented refresh token belongs: read before any transaction,
/// and never changed once written (a token's session and generation, a
/// session's user and key binding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLocation {
    pub session: SessionId,
    pub user: UserId,
    pub generation: Generation,
    /// Whether the session is bound to a DPoP key.
    pub bound: bool,
}

/// Everything a rotation needs, decided on inside one transaction.
#[derive(Debug, Clone)]
pub struct RotateRequest {
    pub presented: TokenDigest,
    /// Where [`SessionRepository::locate`] found the presented token.
    pub location: TokenLocation,
    /// Digest of the successor derived from the presented token.
    pub successor: TokenDigest,
    pub policy: RotationPolicy,
    pub client: ClientInfo,
    pub now: Timestamp,
    /// The DPoP proof sent with the token, if it passed its checks; passed
    /// only for a bound session. Its `jti` is recorded in the rotation's
    /// transaction; a `jti` seen before counts as no proof.
    pub proof: Option<CheckedProof>,
}

/// The result of [`SessionRepository::rotate`].
#[derive(Debug, Clone, PartialEq, Eq)]
// Returned once per refresh and matched on at once: boxing `Session` would
// only cost an allocation and change the port the adapters implement.
#[allow(clippy::large_enum_variant)]
pub enum RotateOutcome {
    /// The token is no longer on record (cleaned up since it was located).
    UnknownToken,
    /// The plan ([`domain::plan`]) taken and executed. `session` is the
    /// state after it; a theft response has been committed.
    Decided {
        decision: RotationDecision,
        /// What the audit row recorded.
        outcome: RefreshOutcome,
        /// The generation of the presented token.
        presented: Generation,
        session: Session,
        user: User,
        /// Every session this call revoked (a theft response; empty
        /// otherwise), to be put on the revocation list.
        revoked: Vec<SessionId>,
        /// The security event recorded, if any.
        event: Option<SecurityEventKind>,
    },
}

/// Why a session is being ended through one of its tokens.
pub type EndReason = EndVia;

/// Ending a session through one of its tokens.
#[derive(Debug, Clone)]
pub struct EndRequest {
    pub token: TokenDigest,
    pub reason: EndReason,
    pub policy: RotationPolicy,
    pub client: ClientInfo,
    pub now: Timestamp,
    /// The DPoP proof sent with the token, if it passed its checks. For a
    /// bound session its `jti` is recorded in the transaction (a `jti`
    /// seen before counts as no proof); an unbound session ignores it.
    pub proof: Option<CheckedProof>,
    /// The key of a proof this request has already had recorded (a login's,
    /// when it was admitted): proven without recording it again.
    pub recorded_key: Option<Jkt>,
}

/// The result of [`SessionRepository::end_by_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndOutcome {
    UnknownToken,
    /// The session was live and is now revoked.
    Ended {
        session: SessionId,
        user: UserId,
    },
    /// The session had already ended; nothing changed.
    AlreadyEnded {
        session: SessionId,
        user: UserId,
    },
    /// The token was a rotated one: theft response committed.
    Reused {
        session: SessionId,
        user: UserId,
        /// Every session the theft response revoked.
        revoked: Vec<SessionId>,
    },
    /// A logout of a live session bound to a DPoP key without a valid proof
    /// by that key: nothing ended; the `dpop_mismatch` security event has
    /// been committed.
    DpopMismatch {
        session: SessionId,
        user: UserId,
    },
}

/// The result of [`SessionRepository::create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSession {
    pub session: Session,
    /// Live sessions of the user revoked to stay within `max_sessions`.
    pub evicted: Vec<SessionId>,
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait SessionRepository: Send + Sync + 'static {
    /// Creates a session with its first refresh token (generation 0) and, in
    /// the same transaction, revokes the least recently used live sessions
    /// of the user beyond `max_sessions`, and reports them. It records the
    /// login as the user's `last_login_at`. The user is locked first, so a
    /// login racing a disable or a deletion never leaves a session behind.
    ///
    /// # Errors
    /// [`CreateSessionError::AccountDisabled`] or
    /// [`CreateSessionError::UserGone`] when the user is disabled or gone;
    /// [`CreateSessionError::Store`] when storage fails.
    fn create(
        &self,
        session: NewSession,
        token: TokenDigest,
        max_sessions: u32,
    ) -> Result<CreatedSession, CreateSessionError>;

    /// Where the token with this digest belongs; `None` when it is not on
    /// record. A plain read: it takes no lock and writes nothing. What it
    /// answers never changes once committed, so an adapter may answer from
    /// memory; a token whose rows another process deleted meanwhile may
    /// then still be located, and [`SessionRepository::rotate`] finds it
    /// unknown ([`RotateOutcome::UnknownToken`]).
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn locate(&self, token: &TokenDigest) -> Result<Option<TokenLocation>, StoreError>;

    /// One transaction: locks the located token's user and session, reads
    /// the session as it is now, records the `jti` of the request's proof
    /// (if any; the plan gets the proof's key only if the `jti` was new),
    /// asks [`domain::plan`] and executes the
    /// plan: on `Rotate` the presented token is marked used and the
    /// successor stored; a theft response revokes what the plan says. The
    /// attempt's audit record and the plan's security event are written in
    /// the same transaction. Of concurrent calls with the same token,
    /// exactly one sees `Rotate`; of concurrent calls with the same proof,
    /// at most one gets its key.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails; nothing is then changed.
    fn rotate(&self, request: RotateRequest) -> Result<RotateOutcome, StoreError>;

    /// One transaction: ends the session that `token` (current or rotated)
    /// belongs to as [`domain::plan_end`] says, see [`EndReason`]. For a
    /// bound session, the proof's `jti` is recorded in it and the plan gets
    /// the proof's key only if the `jti` was new; the plan's security
    /// event is written in it too.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn end_by_token(&self, request: EndRequest) -> Result<EndOutcome, StoreError>;

    /// Revokes every session of `user` that is neither revoked nor past its
    /// absolute end, recording the security event of `reason` in the same
    /// transaction; returns them (for the revocation list).
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn revoke_all(
        &self,
        user: UserId,
        reason: RevokeReason,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError>;

    /// Revokes `session` if it belongs to `user` and is live (not revoked,
    /// not past its idle or absolute deadline); `false` when it is not the
    /// user's or not live, exactly as [`Self::list_live`] would tell.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn revoke_one(
        &self,
        user: UserId,
        session: SessionId,
        idle_ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// The user's live sessions (not revoked, not past either deadline),
    /// most recently used first.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn list_live(
        &self,
        user: UserId,
        idle_ttl: Duration,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError>;

    /// Whether tokens of `session` may be honoured at `now`.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn status(
        &self,
        session: SessionId,
        idle_ttl: Duration,
        now: Timestamp,
    ) -> Result<SessionStatus, StoreError>;
}
