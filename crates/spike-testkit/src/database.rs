//! Throwaway databases for the order ledger: a fresh PostgreSQL database per
//! test in the server `scripts/test` started (`SPIKE_TEST_DATABASE_URL`), or
//! a fresh SQLite file. Without that variable a PostgreSQL test fails loudly
//! rather than skip: run the suite with `scripts/test`.

use std::path::PathBuf;
use std::process::Command;

/// Environment variable naming the suite's PostgreSQL server.
pub const SHARED_POSTGRES_ENV: &str = "SPIKE_TEST_DATABASE_URL";

/// One test's own database; PostgreSQL ones are dropped with it.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    server: Option<(String, String)>,
    file: Option<PathBuf>,
}

impl TestDatabase {
    /// A new, empty PostgreSQL database in the suite's server.
    pub fn postgres() -> Self {
        let server = std::env::var(SHARED_POSTGRES_ENV).unwrap_or_default();
        assert!(
            !server.is_empty(),
            "{SHARED_POSTGRES_ENV} is not set: run the suite with scripts/test, which starts PostgreSQL"
        );
        let name = crate::unique("spike").replace('-', "_");
        psql(&server, &format!("CREATE DATABASE {name}"));
        let base = server
            .rsplit_once('/')
            .map_or(server.as_str(), |(base, _)| base);
        Self {
            url: format!("{base}/{name}"),
            server: Some((server.clone(), name)),
            file: None,
        }
    }

    /// A new SQLite database file in the system's temp directory (the ledger
    /// creates it on first connect).
    pub fn sqlite() -> Self {
        let file = std::env::temp_dir().join(format!("{}.db", crate::unique("spike-ledger")));
        Self {
            url: format!("sqlite://{}", file.display()),
            server: None,
            file: Some(file),
        }
    }

    /// Both kinds, for tests that must pass on each ledger backend.
    pub fn both() -> [Self; 2] {
        [Self::sqlite(), Self::postgres()]
    }

    /// The database URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

fn psql(server: &str, sql: &str) {
    let status = Command::new("psql")
        .args([server, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .status()
        .expect("run psql (postgresql-client)");
    assert!(status.success(), "psql {sql:?} failed");
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((server, name)) = &self.server {
            let _ = Command::new("psql")
                .args([
                    server.as_str(),
                    "-q",
                    "-c",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ])
                .output();
        }
        if let Some(file) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
    }
}
