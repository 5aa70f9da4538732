//! The web console in a real headless browser: Debian's chromium driven
//! by its chromedriver through fantoccini (a W3C WebDriver client). A
//! reader's page shows no admin actions; an admin signs in, searches,
//! asks and sees the streamed answer with a citation and its passage,
//! rates the record and finds the rating in the history list, and opens
//! the dashboard. Any script error on the page fails the test. Screenshots
//! of each page go to `$CARGO_TARGET_DIR/console-screenshots/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::common::{create_key, data_dir, TestServer};

/// A chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver must be installed (apt-get install chromium chromium-driver; .ci/run does)");
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _profile: tempfile::tempdir().unwrap(),
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", driver._profile.path().display()),
            ],
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps.clone());
        match builder.connect(&driver.url).await {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot start the browser: {e}"),
        }
    }
}

fn shots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots_dir().join(format!("{name}.png")), png).unwrap();
}

/// Waits (bounded) for an element matching `css` whose text contains
/// `text`, and returns its text.
async fn wait_text(c: &Client, css: &str, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(els) = c.find_all(Locator::Css(css)).await {
            for e in els {
                if let Ok(t) = e.text().await {
                    if t.contains(text) {
                        return t;
                    }
                }
            }
        }
        assert!(Instant::now() < deadline, "no {css} containing {text:?}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Fails on any script error the page recorded.
async fn no_script_errors(c: &Client) {
    let errors = c
        .execute("return document.body.dataset.errors || '';", vec![])
        .await
        .unwrap();
    assert_eq!(
        errors,
        Value::String(String::new()),
        "script errors on the page"
    );
}

/// The element `css` once the page has rendered it: every console page
/// draws its controls after an async fetch (collection names, the
/// signed-in principal), so an immediate lookup races the render.
async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(30))
        .every(Duration::from_millis(100))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css} within 30 s: {e}"))
}

async fn sign_in(c: &Client, base: &str, key: &str, name: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    find(c, "#key").await.send_keys(key).await.unwrap();
    find(c, "#login").await.click().await.unwrap();
    wait_text(c, "#whoami", name).await;
}

async fn go(c: &Client, base: &str, hash: &str) {
    c.goto(&format!("{base}/{hash}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_signs_in_searches_asks_rates_and_shows_history() {
    let dir = data_dir();
    let keys = dir.path().join("keys.toml");
    let admin = create_key(&keys, "boss", "admin", &[]);
    let reader = create_key(&keys, "viewer", "reader", &[]);
    let server = TestServer::start_with(
        &dir.path().join("data"),
        &["--keys-file", keys.to_str().unwrap()],
    );
    let base = server.http_addr.clone().unwrap();
    let post = |path: &str, body: Value| {
        ureq::post(&format!("{base}{path}"))
            .set("authorization", &format!("Bearer {admin}"))
            .send_json(body)
            .unwrap()
    };
    post("/v1/collections", json!({"name": "wildlife"}));
    post(
        "/v1/collections/wildlife/documents",
        json!({"documents": [
            {"id": "otter", "title": "River otter", "text": "The river otter eats fish, crayfish and crabs. It hunts at night in rivers and lakes."},
            {"id": "heron", "title": "Grey heron", "text": "The grey heron stands still in shallow water and spears fish with its bill."},
        ]}),
    );

    let driver = start_driver();
    let c = browser(&driver).await;

    // The console never puts the key in a URL, and the page has a CSP.
    let page = ureq::get(&format!("{base}/")).call().unwrap();
    assert!(page
        .header("content-security-policy")
        .is_some_and(|v| v.contains("default-src 'self'")));

    // A reader sees the collections but no admin action.
    sign_in(&c, &base, &reader, "viewer").await;
    go(&c, &base, "#/collections").await;
    wait_text(&c, "#collections", "wildlife").await;
    assert!(c
        .find_all(Locator::Css("#create-form, button.delete"))
        .await
        .unwrap()
        .is_empty());
    assert!(!c.current_url().await.unwrap().as_str().contains(&reader));
    no_script_errors(&c).await;
    find(&c, "#logout").await.click().await.unwrap();

    // An admin does.
    sign_in(&c, &base, &admin, "boss").await;
    go(&c, &base, "#/collections").await;
    wait_text(&c, "#collections", "wildlife").await;
    find(&c, "button.delete[data-name='wildlife']").await;
    find(&c, "#create-form").await;
    shot(&c, "collections").await;

    // Search: fused, dense and keyword scores side by side.
    go(&c, &base, "#/search").await;
    find(&c, "#search-query")
        .await
        .send_keys("what do otters eat")
        .await
        .unwrap();
    find(&c, "#search-go").await.click().await.unwrap();
    let first = wait_text(&c, "#search-results tr.hit", "otter").await;
    assert!(first.contains("crayfish"), "{first}");
    let dense = find(&c, "tr.hit td.dense").await.text().await.unwrap();
    assert!(dense.contains('·'), "dense rank and score: {dense}");
    shot(&c, "search").await;

    // Ask: the streamed answer with a citation that opens its passage.
    go(&c, &base, "#/ask").await;
    find(&c, "#ask-question")
        .await
        .send_keys("What does the river otter eat?")
        .await
        .unwrap();
    find(&c, "#ask-mode option[value='ANSWER_MODE_EXTRACTIVE']")
        .await
        .click()
        .await
        .unwrap();
    find(&c, "#ask-go").await.click().await.unwrap();
    wait_text(&c, "#ask-status", "record").await;
    let answer = find(&c, "#answer").await.text().await.unwrap();
    assert!(answer.contains("fish"), "{answer}");
    find(&c, "#answer a.cite").await.click().await.unwrap();
    wait_text(&c, "#passage", "otter").await;
    shot(&c, "ask").await;

    // Rate the record, then find the rating in the history list.
    find(&c, "#ask-record").await.click().await.unwrap();
    wait_text(&c, "#record-question", "river otter").await;
    find(&c, "#rate-score option[value='4']")
        .await
        .click()
        .await
        .unwrap();
    find(&c, "#rate-comment")
        .await
        .send_keys("cites the right passage")
        .await
        .unwrap();
    find(&c, "#rate-go").await.click().await.unwrap();
    wait_text(&c, "#rate-status", "rated 4").await;
    shot(&c, "record").await;
    go(&c, &base, "#/history").await;
    wait_text(&c, "#records tr.record td.rating", "4").await;
    shot(&c, "history").await;

    // The dashboard draws its charts.
    go(&c, &base, "#/dashboard").await;
    wait_text(&c, "#dashboard-summary", "asks recorded").await;
    find(&c, "#chart-asks rect").await;
    shot(&c, "dashboard").await;

    // The API reference page reads /openapi.json.
    go(&c, &base, "#/api").await;
    wait_text(&c, "#api-routes", "/v1/chat/completions").await;
    go(&c, &base, "#/api/SearchRequest").await;
    wait_text(&c, "#api-schema", "topK").await;
    shot(&c, "api").await;
    no_script_errors(&c).await;

    c.close().await.unwrap();
    server.stop();
}
