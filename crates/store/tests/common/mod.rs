//! A PostgreSQL schema of its own for each test, and the rule for skipping when the server
//! cannot be reached.
//!
//! The server is at `BEACON_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test?sslmode=disable`). When it cannot be reached, [`schema`] prints
//! that the test is skipped and why, and returns `None`, unless `BEACON_REQUIRE_POSTGRES=1`
//! is set, which makes it fail instead.

#![allow(dead_code)]

use std::error::Error as _;
use std::io::Write as _;
use std::time::Duration;

use beacon_store::postgres::{PostgresOptions, PostgresStore};

/// Without TLS, because the store verifies certificates whenever it uses TLS, and a local server
/// usually has a self-signed one, such as Debian's, which is not valid for 127.0.0.1.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable";

/// A schema created for one test, dropped when the value is dropped, even by a panic.
#[derive(Debug)]
pub struct Schema {
    url: String,
    name: String,
}

impl Schema {
    /// Returns a connection configuration whose search path selects this schema.
    pub fn config(&self) -> tokio_postgres::Config {
        let mut config: tokio_postgres::Config = self.url.parse().unwrap();
        config.options(format!("-csearch_path={}", self.name));
        config
    }

    /// Connects a store with a small pool in this schema.
    pub async fn store(&self) -> PostgresStore {
        let options = PostgresOptions { pool_size: 4, ..Default::default() };
        PostgresStore::connect(self.config(), &options).await.unwrap()
    }

    /// Opens one plain connection in this schema.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = self.config().connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // The test's runtime may be shutting down, so the drop runs on a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .map_err(std::io::Error::other)?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await
                    .map_err(std::io::Error::other)
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("dropping the test schema {} failed: {dropped:?}", self.name);
        }
    }
}

/// Creates a fresh schema for `test`, or returns `None` after printing why the test is skipped.
pub async fn schema(test: &str) -> Option<Schema> {
    let url =
        std::env::var("BEACON_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
    let required = std::env::var("BEACON_REQUIRE_POSTGRES").is_ok_and(|value| value == "1");

    let connected = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_postgres::connect(&url, tokio_postgres::NoTls),
    )
    .await;
    let (client, connection) = match connected {
        Ok(Ok(connected)) => connected,
        Ok(Err(error)) => {
            let reason = match error.source() {
                Some(source) => format!("{error}: {source}"),
                None => error.to_string(),
            };
            return skip(test, &url, &reason, required);
        }
        Err(_) => return skip(test, &url, "connecting timed out after 5 s", required),
    };
    tokio::spawn(connection);

    let name = format!("beacon_test_{}", uuid::Uuid::new_v4().simple());
    client.batch_execute(&format!("CREATE SCHEMA {name}")).await.unwrap();
    Some(Schema { url, name })
}

fn skip<T>(test: &str, url: &str, reason: &str, required: bool) -> Option<T> {
    if required {
        panic!("PostgreSQL at {url} is unreachable and BEACON_REQUIRE_POSTGRES=1: {reason}");
    }
    // Written past the test harness's output capture, so the skip shows in a passing run.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: PostgreSQL at {url} is unreachable ({reason}); set \
         BEACON_TEST_POSTGRES_URL to a reachable server, or BEACON_REQUIRE_POSTGRES=1 to fail"
    );
    None
}
