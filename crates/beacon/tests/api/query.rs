//! The OData query options on a running server: what each option returns, how paging carries
//! them, and how their errors look. The differential tests compare random combinations with a
//! reference; these tests pin down single behaviours by name.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

fn ids(page: &Value) -> Vec<&str> {
    page["value"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect()
}

/// Starts a server with five entities: a null display name, ties in the counters, and non-ASCII text.
async fn small_server() -> TestServer {
    let server = TestServer::start().await;
    let rows = [
        json!({"id": "a", "tenantId": "t1", "tenantDisplayName": "Äpfel", "numberOfErrorDevices": 3}),
        json!({"id": "b", "tenantId": "t1", "tenantDisplayName": null, "numberOfErrorDevices": 1}),
        json!({"id": "c", "tenantId": "t2", "tenantDisplayName": "A", "numberOfErrorDevices": 3}),
        json!({"id": "d", "tenantId": "t2", "tenantDisplayName": "a+b c", "numberOfErrorDevices": null}),
        json!({"id": "e", "tenantId": "T3", "tenantDisplayName": "Zed",
               "numberOfErrorDevices": 9_223_372_036_854_775_807_i64}),
    ];
    for row in rows {
        assert_eq!(server.create(GRAPH, &row).await.status(), 201);
    }
    server
}

async fn query(server: &TestServer, options: &str) -> Value {
    let (status, body) = server.get_json(&format!("{GRAPH}?{options}")).await;
    assert_eq!(status, 200, "{options}: {body}");
    body
}

async fn filtered(server: &TestServer, filter: &str) -> Vec<String> {
    let body = query(server, &format!("$filter={}", encode_query_value(filter))).await;
    ids(&body).into_iter().map(str::to_owned).collect()
}

#[tokio::test]
async fn ne_includes_rows_where_the_property_is_null() {
    let server = small_server().await;
    assert_eq!(filtered(&server, "tenantDisplayName ne 'A'").await, ["a", "b", "d", "e"]);
    assert_eq!(filtered(&server, "tenantDisplayName eq null").await, ["b"]);
    assert_eq!(filtered(&server, "not (numberOfErrorDevices gt 2)").await, ["b", "d"]);
    assert_eq!(filtered(&server, "numberOfErrorDevices le 3").await, ["a", "b", "c"]);
    assert_eq!(filtered(&server, "tenantDisplayName in ('A', null)").await, ["b", "c"]);
}

#[tokio::test]
async fn tolower_folds_non_ascii_letters() {
    let server = small_server().await;
    assert_eq!(filtered(&server, "tolower(tenantDisplayName) eq 'äpfel'").await, ["a"]);
    assert_eq!(filtered(&server, "toupper(tenantDisplayName) eq 'ÄPFEL'").await, ["a"]);
    assert_eq!(filtered(&server, "length(tenantDisplayName) eq 5").await, ["a", "d"]);
}

#[tokio::test]
async fn int64_values_past_two_to_the_53_compare_exactly() {
    let server = small_server().await;
    let max = "numberOfErrorDevices eq 9223372036854775807";
    assert_eq!(filtered(&server, max).await, ["e"]);
    let below = "numberOfErrorDevices eq 9223372036854775806";
    assert!(filtered(&server, below).await.is_empty());
    assert_eq!(filtered(&server, "numberOfErrorDevices gt 2.5").await, ["a", "c", "e"]);
}

#[tokio::test]
async fn arithmetic_overflow_is_a_bad_request() {
    let server = small_server().await;
    let response = server
        .request(
            Method::GET,
            &format!("{GRAPH}?$filter={}", encode_query_value("numberOfErrorDevices add 1 gt 0")),
        )
        .send()
        .await
        .unwrap();
    let message = assert_graph_error(response, 400, "BadRequest").await;
    assert!(message.contains("outside the range"), "{message}");
}

#[tokio::test]
async fn orderby_puts_nulls_first_ascending_and_breaks_ties_by_id() {
    let server = small_server().await;
    let up = query(&server, "$orderby=numberOfErrorDevices").await;
    assert_eq!(ids(&up), ["d", "b", "a", "c", "e"]);
    let down = query(&server, "$orderby=numberOfErrorDevices%20desc,tenantId").await;
    assert_eq!(ids(&down), ["e", "a", "c", "b", "d"]);
}

#[tokio::test]
async fn select_writes_only_the_chosen_properties_and_the_key() {
    let server = small_server().await;
    let body = query(&server, "$select=tenantId&$filter=id%20eq%20'a'").await;
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("aggregatedPolicyCompliances(id,tenantId)")
    );
    let entity = body["value"][0].as_object().unwrap();
    let names: Vec<&str> = entity.keys().map(String::as_str).collect();
    assert_eq!(names, ["@odata.type", "@odata.etag", "id", "tenantId"]);

    let (status, one) = server.get_json(&format!("{GRAPH}/a?$select=numberOfErrorDevices")).await;
    assert_eq!(status, 200);
    assert_eq!(one["numberOfErrorDevices"], 3);
    assert!(one.get("tenantId").is_none());
}

#[tokio::test]
async fn count_is_the_size_of_the_whole_result_before_top_and_skip() {
    let server = small_server().await;
    let body = query(&server, "$count=true&$top=1&$skip=1&$filter=tenantId%20ne%20'T3'").await;
    assert_eq!(body["@odata.count"], 4);
    assert_eq!(ids(&body), ["b"]);
    assert!(query(&server, "$top=0").await["value"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn count_segment_answers_plain_text_and_honours_the_filter() {
    let server = small_server().await;
    let response = server
        .request(Method::GET, &format!("{GRAPH}/$count?$filter=tenantId%20eq%20't1'"))
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(response.text().await.unwrap(), "2");

    let response =
        server.request(Method::GET, &format!("{SEED}/$count?$top=1")).send().await.unwrap();
    assert_graph_error(response, 400, "BadRequest").await;
}

#[tokio::test]
async fn next_links_keep_every_option_encoded_and_resume_the_order() {
    let server = TestServer::start().await;
    for i in 0..7 {
        let body = json!({"id": format!("r{i}"), "tenantDisplayName": format!("n {}", i % 3)});
        assert_eq!(server.create(GRAPH, &body).await.status(), 201);
    }
    let filter = encode_query_value("tenantDisplayName ne 'x+y z'");
    let mut url =
        server.url(&format!("{GRAPH}?$filter={filter}&$orderby=tenantDisplayName%20desc&custom=1"));
    let mut seen = Vec::new();
    let mut links = 0;
    loop {
        let response = server
            .client
            .get(&url)
            .bearer_auth(server.token())
            .header("prefer", "odata.maxpagesize=2")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["preference-applied"], "odata.maxpagesize=2");
        let body: Value = response.json().await.unwrap();
        seen.extend(ids(&body).into_iter().map(str::to_owned));
        let Some(next) = body["@odata.nextLink"].as_str() else { break };
        assert!(next.contains("%20ne%20'x%2By%20z'"), "{next}");
        assert!(next.contains("custom=1"), "{next}");
        url = next.to_owned();
        links += 1;
    }
    assert_eq!(links, 3);
    assert_eq!(seen, ["r2", "r5", "r1", "r4", "r0", "r3", "r6"]);
}

#[tokio::test]
async fn page_size_preference_is_capped_at_1000() {
    let server = small_server().await;
    let response = server
        .request(Method::GET, GRAPH)
        .header("prefer", "odata.maxpagesize=5000")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["preference-applied"], "odata.maxpagesize=1000");
}

#[tokio::test]
async fn forged_or_foreign_skiptokens_are_rejected() {
    let server = TestServer::start().await;
    for i in 0..3 {
        assert_eq!(server.create(GRAPH, &json!({"id": format!("r{i}")})).await.status(), 201);
    }
    let response = server
        .request(Method::GET, &format!("{GRAPH}?$orderby=id"))
        .header("prefer", "odata.maxpagesize=1")
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let next = body["@odata.nextLink"].as_str().unwrap();
    let token = next.split("$skiptoken=").nth(1).unwrap();

    // The same token with another $orderby, another view, or altered.
    let mut altered = token.to_owned();
    altered.insert(3, 'x');
    for path in [
        format!("{GRAPH}?$orderby=id%20desc&$skiptoken={token}"),
        format!("{SEED}?$orderby=id&$skiptoken={token}"),
        format!("{GRAPH}?$orderby=id&$skiptoken={altered}"),
        format!("{GRAPH}?$orderby=id&$skiptoken=abc"),
    ] {
        let response = server.request(Method::GET, &path).send().await.unwrap();
        let message = assert_graph_error(response, 400, "BadRequest").await;
        assert!(message.contains("$skiptoken"), "{path}: {message}");
    }
}

#[tokio::test]
async fn every_invalid_option_names_itself() {
    let server = small_server().await;
    let cases = [
        ("$filter=nope%20eq%201", "$filter"),
        ("$filter=tenantId%20eq", "$filter"),
        ("$filter=tenantId%20eq%201", "$filter"),
        ("$orderby=nope", "$orderby"),
        ("$orderby=tenantId%20sideways", "$orderby"),
        ("$select=nope", "$select"),
        ("$select=", "$select"),
        ("$skip=-1", "$skip"),
        ("$top=x", "$top"),
        ("$count=yes", "$count"),
    ];
    for (options, option) in cases {
        let response =
            server.request(Method::GET, &format!("{GRAPH}?{options}")).send().await.unwrap();
        let message = assert_graph_error(response, 400, "BadRequest").await;
        assert!(message.contains(option), "{options}: {message}");
    }
}

#[tokio::test]
async fn expressions_past_the_depth_and_length_bounds_are_rejected() {
    let server = small_server().await;
    let deep = format!("{}true{}", "(".repeat(150), ")".repeat(150));
    let long = format!("tenantId eq '{}'", "x".repeat(9000));
    for (filter, expected) in [(deep, "nested"), (long, "longer than 8192")] {
        let path = format!("{GRAPH}?$filter={}", encode_query_value(&filter));
        let response = server.request(Method::GET, &path).send().await.unwrap();
        let message = assert_graph_error(response, 400, "BadRequest").await;
        assert!(message.contains(expected), "{message}");
    }
}

#[tokio::test]
async fn divby_compares_exact_quotients() {
    let server = TestServer::start().await;
    let rows = [
        json!({"id": "big", "numberOfErrorDevices": 9_007_199_254_740_993_i64, "numberOfCompliantDevices": 3}),
        json!({"id": "half", "numberOfErrorDevices": 1, "numberOfCompliantDevices": 2}),
        json!({"id": "none", "numberOfErrorDevices": null, "numberOfCompliantDevices": null}),
        json!({"id": "zero", "numberOfErrorDevices": 5, "numberOfCompliantDevices": 0}),
    ];
    for row in rows {
        assert_eq!(server.create(GRAPH, &row).await.status(), 201);
    }
    // A double cannot hold 9007199254740993, so only exact arithmetic finds this quotient.
    let exact =
        "id ne 'zero' and numberOfErrorDevices divby numberOfCompliantDevices eq 3002399751580331";
    assert_eq!(filtered(&server, exact).await, ["big"]);
    let half = "id ne 'zero' and numberOfErrorDevices divby numberOfCompliantDevices eq 0.5";
    assert_eq!(filtered(&server, half).await, ["half"]);
    let both_null = "id ne 'zero' and numberOfErrorDevices divby numberOfCompliantDevices eq numberOfCompliantDevices divby numberOfErrorDevices";
    assert_eq!(filtered(&server, both_null).await, ["none"], "null eq null is true");

    let zero = encode_query_value("numberOfErrorDevices divby numberOfCompliantDevices gt 1");
    let response =
        server.request(Method::GET, &format!("{GRAPH}?$filter={zero}")).send().await.unwrap();
    let message = assert_graph_error(response, 400, "BadRequest").await;
    assert!(message.contains("Division by zero"), "{message}");
}

#[tokio::test]
async fn long_operator_chains_get_a_bad_request_not_a_server_error() {
    let server = small_server().await;
    let chains =
        [format!("1{} gt 0", " add 1".repeat(830)), format!("true{}", " or true".repeat(999))];
    for filter in chains {
        for path in [GRAPH.to_owned(), format!("{GRAPH}/$count")] {
            let url = format!("{path}?$filter={}", encode_query_value(&filter));
            let response = server.request(Method::GET, &url).send().await.unwrap();
            let message = assert_graph_error(response, 400, "BadRequest").await;
            assert!(message.contains("nested deeper than 100 levels"), "{message}");
        }
    }
    let many = format!("numberOfErrorDevices in ({})", vec!["1.5"; 1500].join(","));
    let url = format!("{GRAPH}?$filter={}", encode_query_value(&many));
    let (status, _) = server.get_json(&url).await;
    assert_eq!(status, 200, "a long in-list is not nested");
}

#[tokio::test]
async fn constant_errors_are_reported_at_their_position() {
    let server = small_server().await;
    let cases = [
        ("tenantId eq 'a' and numberOfErrorDevices div 0 eq 1", "position 21: division by zero"),
        ("numberOfErrorDevices eq 1e400", "outside the range of Edm.Double"),
        ("numberOfErrorDevices eq INF add 1", "not used in arithmetic"),
    ];
    for (filter, expected) in cases {
        let url = format!("{GRAPH}?$filter={}", encode_query_value(filter));
        let response = server.request(Method::GET, &url).send().await.unwrap();
        let message = assert_graph_error(response, 400, "BadRequest").await;
        assert!(message.contains(expected), "{filter}: {message}");
    }
}

#[tokio::test]
async fn ordering_by_a_constant_pages_through_every_row_once() {
    let server = small_server().await;
    for order in ["now()", "now() desc", "1"] {
        let mut url = server.url(&format!("{GRAPH}?$orderby={}", encode_query_value(order)));
        let mut seen = Vec::new();
        loop {
            let body = get_page(&server, &url, 2).await;
            seen.extend(ids(&body).into_iter().map(str::to_owned));
            match body["@odata.nextLink"].as_str() {
                Some(next) => url = next.to_owned(),
                None => break,
            }
        }
        assert_eq!(seen, ["a", "b", "c", "d", "e"], "$orderby={order}");
    }
}

#[tokio::test]
async fn long_sort_value_keeps_next_links_short() {
    let server = TestServer::start().await;
    // Strings are at most 1024 bytes, so two sort keys of 1001 bytes make the long value.
    let long = "x".repeat(1000);
    for (id, name) in [("1", format!("b{long}")), ("2", format!("a{long}")), ("3", "c".to_owned())]
    {
        let body = json!({"id": id, "tenantDisplayName": name, "compliancePolicyName": name});
        assert_eq!(server.create(GRAPH, &body).await.status(), 201);
    }
    let order = "tenantDisplayName%20desc,compliancePolicyName%20desc";
    let mut url = server.url(&format!("{GRAPH}?$orderby={order}&$select=id"));
    let mut seen = Vec::new();
    loop {
        let body = get_page(&server, &url, 1).await;
        seen.extend(ids(&body).into_iter().map(str::to_owned));
        match body["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.len() < 2000, "a next link of {} characters", next.len());
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(seen, ["3", "1", "2"]);
}

#[tokio::test]
async fn filter_only_apply_pages_by_key_during_inserts() {
    let server = small_server().await;
    let filter = encode_query_value("filter(tenantId ne 'none')");
    let mut url = server.url(&format!("{GRAPH}?$apply={filter}"));
    let mut seen = Vec::new();
    let mut inserted = 0;
    loop {
        let body = get_page(&server, &url, 2).await;
        seen.extend(ids(&body).into_iter().map(str::to_owned));

        // Rows that sort before every page so far would shift a position-based page.
        inserted += 1;
        let row = json!({"id": format!("0-{inserted}"), "tenantId": "t9"});
        assert_eq!(server.create(GRAPH, &row).await.status(), 201);
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
}

#[tokio::test]
async fn literal_words_ignore_case_and_now_cannot_sort() {
    let server = small_server().await;
    assert_eq!(filtered(&server, "tenantDisplayName eq NULL").await, ["b"]);
    assert_eq!(filtered(&server, "TRUE and not False").await.len(), 5);

    let order = encode_query_value("lastRefreshedDateTime gt now() desc");
    let response =
        server.request(Method::GET, &format!("{GRAPH}?$orderby={order}")).send().await.unwrap();
    let message = assert_graph_error(response, 400, "BadRequest").await;
    assert!(message.contains("now()"), "{message}");

    let zero = encode_query_value("1 divby 0 gt 1");
    let response =
        server.request(Method::GET, &format!("{GRAPH}?$filter={zero}")).send().await.unwrap();
    let message = assert_graph_error(response, 400, "BadRequest").await;
    assert!(message.contains("position 1: division by zero"), "{message}");
}
