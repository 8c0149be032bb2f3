//! Hand-written SQL for the aggregate queries: the same text on both
//! backends, with `?` placeholders rewritten to `$n` for PostgreSQL. Diesel's
//! `sum` is typed `Numeric` on PostgreSQL, which `MultiConnection` cannot
//! carry, so sums are cast to `BIGINT` in the SQL instead.

use diesel::pg::Pg;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::Sqlite;
use diesel::{sql_query, QueryableByName, RunQueryDsl};

use crate::connection::AnyConnection;
use crate::error::DbError;

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    BigInt(i64),
}

/// Runs `sql` with `binds` on whichever backend `conn` is.
pub(crate) fn load<T>(
    conn: &mut AnyConnection,
    sql: &str,
    binds: &[Bind],
) -> Result<Vec<T>, DbError>
where
    T: QueryableByName<Pg> + QueryableByName<Sqlite> + 'static,
{
    Ok(match conn {
        AnyConnection::Postgresql(pg) => {
            let mut query = sql_query(numbered_placeholders(sql)).into_boxed::<Pg>();
            for bind in binds {
                query = match bind.clone() {
                    Bind::Text(v) => query.bind::<Text, _>(v),
                    Bind::BigInt(v) => query.bind::<BigInt, _>(v),
                };
            }
            query.load(pg)?
        }
        AnyConnection::Sqlite(sqlite) => {
            let mut query = sql_query(sql).into_boxed::<Sqlite>();
            for bind in binds {
                query = match bind.clone() {
                    Bind::Text(v) => query.bind::<Text, _>(v),
                    Bind::BigInt(v) => query.bind::<BigInt, _>(v),
                };
            }
            query.load(sqlite)?
        }
    })
}

/// `?` → `$1`, `$2`, … (the SQL here never has `?` inside a literal).
fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            numbered_placeholders("a = ? AND b >= ? OR c < ?"),
            "a = $1 AND b >= $2 OR c < $3"
        );
        assert_eq!(numbered_placeholders("SELECT 1"), "SELECT 1");
    }
}
