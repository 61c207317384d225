//! The browser console at `/`: static files from `web/`, embedded in the binary.
//!
//! In: a GET for `/` or `/console/<file>`. Out: the file with its content type, an
//! `ETag` (a hash of its bytes: a rebuilt binary with other files is revalidated, the
//! same ones answer 304), `Cache-Control: no-cache`, and a strict Content-Security-Policy:
//! scripts, styles and connections only from this origin, no inline script or style, no
//! framing, no referrer (the console's URL may carry the control token). Nothing is
//! fetched from the network at run time; the page reads `/api/sessions`, `/api/events`
//! and `/api/sessions/{id}/events` and posts the control actions (see README, Console).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderName, HeaderValue, IF_NONE_MATCH};
use hyper::{HeaderMap, Method, Response, StatusCode, Uri};

use crate::server::api::HttpBody;

/// The policy every console response carries.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Where the page's `/metrics` link points; replaced by `--web.telemetry-path`.
const TELEMETRY_MARK: &str = "__TELEMETRY_PATH__";

/// (URL path, bytes, content type) of every file of the console.
const FILES: &[(&str, &[u8], &str)] = &[
    ("/", include_bytes!("../../web/index.html"), "text/html; charset=utf-8"),
    ("/console/style.css", include_bytes!("../../web/style.css"), "text/css; charset=utf-8"),
    ("/console/app.js", include_bytes!("../../web/app.js"), "text/javascript; charset=utf-8"),
    ("/console/store.js", include_bytes!("../../web/store.js"), "text/javascript; charset=utf-8"),
    ("/console/sessions.js", include_bytes!("../../web/sessions.js"), "text/javascript; charset=utf-8"),
    ("/console/session.js", include_bytes!("../../web/session.js"), "text/javascript; charset=utf-8"),
    ("/console/control.js", include_bytes!("../../web/control.js"), "text/javascript; charset=utf-8"),
    ("/console/util.js", include_bytes!("../../web/util.js"), "text/javascript; charset=utf-8"),
    ("/console/favicon.svg", include_bytes!("../../web/favicon.svg"), "image/svg+xml"),
];

/// Whether `path` is one of the console's (so that the router sends it here).
pub(crate) fn is_console_path(path: &str) -> bool {
    path == "/" || path == "/favicon.ico" || path.starts_with("/console/")
}

/// The console's answer to a request for one of its paths: GET or HEAD only. `/` with a
/// `token` query parameter is not ours (the control side sets the cookie and redirects):
/// `None` then.
pub(crate) fn respond(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    telemetry_path: &str,
) -> Option<Response<HttpBody>> {
    let path = uri.path();
    if path == "/" && uri.query().is_some_and(|q| q.split('&').any(|p| p == "token" || p.starts_with("token="))) {
        return None;
    }
    if method != Method::GET && method != Method::HEAD {
        return Some(plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n"));
    }
    let path = if path == "/favicon.ico" { "/console/favicon.svg" } else { path };
    let Some(&(_, bytes, content_type)) = FILES.iter().find(|(p, ..)| *p == path) else {
        return Some(plain(StatusCode::NOT_FOUND, "not found\n"));
    };
    let body: Bytes = if path == "/" {
        let html = String::from_utf8_lossy(bytes).replace(TELEMETRY_MARK, &html_escape(telemetry_path));
        Bytes::from(html)
    } else {
        Bytes::from_static(bytes)
    };
    let etag = format!("\"{:016x}\"", fnv1a(&body));
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut r = if fresh {
        let mut r = Response::new(Full::new(Bytes::new()).boxed_unsync());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(Full::new(body).boxed_unsync())
    };
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, v);
    }
    security_headers(h);
    Some(r)
}

/// The headers every console response carries, errors included.
fn security_headers(h: &mut HeaderMap) {
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(HeaderName::from_static("content-security-policy"), HeaderValue::from_static(CSP));
    h.insert(HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff"));
    h.insert(HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer"));
    h.insert(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY"));
}

fn plain(status: StatusCode, body: &'static str) -> Response<HttpBody> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    security_headers(r.headers_mut());
    r
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

/// 64-bit FNV-1a: a stable fingerprint of a file's bytes for its `ETag`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, headers: &[(HeaderName, &str)]) -> Option<Response<HttpBody>> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        respond(&Method::GET, &path.parse().unwrap(), &map, "/custom-metrics")
    }

    #[test]
    fn every_file_has_its_type_and_the_policy() {
        for (path, _, ct) in FILES {
            let r = get(path, &[]).unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(r.headers()[CONTENT_TYPE], *ct);
            assert_eq!(r.headers()["content-security-policy"], CSP);
            assert_eq!(r.headers()[CACHE_CONTROL], "no-cache");
        }
        assert_eq!(get("/console/nope.js", &[]).unwrap().status(), StatusCode::NOT_FOUND);
        assert!(get("/?token=abc", &[]).is_none(), "the token link is the control side's");
        assert!(!CSP.contains("unsafe"), "no inline script or style");
    }

    #[tokio::test]
    async fn the_index_links_the_telemetry_path_and_revalidates() {
        let r = get("/", &[]).unwrap();
        let etag = r.headers()[ETAG].to_str().unwrap().to_owned();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(html.contains("href=\"/custom-metrics\"") && !html.contains(TELEMETRY_MARK));
        assert!(!html.contains("<script>") && !html.contains("style=\""), "nothing inline");
        assert_eq!(get("/", &[(IF_NONE_MATCH, &etag)]).unwrap().status(), StatusCode::NOT_MODIFIED);
    }
}
