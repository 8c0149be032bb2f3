//! The pages in real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver): the web client's login,
//! silent refresh, tabs, logout and theft notice; CORS from a second
//! origin; the security console. A failing test saves a screenshot under
//! `target/browser-screenshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chrome;
mod origin;

use std::time::Duration;

use integration_tests::{Backend, TestApp, PASSWORD};
use serde_json::{json, Value};

use chrome::Chrome;

/// Access tokens live 3 s, so silent refreshes happen within a test.
async fn app(adjust: impl FnOnce(&mut server::Config)) -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, |c| {
        c.lifetimes.access_ttl = Duration::from_secs(3);
        adjust(c);
    })
    .await
    .unwrap()
}

async fn register(app: &TestApp, username: &str) {
    assert_eq!(
        app.register(username).await.status(),
        201,
        "register {username}"
    );
}

/// Logs in through the page's form and waits for the signed-in view.
async fn log_in(chrome: &Chrome, app: &TestApp, username: &str) {
    log_in_on(chrome, app, "/", username).await;
}

/// Logs in through the form of `page` (`/`, or `/?dpop=off` for a session
/// bound to no key).
async fn log_in_on(chrome: &Chrome, app: &TestApp, page: &str, username: &str) {
    chrome.goto(&app.url(page)).await;
    chrome
        .wait_until("document.body.dataset.state === 'signed-out'", 10)
        .await;
    chrome.fill("#login-username", username).await;
    chrome.fill("#login-password", PASSWORD).await;
    chrome.click("#login-form button[type=submit]").await;
    chrome
        .wait_until("document.body.dataset.state === 'signed-in'", 10)
        .await;
}

async fn token_id(chrome: &Chrome) -> String {
    chrome.text("#token-id").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_silent_refresh_and_logout() {
    if !chrome::available() {
        return;
    }
    let app = app(|_| {}).await;
    register(&app, "alice").await;
    let chrome = Chrome::start(1440).await;
    chrome
        .run("login_silent_refresh_and_logout", || async {
            log_in(&chrome, &app, "alice").await;
            assert_eq!(chrome.text("#me-username").await, "alice");
            let first = token_id(&chrome).await;
            // A 3 s token is renewed silently shortly before it expires.
            chrome
                .wait_until(
                    &format!("document.getElementById('token-id').textContent !== '{first}'"),
                    6,
                )
                .await;
            let me = chrome.promise("tokenwarden.json('/api/me')").await;
            assert_eq!(me["ok"]["username"], "alice", "{me}");
            chrome
                .wait_until(
                    "document.querySelectorAll('#sessions tbody tr').length === 1",
                    5,
                )
                .await;

            chrome.click("#logout").await;
            chrome
                .wait_until("document.body.dataset.state === 'signed-out'", 5)
                .await;
            assert_eq!(
                chrome
                    .js(
                        "return document.getElementById('notice').dataset.reason",
                        vec![]
                    )
                    .await,
                "logout"
            );
            // The session is over on the server too: a reload finds none.
            chrome.goto(&app.url("/")).await;
            chrome
                .wait_until("document.body.dataset.state === 'signed-out'", 10)
                .await;
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_refreshing_at_the_same_moment_both_stay_logged_in() {
    if !chrome::available() {
        return;
    }
    // No grace window: were both tabs to present the same refresh token,
    // the second would be taken for theft and end every session.
    let app = app(|c| {
        c.lifetimes.grace = Duration::ZERO;
        c.retry_window = Duration::ZERO;
    })
    .await;
    register(&app, "bob").await;
    let chrome = Chrome::start(1440).await;
    chrome
        .run("two_tabs_refreshing_at_the_same_moment", || async {
            log_in(&chrome, &app, "bob").await;
            let first = chrome.client.window().await.unwrap();
            let second = chrome.client.new_window(true).await.unwrap().handle;
            chrome.client.switch_to_window(second.clone()).await.unwrap();
            chrome.goto(&app.url("/")).await;
            chrome.wait_until("document.body.dataset.state === 'signed-in'", 10).await;

            let mut ids = Vec::new();
            for round in 0..3 {
                // Both tabs start a refresh at the same millisecond.
                let at = chrome.js("return Date.now() + 400", vec![]).await;
                for tab in [&first, &second] {
                    chrome.client.switch_to_window(tab.clone()).await.unwrap();
                    chrome
                        .js(
                            "window.refreshed = null;
                             setTimeout(() => tokenwarden.refresh().then((ok) => { window.refreshed = ok; }),
                                        arguments[0] - Date.now());",
                            vec![at.clone()],
                        )
                        .await;
                }
                let mut round_ids = Vec::new();
                for tab in [&first, &second] {
                    chrome.client.switch_to_window(tab.clone()).await.unwrap();
                    chrome.wait_until("window.refreshed === true", 10).await;
                    assert_eq!(
                        chrome.js("return document.body.dataset.state", vec![]).await,
                        "signed-in",
                        "round {round}"
                    );
                    let me = chrome.promise("tokenwarden.json('/api/me')").await;
                    assert_eq!(me["ok"]["username"], "bob", "round {round}: {me}");
                    round_ids.push(token_id(&chrome).await);
                }
                // One refresh served both tabs: they hold the same token.
                assert_eq!(round_ids[0], round_ids[1], "round {round}");
                ids.push(round_ids[0].clone());
            }
            ids.dedup();
            assert_eq!(ids.len(), 3, "each round renewed the token: {ids:?}");
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_cookie_of_an_unbound_session_replayed_elsewhere_ends_the_browser_session_and_the_page_says_so(
) {
    if !chrome::available() {
        return;
    }
    let app = app(|_| {}).await;
    register(&app, "carol").await;
    let chrome = Chrome::start(1440).await;
    chrome
        .run("a_stolen_cookie_replayed_elsewhere", || async {
            // Without DPoP: the session is bound to no key.
            log_in_on(&chrome, &app, "/?dpop=off", "carol").await;
            assert!(chrome.text("#binding").await.starts_with("nothing"));
            // The thief copies the cookie (WebDriver reads HttpOnly cookies
            // of the page it is on; the cookie's path is /auth).
            let page = chrome.client.window().await.unwrap();
            let thief_tab = chrome.client.new_window(true).await.unwrap().handle;
            chrome.client.switch_to_window(thief_tab).await.unwrap();
            chrome.goto(&app.url("/auth/sessions")).await;
            let stolen = chrome
                .cookie("refresh_token")
                .await
                .expect("the refresh cookie");
            chrome.client.close_window().await.unwrap();
            chrome.client.switch_to_window(page).await.unwrap();

            // ...and uses it first, from elsewhere.
            let r = app.refresh_cookie_as(&stolen, "curl/8.5.0").await;
            assert_eq!(r.status(), 200, "the thief's refresh");

            // The browser's next silent refresh presents the rotated token:
            // reuse. Every session ends, and the page says why.
            chrome
                .wait_until("document.body.dataset.state === 'signed-out'", 8)
                .await;
            assert_eq!(
                chrome
                    .js(
                        "return document.getElementById('notice').dataset.reason",
                        vec![]
                    )
                    .await,
                "reused"
            );
            let notice = chrome.text("#notice").await;
            assert!(notice.contains("every session"), "{notice}");
            chrome.screenshot("theft-notice").await;
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_copied_out_of_a_dpop_browser_is_refused_elsewhere_and_the_browser_carries_on() {
    if !chrome::available() {
        return;
    }
    let app = app(|_| {}).await;
    register(&app, "erin").await;
    let chrome = Chrome::start(1440).await;
    chrome
        .run("a_cookie_copied_out_of_a_dpop_browser", || async {
            log_in(&chrome, &app, "erin").await;
            let binding = chrome.text("#binding").await;
            assert!(binding.contains("DPoP"), "the session is bound: {binding}");
            // The key cannot be read out of the browser.
            let extractable = chrome
                .promise(
                    "new Promise((ok, err) => { const o = indexedDB.open('tokenwarden-dpop'); \
                     o.onsuccess = () => { const g = o.result.transaction('keys').objectStore('keys').get('current'); \
                     g.onsuccess = () => ok(g.result.privateKey.extractable); g.onerror = err; }; o.onerror = err; })",
                )
                .await;
            assert_eq!(extractable, json!({"ok": false}), "a non-extractable private key");

            let page = chrome.client.window().await.unwrap();
            let thief_tab = chrome.client.new_window(true).await.unwrap().handle;
            chrome.client.switch_to_window(thief_tab).await.unwrap();
            chrome.goto(&app.url("/auth/sessions")).await;
            let stolen = chrome
                .cookie("refresh_token")
                .await
                .expect("the refresh cookie");
            chrome.client.close_window().await.unwrap();
            chrome.client.switch_to_window(page).await.unwrap();

            // The thief has the cookie but not the key.
            let r = app.refresh_cookie_as(&stolen, "curl/8.5.0").await;
            assert_eq!(r.status(), 401, "the thief's refresh");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["code"], "invalid_dpop_proof");

            // The browser carries on: its silent refreshes (3 s tokens)
            // still work, with the same cookie and its own key.
            let before = token_id(&chrome).await;
            chrome
                .wait_until(
                    &format!("document.getElementById('token-id').textContent !== '{before}'"),
                    10,
                )
                .await;
            assert_eq!(
                chrome.js("return document.body.dataset.state", vec![]).await,
                "signed-in"
            );
            chrome.screenshot("dpop-browser-carries-on").await;
        })
        .await;
}

async fn use_through_cors(chrome: &Chrome, page: &str, username: &str) -> (Value, Value, Value) {
    chrome.goto(page).await;
    chrome.wait_until("document.title === 'ready'", 10).await;
    let login = chrome
        .promise(&format!(
            "tw.login('{username}', '{PASSWORD}').then((u) => u.username)"
        ))
        .await;
    let refresh = chrome.promise("tw.refresh()").await;
    let me = chrome
        .promise("tw.json('/api/me').then((m) => m.username)")
        .await;
    (login, refresh, me)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_second_origin_logs_in_and_refreshes_through_cors_and_an_unlisted_one_cannot() {
    if !chrome::available() {
        return;
    }
    // Same site, another origin (another port of 127.0.0.1): the default
    // SameSite=Strict cookie works, as for app.example.com calling
    // auth.example.com.
    let (listed, listed_origin) = origin::bind("127.0.0.1").await;
    let (unlisted, unlisted_origin) = origin::bind("127.0.0.1").await;
    let app = app(|c| c.allowed_origins = vec![listed_origin.clone()]).await;
    origin::serve(listed, &app.address);
    origin::serve(unlisted, &app.address);
    register(&app, "dave").await;
    let chrome = Chrome::start(1440).await;
    chrome
        .run("cors_second_origin", || async {
            let (login, refresh, me) = use_through_cors(&chrome, &listed_origin, "dave").await;
            assert_eq!(login, json!({"ok": "dave"}));
            assert_eq!(refresh, json!({"ok": true}), "the cookie went along");
            assert_eq!(me, json!({"ok": "dave"}));

            let (login, _, _) = use_through_cors(&chrome, &unlisted_origin, "dave").await;
            assert_eq!(
                login["err"]["code"], "network_error",
                "CORS hides the answer: {login}"
            );
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_a_robbed_user_as_high_risk_with_the_chart_drawn() {
    if !chrome::available() {
        return;
    }
    let app = app(|_| {}).await;
    // The victim refreshes, then a thief replays the rotated token.
    let victim = app.signed_up("frank").await;
    let r = app.refresh_cookie(&victim.refresh).await;
    assert_eq!(r.status(), 200);
    let r = app.refresh_cookie_as(&victim.refresh, "curl/8.5.0").await;
    assert_eq!(r.status(), 401, "reuse");
    app.admin("root").await;
    let victim_id = victim.body["user"]["id"].as_str().unwrap().to_owned();

    for width in [1440, 360] {
        let chrome = Chrome::start(width).await;
        chrome
            .run(&format!("console_{width}"), || async {
                chrome.goto(&app.url("/console")).await;
                chrome.wait_until("document.body.dataset.state === 'signed-out'", 10).await;
                chrome.fill("#login-username", "root").await;
                chrome.fill("#login-password", PASSWORD).await;
                chrome.click("#login-form button[type=submit]").await;
                chrome.wait_until("document.body.dataset.state === 'console'", 10).await;
                // The recent events name the reuse; find the user by id.
                chrome
                    .wait_until("document.querySelectorAll('#events tbody tr button').length > 0", 10)
                    .await;
                chrome.fill("#search-q", &victim_id).await;
                chrome.click("#search-form button[type=submit]").await;
                chrome
                    .wait_until(&format!("document.getElementById('user').dataset.loaded === '{victim_id}'"), 10)
                    .await;
                assert_eq!(
                    chrome.js("return document.getElementById('risk').dataset.level", vec![]).await,
                    "high"
                );
                assert!(chrome.text("#risk").await.contains("high risk"));
                let bars = chrome
                    .js(
                        "return [...document.querySelectorAll('#chart svg rect[data-series]')]
                           .map((r) => [r.dataset.series, Number(r.dataset.count), r.getBBox().height]);",
                        vec![],
                    )
                    .await;
                let bars = bars.as_array().unwrap();
                assert!(
                    bars.iter().any(|b| b[0] == "reused" && b[1] == 1 && b[2].as_f64().unwrap() > 0.0),
                    "a drawn bar for the reuse: {bars:?}"
                );
                assert!(bars.iter().any(|b| b[0] == "succeeded"), "{bars:?}");
                let ips = chrome
                    .js("return document.querySelectorAll('#ips tbody tr').length", vec![])
                    .await;
                assert!(ips.as_u64().unwrap() >= 1);
                // Readable at this width: nothing but the tables' own
                // scroll areas is wider than the window.
                let overflow = chrome
                    .js("return document.documentElement.scrollWidth - window.innerWidth", vec![])
                    .await;
                assert!(overflow.as_i64().unwrap() <= 0, "horizontal overflow of {overflow} px at {width} px");
                chrome
                    .js("document.getElementById('user').scrollIntoView()", vec![])
                    .await;
                chrome.screenshot(&format!("console-{width}")).await;
            })
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_refuses_a_non_admin_in_words() {
    if !chrome::available() {
        return;
    }
    let app = app(|_| {}).await;
    register(&app, "grace").await;
    let chrome = Chrome::start(360).await;
    chrome
        .run("console_refuses", || async {
            log_in(&chrome, &app, "grace").await;
            chrome.goto(&app.url("/console")).await;
            chrome
                .wait_until("document.body.dataset.state === 'refused'", 10)
                .await;
            assert!(chrome
                .text("#refused")
                .await
                .contains("does not have the admin role"));
            assert_eq!(chrome.text("#refused-user").await, "grace");
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_finds_a_user_by_name_and_disables_enables_and_resets_them_after_confirmation()
{
    if !chrome::available() {
        return;
    }
    let app = app(|_| {}).await;
    app.admin("root").await;
    register(&app, "henry").await;
    let chrome = Chrome::start(1440).await;
    chrome
        .run("console_account_actions", || async {
            chrome.goto(&app.url("/console")).await;
            chrome.wait_until("document.body.dataset.state === 'signed-out'", 10).await;
            chrome.fill("#login-username", "root").await;
            chrome.fill("#login-password", PASSWORD).await;
            chrome.click("#login-form button[type=submit]").await;
            chrome.wait_until("document.body.dataset.state === 'console'", 10).await;

            // Find by the start of the name, case-insensitively.
            chrome.fill("#search-q", "HEN").await;
            chrome.click("#search-form button[type=submit]").await;
            chrome
                .wait_until("document.querySelectorAll('#search-results button[data-user]').length === 1", 10)
                .await;
            chrome.click("#search-results button[data-user]").await;
            chrome
                .wait_until("document.getElementById('user-title').textContent === 'henry'", 10)
                .await;
            assert_eq!(chrome.text("#user-state").await, "Active");

            // Disable: nothing happens until confirmed.
            chrome.click("#toggle-disabled").await;
            chrome.wait_until("document.getElementById('confirm').open", 5).await;
            chrome.click("#confirm-ok").await;
            chrome
                .wait_until("document.getElementById('user-state').textContent === 'Disabled'", 10)
                .await;
            let r = app
                .post_json("/auth/login", &json!({"username": "henry", "password": PASSWORD}))
                .await;
            assert_eq!(r.status(), 403, "a disabled user's right password");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["code"], "account_disabled");

            // Reset the password, then enable again.
            chrome.click("#reset-password").await;
            chrome.wait_until("document.getElementById('confirm').open", 5).await;
            chrome.fill("#confirm-new-password", "a brand new password").await;
            chrome.click("#confirm-ok").await;
            chrome.wait_until("!document.getElementById('confirm').open", 5).await;
            chrome
                .wait_until("document.getElementById('notice').textContent.includes('Reset password: done')", 10)
                .await;
            chrome.click("#toggle-disabled").await;
            chrome.wait_until("document.getElementById('confirm').open", 5).await;
            chrome.click("#confirm-ok").await;
            chrome
                .wait_until("document.getElementById('user-state').textContent === 'Active'", 10)
                .await;
            let r = app
                .post_json(
                    "/auth/login",
                    &json!({"username": "henry", "password": "a brand new password"}),
                )
                .await;
            assert_eq!(r.status(), 200, "the reset password works once enabled");
            chrome.screenshot("console-account-actions").await;
        })
        .await;
}
