//! Statements of the hot path whose SQL text never changes, so that Diesel
//! keeps them prepared.
//!
//! Diesel never caches the prepared form of an `UPDATE` it builds (the
//! `SET` list could vary), so every rotation prepared its two updates again:
//! on SQLite that is parsing, planning and compiling the `sessions`
//! triggers for each refresh (12 % of the server's CPU in the profile of the
//! refresh benchmark, see `docs/performance.md`); on PostgreSQL a parse and
//! plan on the server per statement. A [`Fixed`] statement is one
//! [`Statement`]'s SQL text with its binds: Diesel's statement cache finds
//! it by the statement's type, without building the text again, and
//! prepares it once per connection.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::{QueryResult, RunQueryDsl};

use crate::connection::AnyConnection;
use crate::error::DbError;

/// One bound value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bind<'a> {
    Text(&'a str),
    NullableText(Option<&'a str>),
    BigInt(i64),
}

/// One statement's SQL: pieces with a bind between each two
/// (`PIECES.len()` is one more than the binds); the backend writes its own
/// placeholders (`?` or `$n`). Its type is the statement's cache key.
pub(crate) trait Statement: 'static {
    const PIECES: &'static [&'static str];
}

/// A [`Statement`] with its binds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fixed<'a, S> {
    binds: &'a [Bind<'a>],
    statement: PhantomData<S>,
}

impl<'a, S: Statement> Fixed<'a, S> {
    pub(crate) fn new(binds: &'a [Bind<'a>]) -> Self {
        debug_assert_eq!(
            S::PIECES.len(),
            binds.len() + 1,
            "a bind between two pieces"
        );
        Self {
            binds,
            statement: PhantomData,
        }
    }

    /// Runs the statement and returns the number of rows it changed.
    pub(crate) fn execute(self, conn: &mut AnyConnection) -> Result<usize, DbError> {
        Ok(match conn {
            AnyConnection::Sqlite(c) => RunQueryDsl::execute(self, c)?,
            AnyConnection::Postgresql(c) => RunQueryDsl::execute(self, c)?,
        })
    }
}

/// Identified by its statement's type (whatever the binds).
impl<S: Statement> QueryId for Fixed<'_, S> {
    type QueryId = S;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB, S: Statement> QueryFragment<DB> for Fixed<'_, S>
where
    DB: Backend,
    str: diesel::serialize::ToSql<Text, DB>,
    i64: diesel::serialize::ToSql<BigInt, DB>,
    DB: diesel::sql_types::HasSqlType<Text> + diesel::sql_types::HasSqlType<BigInt>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let (first, rest) = S::PIECES.split_first().unwrap_or((&"", &[]));
        out.push_sql(first);
        for (bind, piece) in self.binds.iter().zip(rest) {
            match bind {
                Bind::Text(v) => out.push_bind_param::<Text, str>(v)?,
                Bind::NullableText(v) => out.push_bind_param::<Nullable<Text>, _>(v)?,
                Bind::BigInt(v) => out.push_bind_param::<BigInt, i64>(v)?,
            }
            out.push_sql(piece);
        }
        Ok(())
    }
}

impl<Conn, S> RunQueryDsl<Conn> for Fixed<'_, S> {}

/// Marks a token spent: `used_at`, by digest.
#[derive(Debug)]
pub(crate) struct SpendToken;

impl Statement for SpendToken {
    const PIECES: &'static [&'static str] = &[
        "UPDATE refresh_tokens SET used_at = ",
        " WHERE digest = ",
        "",
    ];
}

/// What a rotation changes on its session row, by id.
/// The pieces of a statement that ends by writing a session's new state:
/// `$before`, whose last piece opens `UPDATE sessions SET generation = `,
/// then the other columns a rotation changes and `WHERE id = `. Their
/// binds are `rotation::session_binds`, in this order.
macro_rules! session_update {
    ($($before:expr),+ $(,)?) => {
        [
            $($before,)+
            ", rotated_at = ",
            ", last_used_at = ",
            ", rotated_by = ",
            ", rotated_ip = ",
            ", last_user_agent = ",
            ", last_ip = ",
            ", run_ip = ",
            ", run_user_agent = ",
            ", run_attempts = ",
            ", run_first_at = ",
            ", run_last_at = ",
            " WHERE id = ",
            "",
        ]
    };
}

#[derive(Debug)]
pub(crate) struct WriteRotation;

impl Statement for WriteRotation {
    const PIECES: &'static [&'static str] = &session_update!("UPDATE sessions SET generation = ");
}

/// PostgreSQL only: the writes of a successful rotation whose success is
/// counted in its session's run, in one statement (one round trip instead
/// of four): spend the presented token, insert the successor, the audit row
/// (`on_session`), and the session's new state. Data-modifying CTEs all run
/// (PostgreSQL runs each exactly once, whether or not the outer statement
/// reads them); the rows they touch are distinct, and the triggers fire as
/// for the statements one by one.
#[derive(Debug)]
pub(crate) struct RotatePostgres;

impl Statement for RotatePostgres {
    const PIECES: &'static [&'static str] = &session_update!(
        "WITH spent AS (UPDATE refresh_tokens SET used_at = ",
        " WHERE digest = ",
        "), successor AS (INSERT INTO refresh_tokens \
         (digest, session_id, generation, issued_at, expires_at) VALUES (",
        ", ",
        ", ",
        ", ",
        ", ",
        ")), audit AS (INSERT INTO refresh_audit \
         (on_session, at, outcome, user_id, session_id, ip, user_agent, fingerprint) \
         VALUES (TRUE, ",
        ", ",
        ", ",
        ", ",
        ", ",
        ", ",
        ", ",
        ")) UPDATE sessions SET generation = "
    );
}
