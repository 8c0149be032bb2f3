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

/// A [`Statement`] that returns rows of SQL type `ST`, with its binds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Returning<'a, S, ST> {
    fixed: Fixed<'a, S>,
    rows: PhantomData<ST>,
}

impl<'a, S: Statement, ST> Returning<'a, S, ST> {
    pub(crate) fn new(binds: &'a [Bind<'a>]) -> Self {
        Self {
            fixed: Fixed::new(binds),
            rows: PhantomData,
        }
    }
}

impl<S: Statement, ST> QueryId for Returning<'_, S, ST> {
    type QueryId = S;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB, S: Statement, ST> QueryFragment<DB> for Returning<'_, S, ST>
where
    DB: Backend,
    for<'a> Fixed<'a, S>: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.fixed.walk_ast(out)
    }
}

impl<S: Statement, ST: diesel::sql_types::SqlType> diesel::query_builder::Query
    for Returning<'_, S, ST>
{
    type SqlType = ST;
}

impl<Conn, S, ST> RunQueryDsl<Conn> for Returning<'_, S, ST> {}

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

/// Records a DPoP proof id until a time: inserts it, or takes over a row
/// whose time has passed (`record_proof_id`). Binds: key, until, now.
#[derive(Debug)]
pub(crate) struct RecordProof;

impl Statement for RecordProof {
    const PIECES: &'static [&'static str] = &[
        "INSERT INTO dpop_proofs (key, expires_at) VALUES (",
        ", ",
        ") ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at \
         WHERE dpop_proofs.expires_at < ",
        "",
    ];
}

/// What a rotation changes on its session row, by id.
/// The pieces of a statement that writes a session's new state:
/// `$before`, whose last piece opens `UPDATE sessions SET generation = `,
/// then the other columns a rotation changes and `WHERE id = `, then
/// `$after` (the rest of the `WHERE` and what follows; nothing when
/// omitted). Their binds are `rotation::session_binds`, in this order.
macro_rules! session_update {
    ($($before:expr),+ $(,)?) => {
        session_update!($($before),+ ; "")
    };
    ($($before:expr),+ ; $($after:expr),+ $(,)?) => {
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
            $($after,)+
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

/// PostgreSQL only: a successful rotation planned from the session row as
/// this process last committed it ([`crate::locations`]), without a lock
/// or a read before: one statement in a transaction of its own, which
/// writes the session's new state *only if the row is still exactly the
/// one planned from* (every column the plan and the run count read), and
/// then, only if it did, spends the presented token and inserts the
/// successor and the audit row, as [`RotatePostgres`] does. It returns the
/// session's user when it wrote, and no row when the session had changed
/// (or is gone): then nothing at all was written.
///
/// A concurrent writer of the row (a rotation by another instance, a
/// revocation) either committed before the `UPDATE` reads the row, which
/// then fails its guard, or waits for this statement's row lock and sees
/// its result. `READ COMMITTED` re-checks the guard on the newest version
/// of a row that changed while the `UPDATE` waited for it. The session row
/// is locked first: the other parts read `s`, so it runs before them.
#[derive(Debug)]
pub(crate) struct RotateGuarded;

impl Statement for RotateGuarded {
    const PIECES: &'static [&'static str] = &session_update!(
        "WITH s AS (UPDATE sessions SET generation = ";
        " AND revoked_at IS NULL AND dpop_jkt IS NULL AND user_id = ",
        " AND generation = ",
        " AND rotated_at = ",
        " AND last_used_at = ",
        " AND expires_at = ",
        " AND rotated_by IS NOT DISTINCT FROM ",
        " AND rotated_ip IS NOT DISTINCT FROM ",
        " AND last_user_agent IS NOT DISTINCT FROM ",
        " AND last_ip IS NOT DISTINCT FROM ",
        " AND run_ip = ",
        " AND run_user_agent = ",
        " AND run_attempts = ",
        " AND run_first_at = ",
        " AND run_last_at = ",
        " RETURNING user_id), \
         spent AS (UPDATE refresh_tokens SET used_at = ",
        " WHERE digest = ",
        " AND EXISTS (SELECT 1 FROM s)), \
         successor AS (INSERT INTO refresh_tokens \
         (digest, session_id, generation, issued_at, expires_at) SELECT ",
        ", ",
        ", ",
        ", ",
        ", ",
        " FROM s), audit AS (INSERT INTO refresh_audit \
         (on_session, at, outcome, user_id, session_id, ip, user_agent, fingerprint) \
         SELECT TRUE, ",
        ", ",
        ", ",
        ", ",
        ", ",
        ", ",
        ", ",
        " FROM s) SELECT u.id, u.username, u.roles, u.created_at, u.disabled_at, \
         u.last_login_at FROM s JOIN users u ON u.id = s.user_id",
    );
}
