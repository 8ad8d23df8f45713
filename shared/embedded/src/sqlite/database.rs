use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DatabaseError {
    #[error("cannot open the database at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("schema migration {version} failed: {source}")]
    Migration {
        version: usize,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "the database is at schema version {found}, newer than this build knows ({known}); upgrade iot-local"
    )]
    TooNew { found: usize, known: usize },
}

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
/// Never edit a released migration: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: metadata items, one secondary index, TTL.
    "CREATE TABLE items (
        pk TEXT NOT NULL,
        sk TEXT NOT NULL,
        data TEXT NOT NULL,
        version INTEGER NOT NULL,
        ipk TEXT,
        isk TEXT,
        expires_at INTEGER,
        PRIMARY KEY (pk, sk)
    ) WITHOUT ROWID;
    CREATE INDEX items_by_index ON items (ipk, isk, pk, sk) WHERE ipk IS NOT NULL;",
    // 2: telemetry points; the key serves range and latest queries per device and signal.
    "CREATE TABLE telemetry (
        device_uid TEXT NOT NULL,
        signal TEXT NOT NULL,
        time INTEGER NOT NULL,
        num REAL,
        flag INTEGER,
        txt TEXT,
        PRIMARY KEY (device_uid, signal, time)
    ) WITHOUT ROWID;
    CREATE INDEX telemetry_by_device_time ON telemetry (device_uid, time);",
    // 3: durable queues (alarm requests, alarm events) and the schedules of statistics jobs.
    "CREATE TABLE queue (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        queue TEXT NOT NULL,
        message_id TEXT NOT NULL,
        body TEXT NOT NULL,
        enqueued_at INTEGER NOT NULL,
        visible_at INTEGER NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX queue_by_visibility ON queue (queue, visible_at, seq);
    CREATE TABLE schedules (
        name TEXT PRIMARY KEY,
        cron TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        job_id TEXT NOT NULL
    ) WITHOUT ROWID;",
];

/// An open, migrated database, shared by the stores built on it.
#[derive(Clone)]
pub struct Database {
    connection: Arc<Mutex<Connection>>,
}

impl Database {
    pub fn open(path: &Path) -> Result<Self, DatabaseError> {
        let connection = Connection::open(path).map_err(|source| DatabaseError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Self::prepare(connection, &path.display().to_string())
    }

    /// A private in-memory database (tests, dry runs).
    pub fn in_memory() -> Result<Self, DatabaseError> {
        let connection = Connection::open_in_memory().map_err(|source| DatabaseError::Open {
            path: ":memory:".into(),
            source,
        })?;
        Self::prepare(connection, ":memory:")
    }

    fn prepare(mut connection: Connection, path: &str) -> Result<Self, DatabaseError> {
        let open_err = |source| DatabaseError::Open {
            path: path.to_owned(),
            source,
        };
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA busy_timeout = 5000;
                 PRAGMA foreign_keys = ON;",
            )
            .map_err(open_err)?;
        migrate(&mut connection)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    pub fn schema_version(&self) -> usize {
        self.run_now(|c| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)))
            .map(|v| v as usize)
            .unwrap_or(0)
    }

    /// Runs `f` on the connection on the blocking pool.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, rusqlite::Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = connection.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?
    }

    fn run_now<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, rusqlite::Error> {
        let mut guard = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

fn migrate(connection: &mut Connection) -> Result<(), DatabaseError> {
    let current = connection
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(|source| DatabaseError::Migration { version: 0, source })?
        as usize;
    if current > MIGRATIONS.len() {
        return Err(DatabaseError::TooNew {
            found: current,
            known: MIGRATIONS.len(),
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = index + 1;
        let err = |source| DatabaseError::Migration { version, source };
        let tx = connection.transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", version as i64)
            .map_err(err)?;
        tx.commit().map_err(err)?;
        tracing::info!(version, "database schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_database_is_migrated_in_wal_mode() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("iot.db");
        let db = Database::open(&path)?;
        assert_eq!(db.schema_version(), MIGRATIONS.len());
        let mode: String = db.run_now(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))?;
        assert_eq!(mode, "wal");
        drop(db);
        // Reopening runs nothing again.
        assert_eq!(Database::open(&path)?.schema_version(), MIGRATIONS.len());
        Ok(())
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("iot.db");
        Connection::open(&path)?.pragma_update(None, "user_version", 99)?;
        let err = Database::open(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("schema version 99"), "{err}");
        Ok(())
    }

    #[test]
    fn an_unwritable_path_is_a_clear_error() {
        let err = Database::open(Path::new("/nonexistent-dir/iot.db"))
            .err()
            .map(|e| e.to_string());
        assert!(
            err.is_some_and(|e| e.contains("cannot open the database at /nonexistent-dir/iot.db"))
        );
    }
}
