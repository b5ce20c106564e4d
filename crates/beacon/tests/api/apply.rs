//! `$apply` on a running server: grouping, exact aggregates, and the options that follow it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// Six rows: five on two platforms and one without a platform. The Windows counters add up
/// past 2^53.
async fn server() -> TestServer {
    let server = TestServer::start().await;
    let big = 9_007_199_254_740_993_i64;
    let rows = [
        json!({"id": "1", "tenantId": "t1", "compliancePolicyPlatform": "windows10AndLater", "numberOfNonCompliantDevices": big}),
        json!({"id": "2", "tenantId": "t1", "compliancePolicyPlatform": "windows10AndLater", "numberOfNonCompliantDevices": 2}),
        json!({"id": "3", "tenantId": "t2", "compliancePolicyPlatform": "windows10AndLater", "numberOfNonCompliantDevices": null}),
        json!({"id": "4", "tenantId": "t2", "compliancePolicyPlatform": "iOS", "numberOfNonCompliantDevices": 4}),
        json!({"id": "5", "tenantId": "t3", "compliancePolicyPlatform": "iOS", "numberOfNonCompliantDevices": 5}),
        json!({"id": "6", "tenantId": "t3", "compliancePolicyPlatform": null, "numberOfNonCompliantDevices": 1}),
    ];
    for row in rows {
        assert_eq!(server.create(GRAPH, &row).await.status(), 201);
    }
    server
}

async fn get(server: &TestServer, collection: &str, options: &[(&str, &str)]) -> Value {
    let query: Vec<String> = options
        .iter()
        .map(|(name, value)| format!("{name}={}", encode_query_value(value)))
        .collect();
    let (status, body) = server.get_json(&format!("{collection}?{}", query.join("&"))).await;
    assert_eq!(status, 200, "{options:?}: {body}");
    body
}

const BY_PLATFORM: &str = "groupby((compliancePolicyPlatform),aggregate(numberOfNonCompliantDevices with sum as total,$count as rows))";

#[tokio::test]
async fn groupby_sums_are_exact_integers_past_two_to_the_53() {
    let server = server().await;
    let body = get(&server, GRAPH, &[("$apply", BY_PLATFORM)]).await;
    assert!(
        body["@odata.context"].as_str().unwrap().ends_with("(compliancePolicyPlatform,total,rows)")
    );
    assert_eq!(
        body["value"],
        json!([
            {"@odata.id": null, "compliancePolicyPlatform": null,
             "total@odata.type": "#Int64", "total": 1, "rows@odata.type": "#Int64", "rows": 1},
            {"@odata.id": null, "compliancePolicyPlatform": "iOS",
             "total@odata.type": "#Int64", "total": 9, "rows@odata.type": "#Int64", "rows": 2},
            {"@odata.id": null, "compliancePolicyPlatform": "windows10AndLater",
             "total@odata.type": "#Int64", "total": 9_007_199_254_740_995_i64,
             "rows@odata.type": "#Int64", "rows": 3},
        ])
    );
}

#[tokio::test]
async fn int64_aggregates_are_strings_with_ieee754_compatible() {
    let server = server().await;
    let response = server
        .request(Method::GET, &format!("{GRAPH}?$apply={}", encode_query_value(BY_PLATFORM)))
        .header("accept", "application/json;IEEE754Compatible=true")
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["value"][2]["total"], "9007199254740995");
}

#[tokio::test]
async fn overflowing_sum_is_a_bad_request() {
    let server = server().await;
    let row = json!({"id": "7", "compliancePolicyPlatform": "windows10AndLater",
                     "numberOfNonCompliantDevices": i64::MAX});
    assert_eq!(server.create(GRAPH, &row).await.status(), 201);
    let apply = encode_query_value("aggregate(numberOfNonCompliantDevices with sum as total)");
    let response =
        server.request(Method::GET, &format!("{GRAPH}?$apply={apply}")).send().await.unwrap();
    let message = assert_graph_error(response, 400, "BadRequest").await;
    assert!(message.contains("outside the range of Edm.Int64"), "{message}");
}

#[tokio::test]
async fn aggregates_over_no_rows_are_null_and_count_zero() {
    let server = server().await;
    let apply = "filter(tenantId eq 'nobody')/aggregate(numberOfNonCompliantDevices with sum as total,numberOfNonCompliantDevices with average as mean,$count as rows)";
    let body = get(&server, GRAPH, &[("$apply", apply)]).await;
    assert_eq!(
        body["value"],
        json!([{"@odata.id": null, "total@odata.type": "#Int64", "total": null, "mean": null,
                "rows@odata.type": "#Int64", "rows": 0}])
    );
}

#[tokio::test]
async fn average_min_max_and_countdistinct_have_their_types() {
    let server = server().await;
    let apply = "filter(compliancePolicyPlatform eq 'iOS')/aggregate(numberOfNonCompliantDevices with average as mean,numberOfNonCompliantDevices with min as low,numberOfNonCompliantDevices with max as high,tenantId with countdistinct as tenants)";
    let body = get(&server, GRAPH, &[("$apply", apply)]).await;
    assert_eq!(body["value"][0]["mean"], json!(4.5));
    assert_eq!(body["value"][0]["low"], 4);
    assert_eq!(body["value"][0]["high"], 5);
    assert_eq!(body["value"][0]["tenants"], 2);
}

#[tokio::test]
async fn aggregate_types_follow_the_metadata_level() {
    let server = server().await;
    let apply = "groupby((tenantId),aggregate(numberOfNonCompliantDevices with max as high))";
    let level = |metadata: &'static str| {
        let request = server
            .request(Method::GET, &format!("{GRAPH}?$apply={}", encode_query_value(apply)))
            .header("accept", format!("application/json;odata.metadata={metadata}"));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap()["value"][0].clone() }
    };

    let none = level("none").await;
    assert_eq!(none, json!({"tenantId": "t1", "high": big_high()}));
    let minimal = level("minimal").await;
    assert_eq!(minimal["high@odata.type"], "#Int64");
    assert!(minimal.get("tenantId@odata.type").is_none());
    let full = level("full").await;
    assert_eq!(full["high@odata.type"], "#Int64");
    assert_eq!(full["@odata.id"], Value::Null);
}

/// Returns the largest non-compliant count of tenant `t1`.
fn big_high() -> i64 {
    9_007_199_254_740_993
}

#[tokio::test]
async fn options_after_apply_work_on_the_groups() {
    let server = server().await;
    let body = get(
        &server,
        GRAPH,
        &[
            ("$apply", BY_PLATFORM),
            ("$filter", "rows ge 2"),
            ("$orderby", "total desc"),
            ("$select", "total"),
            ("$count", "true"),
        ],
    )
    .await;
    assert_eq!(body["@odata.count"], 2);
    assert_eq!(
        body["value"],
        json!([
            {"@odata.id": null, "total@odata.type": "#Int64", "total": 9_007_199_254_740_995_i64},
            {"@odata.id": null, "total@odata.type": "#Int64", "total": 9},
        ])
    );
}

#[tokio::test]
async fn grouped_results_page_with_next_links() {
    let server = server().await;
    let mut url =
        server.url(&format!("{GRAPH}?$apply={}", encode_query_value("groupby((tenantId))")));
    let mut tenants = Vec::new();
    loop {
        let body = get_page(&server, &url, 2).await;
        for row in body["value"].as_array().unwrap() {
            tenants.push(row["tenantId"].as_str().unwrap().to_owned());
        }
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(tenants, ["t1", "t2", "t3"]);
}

#[tokio::test]
async fn topcount_keeps_the_highest_rows_as_entities() {
    let server = server().await;
    let body = get(
        &server,
        SEED,
        &[(
            "$apply",
            "filter(numberOfNonCompliantDevices lt 100)/topcount(2,numberOfNonCompliantDevices)",
        )],
    )
    .await;
    let ids: Vec<&str> =
        body["value"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["5", "4"]);
    let body =
        get(&server, SEED, &[("$apply", "bottomcount(1,numberOfNonCompliantDevices)")]).await;
    assert_eq!(body["value"][0]["id"], "3", "the null counter ranks lowest");
}

#[tokio::test]
async fn seed_view_groups_by_its_own_names() {
    let server = server().await;
    let body =
        get(&server, SEED, &[("$apply", "groupby((organizationId),aggregate($count as rows))")])
            .await;
    assert_eq!(
        body["value"][0],
        json!({"@odata.id": null, "organizationId": "t1", "rows@odata.type": "#Int64", "rows": 2})
    );
    let response = server
        .request(
            Method::GET,
            &format!("{SEED}?$apply={}", encode_query_value("groupby((tenantId))")),
        )
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 400, "BadRequest").await;
}

#[tokio::test]
async fn unsupported_transformations_and_names_are_rejected_with_positions() {
    let server = server().await;
    for apply in [
        "compute(1 as x)",
        "groupby((rollup(tenantId)))",
        "aggregate(tenantId with sum as s)",
        "aggregate(numberOfErrorDevices with sum as tenantId)/filter(nope eq 1)",
        "groupby((tenantId),aggregate($count as tenantId))",
        "toppercent(50,numberOfErrorDevices)",
        "groupby((tenantId)",
    ] {
        let response = server
            .request(Method::GET, &format!("{GRAPH}?$apply={}", encode_query_value(apply)))
            .send()
            .await
            .unwrap();
        let message = assert_graph_error(response, 400, "BadRequest").await;
        assert!(message.contains("$apply"), "{apply}: {message}");
        assert!(message.contains("position"), "{apply}: {message}");
    }
}

#[tokio::test]
async fn averages_compare_with_numbers() {
    let server = server().await;
    let apply = "groupby((compliancePolicyPlatform),aggregate(numberOfNonCompliantDevices with average as mean))";
    for (filter, expected) in
        [("mean gt 4", 2), ("mean gt 4.5", 1), ("mean lt 1e30", 3), ("mean eq INF", 0)]
    {
        let body = get(&server, GRAPH, &[("$apply", apply), ("$filter", filter)]).await;
        assert_eq!(body["value"].as_array().unwrap().len(), expected, "{filter}: {body}");
    }
}
