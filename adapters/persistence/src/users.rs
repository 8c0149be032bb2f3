//! [`UserRepository`] over the `users` table.

use application::ports::{CreateUserError, StoreError, UserRepository};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use domain::{NewUser, PasswordHash, User, UserId, Username};

use crate::connection::Database;
use crate::error::{store, DbError};
use crate::rows::{NewUserRow, UserRow};
use crate::schema::users;
use crate::transaction::write_transaction;

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
