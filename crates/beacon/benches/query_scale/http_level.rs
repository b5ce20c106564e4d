//! The benchmark's cases timed through HTTP against the release server, one server per data
//! set, with sequential requests on one keep-alive connection.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::server::{self, Client, Server, encode_query};
use crate::stats::{Layer, Measurement, alternate, repeat};
use crate::{
    APPLY, COUNT_AND_TOP_CASE, COUNT_CASE, DataSet, EQUALITY_CASE, Expected, ORDERS, Plan,
    count_and_top_query, dataset, deep_page_case, equality_query, first_page_case, measurement,
    platform_query,
};

/// The rows of a default page, which the sorted listings are paged by.
const PAGE_ROWS: usize = 100;

/// The page size a walk switches to once its budget is spent.
const LARGE_PAGE_ROWS: usize = 1_000;

/// Times every case through HTTP and checks the responses against the store layer's results.
pub async fn measure(
    plan: &Plan,
    small: &DataSet,
    large: &DataSet,
    expected: &Expected,
    out: &mut Vec<Measurement>,
) -> anyhow::Result<()> {
    println!("\n## HTTP layer\n");
    for set in [small, large] {
        let server = Server::start(&set.dir)?;
        let client = Client::new(server::mint_token(&set.dir)?)?;

        // (a) The equality filter on each data set.
        let url = server.collection_url(&equality_query());
        let tenant = dataset::tenant_id(crate::TENANT_INDEX);
        let samples = repeat(plan.equality, || time_equality_page(&client, &url, &tenant)).await?;
        out.push(measurement(EQUALITY_CASE, set, Layer::Http, samples));

        // (b), (c) and (d) on the large data set only.
        if std::ptr::eq(set, large) {
            measure_pages(plan, &server, &client, large, expected, out).await?;
            measure_counts(plan, &server, &client, large, expected, out).await?;
            measure_apply(plan, &server, &client, large, out).await?;
        }

        // Close the keep-alive connection first, so the server stops at once.
        drop(client);
        server.stop()?;
    }
    Ok(())
}

async fn time_equality_page(client: &Client, url: &str, tenant: &str) -> anyhow::Result<Duration> {
    let response = client.get(url, None).await?;
    let page = response.json(url)?;
    let rows = page["value"].as_array().context("the page has no value array")?;
    ensure!(rows.len() == PAGE_ROWS, "the equality filter returned {} rows, not 100", rows.len());
    ensure!(rows.iter().all(|row| row["tenantId"] == tenant), "a row of another tenant came back");
    Ok(response.elapsed)
}

/// Walks each sorted listing to the deep page once, then times its first and deep pages.
async fn measure_pages(
    plan: &Plan,
    server: &Server,
    client: &Client,
    large: &DataSet,
    expected: &Expected,
    out: &mut Vec<Measurement>,
) -> anyhow::Result<()> {
    for ((orderby, label), expected_id) in ORDERS.iter().zip(&expected.deep_page_first_ids) {
        let first_url = server.collection_url(&encode_query(&[("$orderby", orderby)]));
        let deep_url = walk(plan, client, &first_url, label).await?;

        // The deep page must start where the store layer's did, or the two layers would be
        // timing different pages.
        let page = client.get(&deep_url, None).await?.json(&deep_url)?;
        let first_id = &page["value"][0]["id"];
        ensure!(
            first_id == expected_id.as_str(),
            "page {} of {label} starts at {first_id}, but the store layer's starts at {expected_id}",
            plan.deep_page
        );

        let (page_one, page_deep) = alternate(
            plan.pages,
            || time_full_page(client, &first_url),
            || time_full_page(client, &deep_url),
        )
        .await?;
        out.push(measurement(&first_page_case(label), large, Layer::Http, page_one));
        out.push(measurement(&deep_page_case(label, plan), large, Layer::Http, page_deep));
    }
    Ok(())
}

/// Follows nextLinks from `first_url` and returns the URL of page `plan.deep_page` of 100-row
/// pages.
///
/// Once the walk budget is spent, the walk requests 1,000-row pages with
/// `Prefer: odata.maxpagesize=1000` where at least 1,000 rows remain before the deep page.
/// The skiptoken carries the rows served, not the page size, so the deep page's URL is the
/// same either way. A listing whose every page costs time in proportion to its depth is then
/// walked in a tenth of the requests.
async fn walk(
    plan: &Plan,
    client: &Client,
    first_url: &str,
    label: &str,
) -> anyhow::Result<String> {
    let rows_before = (plan.deep_page - 1) * PAGE_ROWS;
    let started = Instant::now();
    let mut switched_at = None;
    let (mut url, mut rows_done, mut small_pages, mut large_pages) =
        (first_url.to_owned(), 0, 0, 0);

    while rows_done < rows_before {
        let over_budget = plan.walk_budget.is_some_and(|budget| started.elapsed() > budget);
        let use_large = over_budget && rows_before - rows_done >= LARGE_PAGE_ROWS;
        if use_large && switched_at.is_none() {
            switched_at = Some((started.elapsed(), rows_done / PAGE_ROWS));
        }
        let page_size = if use_large { LARGE_PAGE_ROWS } else { PAGE_ROWS };

        let response = client.get(&url, use_large.then_some(LARGE_PAGE_ROWS)).await?;
        let page = response.json(&url)?;
        let rows = page["value"].as_array().map_or(0, Vec::len);
        ensure!(rows == page_size, "a page of {label} after row {rows_done} has {rows} rows");
        url = page["@odata.nextLink"].as_str().context("a page has no nextLink")?.to_owned();
        rows_done += page_size;
        if use_large {
            large_pages += 1;
        } else {
            small_pages += 1;
        }
    }

    let elapsed = started.elapsed().as_secs_f64();
    match switched_at {
        None => println!(
            "b. {label}: walked to page {} through {small_pages} nextLinks of 100 rows in \
             {elapsed:.1} s ({:.2} ms a page)",
            plan.deep_page,
            elapsed * 1000.0 / small_pages.max(1) as f64
        ),
        Some((at, pages)) => println!(
            "b. {label}: walked to page {} in {elapsed:.1} s: {pages} pages of 100 rows in \
             {:.1} s, when the walk budget was spent, then {large_pages} pages of 1,000 rows \
             and {} more of 100 rows",
            plan.deep_page,
            at.as_secs_f64(),
            small_pages - pages
        ),
    }
    Ok(url)
}

async fn time_full_page(client: &Client, url: &str) -> anyhow::Result<Duration> {
    let response = client.get(url, None).await?;
    let rows = response.json(url)?["value"].as_array().map_or(0, Vec::len);
    ensure!(rows == PAGE_ROWS, "GET {url} returned {rows} rows, not 100");
    Ok(response.elapsed)
}

/// Times `/$count` with a filter, and `$count=true&$top=1` with the same filter.
async fn measure_counts(
    plan: &Plan,
    server: &Server,
    client: &Client,
    large: &DataSet,
    expected: &Expected,
    out: &mut Vec<Measurement>,
) -> anyhow::Result<()> {
    let expected_count = expected.platform_count;
    let url = server.count_url(&platform_query());
    let samples = repeat(plan.counts, || async {
        let response = client.get(&url, None).await?;
        let text = String::from_utf8_lossy(&response.body);
        ensure!(response.status == 200, "GET {url} returned {}: {text}", response.status);
        ensure!(
            text == expected_count.to_string(),
            "/$count returned {text}, not {expected_count}"
        );
        Ok(response.elapsed)
    })
    .await?;
    out.push(measurement(COUNT_CASE, large, Layer::Http, samples));

    let url = server.collection_url(&count_and_top_query());
    let samples = repeat(plan.counts, || async {
        let response = client.get(&url, None).await?;
        let count = response.json(&url)?["@odata.count"].as_u64();
        ensure!(count == Some(expected_count), "@odata.count is {count:?}, not {expected_count}");
        Ok(response.elapsed)
    })
    .await?;
    out.push(measurement(COUNT_AND_TOP_CASE, large, Layer::Http, samples));
    Ok(())
}

/// Times the `$apply` case, or skips it with the server's reason while the server rejects
/// `$apply` with 400 "not supported".
async fn measure_apply(
    plan: &Plan,
    server: &Server,
    client: &Client,
    large: &DataSet,
    out: &mut Vec<Measurement>,
) -> anyhow::Result<()> {
    let url = server.collection_url(&encode_query(&[("$apply", APPLY)]));
    let probe = client.get(&url, None).await?;
    let text = String::from_utf8_lossy(&probe.body).into_owned();
    if probe.status == 400 && text.contains("not supported") {
        println!("d. $apply: skipped, because the server answered 400: {text}");
        return Ok(());
    }
    if probe.status != 200 {
        bail!("d. $apply: GET {url} returned {}: {text}", probe.status);
    }

    let samples = repeat(plan.counts, || async {
        let response = client.get(&url, None).await?;
        let groups = response.json(&url)?["value"].as_array().map_or(0, Vec::len);
        let platforms = dataset::PLATFORMS.len();
        ensure!(groups == platforms, "$apply returned {groups} groups, not {platforms}");
        Ok(response.elapsed)
    })
    .await?;
    out.push(measurement("d. $apply groupby platform, sum", large, Layer::Http, samples));
    Ok(())
}
