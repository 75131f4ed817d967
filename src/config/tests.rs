//! Tests of [`Config::from_env`](super::Config::from_env): defaults, strict parsing, and errors
//! that name the variable at fault.

use super::*;

fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_env(&Env::from_pairs(pairs.iter().copied()))
}

#[test]
fn defaults_need_no_services() {
    let c = config(&[]).unwrap();
    assert_eq!(c.port, 3000);
    assert!(
        matches!(c.store, StoreConfig::Sqlite { ref path, .. } if path.ends_with("superinsights.db"))
    );
    assert!(!c.redis.enabled());
    assert!(!c.production);
    assert_eq!(c.trust_proxy, 0);
}

#[test]
fn flags_are_strict_and_false_means_false() {
    let c = config(&[
        ("REDIS_URL", "redis://x"),
        ("CACHE_REDIS", "false"),
        ("RATE_LIMIT_REDIS", "YES"),
    ])
    .unwrap();
    assert!(!c.redis.cache);
    assert!(c.redis.rate_limits);
    let err = config(&[("CACHE_REDIS", "maybe")]).unwrap_err();
    assert_eq!(err.var, "CACHE_REDIS");
}

#[test]
fn trust_proxy_is_a_flag_or_a_hop_count() {
    assert_eq!(config(&[("TRUST_PROXY", "true")]).unwrap().trust_proxy, 1);
    assert_eq!(config(&[("TRUST_PROXY", "2")]).unwrap().trust_proxy, 2);
    assert_eq!(config(&[("TRUST_PROXY", "off")]).unwrap().trust_proxy, 0);
    assert_eq!(
        config(&[("TRUST_PROXY", "lots")]).unwrap_err().var,
        "TRUST_PROXY"
    );
}

#[test]
fn redis_url_names_the_topology_and_a_bad_one_names_redis_url() {
    let c = config(&[(
        "REDIS_URL",
        "redis-cluster://n1:7000?node=n2:7000&node=n3:7000",
    )])
    .unwrap();
    assert_eq!(c.redis.target.topology, RedisTopology::Cluster { seeds: 3 });
    let err = config(&[("REDIS_URL", "redis-cluster://n1:7000"), ("REDIS_DB", "2")]).unwrap_err();
    assert_eq!(err.var, "REDIS_DB");
    let err = config(&[("REDIS_URL", "redis-sentinel://s1:26379")]).unwrap_err();
    assert_eq!(err.var, "REDIS_URL");
    assert!(err.message.contains("sentinelServiceName"), "{err}");
    // Ignored entirely when Redis is switched off.
    assert!(config(&[("REDIS_URL", "http://x"), ("REDIS_ENABLED", "false")]).is_ok());
}

#[test]
fn redis_enabled_false_turns_redis_off() {
    let c = config(&[("REDIS_URL", "redis://x"), ("REDIS_ENABLED", "0")]).unwrap();
    assert!(!c.redis.enabled());
}

#[test]
fn production_rejects_weak_or_missing_secrets() {
    let strong = [
        ("NODE_ENV", "production"),
        ("SESSION_SECRET", "a-long-random-value-1"),
        ("JWT_ACCESS_SECRET", "a-long-random-value-2"),
        ("JWT_REFRESH_SECRET", "a-long-random-value-3"),
    ];
    assert!(config(&strong).unwrap().production);
    let mut weak = strong;
    weak[1] = ("SESSION_SECRET", "Change-Me");
    assert_eq!(config(&weak).unwrap_err().var, "SESSION_SECRET");
    assert_eq!(config(&strong[..3]).unwrap_err().var, "JWT_REFRESH_SECRET");
    let mut app_env = strong;
    app_env[0] = ("APP_ENV", "production");
    app_env[2] = ("JWT_ACCESS_SECRET", "secret");
    assert_eq!(config(&app_env).unwrap_err().var, "JWT_ACCESS_SECRET");
}

#[test]
fn production_refuses_a_placeholder_public_link_pepper_but_allows_none() {
    let strong = [
        ("NODE_ENV", "production"),
        ("SESSION_SECRET", "a-long-random-value-1"),
        ("JWT_ACCESS_SECRET", "a-long-random-value-2"),
        ("JWT_REFRESH_SECRET", "a-long-random-value-3"),
    ];
    assert!(config(&strong).unwrap().public_link_pepper.is_empty());
    let mut with = strong.to_vec();
    with.push(("PUBLIC_LINK_PEPPER", "ChangeMe"));
    assert_eq!(config(&with).unwrap_err().var, "PUBLIC_LINK_PEPPER");
    with[4] = ("PUBLIC_LINK_PEPPER", "  ");
    assert!(
        config(&with).unwrap().public_link_pepper.is_empty(),
        "blank is unset"
    );
    with[4] = ("PUBLIC_LINK_PEPPER", "a-long-random-pepper");
    assert_eq!(
        config(&with).unwrap().public_link_pepper.expose(),
        "a-long-random-pepper"
    );
    // Outside production anything goes.
    assert!(config(&[("PUBLIC_LINK_PEPPER", "changeme")]).is_ok());
}

#[test]
fn debug_output_redacts_secrets() {
    let c = config(&[
        ("MONGODB_URI", "mongodb://user:hunter2@db/x"),
        ("SESSION_SECRET", "hunter2"),
    ])
    .unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn rate_limits_default_to_superinsights_and_parse_strictly() {
    let c = config(&[]).unwrap();
    assert_eq!(c.rate_limits.ingest_ip, Limit::per_minute(1200));
    assert_eq!(c.rate_limits.ingest_project, Limit::per_minute(1000));
    assert_eq!(c.rate_limits.report_generation, Limit::per_seconds(1, 10));
    let c = config(&[
        ("RATE_LIMIT_INGEST_PROJECT", "50/10s"),
        ("RATE_LIMIT_INGEST_IP", "2000"),
        ("RATE_LIMIT_AUTH_IP", "off"),
        ("RATE_LIMIT_WS_PROJECT", "5/500ms"),
        ("RATE_LIMIT_PUBLIC_LINKS_IP", "30/1m"),
    ])
    .unwrap();
    assert_eq!(c.rate_limits.ingest_project, Limit::per_seconds(50, 10));
    assert_eq!(c.rate_limits.ingest_ip, Limit::per_minute(2000));
    assert!(c.rate_limits.auth_ip.is_off());
    assert_eq!(
        c.rate_limits.ws_project.window,
        std::time::Duration::from_millis(500)
    );
    assert_eq!(c.rate_limits.public_links_ip, Limit::per_minute(30));
    for bad in ["lots", "10/0s", "10/5y", "-1/60s", "10/"] {
        let err = config(&[("RATE_LIMIT_INVITES_IP", bad)]).unwrap_err();
        assert_eq!(err.var, "RATE_LIMIT_INVITES_IP", "{bad}");
    }
}

#[test]
fn ai_provider_settings_parse_strictly_with_openrouter_names_first() {
    let c = config(&[]).unwrap();
    assert_eq!(c.ai.base_url, "https://openrouter.ai/api/v1");
    assert!(c.ai.api_key.is_empty());
    assert_eq!(
        (
            c.ai.model.as_str(),
            c.ai.temperature,
            c.ai.max_tokens,
            c.ai.timeout_ms
        ),
        ("google/gemini-2.5-flash-lite", 0.2, 900, 25_000)
    );
    let c = config(&[
        ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/"),
        ("OPENAI_API_KEY", "sk-openai"),
    ])
    .unwrap();
    assert_eq!(c.ai.base_url, "http://127.0.0.1:9/v1");
    assert_eq!(c.ai.api_key.expose(), "sk-openai");
    let c = config(&[
        ("OPENROUTER_BASE_URL", "https://router.example/api"),
        ("OPENAI_BASE_URL", "http://ignored"),
        ("OPENROUTER_API_KEY", "sk-router"),
        ("OPENAI_API_KEY", "sk-openai"),
    ])
    .unwrap();
    assert_eq!(c.ai.base_url, "https://router.example/api");
    assert_eq!(c.ai.api_key.expose(), "sk-router");
    assert!(!format!("{c:?}").contains("sk-router"));
    for (var, bad) in [
        ("AI_ANALYSIS_TEMPERATURE", "hot"),
        ("AI_ANALYSIS_TEMPERATURE", "3"),
        ("AI_ANALYSIS_MAX_TOKENS", "0"),
        ("AI_ANALYSIS_TIMEOUT_MS", "-5"),
        ("OPENROUTER_BASE_URL", "ftp://x"),
    ] {
        assert_eq!(config(&[(var, bad)]).unwrap_err().var, var, "{bad}");
    }
}

#[test]
fn ingest_buffer_needs_redis_and_parses_its_bounds() {
    let c = config(&[]).unwrap();
    assert!(!c.redis.ingest_buffer);
    assert_eq!(c.ingest.buffer.max_batches, 100_000);
    assert_eq!(c.ingest.buffer.claim_idle_ms, 30_000);
    let err = config(&[("INGEST_BUFFER_REDIS", "true")]).unwrap_err();
    assert_eq!(err.var, "INGEST_BUFFER_REDIS");
    assert!(err.message.contains("REDIS_URL"), "{}", err.message);
    let err = config(&[
        ("INGEST_BUFFER_REDIS", "true"),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("REDIS_ENABLED", "false"),
    ])
    .unwrap_err();
    assert_eq!(err.var, "INGEST_BUFFER_REDIS");
    assert!(err.message.contains("REDIS_ENABLED"), "{}", err.message);
    let c = config(&[
        ("INGEST_BUFFER_REDIS", "on"),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("INGEST_BUFFER_MAX_BATCHES", "50"),
        ("INGEST_BUFFER_MAX_BYTES", "4096"),
        ("INGEST_BUFFER_CLAIM_IDLE_MS", "500"),
    ])
    .unwrap();
    assert!(c.redis.ingest_buffer);
    assert_eq!(
        (
            c.ingest.buffer.max_batches,
            c.ingest.buffer.max_bytes,
            c.ingest.buffer.claim_idle_ms
        ),
        (50, 4096, 500)
    );
    for (var, bad) in [
        ("INGEST_BUFFER_MAX_BATCHES", "0"),
        ("INGEST_BUFFER_MAX_BYTES", "10"),
        ("INGEST_BUFFER_CLAIM_IDLE_MS", "soon"),
        ("INGEST_BUFFER_REDIS", "maybe"),
    ] {
        let err = config(&[(var, bad), ("REDIS_URL", "redis://127.0.0.1:6379")]).unwrap_err();
        assert_eq!(err.var, var, "{bad}");
    }
}

#[test]
fn job_settings_default_and_parse_strictly() {
    let c = config(&[]).unwrap();
    assert_eq!(c.jobs, JobsConfig::default());
    assert_eq!(c.jobs.workers, 1);
    assert!(!c.redis.job_queue);
    let c = config(&[
        ("JOB_WORKERS", "0"),
        ("JOB_MAX_ATTEMPTS", "5"),
        ("JOB_VISIBILITY_TIMEOUT_MS", "500"),
        ("JOB_RETRY_BACKOFF_MS", "50"),
        ("JOB_POLL_INTERVAL_MS", "20"),
        ("JOB_QUEUE_REDIS", "yes"),
    ])
    .unwrap();
    assert_eq!(
        (
            c.jobs.workers,
            c.jobs.max_attempts,
            c.jobs.visibility_timeout_ms
        ),
        (0, 5, 500)
    );
    assert_eq!((c.jobs.retry_backoff_ms, c.jobs.poll_interval_ms), (50, 20));
    assert!(c.redis.job_queue);
    for (var, bad) in [
        ("JOB_WORKERS", "two"),
        ("JOB_WORKERS", "65"),
        ("JOB_WORKERS", "-1"),
        ("JOB_MAX_ATTEMPTS", "0"),
        ("JOB_VISIBILITY_TIMEOUT_MS", "50"),
        ("JOB_POLL_INTERVAL_MS", "1s"),
        ("JOB_QUEUE_REDIS", "maybe"),
    ] {
        assert_eq!(config(&[(var, bad)]).unwrap_err().var, var, "{var}={bad}");
    }
}

#[test]
fn cors_allowlist_falls_back_to_public_url() {
    let c = config(&[("PUBLIC_URL", "https://a.example/")]).unwrap();
    assert_eq!(
        c.cors_allowed_origins,
        vec!["https://a.example".to_string()]
    );
}

#[test]
fn allowed_hosts_are_a_list_of_bare_hosts() {
    assert!(config(&[]).unwrap().allowed_hosts.is_empty());
    let c = config(&[("ALLOWED_HOSTS", " A.example , b.example:8080,,[::1]:3000")]).unwrap();
    assert_eq!(
        c.allowed_hosts,
        ["a.example", "b.example:8080", "[::1]:3000"]
    );
    for bad in ["https://a.example", "a.example/x", "a b"] {
        let e = config(&[("ALLOWED_HOSTS", bad)]).unwrap_err();
        assert!(e.to_string().contains("ALLOWED_HOSTS"), "{bad}: {e}");
    }
}

#[test]
fn connection_limits_default_and_parse_strictly() {
    let c = config(&[]).unwrap();
    assert_eq!(c.server, ServerConfig::default());
    assert_eq!(c.rate_limits.ws_upgrade_ip, Limit::per_minute(300));
    let c = config(&[
        ("HTTP_HEADER_TIMEOUT_MS", "300"),
        ("HTTP_BODY_TIMEOUT_MS", "400"),
        ("HTTP_IDLE_TIMEOUT_MS", "500"),
        ("HTTP_MAX_CONNECTIONS", "20"),
        ("HTTP_RESERVED_CONNECTIONS", "0"),
        ("WS_MAX_CONNECTIONS_PER_IP", "2"),
        ("RATE_LIMIT_WS_UPGRADE_IP", "5/1s"),
    ])
    .unwrap();
    assert_eq!(c.server.header_timeout.as_millis(), 300);
    assert_eq!(c.server.body_timeout.as_millis(), 400);
    assert_eq!(c.server.idle_timeout.as_millis(), 500);
    assert_eq!(c.server.max_connections, Some(20));
    assert_eq!(c.server.reserved_connections, 0);
    assert_eq!(c.server.ws_max_per_ip, 2);
    assert_eq!(c.rate_limits.ws_upgrade_ip, Limit::per_seconds(5, 1));
    for (var, bad) in [
        ("HTTP_HEADER_TIMEOUT_MS", "10s"),
        ("HTTP_HEADER_TIMEOUT_MS", "99"),
        ("HTTP_BODY_TIMEOUT_MS", "3600001"),
        ("HTTP_IDLE_TIMEOUT_MS", "-1"),
        ("HTTP_MAX_CONNECTIONS", "0"),
        ("HTTP_MAX_CONNECTIONS", "many"),
        ("HTTP_RESERVED_CONNECTIONS", "1025"),
        ("WS_MAX_CONNECTIONS_PER_IP", "x"),
        ("RATE_LIMIT_WS_UPGRADE_IP", "5/forever"),
    ] {
        assert_eq!(config(&[(var, bad)]).unwrap_err().var, var, "{var}={bad}");
    }
}

#[test]
fn the_view_wait_defaults_to_20_s_and_parses_strictly() {
    let c = config(&[]).unwrap();
    assert_eq!(c.server.view_wait, std::time::Duration::from_secs(20));
    for (value, ms) in [("0", 0), ("1500", 1500), ("300000", 300_000)] {
        let c = config(&[("VIEW_WAIT_MS", value)]).unwrap();
        assert_eq!(c.server.view_wait.as_millis(), ms, "{value}");
    }
    for bad in ["300001", "-1", "20s"] {
        assert_eq!(
            config(&[("VIEW_WAIT_MS", bad)]).unwrap_err().var,
            "VIEW_WAIT_MS",
            "{bad}"
        );
    }
}
