//! The dashboard in a real browser: headless Chromium, driven over WebDriver (chromedriver)
//! against a real `haltway serve`. Sign in (a bad key is refused), watch a demo run's progress
//! bar advance and its ledger grow without a reload, cancel it from the page and see
//! `cancelled (user_cancelled)` with the kept results and the bill, see another tenant's job as
//! not found, and read the group and operations pages; on a narrow window nothing overflows.
//! Screenshots of each page go to `target/dashboard-screenshots/`, and the test fails on any
//! browser console error (the only network errors allowed are the two this test provokes: the
//! refused key's 401 and the other tenant's job's 404).
//!
//! Needs `chromedriver` and Chromium (Debian's `chromium` and `chromium-driver`; `.ci/run`
//! installs them when missing): `HALTWAY_TEST_CHROMEDRIVER`, else `chromedriver` on the `PATH`.
//! Without them the test prints `SKIPPED: no chromium` and passes, except under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

#[path = "server_support/mod.rs"]
mod server_support;

fn chromedriver() -> Option<PathBuf> {
    let path = std::env::var_os("HALTWAY_TEST_CHROMEDRIVER")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("chromedriver"))
                    .find(|p| p.is_file())
            })
        });
    if path.is_none() {
        println!(
            "SKIPPED: no chromium (no chromedriver on the PATH or in HALTWAY_TEST_CHROMEDRIVER)"
        );
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: the dashboard browser test must run (install chromium and chromium-driver)"
        );
    }
    path
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn start_driver(bin: &Path) -> (Driver, String) {
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let start = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{url}/status")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (Driver(child), url)
}

async fn browser(driver: &str) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"]
        },
        "goog:loggingPrefs": {"browser": "ALL"},
    });
    let Value::Object(caps) = caps else {
        unreachable!("an object literal")
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("a browser session")
}

/// The browser's log since the last call (console messages and failed loads).
async fn browser_log(driver: &str, client: &Client) -> Vec<Value> {
    let session = client
        .session_id()
        .await
        .expect("session id")
        .expect("a session");
    let answer: Value = reqwest::Client::new()
        .post(format!("{driver}/session/{session}/se/log"))
        .json(&json!({"type": "browser"}))
        .send()
        .await
        .expect("log request")
        .json()
        .await
        .expect("log json");
    answer["value"].as_array().cloned().unwrap_or_default()
}

/// Fails on any error in the browser log but the network errors listed in `expected`
/// (substrings of their messages).
async fn assert_clean_log(driver: &str, client: &Client, expected: &[&str]) {
    for entry in browser_log(driver, client).await {
        let level = entry["level"].as_str().unwrap_or_default();
        let message = entry["message"].as_str().unwrap_or_default();
        if level != "SEVERE" {
            continue;
        }
        let provoked = entry["source"] == "network" && expected.iter().any(|e| message.contains(e));
        assert!(provoked, "browser console error: {entry}");
    }
}

/// No element of the page shows a bare `null` or `undefined` (a value rendered that was not
/// there).
async fn assert_rendered(client: &Client) {
    let stray = client
        .execute(
            "return [...document.querySelectorAll('main *')].flatMap(e => [...e.childNodes]) \
               .filter(n => n.nodeType === 3 && /^(null|undefined|NaN)+$/.test(n.textContent.trim())) \
               .map(n => n.parentElement.outerHTML.slice(0, 200))",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(stray, json!([]), "stray values on the page");
}

async fn screenshot(client: &Client, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

async fn text(client: &Client, css: &str) -> String {
    client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .expect("text")
}

/// Waits until `check` holds for the page's value of `script`.
async fn until(client: &Client, what: &str, script: &str, check: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let v = client.execute(script, vec![]).await.expect("script");
        if check(&v) {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the text of the element with id `id` contains `needle` (an element in the page
/// from the start, filled in later).
async fn until_text(client: &Client, what: &str, id: &str, needle: &str) {
    until(
        client,
        what,
        &format!("return document.getElementById('{id}').textContent"),
        |v| v.as_str().is_some_and(|t| t.contains(needle)),
    )
    .await;
}

async fn api(
    server: &server_support::Server,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = reqwest::Client::new()
        .request(
            method.parse().expect("method"),
            format!("{}{path}", server.url),
        )
        .bearer_auth(key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_and_cancels_a_run_in_a_real_browser() {
    let Some(bin) = chromedriver() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_support::start(dir.path());
    let (_driver, driver) = start_driver(&bin).await;
    let client = browser(&driver).await;
    let ui = format!("{}/ui", server.url);

    // Sign-in: a bad key is refused, the real one signs in.
    client.goto(&ui).await.expect("open the dashboard");
    let key = client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("#key"))
        .await
        .expect("the sign-in form");
    key.send_keys("hw_000000000000_nope").await.expect("type");
    client
        .find(Locator::Css("#signin-submit"))
        .await
        .expect("button")
        .click()
        .await
        .expect("click");
    until_text(&client, "the refusal", "signin-error", "refused").await;
    screenshot(&client, "signin-refused").await;
    assert_clean_log(
        &driver,
        &client,
        &["/v1/stats - Failed to load resource: the server responded with a status of 401"],
    )
    .await;
    let key = client.find(Locator::Css("#key")).await.expect("key input");
    client
        .execute("document.getElementById('key').value = ''", vec![])
        .await
        .expect("clear");
    key.send_keys(&server.key).await.expect("type");
    client
        .find(Locator::Css("#signin-submit"))
        .await
        .expect("button")
        .click()
        .await
        .expect("click");
    // `#whoami` is in the page from the start, empty until the sign-in's answer fills it.
    until_text(&client, "the signed-in tenant", "whoami", "default").await;
    assert!(
        !client
            .current_url()
            .await
            .expect("url")
            .as_str()
            .contains(&server.key),
        "the key must never be in a URL"
    );

    // A demo run, slow enough to watch, in a group; and another tenant's job.
    let job = api(
        &server,
        &server.key,
        "POST",
        "/v1/jobs",
        Some(json!({"kind": "demo.find_all", "input": {"latency_ms": 300}, "group": "ui-group"})),
    )
    .await;
    let id = job["id"].as_str().expect("id").to_owned();
    let other_key = server_support::other_tenant_key(&server, "other").await;
    let other = api(
        &server,
        &other_key,
        "POST",
        "/v1/jobs",
        Some(json!({"kind": "demo.find_all", "input": {}, "limit": 1})),
    )
    .await;
    let other_id = other["id"].as_str().expect("id").to_owned();

    // The jobs list shows it, with counts at the top.
    until(
        &client,
        "the job in the list",
        &format!("return !!document.querySelector('#jobs tr[data-id=\"{id}\"]')"),
        |v| v == true,
    )
    .await;
    assert!(!text(&client, "#counts").await.is_empty());
    assert_rendered(&client).await;
    screenshot(&client, "jobs").await;

    // The job page: progress and ledger grow without a reload.
    client
        .goto(&format!("{ui}#/jobs/{id}"))
        .await
        .expect("job page");
    text(&client, "#job-progress").await;
    client
        .execute("window.__sameDocument = true", vec![])
        .await
        .expect("mark the document");
    let first = until(&client, "a first result", "return [document.querySelectorAll('#ledger tbody tr').length, Number(document.getElementById('job-progress').value)]", |v| v[0].as_u64() >= Some(1)).await;
    let grown = until(&client, "the run to advance", "return [document.querySelectorAll('#ledger tbody tr').length, Number(document.getElementById('job-progress').value)]", |v| {
        v[0].as_u64() > first[0].as_u64() && v[1].as_f64() > first[1].as_f64()
    })
    .await;
    assert_eq!(
        client
            .execute("return window.__sameDocument === true", vec![])
            .await
            .expect("script"),
        true,
        "the page reloaded"
    );
    assert!(grown[1].as_f64() > Some(0.0), "{grown}");
    until(
        &client,
        "events",
        "return document.querySelectorAll('#events li').length",
        |v| v.as_u64() >= Some(3),
    )
    .await;
    assert_rendered(&client).await;
    screenshot(&client, "job-running").await;

    // Cancel from the page, with a confirmation that says what is kept and billed.
    client
        .find(Locator::Css("#cancel"))
        .await
        .expect("cancel button")
        .click()
        .await
        .expect("click");
    // The dialog's text is in the page from the start, filled when the dialog opens.
    until_text(
        &client,
        "the cancel confirmation",
        "confirm-text",
        "kept and billed",
    )
    .await;
    screenshot(&client, "job-cancel-confirm").await;
    client
        .find(Locator::Css("#confirm-yes"))
        .await
        .expect("confirm")
        .click()
        .await
        .expect("click");
    until(
        &client,
        "the cancelled state",
        "return document.getElementById('job-state').textContent",
        |v| v == "cancelled (user_cancelled)",
    )
    .await;
    let done = api(&server, &server.key, "GET", &format!("/v1/jobs/{id}"), None).await;
    let results = api(
        &server,
        &server.key,
        "GET",
        &format!("/v1/jobs/{id}/results?limit=1000"),
        None,
    )
    .await;
    let kept = results["data"].as_array().expect("results").len();
    let shown = until(
        &client,
        "every kept result",
        "return document.querySelectorAll('#ledger tbody tr').length",
        |v| v.as_u64() == u64::try_from(kept).ok(),
    )
    .await;
    assert_eq!(shown.as_u64(), u64::try_from(kept).ok());
    let usage = &done["usage"];
    assert_eq!(
        text(&client, "#job-usage").await,
        format!(
            "{} fixed + {} results = {}",
            usage["fixed"], usage["items"], usage["total"]
        )
    );
    assert!(
        client.find(Locator::Css("#cancel")).await.is_err(),
        "no cancel button on a cancelled job"
    );
    assert_rendered(&client).await;
    screenshot(&client, "job-cancelled").await;

    // Another tenant's job is not found.
    client
        .goto(&format!("{ui}#/jobs/{other_id}"))
        .await
        .expect("other job");
    assert_eq!(text(&client, "#not-found").await, "Job not found");
    screenshot(&client, "job-not-found").await;

    // The group page and the operations page (an admin key).
    client
        .goto(&format!("{ui}#/groups/ui-group"))
        .await
        .expect("group page");
    until(
        &client,
        "the group's job",
        &format!("return !!document.querySelector('#jobs tr[data-id=\"{id}\"]')"),
        |v| v == true,
    )
    .await;
    assert_rendered(&client).await;
    screenshot(&client, "group").await;
    client.goto(&format!("{ui}#/ops")).await.expect("ops page");
    until(
        &client,
        "the latency table and two samples of the charts",
        "return [!!document.getElementById('cancel-latency'), \
                 document.querySelectorAll('#active-chart rect').length, \
                 document.querySelectorAll('svg.chart').length]",
        |v| v[0] == true && v[1].as_u64() >= Some(2) && v[2] == 2,
    )
    .await;
    assert_rendered(&client).await;
    screenshot(&client, "operations").await;

    // A narrow screen: nothing wider than the window.
    client
        .set_window_size(390, 844)
        .await
        .expect("narrow window");
    client
        .goto(&format!("{ui}#/jobs/{id}"))
        .await
        .expect("job page");
    text(&client, "#job-state").await;
    let fits = client
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(fits, true, "the job page overflows a narrow window");
    assert_rendered(&client).await;
    screenshot(&client, "job-narrow").await;

    assert_clean_log(&driver, &client, &[&format!("/v1/jobs/{other_id} - Failed to load resource: the server responded with a status of 404")]).await;
    client.close().await.expect("close the browser");
}
