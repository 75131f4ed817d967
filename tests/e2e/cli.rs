//! The command line: create-admin, create-project, check-config and configuration errors.

use crate::support::run_cli;

#[test]
fn create_admin_then_create_project_print_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let env = [
        ("DATA_DIR", data),
        ("SUPERINSIGHTS_ADMIN_PASSWORD", "another-strong-one"),
    ];
    let (code, out, err) = run_cli(
        &[
            "create-admin",
            "--email",
            "Boss@Example.com",
            "--project",
            "Shop",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("boss@example.com"), "{out}");
    assert!(out.contains("project:        Shop ("), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("public key:") && l.contains("pk_")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("secret key:") && l.contains("sk_")),
        "{out}"
    );

    let (code, _, err) = run_cli(&["create-admin", "--email", "boss@example.com"], &env);
    assert_eq!(code, 1, "duplicate admin refused");
    assert!(err.contains("already exists"), "{err}");

    let (code, out, err) = run_cli(
        &[
            "create-project",
            "--owner",
            "boss@example.com",
            "--name",
            "Blog",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("project:        Blog ("));
    let (code, _, err) = run_cli(
        &[
            "create-project",
            "--owner",
            "ghost@example.com",
            "--name",
            "X",
        ],
        &env,
    );
    assert_eq!(code, 1);
    assert!(err.contains("no user"), "{err}");

    let (code, out, _) = run_cli(&["migrate"], &env);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("migrations applied ({})", crate::backend::name())),
        "{out}"
    );
}

#[test]
fn check_config_shows_backends_and_hides_secrets() {
    let (code, out, err) = run_cli(
        &["check-config"],
        &[
            ("MONGODB_URI", "mongodb://user:hunter2@db.example/si"),
            ("SESSION_SECRET", "hunter2-session"),
            ("REDIS_URL", "redis://:hunter2@cache:6379"),
            ("CACHE_REDIS", "true"),
            ("SESSION_STORE_REDIS", "false"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("hunter2"), "secrets must be redacted:\n{out}");
    assert!(out.contains("store: mongodb"), "{out}");
    assert!(out.contains("cache: redis"), "{out}");
    assert!(out.contains("sessions: mongodb"), "{out}");
    assert!(out.contains("ingest buffer: bounded channel"), "{out}");
}

#[test]
fn bad_flags_and_weak_production_secrets_exit_78_naming_the_variable() {
    let (code, _, err) = run_cli(&["check-config"], &[("RATE_LIMIT_REDIS", "maybe")]);
    assert_eq!(code, 78);
    assert!(err.contains("RATE_LIMIT_REDIS"), "{err}");
    let (code, _, err) = run_cli(
        &["serve"],
        &[
            ("NODE_ENV", "production"),
            ("SESSION_SECRET", "change-me-in-production"),
        ],
    );
    assert_eq!(code, 78);
    assert!(err.contains("SESSION_SECRET"), "{err}");
}

#[test]
fn malformed_redis_urls_stop_startup_with_78_naming_redis_url() {
    for (url, reason) in [
        ("http://cache:6379", "unknown scheme"),
        ("redis-sentinel://127.0.0.1:26379/0", "sentinelServiceName"),
        ("redis://:pw-in-url@cache:70000", "invalid port"),
        (
            "redis-cluster://127.0.0.1:7000?node=127.0.0.1:x",
            "node=127.0.0.1:x",
        ),
    ] {
        let (code, _, err) = run_cli(&["serve"], &[("REDIS_URL", url)]);
        assert_eq!(code, 78, "{url}: {err}");
        assert!(
            err.contains("REDIS_URL") && err.contains(reason),
            "{url}: {err}"
        );
        assert!(
            !err.contains("pw-in-url"),
            "the password is not echoed: {err}"
        );
    }
    let (code, out, err) = run_cli(
        &["check-config"],
        &[(
            "REDIS_URL",
            "redis-sentinel://127.0.0.1:26379/0?sentinelServiceName=si&node=127.0.0.1:26380",
        )],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("redis: sentinel (service si, 2 sentinels) (db 0)"),
        "{out}"
    );
}

#[test]
fn seed_demo_fills_a_new_project_in_the_owners_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let env = [
        ("DATA_DIR", data),
        ("SUPERINSIGHTS_ADMIN_PASSWORD", "a-strong-password"),
    ];
    assert_eq!(
        run_cli(&["create-admin", "--email", "demo@example.com"], &env).0,
        0
    );
    let (code, out, err) = run_cli(
        &[
            "seed-demo",
            "--owner",
            "demo@example.com",
            "--events",
            "3000",
            "--days",
            "7",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("project:        Demo ("), "{out}");
    let seeded = out
        .lines()
        .find(|l| l.starts_with("seeded:"))
        .expect("a summary line");
    let numbers: Vec<u64> = seeded
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(numbers[..4].iter().sum::<u64>(), 3000, "{seeded}");
    let (code, _, err) = run_cli(&["seed-demo", "--owner", "nobody@example.com"], &env);
    assert_eq!(code, 1);
    assert!(err.contains("no user"), "{err}");
}
