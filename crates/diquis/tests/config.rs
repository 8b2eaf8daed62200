//! Configuration as ASP.NET users write it, checked through `config::load` and through the real
//! binary: layering, environment names, every start-up error naming its key, the quick start.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use diquis::config::{DatabaseTarget, LoadError, load};
use diquis::job_outbox::JobStorage;

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn files_then_environment_file_then_env_vars_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "appsettings.json",
        r#"{ "ConnectionStrings": { "DefaultConnection": "Host=base;Database=d;Username=u", "RedisConnection": "base:6379" },
             "SignalR": { "ChannelPrefix": "FromFile" }, "Urls": "http://127.0.0.1:1111",
             "Cors": { "AllowedOrigins": [ "http://localhost:3000" ] } }"#,
    );
    write(dir.path(), "appsettings.Development.json", r#"{ "Urls": "http://127.0.0.1:2222", "Jwt": { "ExpiryMinutes": 5 } }"#);
    write(dir.path(), "appsettings.Staging.json", r#"{ "Urls": "http://127.0.0.1:3333" }"#);

    let (_, s) = load(dir.path(), env(&[]), &[]).unwrap();
    assert_eq!(s.environment, "Production");
    assert_eq!(s.urls.unwrap()[0].port(), 1111);
    assert_eq!(s.channel_prefix, "FromFile");
    assert_eq!(s.cors_origins, vec!["http://localhost:3000"]);

    let (_, s) = load(dir.path(), env(&[("DOTNET_ENVIRONMENT", "Development")]), &[]).unwrap();
    assert_eq!(s.urls.unwrap()[0].port(), 2222);
    assert_eq!(s.jwt.expiry_minutes, 5);
    // ASPNETCORE_ENVIRONMENT wins over DOTNET_ENVIRONMENT, and --environment over both.
    let both = env(&[("DOTNET_ENVIRONMENT", "Development"), ("ASPNETCORE_ENVIRONMENT", "Staging")]);
    assert_eq!(load(dir.path(), both.clone(), &[]).unwrap().1.urls.unwrap()[0].port(), 3333);
    let flags = vec!["--environment=Development".to_string()];
    assert_eq!(load(dir.path(), both, &flags).unwrap().1.urls.unwrap()[0].port(), 2222);

    // Environment variables with __ override files, case-insensitively; ASPNETCORE_URLS is Urls.
    let vars = env(&[
        ("connectionstrings__redisconnection", "env:6379"),
        ("SIGNALR__CHANNELPREFIX", "FromEnv"),
        ("ASPNETCORE_URLS", "http://127.0.0.1:4444"),
    ]);
    let (_, s) = load(dir.path(), vars.clone(), &[]).unwrap();
    assert_eq!(s.redis.as_deref(), Some("env:6379"));
    assert_eq!(s.channel_prefix, "FromEnv");
    assert_eq!(s.urls.unwrap()[0].port(), 4444);

    // Flags override everything.
    let flags: Vec<String> =
        ["--ConnectionStrings:RedisConnection=flag:6379", "--urls", "http://127.0.0.1:5555", "/SignalR:ChannelPrefix=FromFlag"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let (_, s) = load(dir.path(), vars, &flags).unwrap();
    assert_eq!(s.redis.as_deref(), Some("flag:6379"));
    assert_eq!(s.urls.unwrap()[0].port(), 5555);
    assert_eq!(s.channel_prefix, "FromFlag");
    assert!(matches!(s.database, DatabaseTarget::Postgres(_)));
}

#[test]
fn unreadable_sources_are_named() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "appsettings.json", "{ \"Urls\": ");
    match load(dir.path(), env(&[]), &[]) {
        Err(LoadError::Source(e)) => assert!(e.to_string().contains("appsettings.json"), "{e}"),
        other => panic!("expected a source error, got {other:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let err = load(dir.path(), env(&[]), &["stray".to_string()]).unwrap_err();
    assert!(err.to_string().contains("'stray'"), "{err}");
}

fn diquis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_diquis"))
}

/// Runs the binary in an empty directory with `args`; returns exit code and stderr.
fn run_failing(args: &[&str], vars: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = diquis();
    cmd.current_dir(dir.path()).args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_binary_refuses_bad_values_naming_the_key() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&["--ConnectionStrings:DefaultConnection=Host=h;Port=abc;Database=d;Username=u"], &[], "ConnectionStrings:DefaultConnection"),
        (&["web"], &[("ConnectionStrings__DefaultConnection", "Server=;Database=d")], "ConnectionStrings:DefaultConnection"),
        (&["--ConnectionStrings:HangfireConnection=Host=h;Port=abc;Database=d;Username=u"], &[], "ConnectionStrings:HangfireConnection"),
        (&["jobs"], &[("ConnectionStrings__HangfireConnection", "Server=;Database=jobs")], "ConnectionStrings:HangfireConnection"),
        (&["--ConnectionStrings:RedisConnection=localhost:notaport"], &[], "ConnectionStrings:RedisConnection"),
        (&["jobs", "--Jwt:Key=short"], &[], "Jwt:Key"),
        (&["--urls", "https://localhost:5001"], &[], "Urls"),
        (&["--Cors:AllowedOrigins=*"], &[], "Cors:AllowedOrigins"),
        (&[], &[("Notifications__BroadcastToAll", "maybe")], "Notifications:BroadcastToAll"),
        (&["--Seed:AdminPassword=abc"], &[], "Seed:AdminPassword"),
        (&["--Logging:Console:FormatterName=xml"], &[], "Logging:Console:FormatterName"),
    ];
    for (args, vars, key) in cases {
        let (code, stderr) = run_failing(args, vars);
        assert_eq!(code, 2, "{args:?} {vars:?}: {stderr}");
        assert!(stderr.contains(&format!("'{key}'")), "{args:?}: {stderr}");
    }
}

#[test]
fn quick_start_prints_the_url_and_a_generated_password_once() {
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        diquis()
            .current_dir(dir.path())
            .args(["--urls", "http://127.0.0.1:0"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let read_until_listening = |child: &mut std::process::Child| -> (String, Vec<String>) {
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout).lines();
        let mut lines = Vec::new();
        for line in reader.by_ref() {
            let line = line.unwrap();
            lines.push(line.clone());
            if let Some(url) = line.strip_prefix("Now listening on: ") {
                // Keep draining stdout, as a terminal would.
                std::thread::spawn(move || reader.for_each(drop));
                return (url.to_string(), lines);
            }
        }
        panic!("no 'Now listening on' line: {lines:?}");
    };
    let mut child = start();
    let (url, lines) = read_until_listening(&mut child);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let password =
        lines.iter().map(|l| l.trim()).find(|l| l.len() == 20 && !l.contains(' ')).expect("generated password printed").to_string();
    assert!(dir.path().join("diquis.db").is_file(), "embedded SQLite by default");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{url}/api/tokens"))
            .json(&serde_json::json!({"email": "admin@diquis.local", "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
    // SIGTERM: graceful shutdown, exit code 0.
    unsafe_kill(child.id(), 15);
    assert!(child.wait().unwrap().success());

    // Second start: the admin exists, no password is printed again.
    let mut child = start();
    let (_, lines) = read_until_listening(&mut child);
    assert!(!lines.iter().any(|l| l.contains("generated password")), "{lines:?}");
    unsafe_kill(child.id(), 15);
    assert!(child.wait().unwrap().success());
}

#[test]
fn hangfire_connection_may_name_another_database() {
    let dir = tempfile::tempdir().unwrap();
    let storage = |flags: &[&str]| {
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        let (_, s) = load(dir.path(), env(&[]), &flags).unwrap();
        diquis::app::preflight(&s).expect("accepted");
        JobStorage::of(&s.database, &s.job_storage)
    };
    assert_eq!(storage(&[]), JobStorage::SameDatabase);
    assert_eq!(storage(&["--ConnectionStrings:HangfireConnection=diquis.db"]), JobStorage::SameDatabase);
    assert_eq!(storage(&["--ConnectionStrings:HangfireConnection=jobs.db"]), JobStorage::SeparateDatabase);
    let pg = "--ConnectionStrings:DefaultConnection=Host=h;Database=app;Username=u";
    assert_eq!(storage(&[pg]), JobStorage::SameDatabase);
    assert_eq!(storage(&[pg, "--ConnectionStrings:HangfireConnection=Host=h;Database=app;Username=other"]), JobStorage::SameDatabase);
    assert_eq!(storage(&[pg, "--ConnectionStrings:HangfireConnection=Host=h;Database=jobs;Username=u"]), JobStorage::SeparateDatabase);
    assert_eq!(storage(&[pg, "--ConnectionStrings:HangfireConnection=jobs.db"]), JobStorage::SeparateDatabase);
}

#[test]
fn the_binary_starts_with_a_separate_job_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = diquis()
        .current_dir(dir.path())
        .args([
            "--urls",
            "http://127.0.0.1:0",
            "--ConnectionStrings:HangfireConnection=jobs/hangfire.db",
            "--Seed:AdminEmail=admin@test.local",
            "--Seed:AdminPassword=Adm1nPassw0rd",
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("'Now listening on' before stdout closes").unwrap();
        if let Some(url) = line.strip_prefix("Now listening on: ") {
            break url.to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let body: serde_json::Value = rt.block_on(async {
        // The checks' descriptions are for root administrators.
        let sign_in = serde_json::json!({"email": "admin@test.local", "password": "Adm1nPassw0rd", "tenant": "root"});
        let r = reqwest::Client::new().post(format!("{url}/api/tokens")).json(&sign_in).send().await.unwrap();
        let token = r.json::<serde_json::Value>().await.unwrap()["data"]["token"].as_str().unwrap().to_string();
        let r = reqwest::Client::new().get(format!("{url}/health/ready")).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    });
    let jobs = body["entries"]["jobs"]["description"].as_str().unwrap().to_string();
    assert!(jobs.contains("separate database"), "{body}");
    assert!(dir.path().join("diquis.db").is_file());
    assert!(dir.path().join("jobs/hangfire.db").is_file(), "the job storage is its own file");
    unsafe_kill(child.id(), 15);
    assert!(child.wait().unwrap().success());
}

fn unsafe_kill(pid: u32, signal: i32) {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().unwrap();
    assert!(status.success());
}
