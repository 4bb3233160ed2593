//! The `llm-proxy` binary as a user runs it: keys on the command line, `config check`, and `serve`
//! from an empty directory, with debug logging on and canary secrets that must never come out.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::disallowed_methods,
    reason = "tests are clients, not the gateway: their own HTTP clients and tasks are fine, and they assert by unwrapping and panicking"
)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use llm_proxy_testkit::MockUpstream;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_llm-proxy");
const PROVIDER_CANARY: &str = "sk-provider-canary-7f3a9c";
const MASTER_CANARY: &str = "master-canary-0123456789abcdef";

/// The binary with a clean environment: no provider keys or LLM_PROXY_* leaking in from the host.
fn llm_proxy(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn terminate(child: &Child) {
    signal(child, "TERM");
}

fn signal(child: &Child, name: &str) {
    Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
}

/// Waits for `child` to answer `/health` on `port`; fails at once, saying so, if it exits first
/// (a port taken in the meantime by another test's server would otherwise answer for it).
async fn wait_healthy(child: &mut Child, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the gateway exited before it was healthy on port {port}: {status}");
        }
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/health")).await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "the gateway did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the gateway did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn keys_are_created_once_listed_without_secrets_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(llm_proxy(dir.path()).args([
        "keys",
        "create",
        "--name",
        "app1",
        "--models",
        "default,openai/gpt-4o",
        "--expires",
        "30d",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let secret = text.lines().last().unwrap().to_string();
    assert!(secret.starts_with("sk-llmp-") && secret.len() > 40, "the key is the last line: {text}");
    assert!(dir.path().join("data/llm-proxy.db").exists(), "the default SQLite database was created");

    let out = run(llm_proxy(dir.path()).args(["keys", "create", "--name", "app2", "--json"]));
    let created: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(created["key"].as_str().unwrap().starts_with("sk-llmp-"));
    let id2 = created["id"].as_str().unwrap().to_string();

    let out = run(llm_proxy(dir.path()).args(["keys", "list"]));
    let listing = stdout(&out);
    assert!(
        listing.contains("app1") && listing.contains("app2") && listing.contains("default,openai/gpt-4o"),
        "{listing}"
    );
    assert!(!listing.contains(&secret[12..]), "a listing must not show the secret");
    assert!(!listing.contains(&created["key"].as_str().unwrap()[12..]));

    let out = run(llm_proxy(dir.path()).args(["keys", "revoke", &id2]));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(llm_proxy(dir.path()).args(["keys", "list", "--json"]));
    let keys: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let revoked = keys.as_array().unwrap().iter().find(|k| k["id"] == id2.as_str()).unwrap();
    assert!(revoked["revoked_at"].is_number());
    assert!(!stdout(&out).contains(&secret[12..]), "JSON listings carry no secret either");

    let out = run(llm_proxy(dir.path()).args(["keys", "revoke", "no-such-id"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no key with id no-such-id"), "{}", stderr(&out));
    let out = run(llm_proxy(dir.path()).args(["keys", "create", "--name", "x", "--expires", "soon"]));
    assert!(!out.status.success() && stderr(&out).contains("--expires"), "{}", stderr(&out));
}

#[test]
fn config_check_names_every_problem_and_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "listen_addr: nowhere\nproviders:\n  local:\n    base_url: http://127.0.0.1:9/v1\n  openai:\n    api_key: x\n    modles: []\n",
    )
    .unwrap();
    let out = run(llm_proxy(dir.path()).args(["config", "check", "--config", "bad.yaml"]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for path in ["listen_addr:", "providers.local.protocol:", "providers.openai.modles:"] {
        assert!(err.contains(path), "missing {path} in:\n{err}");
    }

    std::fs::write(
        dir.path().join("llm-proxy.yaml"),
        "master_key: \"${MK}\"\ndatabase_url: postgres://gw:db-password-canary@127.0.0.1/gw\nproviders:\n  openai: { api_key: \"${OPENAI_API_KEY}\" }\n  local:\n    protocol: openai\n    base_url: \"${LOCAL_URL:-http://127.0.0.1:8001/v1}\"\n",
    )
    .unwrap();
    let out = run(llm_proxy(dir.path())
        .args(["config", "check"])
        .env("MK", MASTER_CANARY)
        .env("OPENAI_API_KEY", PROVIDER_CANARY)
        .env("LLM_PROXY_PORT", "9123"));
    assert!(out.status.success(), "{}", stderr(&out));
    let effective = stdout(&out);
    assert!(effective.contains("listen_addr: 0.0.0.0:9123"), "env beats the file and defaults:\n{effective}");
    assert!(effective.contains("base_url: http://127.0.0.1:8001/v1"), "${{VAR:-default}}:\n{effective}");
    assert!(effective.contains("postgres://gw:***@127.0.0.1/gw"), "{effective}");
    for secret in [MASTER_CANARY, PROVIDER_CANARY, "db-password-canary"] {
        assert!(!effective.contains(secret) && !stderr(&out).contains(secret), "{secret} leaked:\n{effective}");
    }
}

#[test]
fn config_check_shows_provider_urls_without_their_credentials() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("llm-proxy.yaml"),
        "providers:\n  local:\n    protocol: openai\n    base_url: http://user:pass-canary@127.0.0.1:8001/v1?token=T-canary\n  bare:\n    protocol: openai\n    base_url: https://userinfo-canary@127.0.0.1/v1\n",
    )
    .unwrap();
    let out = run(llm_proxy(dir.path()).args(["config", "check"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let effective = stdout(&out);
    assert!(effective.contains("base_url: http://user:***@127.0.0.1:8001/v1?token=***"), "{effective}");
    assert!(!effective.contains("canary") && !stderr(&out).contains("canary"), "a credential leaked:\n{effective}");
}

/// Key names and models are printed to terminals: `keys create` refuses control characters, and
/// `keys list` escapes any that reached the database another way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_never_put_control_characters_on_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        ["--name", "evil\u{1b}]0;pwned\u{7}", "--user", "u"],
        ["--name", "two\nlines", "--user", "u"],
        ["--name", "ok", "--models", "m\u{1b}[2J"],
        ["--name", "ok", "--user", "u\u{7f}"],
    ] {
        let out = run(llm_proxy(dir.path()).args(["keys", "create"]).args(args));
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr(&out).contains("control characters"), "{}", stderr(&out));
        assert!(!stderr(&out).contains('\u{1b}'), "the refusal echoes the escape raw: {:?}", stderr(&out));
    }

    let out = run(llm_proxy(dir.path()).args(["keys", "create", "--name", "plain"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let db = format!("sqlite://{}", dir.path().join("data/llm-proxy.db").display());
    let store = llm_proxy_store::connect(&db, 1, 1).await.unwrap();
    let g = llm_proxy_core::virtual_key::generate_key();
    store
        .insert_key(&llm_proxy_core::virtual_key::NewKey {
            limits: Default::default(),
            id: "k-evil".into(),
            name: "evil\u{1b}]0;pwned\u{7}\nforged line".into(),
            hash: g.hash,
            display: g.display,
            models: vec!["m\u{9b}2J".into()],
            user: None,
            expires_at: None,
        })
        .await
        .unwrap();
    let out = run(llm_proxy(dir.path()).args(["keys", "list"]));
    let listing = stdout(&out);
    assert!(!listing.chars().any(|c| c.is_control() && c != '\n'), "{listing:?}");
    assert!(listing.contains("evil\\u{1b}]0;pwned\\u{7}\\nforged line"), "{listing}");
    assert!(listing.contains("m\\u{9b}2J"), "{listing}");
    assert_eq!(listing.lines().count(), 3, "one line per key and the header: {listing}");
}

/// `serve` from an empty directory with nothing but environment variables, debug logging on, and
/// canary secrets; then SIGTERM while a stream is in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_keeps_secrets_out_of_logs_and_drains_on_sigterm() {
    let mock = MockUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let key_out = run(llm_proxy(dir.path()).args(["keys", "create", "--name", "canary", "--json"]));
    let virtual_key = serde_json::from_str::<Value>(&stdout(&key_out)).unwrap()["key"].as_str().unwrap().to_string();

    std::fs::write(
        dir.path().join("gw.yaml"),
        format!(
            "providers:\n  mock:\n    protocol: openai\n    base_url: {}\n    api_key: {PROVIDER_CANARY}\n    models: [mock-a, mock-fail-401, mock-fail-500, mock-slow-300]\n",
            mock.base_url()
        ),
    )
    .unwrap();
    // Everything but the mock's address comes from the environment.
    let log_path = dir.path().join("gateway.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut child = llm_proxy(dir.path())
        .arg("serve")
        .env("LLM_PROXY_PORT", port.to_string())
        .env("LLM_PROXY_HOST", "127.0.0.1")
        .env("LLM_PROXY_LOG_LEVEL", "debug")
        .env("LLM_PROXY_MASTER_KEY", MASTER_CANARY)
        .env("LLM_PROXY_CONFIG", dir.path().join("gw.yaml"))
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(&mut child, port).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let chat = |model: &str, stream: bool| {
        client
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(&virtual_key)
            .json(&json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello"}]}))
            .send()
    };
    let mut bodies = String::new();
    for (model, status) in [("mock-a", 200), ("mock-fail-401", 502), ("mock-fail-500", 502), ("unknown", 404)] {
        let resp = chat(model, false).await.unwrap();
        assert_eq!(resp.status(), status, "{model}");
        bodies.push_str(&resp.text().await.unwrap());
    }
    assert!(
        mock.state.requests().iter().any(|r| r.authorization.as_deref() == Some(&format!("Bearer {PROVIDER_CANARY}")))
    );
    let bad_key = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("sk-llmp-wrong-canary")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), 401);
    bodies.push_str(&bad_key.text().await.unwrap());

    // SIGTERM with a stream in flight: the stream completes, then the process exits 0.
    let resp = chat("mock-slow-300", true).await.unwrap();
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    terminate(&child);
    let mut rest = String::from_utf8_lossy(&first).into_owned();
    while let Some(chunk) = stream.next().await {
        rest.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(rest.ends_with("data: [DONE]\n\n"), "the in-flight stream was cut: {rest}");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the port is closed after exit");

    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.contains("DEBUG"), "debug logging was on");
    assert!(logs.contains("request log flushed"), "{logs}");
    for secret in [PROVIDER_CANARY, MASTER_CANARY, virtual_key.as_str(), "sk-llmp-wrong-canary"] {
        if let Some(i) = logs.find(secret) {
            let context = &logs[i.saturating_sub(300)..(i + 100).min(logs.len())];
            panic!("{secret} appeared in the gateway's output: ...{context}...");
        }
        assert!(!bodies.contains(secret), "{secret} appeared in a response: {bodies}");
    }

    // Every request above is in the log, flushed before exit (but the one with the wrong key:
    // strangers leave no row), and no row carries a secret.
    let store = llm_proxy_store::connect(&format!("sqlite://{}", dir.path().join("data/llm-proxy.db").display()), 1, 1)
        .await
        .unwrap();
    let page =
        store.list_logs(&llm_proxy_core::request_log::LogQuery { limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(page.entries.len(), 5, "{:?}", page.entries);
    let rows = format!("{:?}", page.entries);
    assert!(!rows.contains(PROVIDER_CANARY) && !rows.contains(&virtual_key));
    assert!(page.entries.iter().any(|e| e.stream && e.status == 200 && e.completion_tokens == Some(3)));
}

/// The README's first command: no config file, a provider key in the environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_no_config_creates_its_database_and_serves_env_providers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = llm_proxy(dir.path())
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .env("OPENAI_API_KEY", PROVIDER_CANARY)
        .env("GROQ_API_KEY", PROVIDER_CANARY)
        .env("LLM_PROXY_MASTER_KEY", MASTER_CANARY)
        .env("LLM_PROXY_PORT", "1") // the flag wins
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(&mut child, port).await;
    assert!(dir.path().join("data/llm-proxy.db").exists());
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let models: Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/v1/models"))
        .bearer_auth(MASTER_CANARY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"openai/gpt-4o") && ids.contains(&"groq/llama-3.3-70b-versatile"), "{ids:?}");
    signal(&child, "INT"); // Ctrl-C stops it as cleanly as SIGTERM
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}

/// Under a small open-file limit, a flood of connections that never send a request neither
/// exhausts the descriptors (the connection cap is fitted to the limit) nor keeps the gateway
/// from answering: the stalled ones are closed after the header timeout and the queue moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_under_a_small_file_limit_is_queued_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("llm-proxy.yaml"),
        format!("listen_addr: 127.0.0.1:{port}\nconnections: {{header_read_timeout_secs: 1}}\n"),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    // `ulimit -n` in sh sets the soft and the hard limit: the gateway cannot raise it.
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -n 256 && exec \"$0\" serve", BIN])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::null())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(&mut child, port).await;
    let mut stalled = Vec::new();
    for _ in 0..400 {
        stalled.push(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    let started = Instant::now();
    let health = tokio::time::timeout(Duration::from_secs(30), reqwest::get(format!("http://127.0.0.1:{port}/health")))
        .await
        .expect("/health got no answer behind 400 stalled connections")
        .unwrap();
    assert_eq!(health.status(), 200);
    eprintln!("/health answered after {:?} behind 400 stalled connections", started.elapsed());
    drop(stalled);
    terminate(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
    let err = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(err.contains("lowered to fit the open-file limit"), "{err}");
    assert!(err.contains("connection limit reached"), "{err}");
    assert!(!err.contains("Too many open files"), "{err}");
}

/// `users create | passwd | list` on the command line: a password from stdin or generated and
/// printed once, never listed; a short password or a taken name refused.
#[test]
fn users_are_created_listed_and_given_new_passwords() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut child = llm_proxy(dir.path())
        .args(["users", "create", "ada", "--role", "viewer", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"ada-password-0123\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("created user `ada` (viewer)") && !stdout(&out).contains("ada-password"));

    let out = run(llm_proxy(dir.path()).args(["users", "create", "bob"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let generated = stdout(&out).lines().last().unwrap().to_string();
    assert_eq!(generated.len(), 20, "the generated password is the last line: {}", stdout(&out));

    let out = run(llm_proxy(dir.path()).args(["users", "list"]));
    let listing = stdout(&out);
    assert!(
        listing.contains("ada") && listing.contains("viewer") && listing.contains("bob") && listing.contains("member")
    );
    assert!(!listing.contains(&generated) && !listing.contains("argon2"), "{listing}");
    let out = run(llm_proxy(dir.path()).args(["users", "list", "--json"]));
    let first: Value = serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap();
    assert_eq!((first["username"].as_str(), first["role"].as_str()), (Some("ada"), Some("viewer")));

    let out = run(llm_proxy(dir.path()).args(["users", "passwd", "bob"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(stdout(&out).lines().last().unwrap(), generated, "a new password");
    let out = run(llm_proxy(dir.path()).args(["users", "create", "bob"]));
    assert!(!out.status.success() && stderr(&out).contains("a user named `bob` exists"), "{}", stderr(&out));
    let out = run(llm_proxy(dir.path()).args(["users", "passwd", "nobody"]));
    assert!(!out.status.success() && stderr(&out).contains("no user is named `nobody`"), "{}", stderr(&out));
    let out = run(llm_proxy(dir.path()).args(["users", "create", "../x"]));
    assert!(!out.status.success() && stderr(&out).contains("username"), "{}", stderr(&out));
}

/// The first start makes the first admin: with `LLM_PROXY_DEFAULT_ADMIN_PASSWORD` that password
/// logs in; without it a generated one is printed once on stderr (never in a later start), and
/// the session key is generated and kept 0600 under `data/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_makes_the_first_admin_with_no_default_password() {
    async fn start(dir: &Path, env: &[(&str, &str)]) -> (Child, u16, std::path::PathBuf) {
        let port = free_port();
        let log = dir.join(format!("stderr-{port}.log"));
        let mut cmd = llm_proxy(dir);
        cmd.args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        wait_healthy(&mut child, port).await;
        (child, port, log)
    }
    async fn login(port: u16, user: &str, password: &str) -> u16 {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/api/auth/login"))
            .json(&json!({"username": user, "password": password}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    let dir = tempfile::tempdir().unwrap();
    let (mut child, port, log) = start(dir.path(), &[]).await;
    let printed = std::fs::read_to_string(&log).unwrap();
    let password = printed
        .lines()
        .skip_while(|l| !l.contains("created the first admin user `admin` with the password"))
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.contains("created the first admin"))
        .unwrap_or_else(|| panic!("no password printed: {printed}"))
        .to_string();
    assert_eq!(login(port, "admin", &password).await, 200);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("data/secret_key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the generated session key is the owner's alone");
    }
    terminate(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
    let (mut child, port, log) = start(dir.path(), &[]).await;
    assert!(!std::fs::read_to_string(&log).unwrap().contains(&password), "printed once only");
    assert_eq!(login(port, "admin", &password).await, 200, "the same admin, and the same session key");
    terminate(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());

    let dir = tempfile::tempdir().unwrap();
    let env =
        [("LLM_PROXY_DEFAULT_ADMIN_USERNAME", "root"), ("LLM_PROXY_DEFAULT_ADMIN_PASSWORD", "configured-password-1")];
    let (mut child, port, log) = start(dir.path(), &env).await;
    assert!(
        !std::fs::read_to_string(&log).unwrap().contains("configured-password-1"),
        "a configured one is never printed"
    );
    assert_eq!(login(port, "root", "configured-password-1").await, 200);
    assert_eq!(login(port, "admin", "configured-password-1").await, 401);
    terminate(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}
