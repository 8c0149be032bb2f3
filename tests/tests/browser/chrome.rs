//! Headless Chromium through chromedriver (WebDriver, `fantoccini`): one
//! fresh browser profile per test, a screenshot when a test fails.

use std::future::Future;
use std::os::unix::process::CommandExt as _;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt as _;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Where screenshots go: `target/browser-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A chromedriver process and a browser session; both end on drop, with
/// every process Chromium started (they share chromedriver's own process
/// group; killing chromedriver alone left them running).
pub struct Chrome {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Chrome {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (`process_group(0)`).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Whether Chromium and chromedriver are installed; when they are not,
/// the tests skip, unless `TOKENWARDEN_TEST_REQUIRE_SERVICES=1`.
pub fn available() -> bool {
    let there =
        std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
    if !there {
        assert!(
            std::env::var("TOKENWARDEN_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "chromium and chromium-driver are required (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: chromium or chromedriver is not installed");
    }
    there
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Chrome {
    /// Starts chromedriver and a headless Chromium `width` pixels wide.
    pub async fn start(width: u32) -> Chrome {
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            // A group of its own, which Chromium's processes join.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={width},900"),
                ],
            }
        });
        let caps: fantoccini::wd::Capabilities = caps.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let mut builder = ClientBuilder::new(HttpConnector::new());
            match builder.capabilities(caps.clone()).connect(&url).await {
                Ok(c) => break c,
                Err(e) if started.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("chromedriver did not start: {e}"),
            }
        };
        Chrome {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Runs a test body; on failure (panic), saves a screenshot named
    /// after the test before failing.
    pub async fn run<F, Fut>(&self, name: &str, body: F)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ()>,
    {
        let outcome = AssertUnwindSafe(body()).catch_unwind().await;
        if let Err(panic) = outcome {
            self.screenshot(&format!("{name}-FAILED")).await;
            std::panic::resume_unwind(panic);
        }
    }

    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let path = screenshot_dir().join(format!("{name}.png"));
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(&path, png);
            eprintln!("screenshot: {}", path.display());
        }
        path
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Runs `script` (a function body; `arguments` as in WebDriver).
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap()
    }

    /// Awaits a promise-returning expression in the page:
    /// `{ok: value}` or `{err: {code, status}}`.
    pub async fn promise(&self, expression: &str) -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             Promise.resolve().then(() => {expression})
               .then((v) => done({{ ok: v === undefined ? null : v }}),
                     (e) => done({{ err: {{ code: e && e.code, status: e && e.status, message: String(e) }} }}));"
        );
        self.client.execute_async(&script, vec![]).await.unwrap()
    }

    /// Waits up to `secs` for `condition` (a JS expression) to be true.
    pub async fn wait_until(&self, condition: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let script = format!("return Boolean({condition});");
        loop {
            if self.js(&script, vec![]).await == Value::Bool(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {condition}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// The value of a cookie the browser holds for the current page's site
    /// (HttpOnly ones included: WebDriver sees them, page script does not).
    pub async fn cookie(&self, name: &str) -> Option<String> {
        self.client
            .get_all_cookies()
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned())
    }
}
