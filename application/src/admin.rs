//! Use cases of the admin API: token analysis, refresh logs, forced
//! re-authentication and security events. Every one requires the role
//! `admin`; every one that names a user answers `UserNotFound` for an
//! unknown one.
//!
//! Lists are pages of at most `limit` items, newest first, with an opaque
//! cursor to the next page (sealed for that list, see [`domain::cursor`]).

use domain::{
    assess, ActivitySummary, AnalysisDays, AuditRecord, Cursor, CursorKey, PageLimit,
    RiskAssessment, RiskThresholds, Role, SecurityEvent, Session, Timestamp, User, UserId,
};

use crate::ports::RevokeReason;
use crate::{Principal, TokenWarden, Unexpected};

/// The audit trail is aggregated by the UTC day, so the window of an
/// analysis starts at midnight (UTC).
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The caller lacks the role `admin`.
    #[error("admin role required")]
    Forbidden,
    #[error("no such user")]
    UserNotFound,
    /// A `before` cursor this list never issued.
    #[error("invalid cursor")]
    InvalidCursor,
    /// A new user's name exists already (in any letter case).
    #[error("username taken")]
    UsernameTaken,
    /// An admin may not disable or delete themselves, nor drop their own
    /// `admin` role.
    #[error("an admin cannot lock themselves out")]
    SelfLockout,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<crate::ports::StoreError> for AdminError {
    fn from(e: crate::ports::StoreError) -> Self {
        Self::Unexpected(e.into())
    }
}

/// The token analysis of one user over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAnalysis {
    pub user: User,
    /// Start of the window: `days` before `to`, rounded down to midnight UTC.
    pub from: Timestamp,
    pub to: Timestamp,
    pub days: AnalysisDays,
    pub activity: ActivitySummary,
    pub risk: RiskAssessment,
    /// The user's live sessions now, most recently used first (whether each
    /// is bound to a DPoP key is on the session).
    pub sessions: Vec<Session>,
}

/// One page of a list, and the cursor of the next one (`None` on the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl TokenWarden {
    /// What the audit trail says about `user` over the last `days`, and the
    /// risk it amounts to.
    ///
    /// # Errors
    /// [`AdminError::Forbidden`], [`AdminError::UserNotFound`], or
    /// [`AdminError::Unexpected`].
    pub fn token_analysis(
        &self,
        admin: &Principal,
        user: UserId,
        days: AnalysisDays,
    ) -> Result<TokenAnalysis, AdminError> {
        require_admin(admin)?;
        let user = self.existing_user(user)?;
        let to = self.ports.clock.now();
        let from = start_of_day(to.minus(days.duration()));
        let activity = self.ports.audit.activity(user.id, from)?;
        let risk = assess(&activity, &RiskThresholds::default());
        let sessions = self
            .ports
            .sessions
            .list_live(user.id, self.settings.lifetimes.idle_ttl, to)
            .map_err(Unexpected::from)?;
        Ok(TokenAnalysis {
            user,
            from,
            to,
            days,
            activity,
            risk,
            sessions,
        })
    }

    /// A page of the user's refresh attempts, newest first.
    ///
    /// # Errors
    /// [`AdminError::Forbidden`], [`AdminError::InvalidCursor`],
    /// [`AdminError::UserNotFound`], or [`AdminError::Unexpected`].
    pub fn refresh_logs(
        &self,
        admin: &Principal,
        user: UserId,
        before: Option<&str>,
        limit: PageLimit,
    ) -> Result<Page<AuditRecord>, AdminError> {
        require_admin(admin)?;
        let scope = format!("refresh-logs:{user}");
        let key = self.cursor_key();
        let before = open_cursor(before, &key, &scope)?;
        self.existing_user(user)?;
        let items = self
            .ports
            .audit
            .refresh_logs(user, before, limit.get().saturating_add(1))?;
        Ok(paginate(items, limit, &key, &scope, |r| Cursor {
            at: r.attempt.at,
            id: r.id,
        }))
    }

    /// Revokes every session of `user`, forcing re-authentication on every
    /// device (security event `admin_revoke`). Returns how many were live.
    ///
    /// # Errors
    /// [`AdminError::Forbidden`], [`AdminError::UserNotFound`], or
    /// [`AdminError::Unexpected`].
    pub fn revoke_user_sessions(&self, admin: &Principal, user: UserId) -> Result<u64, AdminError> {
        require_admin(admin)?;
        let user = self.existing_user(user)?;
        let now = self.ports.clock.now();
        let revoked = self.ports.sessions.revoke_all(
            user.id,
            RevokeReason::Admin { by: admin.user_id },
            now,
        )?;
        self.publish_revoked_sessions(&revoked, now);
        Ok(u64::try_from(revoked.len()).unwrap_or(u64::MAX))
    }

    /// A page of security events (of `user`, or of everyone), newest first.
    ///
    /// # Errors
    /// [`AdminError::Forbidden`], [`AdminError::InvalidCursor`],
    /// [`AdminError::UserNotFound`], or [`AdminError::Unexpected`].
    pub fn security_events(
        &self,
        admin: &Principal,
        user: Option<UserId>,
        before: Option<&str>,
        limit: PageLimit,
    ) -> Result<Page<SecurityEvent>, AdminError> {
        require_admin(admin)?;
        let scope = match user {
            Some(u) => format!("security-events:{u}"),
            None => "security-events:all".to_owned(),
        };
        let key = self.cursor_key();
        let before = open_cursor(before, &key, &scope)?;
        if let Some(user) = user {
            self.existing_user(user)?;
        }
        let items =
            self.ports
                .audit
                .security_events(user, before, limit.get().saturating_add(1))?;
        Ok(paginate(items, limit, &key, &scope, |e| Cursor {
            at: e.created_at,
            id: e.id,
        }))
    }

    fn existing_user(&self, user: UserId) -> Result<User, AdminError> {
        self.ports.users.find(user)?.ok_or(AdminError::UserNotFound)
    }

    fn cursor_key(&self) -> CursorKey {
        CursorKey::derive(&self.settings.refresh_secret)
    }
}

pub(crate) fn require_admin(principal: &Principal) -> Result<(), AdminError> {
    if principal.has_role(&Role::admin()) {
        Ok(())
    } else {
        Err(AdminError::Forbidden)
    }
}

fn open_cursor(
    before: Option<&str>,
    key: &CursorKey,
    scope: &str,
) -> Result<Option<Cursor>, AdminError> {
    before
        .map(|text| Cursor::open(text, key, scope).map_err(|_| AdminError::InvalidCursor))
        .transpose()
}

/// Cuts `items` (fetched with one more than `limit`) to a page; the cursor
/// of the next page points at the last item kept.
fn paginate<T>(
    mut items: Vec<T>,
    limit: PageLimit,
    key: &CursorKey,
    scope: &str,
    cursor_of: impl Fn(&T) -> Cursor,
) -> Page<T> {
    let limit = usize::try_from(limit.get()).unwrap_or(usize::MAX);
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| cursor_of(last).seal(key, scope))
    } else {
        None
    };
    Page { items, next }
}

fn start_of_day(t: Timestamp) -> Timestamp {
    let ms = t.as_millis();
    Timestamp::from_millis(ms - ms.rem_euclid(DAY_MS))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use domain::{
        RefreshAttempt, RefreshOutcome, RefreshSecret, RiskLevel, Roles, SecurityEventKind,
    };

    use super::*;
    use crate::test_support::{alice, principal_of, session_of, store_down, Mocks, NOW, SECRET};

    fn admin() -> Principal {
        let mut p = principal_of(&session_of(&alice()), Roles::new([Role::admin()]));
        p.user_id = UserId::from_random_bytes([0xad; 16]);
        p
    }

    fn not_admin() -> Principal {
        principal_of(&session_of(&alice()), alice().roles)
    }

    fn finding_alice(m: &mut Mocks) {
        m.users
            .expect_find()
            .withf(|id| *id == alice().id)
            .times(1)
            .return_const(Ok(Some(alice())));
    }

    fn finding_nobody(m: &mut Mocks) {
        m.users.expect_find().times(1).return_const(Ok(None));
    }

    fn record(id: i64) -> AuditRecord {
        AuditRecord {
            id,
            count: 1,
            attempt: RefreshAttempt {
                at: NOW.minus(std::time::Duration::from_secs(u64::try_from(id).unwrap())),
                outcome: RefreshOutcome::Success,
                user_id: Some(alice().id),
                session_id: Some(session_of(&alice()).id),
                ip: None,
                user_agent: None,
                fingerprint: None,
            },
        }
    }

    fn event(id: i64) -> SecurityEvent {
        SecurityEvent {
            id,
            user_id: alice().id,
            session_id: None,
            kind: SecurityEventKind::TokenReuse,
            details: "{}".to_owned(),
            created_at: NOW,
        }
    }

    fn days(n: u32) -> AnalysisDays {
        AnalysisDays::new(n).unwrap()
    }

    fn limit(n: u32) -> PageLimit {
        PageLimit::new(n).unwrap()
    }

    fn key() -> CursorKey {
        CursorKey::derive(&RefreshSecret::from_bytes(SECRET))
    }

    #[test]
    fn every_admin_use_case_refuses_a_caller_without_the_admin_role() {
        let warden = Mocks::untouchable().build();
        let who = not_admin();
        let uid = alice().id;
        assert_eq!(
            warden.token_analysis(&who, uid, days(7)),
            Err(AdminError::Forbidden)
        );
        assert_eq!(
            warden.refresh_logs(&who, uid, None, limit(10)),
            Err(AdminError::Forbidden)
        );
        assert_eq!(
            warden.revoke_user_sessions(&who, uid),
            Err(AdminError::Forbidden)
        );
        assert_eq!(
            warden.security_events(&who, None, None, limit(10)),
            Err(AdminError::Forbidden)
        );
    }

    #[test]
    fn the_analysis_reads_the_window_from_midnight_and_scores_it() {
        let mut m = Mocks::new();
        finding_alice(&mut m);
        let expected_from = start_of_day(NOW.minus(days(7).duration()));
        m.audit
            .expect_activity()
            .withf(move |user, since| *user == alice().id && *since == expected_from)
            .times(1)
            .returning(|_, _| {
                Ok(ActivitySummary {
                    by_outcome: BTreeMap::from([(RefreshOutcome::Success, 3)]),
                    reuse_events: 1,
                    ..ActivitySummary::default()
                })
            });
        m.sessions
            .expect_list_live()
            .withf(|user, _, now| *user == alice().id && *now == NOW)
            .times(1)
            .returning(|_, _, _| Ok(vec![crate::test_support::session_of(&alice())]));

        let a = m
            .build()
            .token_analysis(&admin(), alice().id, days(7))
            .unwrap();

        assert_eq!(a.user, alice());
        assert_eq!(a.sessions, vec![crate::test_support::session_of(&alice())]);
        assert_eq!(a.to, NOW);
        assert_eq!(a.from, expected_from);
        assert_eq!(a.from.as_millis() % DAY_MS, 0);
        assert!(a.from <= NOW.minus(days(7).duration()));
        assert!(NOW.minus(days(7).duration()).as_millis() - a.from.as_millis() < DAY_MS);
        assert_eq!(a.risk.level, RiskLevel::High);
        assert_eq!(a.activity.total(), 3);
    }

    #[test]
    fn the_analysis_of_an_unknown_user_is_not_found() {
        let mut m = Mocks::new();
        finding_nobody(&mut m);
        m.audit.expect_activity().never();
        assert_eq!(
            m.build().token_analysis(&admin(), alice().id, days(7)),
            Err(AdminError::UserNotFound)
        );
    }

    #[test]
    fn a_store_failure_during_the_analysis_is_unexpected() {
        let mut m = Mocks::new();
        finding_alice(&mut m);
        m.audit
            .expect_activity()
            .times(1)
            .return_const(Err(store_down()));
        assert_eq!(
            m.build().token_analysis(&admin(), alice().id, days(7)),
            Err(AdminError::Unexpected(Unexpected::Store(store_down())))
        );
    }

    #[test]
    fn a_full_page_of_logs_comes_with_a_cursor_to_the_next() {
        let mut m = Mocks::new();
        finding_alice(&mut m);
        m.audit
            .expect_refresh_logs()
            .withf(|user, before, n| *user == alice().id && before.is_none() && *n == 3)
            .times(1)
            .returning(|_, _, _| Ok(vec![record(1), record(2), record(3)]));

        let page = m
            .build()
            .refresh_logs(&admin(), alice().id, None, limit(2))
            .unwrap();

        assert_eq!(page.items, vec![record(1), record(2)]);
        let next = page.next.unwrap();
        let scope = format!("refresh-logs:{}", alice().id);
        assert_eq!(
            Cursor::open(&next, &key(), &scope),
            Ok(Cursor {
                at: record(2).attempt.at,
                id: 2
            })
        );
    }

    #[test]
    fn the_last_page_has_no_cursor_and_the_cursor_is_passed_on() {
        let mut m = Mocks::new();
        finding_alice(&mut m);
        let scope = format!("refresh-logs:{}", alice().id);
        let cursor = Cursor { at: NOW, id: 9 };
        let sealed = cursor.seal(&key(), &scope);
        m.audit
            .expect_refresh_logs()
            .withf(move |_, before, n| *before == Some(cursor) && *n == 3)
            .times(1)
            .returning(|_, _, _| Ok(vec![record(10)]));

        let page = m
            .build()
            .refresh_logs(&admin(), alice().id, Some(&sealed), limit(2))
            .unwrap();

        assert_eq!(page.items, vec![record(10)]);
        assert_eq!(page.next, None);
    }

    #[test]
    fn a_cursor_never_issued_for_this_list_is_invalid_and_reads_nothing() {
        let m = Mocks::untouchable();
        let other_user = UserId::from_random_bytes([0x0b; 16]);
        let foreign = Cursor { at: NOW, id: 1 }.seal(&key(), &format!("refresh-logs:{other_user}"));
        let warden = m.build();
        for bad in ["garbage", "", foreign.as_str()] {
            assert_eq!(
                warden.refresh_logs(&admin(), alice().id, Some(bad), limit(10)),
                Err(AdminError::InvalidCursor),
                "{bad}"
            );
            assert_eq!(
                warden.security_events(&admin(), None, Some(bad), limit(10)),
                Err(AdminError::InvalidCursor)
            );
        }
    }

    #[test]
    fn logs_of_an_unknown_user_are_not_found() {
        let mut m = Mocks::new();
        finding_nobody(&mut m);
        m.audit.expect_refresh_logs().never();
        assert_eq!(
            m.build()
                .refresh_logs(&admin(), alice().id, None, limit(10)),
            Err(AdminError::UserNotFound)
        );
    }

    #[test]
    fn an_admin_revocation_revokes_every_session_naming_the_admin() {
        let mut m = Mocks::new();
        finding_alice(&mut m);
        let by = admin().user_id;
        m.sessions
            .expect_revoke_all()
            .withf(move |user, reason, now| {
                *user == alice().id && *reason == RevokeReason::Admin { by } && *now == NOW
            })
            .times(1)
            .return_const(Ok(vec![
                domain::SessionId::from_random_bytes([0x21; 16]),
                domain::SessionId::from_random_bytes([0x22; 16]),
            ]));

        assert_eq!(m.build().revoke_user_sessions(&admin(), alice().id), Ok(2));
    }

    #[test]
    fn revoking_the_sessions_of_an_unknown_user_is_not_found() {
        let mut m = Mocks::new();
        finding_nobody(&mut m);
        m.sessions.expect_revoke_all().never();
        assert_eq!(
            m.build().revoke_user_sessions(&admin(), alice().id),
            Err(AdminError::UserNotFound)
        );
    }

    #[test]
    fn security_events_of_everyone_need_no_user_lookup() {
        let mut m = Mocks::new();
        m.users.expect_find().never();
        m.audit
            .expect_security_events()
            .withf(|user, before, n| user.is_none() && before.is_none() && *n == 2)
            .times(1)
            .returning(|_, _, _| Ok(vec![event(5), event(4)]));

        let page = m
            .build()
            .security_events(&admin(), None, None, limit(1))
            .unwrap();

        assert_eq!(page.items, vec![event(5)]);
        let next = page.next.unwrap();
        assert!(Cursor::open(&next, &key(), "security-events:all").is_ok());
    }

    #[test]
    fn security_events_filtered_by_an_unknown_user_are_not_found() {
        let mut m = Mocks::new();
        finding_nobody(&mut m);
        m.audit.expect_security_events().never();
        assert_eq!(
            m.build()
                .security_events(&admin(), Some(alice().id), None, limit(10)),
            Err(AdminError::UserNotFound)
        );
    }

    #[test]
    fn days_start_at_midnight_utc() {
        let t = Timestamp::from_millis(2 * DAY_MS + 23 * 3_600_000);
        assert_eq!(start_of_day(t), Timestamp::from_millis(2 * DAY_MS));
        assert_eq!(
            start_of_day(Timestamp::from_millis(2 * DAY_MS)),
            Timestamp::from_millis(2 * DAY_MS)
        );
    }
}
