//! Embedded schema migrations, one set per backend
//! (`migrations/sqlite`, `migrations/postgres` at the workspace root).

use application::ports::StoreError;
use diesel::sql_types::BigInt;
use diesel::{sql_query, PgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::connection::{AnyConnection, Database};
use crate::error::store;

pub(crate) const SQLITE_MIGRATIONS: EmbeddedMigrations =
    embed_migrations!("../../migrations/sqlite");
pub(crate) const POSTGRES_MIGRATIONS: EmbeddedMigrations =
    embed_migrations!("../../migrations/postgres");

/// Key of the PostgreSQL advisory lock that makes instances starting at the
/// same time migrate one after the other ("tokenwar" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x746f_6b65_6e77_6172;

type MigrationError = Box<dyn std::error::Error + Send + Sync>;

impl Database {
    /// Applies the pending migrations of this backend; returns how many.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be reached or a migration
    /// fails (that migration is then rolled back).
    pub fn run_migrations(&self) -> Result<usize, StoreError> {
        let mut conn = self.conn().map_err(store("run migrations"))?;
        let applied = match &mut *conn {
            AnyConnection::Postgresql(pg) => migrate_postgres(pg),
            AnyConnection::Sqlite(sqlite) => sqlite
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|done| done.len()),
        }
        .map_err(|e| StoreError(format!("run migrations: {e}")))?;
        if applied > 0 {
            tracing::info!(applied, backend = ?self.backend(), "database migrations applied");
        }
        Ok(applied)
    }
}

fn migrate_postgres(pg: &mut PgConnection) -> Result<usize, MigrationError> {
    sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(pg)?;
    let applied = pg
        .run_pending_migrations(POSTGRES_MIGRATIONS)
        .map(|done| done.len());
    let unlocked = sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK_KEY)
        .execute(pg);
    let applied = applied?;
    unlocked?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDatabase;
    use diesel::backend::Backend;
    use diesel::migration::MigrationSource;
    use diesel::sql_types::Text;
    use diesel::{QueryableByName, SqliteConnection};

    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text)]
        line: String,
    }

    fn sqlite_schema(conn: &mut SqliteConnection) -> Vec<String> {
        let rows = sql_query(
            "SELECT type || ' ' || name || ': ' || COALESCE(sql, '') AS line FROM sqlite_master \
             WHERE name NOT LIKE '__diesel%' AND name NOT LIKE 'sqlite_%' ORDER BY 1",
        )
        .load::<Line>(conn);
        rows.unwrap().into_iter().map(|l| l.line).collect()
    }

    fn postgres_schema(conn: &mut PgConnection) -> Vec<String> {
        let rows = sql_query(
            "SELECT line FROM ( \
               SELECT 'relation ' || relkind::text || ' ' || relname::text AS line FROM pg_class \
                 WHERE relnamespace = 'public'::regnamespace AND relname NOT LIKE '\\_\\_diesel%' \
               UNION ALL \
               SELECT 'column ' || table_name::text || '.' || column_name::text || ' ' || data_type::text || ' ' \
                   || is_nullable::text || ' ' || COALESCE(column_default::text, '') \
                 FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name NOT LIKE '\\_\\_diesel%' \
               UNION ALL \
               SELECT 'index ' || indexdef::text FROM pg_indexes \
                 WHERE schemaname = 'public' AND tablename NOT LIKE '\\_\\_diesel%' \
               UNION ALL \
               SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname::text || ' ' \
                   || pg_get_constraintdef(oid) FROM pg_constraint \
                 WHERE connamespace = 'public'::regnamespace \
                   AND conrelid::regclass::text NOT LIKE '\\_\\_diesel%' \
             ) AS schema ORDER BY 1",
        )
        .load::<Line>(conn);
        rows.unwrap().into_iter().map(|l| l.line).collect()
    }

    /// Each migration, applied on top of the previous ones, changes the
    /// schema, and its `down.sql` restores exactly the schema before it.
    /// Then all downs in reverse leave an empty schema, and all ups work
    /// again.
    fn every_down_reverts_its_up<C, DB>(
        conn: &mut C,
        source: impl Fn() -> EmbeddedMigrations,
        schema: impl Fn(&mut C) -> Vec<String>,
    ) where
        C: MigrationHarness<DB>,
        DB: Backend,
        EmbeddedMigrations: MigrationSource<DB>,
    {
        let count = MigrationSource::<DB>::migrations(&source()).unwrap().len();
        assert!(count > 0);
        let empty = schema(conn);
        assert!(
            empty.is_empty(),
            "a fresh database has no schema: {empty:?}"
        );
        for _ in 0..count {
            let before = schema(conn);
            let version = conn.run_next_migration(source()).unwrap().to_string();
            let after = schema(conn);
            assert_ne!(before, after, "migration {version} changes nothing");
            conn.revert_last_migration(source()).unwrap();
            assert_eq!(
                schema(conn),
                before,
                "down.sql of {version} does not revert its up.sql"
            );
            conn.run_next_migration(source()).unwrap();
            assert_eq!(
                schema(conn),
                after,
                "{version} does not apply again after its down.sql"
            );
        }
        let reverted = conn.revert_all_migrations(source()).unwrap();
        assert_eq!(reverted.len(), count);
        assert_eq!(
            schema(conn),
            empty,
            "reverting every migration leaves schema behind"
        );
        assert_eq!(conn.run_pending_migrations(source()).unwrap().len(), count);
    }

    fn check(db: &TestDatabase) {
        let database = db.connect(1);
        let mut conn = database.conn().unwrap();
        match &mut *conn {
            AnyConnection::Postgresql(pg) => {
                every_down_reverts_its_up(pg, || POSTGRES_MIGRATIONS, postgres_schema);
            }
            AnyConnection::Sqlite(sqlite) => {
                every_down_reverts_its_up(sqlite, || SQLITE_MIGRATIONS, sqlite_schema);
            }
        }
        drop(conn);
        // The embedded set is complete: nothing left to run.
        assert_eq!(database.run_migrations().unwrap(), 0);
    }

    #[test]
    fn every_down_sql_reverts_its_up_sql_on_sqlite() {
        check(&TestDatabase::sqlite());
    }

    #[test]
    fn every_down_sql_reverts_its_up_sql_on_postgres() {
        if let Some(db) = TestDatabase::postgres() {
            check(&db);
        }
    }
}
