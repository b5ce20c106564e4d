//! The benchmark's queries run through `beacon_store::Store` on an opened `SqliteStore`,
//! without HTTP, and the SQLite query plans of the SQL they compile to.
//!
//! Each query string is parsed and bound exactly as the server's `list` and `count` handlers
//! do it, so the difference between these timings and the HTTP timings is the cost of HTTP,
//! authentication, the skiptoken and JSON.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, ensure};
use beacon_odata::bind::Typed;
use beacon_server::auth::DEV_PARTNER_TENANT;
use beacon_server::paging::DEFAULT_PAGE_SIZE;
use beacon_store::sql::{self, Sqlite};
use beacon_store::sqlite::{SqliteOptions, SqliteStore};
use beacon_store::{Cursor, ListQuery, Param, PartnerTenantId, Store};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, params_from_iter};

use crate::queries::{count_filter, first_page_query};
use crate::server::encode_query;
use crate::stats::{Layer, Measurement, alternate, repeat};
use crate::{
    COUNT_AND_TOP_CASE, COUNT_CASE, DataSet, EQUALITY_CASE, Expected, ORDERS, Plan,
    count_and_top_query, deep_page_case, equality_query, first_page_case, measurement,
    platform_query,
};

/// An opened store and the partner whose rows the benchmark reads.
#[derive(Debug)]
pub struct StoreUnderTest {
    pub store: SqliteStore,
    pub partner: PartnerTenantId,
}

impl StoreUnderTest {
    /// Opens the database with one read connection, since every read here is sequential.
    pub async fn open(database: &Path, partner: &str) -> anyhow::Result<StoreUnderTest> {
        let path = database.to_owned();
        let store = tokio::task::spawn_blocking(move || {
            SqliteStore::open(&path, &SqliteOptions { readers: 1, ..SqliteOptions::default() })
        })
        .await??;
        Ok(StoreUnderTest { store, partner: PartnerTenantId::new(partner) })
    }

    /// Returns the position of the last row of page `page - 1` of `first`, from which page
    /// `page` resumes, as a skiptoken would carry it. Found with one `OFFSET` scan.
    pub async fn cursor_before_page(
        &self,
        first: &ListQuery,
        page: usize,
    ) -> anyhow::Result<Cursor> {
        ensure!(page >= 2, "page {page} has no page before it to resume from");
        let rows_before = (page - 1) * DEFAULT_PAGE_SIZE;
        let query = ListQuery { offset: rows_before as u64 - 1, limit: 1, ..first.clone() };
        let rows = self.store.list(&self.partner, query).await?;
        let row = rows.into_iter().next().ok_or_else(|| anyhow!("page {page} does not exist"))?;
        Ok(row.cursor)
    }
}

/// Returns the `EXPLAIN QUERY PLAN` details of a list query's statements, each statement's
/// details joined with `; ` and the statements with ` | `.
pub fn explain_list(database: &Path, partner: &str, query: &ListQuery) -> anyhow::Result<String> {
    let (statements, params) = sql::select_statements(&Sqlite, partner, query);
    let plans = statements
        .iter()
        .map(|text| explain(database, text, params.clone()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(plans.join(" | "))
}

/// Returns the `EXPLAIN QUERY PLAN` details of a count's SQL, joined with `; `.
pub fn explain_count(
    database: &Path,
    partner: &str,
    filter: Option<&Typed>,
) -> anyhow::Result<String> {
    let (text, params) = sql::count_query(&Sqlite, partner, filter);
    explain(database, &text, params)
}

/// Returns the SQL text of a list query's statements, each with its parameters after it.
pub fn list_sql(partner: &str, query: &ListQuery) -> String {
    let (statements, params) = sql::select_statements(&Sqlite, partner, query);
    let text = statements.join("\n    -- then, until the page is full:\n");
    format!("{text}\n    -- parameters: {params:?}")
}

fn explain(database: &Path, text: &str, params: Vec<Param>) -> anyhow::Result<String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(database, flags)
        .with_context(|| format!("cannot open {}", database.display()))?;
    beacon_store::sqlite::functions::register(&connection)?;

    let mut statement = connection.prepare(&format!("EXPLAIN QUERY PLAN {text}"))?;
    let values = params.into_iter().map(|param| match param {
        Param::Null => Value::Null,
        Param::Integer(value) => Value::Integer(value),
        Param::Text(text) => Value::Text(text),
    });
    let details = statement
        .query_map(params_from_iter(values), |row| row.get::<_, String>(3))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(details.join("; "))
}

/// Times every case through the store API, prints the SQL and query plan behind each, and
/// returns the values that the HTTP responses must match.
pub async fn measure(
    plan: &Plan,
    small: &DataSet,
    large: &DataSet,
    out: &mut Vec<Measurement>,
) -> anyhow::Result<Expected> {
    println!("\n## Store layer, without HTTP\n");

    // (a) The equality filter on each data set.
    let equality = first_page_query(&equality_query())?;
    for set in [small, large] {
        let under_test = StoreUnderTest::open(&set.database(), DEV_PARTNER_TENANT).await?;
        let samples = repeat(plan.equality, || time_list(&under_test, &equality)).await?;
        out.push(measurement(EQUALITY_CASE, set, Layer::Store, samples));
        under_test.store.close().await;
    }
    print_plan("a. tenantId eq", large, &equality)?;

    // (b) The first and the deep page of each sorted listing, resumed from the cursor that
    // the previous page's skiptoken would carry.
    let under_test = StoreUnderTest::open(&large.database(), DEV_PARTNER_TENANT).await?;
    let mut expected = Expected::default();
    for (orderby, label) in ORDERS {
        let first = first_page_query(&encode_query(&[("$orderby", orderby)]))?;
        let cursor = under_test.cursor_before_page(&first, plan.deep_page).await?;
        let deep = ListQuery { after: Some(cursor), ..first.clone() };
        let rows = under_test.store.list(&under_test.partner, deep.clone()).await?;
        let first_id = rows.first().map(|row| row.stored.entity.id.clone());
        expected.deep_page_first_ids.push(first_id.context("the deep page is empty")?);

        let (page_one, page_deep) = alternate(
            plan.pages,
            || time_list(&under_test, &first),
            || time_list(&under_test, &deep),
        )
        .await?;
        out.push(measurement(&first_page_case(label), large, Layer::Store, page_one));
        out.push(measurement(&deep_page_case(label, plan), large, Layer::Store, page_deep));
        print_plan(&first_page_case(label), large, &first)?;
        print_plan(&deep_page_case(label, plan), large, &deep)?;
    }

    // (c) A filtered count, and a count with a one-row page, which the server runs as a
    // count and a two-row list.
    let filter = count_filter(&platform_query())?;
    expected.platform_count = under_test.store.count(&under_test.partner, filter.clone()).await?;
    let samples = repeat(plan.counts, || time_count(&under_test, &filter)).await?;
    out.push(measurement(COUNT_CASE, large, Layer::Store, samples));

    let top_one = first_page_query(&count_and_top_query())?;
    let samples = repeat(plan.counts, || async {
        let count = time_count(&under_test, &filter).await?;
        Ok(count + time_list(&under_test, &top_one).await?)
    })
    .await?;
    out.push(measurement(COUNT_AND_TOP_CASE, large, Layer::Store, samples));
    let count_plan = explain_count(&large.database(), DEV_PARTNER_TENANT, filter.as_ref())?;
    println!("c. count: plan: {count_plan}");

    println!("d. $apply: timed through HTTP only here, and at the store layer by store_compare");
    under_test.store.close().await;
    Ok(expected)
}

/// Times one `Store::list` and checks that it returned a full page.
async fn time_list(under_test: &StoreUnderTest, query: &ListQuery) -> anyhow::Result<Duration> {
    let query = query.clone();
    let expected_rows = query.limit - 1;
    let started = Instant::now();
    let rows = under_test.store.list(&under_test.partner, query).await?;
    let elapsed = started.elapsed();
    ensure!(
        rows.len() >= expected_rows,
        "the store returned {} rows, not {expected_rows}",
        rows.len()
    );
    Ok(elapsed)
}

async fn time_count(
    under_test: &StoreUnderTest,
    filter: &Option<Typed>,
) -> anyhow::Result<Duration> {
    let filter = filter.clone();
    let started = Instant::now();
    under_test.store.count(&under_test.partner, filter).await?;
    Ok(started.elapsed())
}

fn print_plan(name: &str, set: &DataSet, query: &ListQuery) -> anyhow::Result<()> {
    println!("{name}: {}", list_sql(DEV_PARTNER_TENANT, query));
    let plan = explain_list(&set.database(), DEV_PARTNER_TENANT, query)?;
    println!("    -- plan: {plan}");
    Ok(())
}
