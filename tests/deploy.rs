//! Deployment files stay consistent with the code: every secret the production compose file mounts
//! into a service is actually read by that service (through its config or an environment variable),
//! every `/run/secrets/…` path a production config reads is mounted, and no compose file carries a
//! credential inline.

// Test code: a panic (unwrap) is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_yaml::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn compose(name: &str) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(root().join(name)).unwrap()).unwrap()
}

/// The production config a service reads, if it is one of ours.
fn service_config(service: &str) -> Option<String> {
    let file = match service {
        "proxy" => "config/prod/proxy.toml",
        "backend" => "config/prod/backend.toml",
        _ => return None,
    };
    Some(std::fs::read_to_string(root().join(file)).unwrap())
}

fn secret_paths(text: &str) -> BTreeSet<String> {
    text.match_indices("/run/secrets/")
        .map(|(i, m)| {
            text[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect()
        })
        .collect()
}

#[test]
fn every_mounted_secret_is_read_by_the_service_that_mounts_it() {
    let doc = compose("docker-compose.prod.yml");
    let services = doc["services"].as_mapping().unwrap();
    let declared: BTreeSet<String> = doc["secrets"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let mut used = BTreeSet::new();
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        let mounted: BTreeSet<String> = svc["secrets"]
            .as_sequence()
            .map(|s| s.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        // Everything the service can read: its compose definition and, for ours, its config file.
        let mut readable = serde_yaml::to_string(svc).unwrap();
        if let Some(cfg) = service_config(name) {
            readable.push_str(&cfg);
        }
        let read = secret_paths(&readable);
        for s in &mounted {
            assert!(declared.contains(s), "{name} mounts undeclared secret {s}");
            assert!(
                read.contains(s),
                "{name} mounts secret {s} but never reads /run/secrets/{s}"
            );
        }
        for s in &read {
            assert!(
                mounted.contains(s),
                "{name} reads /run/secrets/{s} but does not mount it"
            );
        }
        used.extend(mounted);
    }
    assert_eq!(used, declared, "every declared secret is mounted somewhere");
    assert!(
        declared.len() >= 7,
        "database, redis (x2), jwt, identity, admin, postgres: {declared:?}"
    );
}

#[test]
fn compose_files_carry_no_inline_credentials() {
    for file in ["docker-compose.yml", "docker-compose.prod.yml"] {
        let doc = compose(file);
        for (name, svc) in doc["services"].as_mapping().unwrap() {
            let Some(env) = svc["environment"].as_mapping() else {
                continue;
            };
            for (k, v) in env {
                let key = k.as_str().unwrap().to_ascii_uppercase();
                let value = serde_yaml::to_string(v).unwrap();
                let sensitive = [
                    "PASSWORD",
                    "SECRET",
                    "TOKEN",
                    "KEY",
                    "DATABASE__URL",
                    "REDIS_URL",
                ]
                .iter()
                .any(|w| key.contains(w));
                if sensitive {
                    assert!(
                        key.ends_with("_FILE") && value.contains("/run/secrets/"),
                        "{file}: {} sets {key} inline; use a secret file",
                        name.as_str().unwrap()
                    );
                }
                assert!(
                    !value.contains("://") || !value.contains('@'),
                    "{file}: credentials in a URL in {key}"
                );
            }
        }
        let files: Vec<String> = doc["secrets"]
            .as_mapping()
            .unwrap()
            .values()
            .map(|v| v["file"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            files
                .iter()
                .all(|f| f.contains("secrets/") || f.contains("SECRETS_DIR")),
            "{files:?}"
        );
    }
}

#[test]
fn secret_files_are_ignored_by_git() {
    let ignore = std::fs::read_to_string(root().join(".gitignore")).unwrap();
    for entry in ["/secrets/", ".env", "/data"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            "{entry} missing from .gitignore"
        );
    }
}

/// Metric names in `text` with the given prefixes, histogram suffixes removed.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for prefix in ["edge_proxy_", "todo_backend_"] {
        for (i, _) in text.match_indices(prefix) {
            if i > 0 && text.as_bytes()[i - 1].is_ascii_alphanumeric() {
                continue;
            }
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            names.insert(base.to_owned());
        }
    }
    names
}

#[test]
fn alerts_and_dashboard_only_use_metrics_the_services_export() {
    let read = |p: &str| std::fs::read_to_string(root().join(p)).unwrap();
    let exported: BTreeSet<String> = metric_names(&read("proxy/src/obs/metrics.rs"))
        .union(&metric_names(&read("backend/src/metrics.rs")))
        .cloned()
        .collect();
    assert!(
        exported.contains("edge_proxy_requests_total")
            && exported.contains("todo_backend_db_pool_connections")
    );
    for file in [
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/edge-proxy.json",
    ] {
        let used = metric_names(&read(file));
        assert!(!used.is_empty(), "{file} uses no metric");
        let unknown: Vec<&String> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics nobody exports: {unknown:?}"
        );
    }
}
