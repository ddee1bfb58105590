//! The `parley` binary as an operator uses it: help texts, bundle errors, serve on
//! SQLite with a generated key, a refused start on PostgreSQL without a key, and no
//! secret in any log line, command output or the database file.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Db, TestDb, bundle};

const BIN: &str = env!("CARGO_BIN_EXE_parley");

fn parley(dir: &Path, db_url: &str, key: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db_url)
        .env("PARLEY_LOG", "debug");
    if let Some(k) = key {
        cmd.env("PARLEY_MASTER_KEY", k);
    }
    cmd.output().expect("run parley")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn every_command_explains_itself_with_an_example() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/p.db", dir.path().display());
    let commands: &[&[&str]] = &[
        &["serve"],
        &["migrate", "up"],
        &["migrate", "down"],
        &["migrate", "status"],
        &["tenant", "apply"],
        &["tenant", "list"],
        &["tenant", "show"],
        &["tenant", "export"],
        &["tenant", "enable"],
        &["tenant", "disable"],
        &["tenant", "delete"],
        &["keys", "generate"],
        &["keys", "rotate"],
        &["keys", "status"],
        &["faq", "try"],
        &["prompt", "create"],
        &["prompt", "publish"],
        &["prompt", "list"],
        &["conversation", "list"],
        &["conversation", "release"],
        &["api-key", "create"],
        &["api-key", "list"],
        &["api-key", "revoke"],
    ];
    for c in commands {
        let mut args = c.to_vec();
        args.push("--help");
        let out = parley(dir.path(), &url, None, &args);
        assert!(out.status.success(), "{c:?}");
        let help = text(&out);
        assert!(
            help.contains("Example"),
            "{c:?} --help has no example:\n{help}"
        );
    }
    let top = text(&parley(dir.path(), &url, None, &["--help"]));
    for word in [
        "serve",
        "migrate",
        "tenant",
        "keys",
        "DATABASE_URL",
        "PARLEY_MASTER_KEY",
    ] {
        assert!(top.contains(word), "top-level help lacks {word}");
    }
}

#[test]
fn an_invalid_bundle_is_refused_naming_every_bad_field() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/p.db", dir.path().display());
    let mut b = bundle("acme", "100000000000001", "EAAG-acme-very-secret-1");
    b["timezone"] = serde_json::json!("Mars/Base");
    b["faqs"][2]["answer"] = serde_json::json!(" ");
    b["whatsapp"]["app_secret"] = serde_json::json!("has a space-supersecret");
    std::fs::write(dir.path().join("bad.json"), b.to_string()).unwrap();
    let out = parley(dir.path(), &url, None, &["tenant", "apply", "bad.json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.json is not a valid tenant bundle; nothing was written"),
        "{err}"
    );
    assert!(
        err.contains("timezone: unknown IANA time zone \"Mars/Base\""),
        "{err}"
    );
    assert!(err.contains("faqs[2].answer: must not be empty"), "{err}");
    assert!(
        err.contains("whatsapp.app_secret: must not contain spaces"),
        "{err}"
    );
    assert!(
        !err.contains("supersecret") && !err.contains("EAAG-acme-very-secret-1"),
        "{err}"
    );
    let list = parley(dir.path(), &url, None, &["tenant", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("no tenants yet"));

    let out = parley(dir.path(), &url, None, &["tenant", "show", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no tenant with slug \"ghost\""));
}

/// Runs a full operator session with debug logs and returns everything printed.
fn operator_session(dir: &Path, url: &str, key: Option<&str>) -> String {
    let mut all = String::new();
    std::fs::write(
        dir.join("acme.json"),
        bundle("acme", "100000000000001", "EAAG-acme-very-secret-1").to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("bolt.json"),
        bundle("bolt", "100000000000002", "EAAG-bolt-very-secret-2").to_string(),
    )
    .unwrap();
    for args in [
        &["tenant", "apply", "acme.json"][..],
        &["tenant", "apply", "bolt.json"],
        &["tenant", "apply", "acme.json"],
        &["tenant", "list"],
        &["tenant", "show", "acme"],
        &["tenant", "export", "bolt"],
        &["tenant", "disable", "bolt"],
        &["keys", "status"],
        &["keys", "rotate"],
        &["migrate", "status"],
    ] {
        let out = parley(dir, url, key, args);
        assert!(out.status.success(), "{args:?} failed: {}", text(&out));
        all.push_str(&text(&out));
    }
    all
}

const SECRETS: [&str; 8] = [
    "EAAG-acme-very-secret-1",
    "EAAG-bolt-very-secret-2",
    "appsecret-acme-0123456789",
    "appsecret-bolt-0123456789",
    "verify-acme-0123456789",
    "verify-bolt-0123456789",
    "sk-or-acme-abcdefghijklmnop",
    "sk-or-bolt-abcdefghijklmnop",
];

#[test]
fn no_secret_appears_in_logs_command_output_or_the_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/data/parley.db", dir.path().display());
    let mut all = operator_session(dir.path(), &url, None);
    all.push_str(&serve_and_probe(dir.path(), &url, None));
    assert!(
        all.contains("DEBUG") || all.contains("debug"),
        "debug logging was on"
    );
    for s in SECRETS {
        assert!(!all.contains(s), "{s} leaked into the output:\n{all}");
    }
    let mut bytes = Vec::new();
    for f in std::fs::read_dir(dir.path().join("data")).unwrap() {
        let p = f.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("parley.db")
        {
            bytes.extend(std::fs::read(&p).unwrap());
        }
    }
    assert!(bytes.len() > 10_000);
    for s in SECRETS {
        assert!(
            !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
            "{s} is readable in the database file"
        );
    }
}

#[tokio::test]
async fn no_secret_appears_in_logs_or_output_on_postgres() {
    let Some(db) = TestDb::new(Db::Postgres).await else {
        return;
    };
    let key = parley::crypto::generate_key_b64();
    let key = secrecy::ExposeSecret::expose_secret(&key).to_string();
    let dir = db.dir.path().to_path_buf();
    let url = db.url.clone();
    let all = tokio::task::spawn_blocking(move || operator_session(&dir, &url, Some(&key)))
        .await
        .unwrap();
    for s in SECRETS {
        assert!(!all.contains(s), "{s} leaked into the output:\n{all}");
    }
    let stored = db.count("SELECT COUNT(*) FROM tenant_secrets").await;
    assert_eq!(stored, 8);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `parley serve`, checks /healthz and /readyz, stops it with SIGTERM and
/// returns what it printed.
fn serve_and_probe(dir: &Path, url: &str, key: Option<&str>) -> String {
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("DATABASE_URL", url)
        .env("PARLEY_BIND", format!("127.0.0.1:{port}"))
        .env("PARLEY_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(k) = key {
        cmd.env("PARLEY_MASTER_KEY", k);
    }
    let child = cmd.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking_client();
    let mut ready = false;
    for _ in 0..200 {
        if let Some(200) = client(&format!("{base}/readyz")) {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ready, "parley serve did not become ready");
    assert_eq!(client(&format!("{base}/healthz")), Some(200));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "serve did not exit cleanly on SIGTERM: {}",
        text(&out)
    );
    text(&out)
}

/// A tiny blocking GET (std only), returning the status code.
mod reqwest {
    use std::io::{Read, Write};

    pub fn blocking_client() -> impl Fn(&str) -> Option<u16> {
        |url: &str| {
            let rest = url.strip_prefix("http://")?;
            let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}")))?;
            let mut s = std::net::TcpStream::connect(host).ok()?;
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            )
            .ok()?;
            let mut buf = String::new();
            s.read_to_string(&mut buf).ok()?;
            buf.split_whitespace().nth(1)?.parse().ok()
        }
    }
}

#[test]
fn serve_on_sqlite_generates_a_private_key_file_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/data/parley.db", dir.path().display());
    let out = serve_and_probe(dir.path(), &url, None);
    assert!(out.contains("GENERATED A NEW MASTER KEY"), "{out}");
    assert!(out.contains("shutdown signal received"), "{out}");
    let key_file = dir.path().join("data/master.key");
    let meta = std::fs::metadata(&key_file).expect("key file created");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(!out.contains(key.trim()), "the key itself is never printed");
    // A second start reuses the key instead of making another.
    serve_and_probe(dir.path(), &url, None);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
}

#[tokio::test]
async fn on_postgres_a_missing_master_key_stops_start_up_with_how_to_make_one() {
    let Some(db) = TestDb::new(Db::Postgres).await else {
        return;
    };
    let out = parley(db.dir.path(), &db.url, None, &["serve"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PARLEY_MASTER_KEY is not set"), "{err}");
    assert!(err.contains("parley keys generate"), "{err}");
}

#[test]
fn bad_tuning_values_get_a_fix_it_message() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/p.db", dir.path().display());
    let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    for (name, value, says) in [
        (
            "PARLEY_BATCH_LINGER_MS",
            "5000",
            "PARLEY_BATCH_LINGER_MS must be at most 1000",
        ),
        (
            "PARLEY_BATCH_LINGER_MS",
            "soon",
            "PARLEY_BATCH_LINGER_MS must be a whole number",
        ),
        (
            "PARLEY_WORKER_TASKS",
            "0",
            "PARLEY_WORKER_TASKS must be between 1 and 64, got 0",
        ),
        (
            "PARLEY_SEND_TASKS",
            "65",
            "PARLEY_SEND_TASKS must be between 1 and 64, got 65",
        ),
        (
            "PARLEY_SQLITE_WRITER_NICE",
            "-30",
            "PARLEY_SQLITE_WRITER_NICE must be a nice value from -20 to 19",
        ),
    ] {
        let out = Command::new(BIN)
            .args(["tenant", "list"])
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &url)
            .env("PARLEY_MASTER_KEY", key)
            .env(name, value)
            .output()
            .expect("run parley");
        assert_eq!(out.status.code(), Some(1), "{name}={value}: {}", text(&out));
        assert!(text(&out).contains(says), "{name}={value}: {}", text(&out));
        assert!(
            !dir.path().join("p.db").exists(),
            "{name}={value} touched the database"
        );
    }
}

#[test]
fn a_bad_master_key_or_database_url_gets_a_fix_it_message() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/p.db", dir.path().display());
    let out = parley(dir.path(), &url, Some("c2hvcnQ="), &["tenant", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("PARLEY_MASTER_KEY must be base64 of 32 bytes, got 5 bytes"),
        "{}",
        text(&out)
    );
    let out = parley(dir.path(), "mysql://x", None, &["tenant", "list"]);
    assert!(
        text(&out).contains("DATABASE_URL must start with sqlite: or postgres:"),
        "{}",
        text(&out)
    );
}

#[test]
fn migrate_down_reverts_and_up_restores() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/p.db", dir.path().display());
    let up = parley(dir.path(), &url, None, &["migrate", "up"]);
    assert!(up.status.success(), "{}", text(&up));
    let status =
        String::from_utf8_lossy(&parley(dir.path(), &url, None, &["migrate", "status"]).stdout)
            .to_string();
    assert!(status.lines().all(|l| l.contains("applied")), "{status}");
    let down = parley(dir.path(), &url, None, &["migrate", "down"]);
    assert!(
        String::from_utf8_lossy(&down.stdout).starts_with("reverted "),
        "{}",
        text(&down)
    );
    let status =
        String::from_utf8_lossy(&parley(dir.path(), &url, None, &["migrate", "status"]).stdout)
            .to_string();
    assert!(
        status.lines().last().unwrap().contains("pending"),
        "{status}"
    );
    let up = parley(dir.path(), &url, None, &["migrate", "up"]);
    let out = String::from_utf8_lossy(&up.stdout).to_string();
    // Each migration is named as it starts and timed when done (some take a while).
    let last = status.lines().last().unwrap();
    let version = last.split_whitespace().next().unwrap();
    assert!(
        out.contains(&format!("applying {version} ")) && out.contains("done in "),
        "{out}"
    );
    assert!(out.contains("applied 1 migration"), "{}", text(&up));
}

#[test]
fn export_then_apply_round_trips_through_files() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/p.db", dir.path().display());
    std::fs::write(
        dir.path().join("acme.json"),
        bundle("acme", "100000000000001", "EAAG-acme-very-secret-1").to_string(),
    )
    .unwrap();
    assert!(
        parley(dir.path(), &url, None, &["tenant", "apply", "acme.json"])
            .status
            .success()
    );
    let out = parley(
        dir.path(),
        &url,
        None,
        &["tenant", "export", "acme", "-o", "exported.json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let again = parley(
        dir.path(),
        &url,
        None,
        &["tenant", "apply", "exported.json"],
    );
    assert!(
        String::from_utf8_lossy(&again.stdout).starts_with("unchanged: tenant acme"),
        "{}",
        text(&again)
    );
    let secret_out = parley(
        dir.path(),
        &url,
        None,
        &[
            "tenant",
            "export",
            "acme",
            "--with-secrets",
            "-o",
            "full.json",
        ],
    );
    assert!(secret_out.status.success());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("full.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        std::fs::read_to_string(dir.path().join("full.json"))
            .unwrap()
            .contains("EAAG-acme-very-secret-1")
    );
}

#[test]
fn logs_are_json_lines_with_parley_log_format_json() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/data/p.db", dir.path().display());
    let out = Command::new(BIN)
        .args(["tenant", "list"])
        .env_clear()
        .env("DATABASE_URL", &url)
        .env("PARLEY_LOG_FORMAT", "json")
        .env("PARLEY_MASTER_KEY", "")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // tenant list opens no key; `keys status` does, and warns that it generated one.
    let out = Command::new(BIN)
        .args(["keys", "status"])
        .env_clear()
        .env("DATABASE_URL", &url)
        .env("PARLEY_LOG_FORMAT", "json")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(!lines.is_empty(), "a warning was expected");
    for l in lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert_eq!(v["level"], "WARN");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("GENERATED A NEW MASTER KEY")
        );
    }
}

#[test]
fn faq_try_prints_one_json_line_per_question() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/p.db", dir.path().display());
    std::fs::write(
        dir.path().join("acme.json"),
        bundle("acme", "100000000000001", "EAAG-acme-very-secret-1").to_string(),
    )
    .unwrap();
    assert!(
        parley(dir.path(), &url, None, &["tenant", "apply", "acme.json"])
            .status
            .success()
    );
    let mut child = Command::new(BIN)
        .args(["faq", "try", "--tenant", "acme"])
        .current_dir(dir.path())
        .env_clear()
        .env("DATABASE_URL", &url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"What are your opening hours?\nwhen r u open\n\nWhat is the capital of Peru?\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "blank lines are skipped");
    assert_eq!(lines[0]["question"], "What are your opening hours?");
    assert_eq!(lines[0]["matched_question"], "What are your opening hours?");
    assert_eq!(lines[0]["answer"], "9-18 (acme)");
    assert_eq!(lines[0]["confidence"], 1.0);
    assert_eq!(lines[0]["answered"], true);
    assert!(lines[0]["faq_id"].is_string());
    assert_eq!(lines[1]["matched_question"], "What are your opening hours?");
    assert_eq!(lines[1]["answered"], true, "{}", lines[1]);
    assert_eq!(lines[2]["answered"], false, "{}", lines[2]);
    assert!(lines[2]["confidence"].as_f64().unwrap() < 0.6);
}

#[test]
fn secrets_can_come_from_files_and_both_forms_at_once_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/p.db", dir.path().display());
    let key = parley::crypto::generate_key_b64();
    let key = secrecy::ExposeSecret::expose_secret(&key).to_string();
    std::fs::write(dir.path().join("key"), format!("{key}\n")).unwrap();
    let run = |extra: &[(&str, &str)]| {
        let mut cmd = Command::new(BIN);
        cmd.args(["keys", "status"])
            .current_dir(dir.path())
            .env_clear()
            .env("DATABASE_URL", &url);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let key_file = dir.path().join("key").display().to_string();
    let out = run(&[("PARLEY_MASTER_KEY_FILE", &key_file)]);
    assert!(out.status.success(), "{}", text(&out));
    let raw = base64_decode(&key);
    let expected = parley::crypto::key_id(&raw);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("active key: {expected}")),
        "{}",
        text(&out)
    );
    assert!(
        !dir.path().join("master.key").exists(),
        "no key file is generated when one is given"
    );

    let out = run(&[
        ("PARLEY_MASTER_KEY_FILE", &key_file),
        ("PARLEY_MASTER_KEY", &key),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("both PARLEY_MASTER_KEY and PARLEY_MASTER_KEY_FILE are set"),
        "{}",
        text(&out)
    );
    let out = run(&[("PARLEY_MASTER_KEY_FILE", "/nonexistent/key")]);
    assert!(
        text(&out).contains("PARLEY_MASTER_KEY_FILE: cannot read /nonexistent/key"),
        "{}",
        text(&out)
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[test]
fn prompt_versions_are_created_published_rolled_back_and_listed_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/p.db", dir.path().display());
    std::fs::write(
        dir.path().join("acme.json"),
        bundle("acme", "100000000000001", "EAAG-acme-very-secret-1").to_string(),
    )
    .unwrap();
    assert!(
        parley(dir.path(), &url, None, &["tenant", "apply", "acme.json"])
            .status
            .success()
    );
    for (i, body) in ["First prompt for {business_name}", "Second prompt"]
        .iter()
        .enumerate()
    {
        std::fs::write(dir.path().join("p.md"), body).unwrap();
        let out = parley(
            dir.path(),
            &url,
            None,
            &[
                "prompt", "create", "--tenant", "acme", "--file", "p.md", "--by", "alice",
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            (i + 1).to_string()
        );
    }
    for v in ["2", "1"] {
        let out = parley(
            dir.path(),
            &url,
            None,
            &["prompt", "publish", "--tenant", "acme", v, "--by", "bob"],
        );
        assert!(out.status.success(), "{}", text(&out));
    }
    let list = text(&parley(
        dir.path(),
        &url,
        None,
        &["prompt", "list", "--tenant", "acme"],
    ));
    assert!(
        list.contains("* v1"),
        "v1 is live after the rollback:\n{list}"
    );
    assert!(list.contains("  v2"), "{list}");
    assert_eq!(list.matches("by bob").count(), 2, "{list}");
    // Bad input: a version that does not exist, a wrong kind, an empty prompt.
    let out = parley(
        dir.path(),
        &url,
        None,
        &["prompt", "publish", "--tenant", "acme", "9"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no system prompt version 9"),
        "{}",
        text(&out)
    );
    let out = parley(
        dir.path(),
        &url,
        None,
        &["prompt", "list", "--tenant", "acme", "--kind", "poem"],
    );
    assert!(
        text(&out).contains("--kind must be one of system, classifier"),
        "{}",
        text(&out)
    );
    std::fs::write(dir.path().join("empty.md"), "  ").unwrap();
    let out = parley(
        dir.path(),
        &url,
        None,
        &["prompt", "create", "--tenant", "acme", "--file", "empty.md"],
    );
    assert!(text(&out).contains("the prompt is empty"), "{}", text(&out));
    // Releasing a conversation that does not exist says so.
    let out = parley(
        dir.path(),
        &url,
        None,
        &["conversation", "release", "--tenant", "acme", "15550001111"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no conversation with 15550001111"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_half_configured_or_bad_smtp_relay_stops_start_up_with_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/p.db", dir.path().display());
    let run = |vars: &[(&str, &str)]| {
        let mut cmd = Command::new(BIN);
        cmd.args(["tenant", "list"])
            .current_dir(dir.path())
            .env_clear()
            .env("DATABASE_URL", &url);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = run(&[(
        "PARLEY_SMTP_URL",
        "smtps://bot:hunter2-relay-pass@smtp.example.com:465",
    )]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("PARLEY_SMTP_FROM"), "{t}");
    assert!(
        !t.contains("hunter2-relay-pass"),
        "the relay password is never echoed: {t}"
    );
    let out = run(&[
        ("PARLEY_SMTP_URL", "gopher://smtp.example.com"),
        ("PARLEY_SMTP_FROM", "alerts@example.com"),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("PARLEY_SMTP_URL is not a usable SMTP URL"),
        "{}",
        text(&out)
    );
    let out = run(&[
        (
            "PARLEY_SMTP_URL",
            "smtps://bot:hunter2-relay-pass@smtp.example.com:465",
        ),
        ("PARLEY_SMTP_FROM", "parley alerts <alerts@example.com>"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn serve_without_ca_certificates_says_what_to_install_instead_of_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/p.db", dir.path().display());
    // A system with no CA bundle (a slim container image): the certificate locations
    // point at an empty folder and a missing file.
    let out = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("DATABASE_URL", &url)
        .env("PARLEY_BIND", "127.0.0.1:0")
        .env("SSL_CERT_DIR", dir.path())
        .env("SSL_CERT_FILE", dir.path().join("no-such-bundle.pem"))
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(!all.contains("panicked"), "{all}");
    assert!(all.contains("no CA certificates"), "{all}");
    assert!(all.contains("ca-certificates"), "{all}");
    assert!(all.contains("SSL_CERT_FILE"), "{all}");
    // Nothing was started: no database was created.
    assert!(!dir.path().join("p.db").exists());
}
