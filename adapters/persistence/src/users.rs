//! [`UserRepository`] over the `users` table.

use application::ports::{
    AccountUpdate, AccountUpdated, CreateUserError, StoreError, UpdateAccountError, UserQuery,
    UserRepository,
};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use domain::{
    account, AccountEvent, AccountPlan, NewUser, PasswordHash, SecurityEventKind,
    SessionRevocation, User, UserId, Username,
};
use serde_json::json;

use crate::audit::{insert_event, EventDraft};
use crate::connection::{AnyConnection, Database};
use crate::error::{store, DbError};
use crate::rows::{NewUserRow, UserRow};
use crate::schema::{refresh_tokens, sessions, users};
use crate::sessions::parse_ids;
use crate::transaction::{lock_user, write_transaction};

/// Name of the unique index on `users.username_key` (both backends).
const USERNAME_INDEX: &str = "users_username_key_unique";

/// Whether `error` is the unique violation of the case-insensitive username.
/// PostgreSQL names the index; SQLite names the column in its message.
fn is_username_taken(error: &DbError) -> bool {
    match error {
        DbError::Query(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)) => {
            info.constraint_name() == Some(USERNAME_INDEX)
                || info.message().contains("users.username_key")
        }
        _ => false,
    }
}

impl UserRepository for Database {
    fn create(&self, user: NewUser) -> Result<User, CreateUserError> {
        let id = user.id.to_string();
        let roles = user.roles.to_stored();
        let username_key = user.username.canonical();
        let row = NewUserRow {
            id: &id,
            username: user.username.as_str(),
            username_key: &username_key,
            password_hash: user.password_hash.as_str(),
            roles: &roles,
            created_at: user.created_at.as_millis(),
        };
        let inserted = self.conn().and_then(|mut conn| {
            write_transaction(&mut conn, self.write_lock(), |conn| {
                diesel::insert_into(users::table)
                    .values(&row)
                    .execute(conn)?;
                Ok(())
            })
        });
        match inserted {
            Ok(()) => Ok(User {
                id: user.id,
                username: user.username,
                roles: user.roles,
                created_at: user.created_at,
                disabled: false,
                last_login_at: None,
            }),
            Err(e) if is_username_taken(&e) => Err(CreateUserError::UsernameTaken),
            Err(e) => Err(CreateUserError::Store(e.into_store("create user"))),
        }
    }

    fn find_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<(User, PasswordHash)>, StoreError> {
        self.user_credentials(username)
            .map_err(store("find user credentials"))
    }

    fn find(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.user(id).map_err(store("find user"))
    }

    fn list(&self, query: &UserQuery) -> Result<Vec<User>, StoreError> {
        self.users_page(query).map_err(store("list users"))
    }

    fn update(&self, update: AccountUpdate) -> Result<AccountUpdated, UpdateAccountError> {
        self.update_account(&update)
            .map_err(|e| UpdateAccountError::Store(e.into_store("update account")))?
    }
}

impl Database {
    fn user_credentials(
        &self,
        username: &Username,
    ) -> Result<Option<(User, PasswordHash)>, DbError> {
        let mut conn = self.conn()?;
        let row = users::table
            .filter(users::username_key.eq(username.canonical()))
            .select((UserRow::as_select(), users::password_hash))
            .first::<(UserRow, String)>(&mut conn)
            .optional()?;
        row.map(|(user, hash)| Ok((user.into_user()?, PasswordHash::new(hash))))
            .transpose()
    }

    /// One range of the unique index on `username_key` (byte order on both
    /// backends, see migration 000008), cut at `limit`.
    fn users_page(&self, query: &UserQuery) -> Result<Vec<User>, DbError> {
        let (from, until) = match &query.prefix {
            Some(prefix) => (prefix.as_str().to_owned(), prefix.upper_bound()),
            None => (String::new(), "\u{7f}".to_owned()),
        };
        let limit = i64::from(query.limit);
        let mut conn = self.conn()?;
        // One lower bound only: SQLite seeks an index by one of them and
        // filters by the other, which would scan from the prefix's start
        // on every later page.
        let rows: Vec<UserRow> = match query.after.as_ref().filter(|after| **after >= from) {
            Some(after) => users::table
                .filter(users::username_key.gt(after))
                .filter(users::username_key.lt(until))
                .order(users::username_key.asc())
                .limit(limit)
                .select(UserRow::as_select())
                .load(&mut conn)?,
            None => users::table
                .filter(users::username_key.ge(from))
                .filter(users::username_key.lt(until))
                .order(users::username_key.asc())
                .limit(limit)
                .select(UserRow::as_select())
                .load(&mut conn)?,
        };
        rows.into_iter().map(UserRow::into_user).collect()
    }

    /// Locks the user, plans the changes against it and executes the plan.
    /// A refused plan commits nothing (nothing was written before it).
    fn update_account(
        &self,
        update: &AccountUpdate,
    ) -> Result<Result<AccountUpdated, UpdateAccountError>, DbError> {
        let user_id = update.user.to_string();
        let now = update.now.as_millis();
        let mut conn = self.conn()?;
        write_transaction(&mut conn, self.write_lock(), |conn| {
            let Some(row) = lock_user(conn, &user_id)? else {
                return Ok(Err(UpdateAccountError::NotFound));
            };
            let user = row.into_user()?;
            let plan = match account::plan(update.actor, &user, &update.changes) {
                Ok(plan) => plan,
                Err(refused) => return Ok(Err(refused.into())),
            };
            let revoked = revoke_planned(conn, &user_id, &plan, now)?;
            write_planned(conn, &user_id, &plan, now)?;
            for event in &plan.events {
                insert_event(
                    conn,
                    EventDraft {
                        user_id: &user_id,
                        session_id: None,
                        kind: event.kind,
                        details: event_details(&plan, event, revoked.len()),
                        at: now,
                    },
                )?;
            }
            if plan.delete {
                delete_user(conn, &user_id)?;
                self.locations().forget_all();
            }
            Ok(Ok(AccountUpdated {
                user: plan.apply(&user),
                revoked: parse_ids(revoked)?,
            }))
        })
    }

    fn user(&self, id: UserId) -> Result<Option<User>, DbError> {
        let mut conn = self.conn()?;
        let row = users::table
            .find(id.to_string())
            .select(UserRow::as_select())
            .first(&mut conn)
            .optional()?;
        row.map(UserRow::into_user).transpose()
    }
}

/// The `details` of an account event: who acted (`actor`, the acting
/// user's id; `null` on the command line, with `via: "cli"`), how many
/// sessions the change revoked, and for `roles_changed` the roles before
/// and after.
fn event_details(plan: &AccountPlan, event: &AccountEvent, revoked: usize) -> serde_json::Value {
    let mut details = json!({
        "actor": plan.actor.user_id().map(|id| id.to_string()),
        "via": plan.actor.via(),
        "revoked_sessions": revoked,
    });
    if let (Some((before, after)), Some(map)) = (&event.roles, details.as_object_mut()) {
        map.insert("roles_before".to_owned(), json!(before.names()));
        map.insert("roles_after".to_owned(), json!(after.names()));
    }
    details
}

/// Why the plan's revocation happened, as `sessions.revoked_reason`: the
/// kind of the weightiest event (a disable of a disabled user has none).
fn revoke_reason(plan: &AccountPlan) -> &'static str {
    const ORDER: [SecurityEventKind; 5] = [
        SecurityEventKind::UserDeleted,
        SecurityEventKind::UserDisabled,
        SecurityEventKind::PasswordReset,
        SecurityEventKind::PasswordChanged,
        SecurityEventKind::RolesChanged,
    ];
    ORDER
        .into_iter()
        .find(|kind| plan.events.iter().any(|e| e.kind == *kind))
        .unwrap_or(SecurityEventKind::UserDisabled)
        .as_str()
}

/// Revokes the sessions the plan names that are neither revoked nor past
/// their absolute end; returns their ids. The caller holds the user's lock.
fn revoke_planned(
    conn: &mut AnyConnection,
    user_id: &str,
    plan: &AccountPlan,
    now: i64,
) -> Result<Vec<String>, DbError> {
    let keep = match plan.revoke {
        SessionRevocation::None => return Ok(Vec::new()),
        SessionRevocation::All => String::new(),
        SessionRevocation::AllBut(session) => session.to_string(),
    };
    let ids: Vec<String> = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::id.ne(&keep))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .select(sessions::id)
        .load(conn)?;
    if !ids.is_empty() {
        diesel::update(sessions::table.filter(sessions::id.eq_any(&ids)))
            .set((
                sessions::revoked_at.eq(now),
                sessions::revoked_reason.eq(revoke_reason(plan)),
            ))
            .execute(conn)?;
    }
    Ok(ids)
}

/// Writes the new password hash, roles and state of the plan.
fn write_planned(
    conn: &mut AnyConnection,
    user_id: &str,
    plan: &AccountPlan,
    now: i64,
) -> Result<(), DbError> {
    let row = users::table.find(user_id);
    if let Some(hash) = &plan.password_hash {
        diesel::update(row)
            .set(users::password_hash.eq(hash.as_str()))
            .execute(conn)?;
    }
    if let Some(roles) = &plan.roles {
        diesel::update(row)
            .set(users::roles.eq(roles.to_stored()))
            .execute(conn)?;
    }
    if let Some(disabled) = plan.disabled {
        diesel::update(row)
            .set(users::disabled_at.eq(disabled.then_some(now)))
            .execute(conn)?;
    }
    Ok(())
}

/// Deletes the user with their sessions and refresh tokens. Audit rows and
/// security events have no foreign key to the user: they stay until the
/// retention removes them.
fn delete_user(conn: &mut AnyConnection, user_id: &str) -> Result<(), DbError> {
    let their_sessions = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .select(sessions::id);
    diesel::delete(refresh_tokens::table.filter(refresh_tokens::session_id.eq_any(their_sessions)))
        .execute(conn)?;
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)?;
    diesel::delete(users::table.find(user_id)).execute(conn)?;
    Ok(())
}
