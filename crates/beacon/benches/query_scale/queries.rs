//! Store queries built from OData query strings, parsed and bound as the server's `list` and
//! `count` handlers do it, so a benchmark at the store layer runs the same statements as one
//! through HTTP.

use beacon_odata::bind::{self, Typed};
use beacon_odata::model::View;
use beacon_odata::query::{self, Target};
use beacon_server::paging::DEFAULT_PAGE_SIZE;
use beacon_store::{ListQuery, OrderKey};

/// Builds the store query of the first page of the collection query string `raw` (the
/// percent-encoded text after `?`) as the server does. The page has the default size or
/// `$top` rows, whichever is less, and the query reads one row more to learn whether another
/// page follows.
pub fn first_page_query(raw: &str) -> anyhow::Result<ListQuery> {
    let options = query::parse(Some(raw), Target::Collection)?;
    let bound = options.bind(View::Graph, bind::now_ticks())?;
    let page_size = match options.top {
        Some(top) => DEFAULT_PAGE_SIZE.min(usize::try_from(top).unwrap_or(usize::MAX)),
        None => DEFAULT_PAGE_SIZE,
    };
    let order =
        bound.order.into_iter().map(|(expr, descending)| OrderKey { expr, descending }).collect();
    Ok(ListQuery {
        filter: bound.filter,
        order,
        after: None,
        offset: options.skip.unwrap_or(0),
        limit: page_size + 1,
    })
}

/// Returns the bound `$filter` of the `/$count` query string `raw`.
pub fn count_filter(raw: &str) -> anyhow::Result<Option<Typed>> {
    let options = query::parse(Some(raw), Target::Count)?;
    Ok(options.bind(View::Graph, bind::now_ticks())?.filter)
}
