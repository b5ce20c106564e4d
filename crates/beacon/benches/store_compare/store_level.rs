//! The profiles timed through `beacon_store::Store` without HTTP, on an `SqliteStore` and a
//! `PostgresStore` in alternation, and both stores' plans of each read.
//!
//! The queries are parsed and bound as the server's handlers do it, so both stores run the
//! statements that the HTTP profiles run.

use std::cell::Cell;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use beacon_odata::bind::{self, Typed};
use beacon_odata::body::{self, ReadOptions};
use beacon_odata::entity::{Entity, Fields};
use beacon_odata::model::View;
use beacon_odata::query::{self, Target};
use beacon_server::auth::DEV_PARTNER_TENANT;
use beacon_server::paging::DEFAULT_PAGE_SIZE;
use beacon_store::postgres::PostgresStore;
use beacon_store::sql::{self, Dialect, Postgres, Sqlite, Statements};
use beacon_store::sqlite::{SqliteOptions, SqliteStore};
use beacon_store::{ApplyQuery, ApplyRows, ListQuery, OrderKey, Param, PartnerTenantId, Store};
use rusqlite::types::Value as SqliteValue;
use rusqlite::{Connection, OpenFlags, params_from_iter};

use crate::queries::{count_filter, first_page_query};
use crate::stats::{Layer, Runs, alternate};
use crate::{
    Comparison, Expected, PAGE_ROWS, Plan, Profile, Stores, apply_query, count_query, dataset,
    page_query, postgres, print_sync_latency, sync_latency,
};

/// Both stores opened on the loaded data, and the partner whose rows the profiles read.
#[derive(Debug)]
struct Opened {
    sqlite: SqliteStore,
    postgres: PostgresStore,
    partner: PartnerTenantId,
}

impl Opened {
    /// Runs `operation` on SQLite and PostgreSQL in alternation, as often as `runs` allows,
    /// and returns their durations in that order.
    async fn time<'a, F, Fut>(
        &'a self,
        runs: Runs,
        operation: F,
    ) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)>
    where
        F: Fn(&'a dyn Store, &'a PartnerTenantId) -> Fut,
        Fut: Future<Output = anyhow::Result<Duration>>,
    {
        alternate(
            runs,
            || operation(&self.sqlite, &self.partner),
            || operation(&self.postgres, &self.partner),
        )
        .await
    }
}

/// Times every profile through the store API, prints the PostgreSQL plans of the reads, and
/// returns the values that the HTTP responses must match.
pub async fn measure(
    plan: &Plan,
    stores: &Stores<'_>,
    out: &mut Vec<Comparison>,
) -> anyhow::Result<Expected> {
    println!("\n## Store layer, without HTTP\n");
    // One read connection, as in query_scale, since every read here is sequential.
    let path = stores.sqlite_database();
    let sqlite = tokio::task::spawn_blocking(move || {
        SqliteStore::open(&path, &SqliteOptions { readers: 1, ..SqliteOptions::default() })
    })
    .await??;
    let postgres = stores.schema.open_store().await?;
    let opened = Opened { sqlite, postgres, partner: PartnerTenantId::new(DEV_PARTNER_TENANT) };
    let mut record = |profile, (sqlite, postgres)| {
        out.push(Comparison { profile, layer: Layer::Store, sqlite, postgres });
    };

    // The filtered page, whose ids the get profile reads one by one.
    let page = first_page_query(&page_query())?;
    let page_ids = same_page_ids(&opened, &page).await?;
    record(Profile::FilteredPage, opened.time(plan.reads, |s, p| time_list(s, p, &page)).await?);

    let next = Cell::new(0);
    let samples = opened
        .time(plan.reads, |store, partner| {
            let id = &page_ids[next.get() / 2 % page_ids.len()];
            next.set(next.get() + 1);
            time_get(store, partner, id)
        })
        .await?;
    record(Profile::Get, samples);

    let filter = count_filter(&count_query())?;
    let platform_count = same_count(&opened, &filter).await?;
    record(Profile::Count, opened.time(plan.scans, |s, p| time_count(s, p, &filter)).await?);

    let apply = aggregation_query(&apply_query())?;
    same_groups(&opened, &apply).await?;
    record(Profile::Aggregation, opened.time(plan.scans, |s, p| time_apply(s, p, &apply)).await?);

    // Creates run last, so that the reads above see only the loaded rows.
    let fields = example_fields()?;
    let created = Cell::new(0_u64);
    let sync_before = sync_latency(&stores.sqlite_dir)?;
    let samples = opened
        .time(plan.creates, |store, partner| {
            created.set(created.get() + 1);
            time_create(store, partner, &fields, created.get() / 2)
        })
        .await?;
    record(Profile::Create, samples);
    print_sync_latency("store", sync_before, sync_latency(&stores.sqlite_dir)?);

    let reads = Reads {
        partner: opened.partner.as_str(),
        page: &page,
        id: &page_ids[0],
        filter: filter.as_ref(),
        apply: &apply,
    };
    print_plans(stores, &reads).await?;
    opened.sqlite.close().await;
    opened.postgres.close().await;
    Ok(Expected { page_ids, platform_count })
}

/// Reads the filtered page from both stores, checks that they agree, and returns its ids.
async fn same_page_ids(opened: &Opened, page: &ListQuery) -> anyhow::Result<Vec<String>> {
    let mut pages = Vec::new();
    for store in [&opened.sqlite as &dyn Store, &opened.postgres] {
        let rows = store.list(&opened.partner, page.clone()).await?;
        let ids: Vec<String> =
            rows.iter().take(PAGE_ROWS).map(|row| row.stored.entity.id.clone()).collect();
        ensure!(
            ids.len() == PAGE_ROWS,
            "the filtered page has {} rows, not {PAGE_ROWS}",
            ids.len()
        );
        pages.push(ids);
    }
    ensure!(pages[0] == pages[1], "SQLite and PostgreSQL returned different filtered pages");
    Ok(pages.swap_remove(0))
}

async fn same_count(opened: &Opened, filter: &Option<Typed>) -> anyhow::Result<u64> {
    let sqlite = opened.sqlite.count(&opened.partner, filter.clone()).await?;
    let postgres = opened.postgres.count(&opened.partner, filter.clone()).await?;
    ensure!(sqlite == postgres, "SQLite counted {sqlite} rows and PostgreSQL {postgres}");
    Ok(sqlite)
}

async fn same_groups(opened: &Opened, apply: &ApplyQuery) -> anyhow::Result<()> {
    let sqlite = opened.sqlite.apply(&opened.partner, apply.clone()).await?;
    let postgres = opened.postgres.apply(&opened.partner, apply.clone()).await?;
    let ApplyRows::Rows(groups) = &sqlite else { bail!("the aggregation returned entities") };
    let platforms = dataset::PLATFORMS.len();
    ensure!(
        groups.len() == platforms,
        "the aggregation has {} groups, not {platforms}",
        groups.len()
    );
    ensure!(sqlite == postgres, "SQLite and PostgreSQL aggregated differently");
    Ok(())
}

async fn time_list(
    store: &dyn Store,
    partner: &PartnerTenantId,
    query: &ListQuery,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let rows = store.list(partner, query.clone()).await?;
    let elapsed = started.elapsed();
    ensure!(rows.len() >= PAGE_ROWS, "the store returned {} rows, not {PAGE_ROWS}", rows.len());
    Ok(elapsed)
}

async fn time_get(
    store: &dyn Store,
    partner: &PartnerTenantId,
    id: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let stored = store.get(partner, id).await?;
    let elapsed = started.elapsed();
    ensure!(stored.is_some_and(|stored| stored.entity.id == id), "the entity {id} was not found");
    Ok(elapsed)
}

async fn time_count(
    store: &dyn Store,
    partner: &PartnerTenantId,
    filter: &Option<Typed>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    store.count(partner, filter.clone()).await?;
    Ok(started.elapsed())
}

async fn time_apply(
    store: &dyn Store,
    partner: &PartnerTenantId,
    query: &ApplyQuery,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    store.apply(partner, query.clone()).await?;
    Ok(started.elapsed())
}

/// Creates entity number `number` of this profile from `fields`, with a key of its own in
/// each store.
async fn time_create(
    store: &dyn Store,
    partner: &PartnerTenantId,
    fields: &Fields,
    number: u64,
) -> anyhow::Result<Duration> {
    let id = format!("00000000-0000-4000-8000-{number:012x}");
    let entity = Entity { id: id.clone(), fields: fields.clone() };
    let started = Instant::now();
    let stored = store.create(partner, entity).await?;
    let elapsed = started.elapsed();
    ensure!(stored.entity.id == id, "the store created {} instead of {id}", stored.entity.id);
    Ok(elapsed)
}

/// Decodes the body that the HTTP create profile posts, as the server does.
fn example_fields() -> anyhow::Result<Fields> {
    let body = serde_json::to_vec(&crate::example_body())?;
    let input = body::decode(View::Graph, &body, ReadOptions { int64_as_string: false })?;
    let (_, fields) = input.into_create(View::Graph)?;
    Ok(fields)
}

/// The statements of the read profiles in one SQL dialect, each with its parameters.
#[derive(Debug)]
struct Reads<'a> {
    partner: &'a str,
    page: &'a ListQuery,
    id: &'a str,
    filter: Option<&'a Typed>,
    apply: &'a ApplyQuery,
}

impl Reads<'_> {
    /// Returns the statement that each read profile runs first, in `dialect`.
    fn statements(&self, dialect: &dyn Dialect) -> Vec<(Profile, String, Vec<Param>)> {
        let (mut page_texts, page_params) =
            sql::select_statements(dialect, self.partner, self.page);
        let get_params =
            vec![Param::Text(self.partner.to_owned()), Param::Text(self.id.to_owned())];
        let (count_text, count_params) = sql::count_query(dialect, self.partner, self.filter);
        let (apply_text, apply_params) =
            sql::apply::select_query(dialect, self.partner, self.apply);
        vec![
            (Profile::FilteredPage, page_texts.swap_remove(0), page_params),
            (Profile::Get, Statements::new(dialect).select_one, get_params),
            (Profile::Count, count_text, count_params),
            (Profile::Aggregation, apply_text, apply_params),
        ]
    }
}

/// Prints the SQL of each read with SQLite's `EXPLAIN QUERY PLAN` and PostgreSQL's
/// `EXPLAIN (ANALYZE, BUFFERS)`.
async fn print_plans(stores: &Stores<'_>, reads: &Reads<'_>) -> anyhow::Result<()> {
    println!("SQLite plans:");
    let database = stores.sqlite_database();
    for (profile, text, params) in reads.statements(&Sqlite) {
        let plan = explain_sqlite(&database, &text, params.clone())?;
        println!(
            "\n{}: {text}\n    -- parameters: {params:?}\n    -- plan: {plan}",
            profile.name()
        );
    }

    println!("\nPostgreSQL plans, after the timed runs:");
    let client = stores.schema.client().await?;
    for (profile, text, params) in reads.statements(&Postgres) {
        let plan = postgres::explain_analyze(&client, &text, &params).await?;
        println!("\n{}: {text}\n    -- parameters: {params:?}", profile.name());
        for line in plan.lines() {
            println!("    {line}");
        }
    }
    Ok(())
}

/// Returns the `EXPLAIN QUERY PLAN` details of `text` on the SQLite database, joined with `; `.
fn explain_sqlite(database: &Path, text: &str, params: Vec<Param>) -> anyhow::Result<String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(database, flags)
        .with_context(|| format!("cannot open {}", database.display()))?;
    beacon_store::sqlite::functions::register(&connection)?;

    let mut statement = connection.prepare(&format!("EXPLAIN QUERY PLAN {text}"))?;
    let values = params.into_iter().map(|param| match param {
        Param::Null => SqliteValue::Null,
        Param::Integer(value) => SqliteValue::Integer(value),
        Param::Text(text) => SqliteValue::Text(text),
    });
    let details = statement
        .query_map(params_from_iter(values), |row| row.get::<_, String>(3))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(details.join("; "))
}

/// Builds the store query of the first page of the collection query string `raw`, whose
/// `$apply` must group or aggregate rather than only filter. Like the server, it reads one row
/// more than the page holds.
fn aggregation_query(raw: &str) -> anyhow::Result<ApplyQuery> {
    let options = query::parse(Some(raw), Target::Collection)?;
    let mut bound = options.bind(View::Graph, bind::now_ticks())?;
    let Some(plan) = bound.plan.take() else { bail!("the query {raw} has no $apply") };
    let plan = match plan.into_filter() {
        Ok(_) => bail!("the $apply of {raw} only filters, so the server lists it as a filter"),
        Err(plan) => plan,
    };
    let page_size = match options.top {
        Some(top) => DEFAULT_PAGE_SIZE.min(usize::try_from(top).unwrap_or(usize::MAX)),
        None => DEFAULT_PAGE_SIZE,
    };
    let order =
        bound.order.into_iter().map(|(expr, descending)| OrderKey { expr, descending }).collect();
    Ok(ApplyQuery {
        plan,
        filter: bound.filter,
        order,
        offset: options.skip.unwrap_or(0),
        limit: page_size + 1,
    })
}
