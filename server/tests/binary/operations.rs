//! The operator surface of the real `tokenwarden` binary: key rotation
//! across a restart, graceful shutdown on SIGTERM/SIGINT, logs that never
//! carry a secret, the settings file and `config check`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use base64::Engine as _;
use persistence::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{bin, free_port, start, tokenwarden, Server};

const PASSWORD: &str = "correct horse battery";

impl Server {
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to end by itself.
    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then a clean exit.
    fn stop(mut self) {
        self.signal("TERM");
        assert!(self.wait_exit(Duration::from_secs(20)).success());
    }
}

async fn serve(db: &str, keys: &Path) -> Server {
    crate::support::serve(db, keys, &[]).await
}

async fn post(server: &Server, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Logs `username` in with body delivery: `(access, refresh)`.
async fn login(server: &Server, username: &str) -> (String, String) {
    let r = post(
        server,
        "/auth/login",
        json!({"username": username, "password": PASSWORD, "token_delivery": "body"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn register_and_login(server: &Server, username: &str) -> (String, String) {
    let r = post(
        server,
        "/auth/register",
        json!({"username": username, "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    login(server, username).await
}

fn kid_of(jwt: &str) -> String {
    let header = jwt.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn me_status(server: &Server, access: &str) -> StatusCode {
    reqwest::Client::new()
        .get(server.url("/api/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status()
}

async fn published_kids(server: &Server) -> Vec<String> {
    let jwks: Value = reqwest::get(server.url("/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_keeps_earlier_tokens_valid_and_survives_a_restart() {
    let db = TestDatabase::sqlite();
    let keys = tempfile::tempdir().unwrap();
    let server = serve(db.url(), keys.path()).await;
    let (old_access, refresh) = register_and_login(&server, "rotor").await;
    let old_kid = kid_of(&old_access);

    let out = tokenwarden(db.url(), keys.path())
        .args(["keys", "rotate"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    let new_kid = printed.split_whitespace().nth(2).unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert!(printed.contains(&old_kid), "{printed}");
    assert_eq!(
        me_status(&server, &old_access).await,
        StatusCode::OK,
        "the running server still verifies the old key"
    );

    server.stop();
    let server = serve(db.url(), keys.path()).await;
    assert_eq!(
        me_status(&server, &old_access).await,
        StatusCode::OK,
        "after a restart too"
    );
    let kids = published_kids(&server).await;
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );
    let (new_access, _) = login(&server, "rotor").await;
    assert_eq!(kid_of(&new_access), new_kid);
    let r = post(&server, "/auth/refresh", json!({"refresh_token": refresh})).await;
    assert_eq!(r.status(), StatusCode::OK, "sessions survive both");
    let body: Value = r.json().await.unwrap();
    assert_eq!(kid_of(body["access_token"].as_str().unwrap()), new_kid);
    for kid in [&old_kid, &new_kid] {
        let pem = keys.path().join(format!("{kid}.pem"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&pem).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", pem.display());
        }
        assert!(pem.exists());
    }
}

/// `tokenwarden_argon2_queue_depth` and `…_in_flight` from `/metrics`.
fn keys_cmd(db: &str, keys: &Path, args: &[&str]) -> std::process::Output {
    tokenwarden(db, keys)
        .arg("keys")
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_openssl_key_signs_new_tokens_and_keys_list_shows_it() {
    let db = TestDatabase::sqlite();
    let keys = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let key_file = work.path().join("operator.pem");
    let gen = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&key_file)
        .status()
        .expect("openssl must be installed to run this test");
    assert!(gen.success());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(keys.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let server = serve(db.url(), keys.path()).await;
    let first_kid = published_kids(&server).await[0].clone();

    let bad = work.path().join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let before = std::fs::read(keys.path().join("keys.json")).unwrap();
    let out = keys_cmd(db.url(), keys.path(), &["import", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("bad.pem") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(keys.path().join("keys.json")).unwrap(),
        before
    );

    let out = keys_cmd(
        db.url(),
        keys.path(),
        &["import", key_file.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    let new_kid = printed
        .split_whitespace()
        .nth(3)
        .unwrap()
        .trim_end_matches(';')
        .to_owned();
    // The stored copy is still a file OpenSSL reads, and the same key.
    let stored = keys.path().join(format!("{new_kid}.pem"));
    let pubkey = |path: &Path| {
        let out = Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    assert_eq!(pubkey(&stored), pubkey(&key_file));

    let out = keys_cmd(db.url(), keys.path(), &["list"]);
    assert!(out.status.success());
    let listed = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 2, "{listed}");
    assert_eq!(&rows[0][..2], &[new_kid.as_str(), "current"], "{listed}");
    assert_eq!(rows[0][3], "-", "{listed}");
    assert_eq!(
        &rows[1][..2],
        &[first_kid.as_str(), "published"],
        "{listed}"
    );
    assert!(
        rows[1][3].ends_with('Z') && rows[1][4].ends_with('Z'),
        "{listed}"
    );

    // A running server picks the key up at its next reload; a restarted one at once.
    server.stop();
    let server = serve(db.url(), keys.path()).await;
    let (access, _) = register_and_login(&server, "imported").await;
    assert_eq!(kid_of(&access), new_kid);
    assert_eq!(me_status(&server, &access).await, StatusCode::OK);
}

async fn argon2_load(server: &Server) -> Option<f64> {
    let text = reqwest::get(server.url("/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    Some(value("tokenwarden_argon2_queue_depth") + value("tokenwarden_argon2_in_flight"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_and_sigint_let_requests_in_flight_finish_then_exit_zero() {
    const LOGINS: usize = 16;
    for signal in ["TERM", "INT"] {
        let db = TestDatabase::sqlite();
        let keys = tempfile::tempdir().unwrap();
        // Sixteen queued logins on a loaded machine may take longer than the
        // default dependency timeout; this test is about draining them.
        let mut server = crate::support::serve(
            db.url(),
            keys.path(),
            &[
                ("TOKENWARDEN_DEPENDENCY_TIMEOUT", "60s"),
                // Every attempt now counts against the username's limit.
                ("TOKENWARDEN_LOGIN_RATE_USER", "100000/min"),
                ("TOKENWARDEN_LOGIN_RATE_IP", "100000/min"),
            ],
        )
        .await;
        let r = post(
            &server,
            "/auth/register",
            json!({"username": "drain", "password": PASSWORD}),
        )
        .await;
        assert_eq!(r.status(), StatusCode::CREATED);

        // Logins cost argon2 time on a pool of one slot per core: sixteen
        // of them keep the server busy for a while. Each is written whole on
        // its own connection before the signal (a client that had not yet
        // connected would rightly find the listener closed).
        let body = json!({"username": "drain", "password": PASSWORD}).to_string();
        let request = format!(
            "POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut streams = Vec::new();
        for _ in 0..LOGINS {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
                .await
                .unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            streams.push(stream);
        }
        // Wait until the server works on them (the connections were
        // accepted long before: every request is already written), then
        // signal while most still wait for password work.
        let deadline = Instant::now() + Duration::from_secs(10);
        while argon2_load(&server).await.unwrap_or(0.0) < 2.0 {
            assert!(
                Instant::now() < deadline,
                "the logins never reached the password queue"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.signal(signal);
        for mut stream in streams {
            let mut answer = String::new();
            stream
                .read_to_string(&mut answer)
                .await
                .expect("an answer, not a dropped connection");
            assert!(
                answer.starts_with("HTTP/1.1 200"),
                "SIG{signal}: {}",
                answer.lines().next().unwrap_or("no answer")
            );
        }
        let exit = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(20)));
        assert!(exit.success(), "SIG{signal}: {exit:?}");
        assert!(
            reqwest::get(server.url("/healthz")).await.is_err(),
            "no longer accepting"
        );
    }
}

/// Requests still running when `TOKENWARDEN_SHUTDOWN_TIMEOUT` ends are
/// abandoned: the log says how many, and the exit status is not zero, so
/// that a supervisor knows answers were lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_abandoned_at_the_shutdown_timeout_are_counted_and_the_exit_fails() {
    use diesel::connection::SimpleConnection as _;
    use diesel::Connection as _;

    let db = TestDatabase::sqlite();
    let keys = tempfile::tempdir().unwrap();
    let mut cmd = tokenwarden(db.url(), keys.path());
    cmd.env("TOKENWARDEN_SHUTDOWN_TIMEOUT", "1s")
        .env("TOKENWARDEN_DEPENDENCY_TIMEOUT", "20s")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut server = start(cmd, free_port()).await;
    let r = post(
        &server,
        "/auth/register",
        json!({"username": "stuck", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let (_, refresh) = login(&server, "stuck").await;

    // Another process's write lock keeps two refreshes waiting (for up to
    // the 20 s dependency timeout), far beyond the shutdown timeout.
    let path = db.url().trim_start_matches("sqlite://").to_owned();
    let mut lock = diesel::SqliteConnection::establish(&path).unwrap();
    lock.batch_execute("BEGIN IMMEDIATE").unwrap();
    let url = server.url("/auth/refresh");
    let stuck: Vec<_> = (0..2)
        .map(|_| {
            let (url, refresh) = (url.clone(), refresh.clone());
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .json(&json!({ "refresh_token": refresh }))
                    .send()
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.signal("TERM");
    let started = Instant::now();
    let exit = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(10)));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!exit.success(), "{exit:?}");
    let mut output = String::new();
    for pipe in [
        server
            .child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read>),
        server
            .child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut pipe = pipe;
        pipe.read_to_string(&mut output).unwrap();
    }
    assert!(output.contains("abandoned"), "{output}");
    assert!(
        output.contains("2 request(s) still running at the end of TOKENWARDEN_SHUTDOWN_TIMEOUT"),
        "{output}"
    );
    for request in stuck {
        assert!(request.await.unwrap().is_err(), "no answer was sent");
    }
    drop(lock);
}

/// A full session's life with `RUST_LOG=debug` and JSON logs: no password,
/// token or cookie value appears anywhere in the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs() {
    let db = TestDatabase::sqlite();
    let keys = tempfile::tempdir().unwrap();
    let log_path = keys.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = tokenwarden(db.url(), &keys.path().join("keys"));
    cmd.env("RUST_LOG", "debug")
        .env("TOKENWARDEN_LOG_FORMAT", "json")
        .env("TOKENWARDEN_LOGIN_RATE_USER", "2/min")
        .stdout(Stdio::null())
        .stderr(log);
    let server = start(cmd, free_port()).await;
    let client = reqwest::Client::new();
    let wrong = "Wrong-Passw0rd-Guess";
    let mut secrets: Vec<String> = vec![PASSWORD.to_owned(), wrong.to_owned()];

    let r = post(
        &server,
        "/auth/register",
        json!({"username": "quiet", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let user_id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Cookie delivery: login, refresh with the cookie.
    let r = post(
        &server,
        "/auth/login",
        json!({"username": "quiet", "password": PASSWORD}),
    )
    .await;
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let first = cookie
        .strip_prefix("refresh_token=")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body: Value = r.json().await.unwrap();
    secrets.push(body["access_token"].as_str().unwrap().to_owned());
    secrets.push(first.clone());
    let r = client
        .post(server.url("/auth/refresh"))
        .header("Cookie", format!("refresh_token={first}"))
        .header("X-Request-Id", "log-test-refresh")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let second = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let second = second
        .strip_prefix("refresh_token=")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body: Value = r.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    secrets.push(access.clone());
    secrets.push(second.clone());
    assert_eq!(me_status(&server, &access).await, StatusCode::OK);
    // Body delivery, then logout with it.
    let (body_access, body_refresh) = login(&server, "quiet").await;
    secrets.push(body_access.clone());
    secrets.push(body_refresh.clone());
    let r = post(
        &server,
        "/auth/refresh",
        json!({"refresh_token": body_refresh}),
    )
    .await;
    let rotated: Value = r.json().await.unwrap();
    let rotated_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    secrets.push(rotated_refresh.clone());
    secrets.push(rotated["access_token"].as_str().unwrap().to_owned());
    let r = post(
        &server,
        "/auth/logout",
        json!({"refresh_token": rotated_refresh}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Reuse of the first cookie token: theft response.
    let r = client
        .post(server.url("/auth/refresh"))
        .header("Cookie", format!("refresh_token={first}"))
        .header("User-Agent", "thief/1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Failed logins, up to the rate limit, and garbage credentials.
    for _ in 0..3 {
        post(
            &server,
            "/auth/login",
            json!({"username": "quiet", "password": wrong}),
        )
        .await;
    }
    client
        .get(server.url("/api/me"))
        .header("Authorization", "Bearer not.a.jwt-but-secret-looking")
        .send()
        .await
        .unwrap();
    secrets.push("not.a.jwt-but-secret-looking".to_owned());
    server.stop();

    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.lines().count() > 10, "{logs}");
    for line in logs.lines() {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not a JSON line: {line}"
        );
    }
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret is in the logs: {secret}"
        );
        // JWT signatures and refresh-token bodies on their own, too.
        let tail = secret.rsplit(['.', '_']).next().unwrap();
        if tail.len() >= 16 {
            assert!(
                !logs.contains(tail),
                "part of a secret is in the logs: {tail}"
            );
        }
    }
    assert!(
        logs.contains("log-test-refresh"),
        "the caller's request id is logged"
    );
    assert!(logs.contains("\"request_id\""));
    assert!(
        logs.contains(&format!("\"user_id\":\"{user_id}\"")),
        "user ids are recorded once known"
    );
    assert!(logs.contains("\"session_id\""));
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("tokenwarden.toml");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    path
}

#[test]
fn config_check_prints_the_effective_settings_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        "issuer = \"from-file\"\naudience = \"from-file\"\naccess_token_ttl = \"5m\"\n\
         redis_url = \"redis://:file-redis-secret@127.0.0.1:6379\"\n",
    );
    let out = tokenwarden("postgres://tw:db-s3cret@127.0.0.1:1/tw", dir.path())
        .args(["config", "check", "--audience", "from-flag"])
        .env("TOKENWARDEN_CONFIG", &file)
        .env("TOKENWARDEN_ISSUER", "from-env")
        .env("TOKENWARDEN_AUDIENCE", "from-env")
        .env(
            "TOKENWARDEN_INTROSPECTION_TOKEN",
            "introspection-secret-0123456789",
        )
        .output()
        .unwrap();
    // The settings are valid and printed; the database (port 1) is not
    // there, which the check reports after them.
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("database (DATABASE_URL)"), "{stderr}");
    assert!(!stderr.contains("db-s3cret"), "{stderr}");
    let printed = String::from_utf8_lossy(&out.stdout);
    for line in [
        "audience = \"from-flag\"  # flag",
        "issuer = \"from-env\"  # environment",
        "access_token_ttl = \"5m\"  # file",
        "refresh_idle_ttl = \"7d\"  # default",
        "introspection_token = \"<redacted>\"",
        "database_url = \"postgres://tw:<redacted>@127.0.0.1:1/tw\"",
        "redis_url = \"redis://:<redacted>@127.0.0.1:6379\"",
    ] {
        assert!(printed.contains(line), "missing {line:?} in\n{printed}");
    }
    for secret in ["db-s3cret", "introspection-secret", "file-redis-secret"] {
        assert!(!printed.contains(secret), "{printed}");
    }

    let bad = write_config(dir.path(), "acess_token_ttl = \"5m\"\n");
    let out = tokenwarden("sqlite://unused.db", dir.path())
        .args(["config", "check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("TOKENWARDEN_CONFIG") && stderr.contains("acess_token_ttl"),
        "{stderr}"
    );

    let out = tokenwarden("sqlite://unused.db", dir.path())
        .args(["config", "check"])
        .env("TOKENWARDEN_SHUTDOWN_TIMEOUT", "soon")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOKENWARDEN_SHUTDOWN_TIMEOUT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_its_settings_from_the_file_under_env_and_flags() {
    let db = TestDatabase::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = write_config(
        dir.path(),
        &format!(
            "bind = \"127.0.0.1:1\"\naccess_token_ttl = \"2m\"\ncookie_name = \"from_file\"\n\
             keys_dir = \"{}\"\n",
            dir.path().join("file-keys").display()
        ),
    );
    let mut cmd = Command::new(bin());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.url())
        .env("RUST_LOG", "warn")
        .arg("--config")
        .arg(&file)
        .args(["serve", "--cookie-name", "from_flag"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // TOKENWARDEN_BIND (environment, set by `start`) beats the file's bind.
    let server = start(cmd, port).await;
    let r = post(
        &server,
        "/auth/register",
        json!({"username": "filed", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = post(
        &server,
        "/auth/login",
        json!({"username": "filed", "password": PASSWORD}),
    )
    .await;
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("from_flag="));
    assert_eq!(r.json::<Value>().await.unwrap()["expires_in"], 120);
    assert!(dir.path().join("file-keys").is_dir());
    server.stop();
}

#[test]
fn the_shipped_example_settings_file_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/tokenwarden.toml");
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin());
    let out = cmd
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // Its database and keys live under /var/lib/tokenwarden.
        .args([
            "config", "check", "--skip", "database", "--skip", "keys", "--config",
        ])
        .arg(&example)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("metrics_bind = \"127.0.0.1:9464\"  # file")
    );
}
