//! The compliance dashboard: a page at `/dashboard` that shows the partner's compliance figures
//! in a browser, with its script, style sheet and icon under `/dashboard/`.
//!
//! The files are compiled into the binary from `assets/dashboard/`, and the page loads nothing
//! from any other origin, so it works offline. The page itself contains no data and needs no
//! token: the user pastes a token into it, and its script reads the data through the public
//! OData API like any other client. Every response carries a Content-Security-Policy that lets
//! the page load scripts, styles and images only from this server and connect only to it,
//! with no inline script or style, so a value from the API that contains HTML cannot run.
//!
//! The files change only with the binary, so each response carries a strong `ETag` (the
//! SHA-256 of the file) and `Cache-Control: no-cache`. Browsers keep a copy but revalidate it
//! on each visit, and get `304 Not Modified` while the server runs the same build.
//!
//! Requests count against the client address's rate limit, as requests to `$metadata` do. The
//! page is a document for people, not a probe that a load balancer sends every few seconds, so
//! the limit that guards token-free requests applies to it too.

use std::sync::LazyLock;

use aws_lc_rs::digest::{SHA256, digest};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::monitoring::{self, Route};
use crate::rate_limit;

/// The Content-Security-Policy of every dashboard response. `'self'` is the origin that served
/// the page, and `default-src 'none'` blocks every kind of resource that is not named.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// One file of the dashboard, compiled into the binary.
#[derive(Debug)]
pub struct Asset {
    /// The path the file is served at.
    pub path: &'static str,
    /// The `Content-Type` of the file.
    pub content_type: &'static str,
    /// The file's bytes.
    pub body: &'static [u8],
}

/// The page, which loads the other files by relative URLs.
pub const PAGE: Asset = Asset {
    path: "/dashboard",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../assets/dashboard/index.html"),
};

/// The script that reads the API and renders the figures.
pub const SCRIPT: Asset = Asset {
    path: "/dashboard/app.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_bytes!("../assets/dashboard/app.js"),
};

/// The style sheet.
pub const STYLE_SHEET: Asset = Asset {
    path: "/dashboard/app.css",
    content_type: "text/css; charset=utf-8",
    body: include_bytes!("../assets/dashboard/app.css"),
};

/// The icon, used as the favicon and in the page's header.
pub const ICON: Asset = Asset {
    path: "/dashboard/icon.svg",
    content_type: "image/svg+xml",
    body: include_bytes!("../assets/dashboard/icon.svg"),
};

/// Every file of the dashboard.
pub const ASSETS: [&Asset; 4] = [&PAGE, &SCRIPT, &STYLE_SHEET, &ICON];

/// The entity tag of each file in [`ASSETS`], in the same order.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let hash = digest(&SHA256, asset.body);
            let hex: String = hash.as_ref().iter().map(|byte| format!("{byte:02x}")).collect();
            // Hex digits and quotes are always a valid header value.
            HeaderValue::from_str(&format!("\"{hex}\"")).unwrap_or(HeaderValue::from_static("\"\""))
        })
        .collect()
});

/// `GET /dashboard`: the page.
pub(crate) async fn page(State(state): State<AppState>, request: Request) -> Response {
    serve(&state, &request, 0)
}

/// `GET /dashboard/app.js`: the script.
pub(crate) async fn script(State(state): State<AppState>, request: Request) -> Response {
    serve(&state, &request, 1)
}

/// `GET /dashboard/app.css`: the style sheet.
pub(crate) async fn style_sheet(State(state): State<AppState>, request: Request) -> Response {
    serve(&state, &request, 2)
}

/// `GET /dashboard/icon.svg`: the icon.
pub(crate) async fn icon(State(state): State<AppState>, request: Request) -> Response {
    serve(&state, &request, 3)
}

/// Serves the file at `index` of [`ASSETS`], or `304` when the request's `If-None-Match`
/// names its current entity tag, after charging the client address's rate limit.
fn serve(state: &AppState, request: &Request, index: usize) -> Response {
    monitoring::set_route(Route::Dashboard);
    let address = rate_limit::peer_address(request.extensions());
    if let Err(limited) = state.rate_limiter.charge_address(address) {
        return limited.into_response();
    }

    let asset = ASSETS[index];
    let etag = &ETAGS[index];
    let mut response = if matches_etag(request.headers(), etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let content_type = HeaderValue::from_static(asset.content_type);
        ([(header::CONTENT_TYPE, content_type)], asset.body).into_response()
    };

    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    response
}

/// Returns whether `If-None-Match` names `etag` or is `*`. The comparison is weak, as RFC 9110
/// requires for `If-None-Match`, so `W/"…"` matches too.
fn matches_etag(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let wanted = etag.as_bytes();
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|value| value.to_str().ok()).any(
        |value| {
            value
                .split(',')
                .map(str::trim)
                .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == wanted)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(asset: &Asset) -> &'static str {
        std::str::from_utf8(asset.body).expect("every dashboard file is UTF-8")
    }

    #[test]
    fn page_loads_its_files_by_relative_url() {
        let page = text(&PAGE);

        for asset in [&SCRIPT, &STYLE_SHEET, &ICON] {
            let relative = asset.path.trim_start_matches('/');
            assert!(page.contains(&format!("\"{relative}\"")), "{relative} is not linked");
        }
    }

    #[test]
    fn files_load_nothing_from_other_origins() {
        for asset in ASSETS {
            let body = text(asset);

            for pattern in ["src=\"http", "href=\"http", "url(", "@import", "//cdn", "fonts.g"] {
                assert!(!body.contains(pattern), "{} contains {pattern}", asset.path);
            }
        }
    }

    #[test]
    fn page_has_no_inline_script_or_style() {
        let page = text(&PAGE);

        assert!(!page.contains("<script>"), "inline script");
        assert!(!page.contains("<style"), "inline style element");
        assert!(!page.contains("style=\""), "inline style attribute");
        let handlers = page.match_indices(" on").filter(|(at, _)| {
            let rest = &page[at + 3..];
            let name_length = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name_length > 0 && rest[name_length..].starts_with('=')
        });
        assert_eq!(handlers.count(), 0, "inline event handler");
    }

    #[test]
    fn script_never_writes_markup() {
        let script = text(&SCRIPT);

        for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
            assert!(!script.contains(sink), "app.js uses {sink}");
        }
    }

    #[test]
    fn etags_differ_between_files() {
        let tags: std::collections::HashSet<_> = ETAGS.iter().collect();

        assert_eq!(tags.len(), ASSETS.len());
    }

    #[test]
    fn if_none_match_compares_weakly() {
        let etag = HeaderValue::from_static("\"abc\"");
        let cases = [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("\"x\", \"abc\"", true),
            ("*", true),
            ("\"abd\"", false),
            ("abc", false),
        ];

        for (value, expected) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static(value));
            assert_eq!(matches_etag(&headers, &etag), expected, "If-None-Match: {value}");
        }
    }
}
