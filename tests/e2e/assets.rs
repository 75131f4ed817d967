//! What the server sends for pages and assets: versioned asset URLs cached for a year (an old
//! version still answers, briefly cached), the favicon, a not-found page with navigation, and
//! gzip/Brotli compression of pages, assets and JSON views but never of ingestion answers.

use crate::support::{TestApp, member_with_project};
use std::io::Read;

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn assets_are_versioned_cached_for_a_year_and_pages_are_compressed() {
    let app = TestApp::spawn(&[]).await;
    let http = reqwest::Client::new();
    let get = |path: String, encoding: &'static str| {
        http.get(app.url(&path))
            .header("accept", "text/html")
            .header("accept-encoding", encoding)
            .send()
    };

    // The landing page links its stylesheet and icon by versioned URLs.
    let landing = get("/".into(), "identity").await.unwrap();
    assert_eq!(header(&landing, "content-encoding"), None);
    let html = landing.text().await.unwrap();
    let css = html
        .split('"')
        .find(|s| s.starts_with("/static/v/") && s.ends_with("/css/app.css"))
        .expect("a versioned stylesheet link")
        .to_string();
    assert!(html.contains("rel=\"icon\""), "{html}");

    let r = get(css.clone(), "gzip").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "cache-control").as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(header(&r, "content-encoding").as_deref(), Some("gzip"));
    let mut css_text = String::new();
    flate2::read::GzDecoder::new(&r.bytes().await.unwrap()[..])
        .read_to_string(&mut css_text)
        .unwrap();
    assert!(css_text.contains(".kpis"), "the stylesheet, decompressed");
    let br = get(css.clone(), "br").await.unwrap();
    assert_eq!(header(&br, "content-encoding").as_deref(), Some("br"));

    // A page of an older build still gets today's file, cached briefly; the unversioned path
    // too.
    let stale = get("/static/v/000000000000/css/app.css".into(), "identity")
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    assert_eq!(
        header(&stale, "cache-control").as_deref(),
        Some("public, max-age=3600")
    );

    // The not-found page keeps a way back into the application.
    let missing = get("/no/such/page".into(), "identity").await.unwrap();
    assert_eq!(missing.status(), 404);
    let missing = missing.text().await.unwrap();
    assert!(
        missing.contains(r#"<nav class="nav" aria-label="Main">"#)
            && missing.contains(r#"href="/projects""#),
        "{missing}"
    );

    let icon = get("/favicon.ico".into(), "identity").await.unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(
        header(&icon, "content-type").as_deref(),
        Some("image/svg+xml")
    );

    // JSON views are compressed; ingestion answers are not.
    let (client, id, key) = member_with_project(&app, "assets@example.com").await;
    let views: Vec<_> = (0..40)
        .map(|i| serde_json::json!({"url": format!("/page/{i}")}))
        .collect();
    let ingest = http
        .post(app.url("/v1/pageviews"))
        .bearer_auth(&key)
        .header("accept-encoding", "gzip, br")
        .json(&views)
        .send()
        .await
        .unwrap();
    assert_eq!(ingest.status(), 201);
    assert_eq!(header(&ingest, "content-encoding"), None);
    let data = client
        .get(app.url(&format!("/projects/{id}/dashboard/data")))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(data.status(), 200);
    assert_eq!(header(&data, "content-encoding").as_deref(), Some("gzip"));
    let page = client
        .get(app.url(&format!("/projects/{id}/dashboard")))
        .header("accept", "text/html")
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&page, "content-encoding").as_deref(), Some("br"));
    app.stop().await;
}
