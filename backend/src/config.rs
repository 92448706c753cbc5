//! Backend configuration: `RawConfig` mirrors `config/<profile>/backend.toml`; `Config` is the
//! validated form the rest of the crate sees. Env overrides use the prefix `TODO_BACKEND`
//! (`TODO_BACKEND__DATABASE__URL=...`); every secret can be given as `*_file`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{SecretBox, SecretString};
use serde::Deserialize;
use settings::{ConfigError, Problems, SecretSource};

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "TODO_BACKEND";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub admin: RawAdmin,
    pub database: RawDatabase,
    pub identity: RawIdentity,
    #[serde(default)]
    pub password: RawPassword,
    #[serde(default)]
    pub log: RawLog,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
    pub request_timeout_ms: u64,
    pub max_body_bytes: usize,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:3000".into(),
            request_timeout_ms: 10_000,
            max_body_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAdmin {
    pub listen: String,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:3001".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub url: Option<String>,
    pub url_file: Option<String>,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    #[serde(default)]
    pub min_connections: u32,
    #[serde(default = "default_acquire_timeout_ms")]
    pub acquire_timeout_ms: u64,
    #[serde(default = "default_idle_timeout_s")]
    pub idle_timeout_s: u64,
    #[serde(default = "default_max_lifetime_s")]
    pub max_lifetime_s: u64,
    #[serde(default = "default_true")]
    pub test_before_acquire: bool,
    #[serde(default = "default_true")]
    pub migrate: bool,
}

fn default_max_connections() -> u32 {
    10
}
fn default_acquire_timeout_ms() -> u64 {
    5_000
}
fn default_idle_timeout_s() -> u64 {
    600
}
fn default_max_lifetime_s() -> u64 {
    1_800
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    /// `HS256` (shared `secret`) or `EdDSA` (the proxy's `public_key`, PEM SPKI; R-ID-5).
    #[serde(default = "default_identity_alg")]
    pub algorithm: String,
    pub secret: Option<String>,
    pub secret_file: Option<String>,
    pub public_key: Option<String>,
    pub public_key_file: Option<String>,
    #[serde(default = "default_issuer")]
    pub issuer: String,
    #[serde(default = "default_audience")]
    pub audience: String,
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
}

fn default_identity_alg() -> String {
    "HS256".into()
}
fn default_issuer() -> String {
    "edge-proxy".into()
}
fn default_audience() -> String {
    "todo".into()
}
fn default_leeway() -> u64 {
    5
}

/// Argon2id cost. Defaults are OWASP's first recommended set (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPassword {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub max_concurrent_hashes: usize,
}

impl Default for RawPassword {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            max_concurrent_hashes: 4,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    pub format: String,
    pub filter: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: "pretty".into(),
            filter: "info".into(),
        }
    }
}

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum DatabaseUrl {
    Postgres(SecretString),
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    /// `postgres://…` / `postgresql://…`, or `sqlite:PATH` (relative to `base_dir`).
    pub fn parse(url: &str, base_dir: &Path) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(SecretString::from(url.to_owned())));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() || path.contains(":memory:") {
                return Err("database.url: sqlite needs a file path (an in-memory database is not shared between pool connections)".into());
            }
            return Ok(Self::Sqlite(settings::resolve(base_dir, path)));
        }
        Err("database.url: must start with postgres://, postgresql:// or sqlite:".into())
    }
}

#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    pub test_before_acquire: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            min_connections: 0,
            acquire_timeout: Duration::from_millis(default_acquire_timeout_ms()),
            idle_timeout: Duration::from_secs(default_idle_timeout_s()),
            max_lifetime: Duration::from_secs(default_max_lifetime_s()),
            test_before_acquire: true,
        }
    }
}

pub use settings::LogFormat;

#[derive(Debug, Clone)]
pub struct PasswordConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub max_concurrent_hashes: usize,
}

#[derive(Debug)]
pub struct IdentityConfig {
    pub key: IdentityKey,
    pub issuer: String,
    pub audience: String,
    pub leeway: Duration,
}

/// How identity assertions are verified.
#[derive(Debug)]
pub enum IdentityKey {
    /// The secret shared with the proxy.
    Hs256(SecretBox<Vec<u8>>),
    /// The proxy's Ed25519 public key: the backend holds nothing that could mint an assertion.
    EdDsa([u8; 32]),
}

#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub database: DatabaseUrl,
    pub pool: PoolConfig,
    pub migrate: bool,
    pub identity: IdentityConfig,
    pub password: PasswordConfig,
    pub log_format: LogFormat,
    pub log_filter: String,
}

impl Config {
    /// Loads `path` with env overrides from `env` and validates it.
    pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let loaded = settings::load_file::<RawConfig>(path, env, ENV_PREFIX)?;
        Self::from_raw(loaded.raw, &loaded.base_dir)
    }

    /// Validates every field and reports all problems at once.
    pub fn from_raw(raw: RawConfig, base_dir: &Path) -> Result<Self, ConfigError> {
        let mut p = Problems::default();
        let listen = p.take(parse_addr("server.listen", &raw.server.listen));
        let admin_listen = p.take(parse_addr("admin.listen", &raw.admin.listen));
        if raw.server.request_timeout_ms == 0 {
            p.push("server.request_timeout_ms: must be greater than 0");
        }
        if raw.server.max_body_bytes == 0 {
            p.push("server.max_body_bytes: must be greater than 0");
        }
        let db_url = p.take(
            SecretSource {
                name: "database.url",
                inline: raw.database.url.as_deref(),
                file: raw.database.url_file.as_deref(),
            }
            .require(base_dir),
        );
        let database = db_url.and_then(|u| {
            p.take(DatabaseUrl::parse(
                secrecy::ExposeSecret::expose_secret(&u),
                base_dir,
            ))
        });
        let d = &raw.database;
        if d.max_connections == 0 {
            p.push("database.max_connections: must be at least 1");
        }
        if d.min_connections > d.max_connections {
            p.push("database.min_connections: must not exceed database.max_connections");
        }
        if d.acquire_timeout_ms == 0 {
            p.push("database.acquire_timeout_ms: must be greater than 0");
        }
        let id = &raw.identity;
        let secret = SecretSource {
            name: "identity.secret",
            inline: id.secret.as_deref(),
            file: id.secret_file.as_deref(),
        };
        let public_key = SecretSource {
            name: "identity.public_key",
            inline: id.public_key.as_deref(),
            file: id.public_key_file.as_deref(),
        };
        let identity_key = match id.algorithm.as_str() {
            "HS256" => {
                if id.public_key.is_some() || id.public_key_file.is_some() {
                    p.push("identity.public_key: only used with identity.algorithm = \"EdDSA\"");
                }
                p.take(secret.require(base_dir))
                    .and_then(|s| p.take(settings::symmetric_key("identity.secret", &s)))
                    .map(IdentityKey::Hs256)
            }
            "EdDSA" => {
                if id.secret.is_some() || id.secret_file.is_some() {
                    p.push("identity.secret: not used with EdDSA; set identity.public_key (the proxy's public key, PEM)");
                }
                p.take(public_key.require(base_dir)).and_then(|pem| {
                    use ed25519_dalek::pkcs8::DecodePublicKey as _;
                    use secrecy::ExposeSecret as _;
                    p.take(
                        ed25519_dalek::VerifyingKey::from_public_key_pem(pem.expose_secret().trim())
                            .map(|k| IdentityKey::EdDsa(k.to_bytes()))
                            .map_err(|_| {
                                "identity.public_key: not a PEM Ed25519 public key (`openssl pkey -in key.pem -pubout`)".to_owned()
                            }),
                    )
                })
            }
            other => {
                p.push(format!(
                    "identity.algorithm: `{other}` is not supported; use HS256 or EdDSA"
                ));
                None
            }
        };
        if raw.identity.audience.is_empty() {
            p.push("identity.audience: must not be empty");
        }
        if raw.identity.issuer.is_empty() {
            p.push("identity.issuer: must not be empty");
        }
        let pw = &raw.password;
        if pw.memory_kib < 8 * pw.parallelism.max(1) || pw.iterations == 0 || pw.parallelism == 0 {
            p.push("password: memory_kib must be at least 8 × parallelism, iterations and parallelism at least 1");
        }
        if pw.max_concurrent_hashes == 0 {
            p.push("password.max_concurrent_hashes: must be at least 1");
        }
        let log_format = p.take(LogFormat::parse(&raw.log.format));
        p.into_result()?;
        let (
            Some(listen),
            Some(admin_listen),
            Some(database),
            Some(identity_key),
            Some(log_format),
        ) = (listen, admin_listen, database, identity_key, log_format)
        else {
            return Err(ConfigError::single("invalid configuration"));
        };
        Ok(Self {
            listen,
            admin_listen,
            request_timeout: Duration::from_millis(raw.server.request_timeout_ms),
            max_body_bytes: raw.server.max_body_bytes,
            database,
            pool: PoolConfig {
                max_connections: d.max_connections,
                min_connections: d.min_connections,
                acquire_timeout: Duration::from_millis(d.acquire_timeout_ms),
                idle_timeout: Duration::from_secs(d.idle_timeout_s),
                max_lifetime: Duration::from_secs(d.max_lifetime_s),
                test_before_acquire: d.test_before_acquire,
            },
            migrate: d.migrate,
            identity: IdentityConfig {
                key: identity_key,
                issuer: raw.identity.issuer,
                audience: raw.identity.audience,
                leeway: Duration::from_secs(raw.identity.leeway_seconds),
            },
            password: PasswordConfig {
                memory_kib: pw.memory_kib,
                iterations: pw.iterations,
                parallelism: pw.parallelism,
                max_concurrent_hashes: pw.max_concurrent_hashes,
            },
            log_format,
            log_filter: raw.log.filter,
        })
    }
}

fn parse_addr(key: &str, v: &str) -> Result<SocketAddr, String> {
    v.parse()
        .map_err(|_| format!("{key}: `{v}` is not an address like 127.0.0.1:3000"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../config")
            .join(name)
            .join("backend.toml")
    }

    /// Secrets a deployment would mount; the dev profile's are generated on first run.
    fn mounted_secrets(dir: &Path) -> HashMap<String, String> {
        let key = dir.join("identity.key");
        std::fs::write(&key, "iGyrivaEjq1iu32B80y7U52QraQxB3dP23LO7joj/LY=\n").unwrap();
        let url = dir.join("database-url");
        std::fs::write(&url, "postgres://todo@127.0.0.1/todo\n").unwrap();
        HashMap::from([(
            format!("{ENV_PREFIX}__IDENTITY__SECRET_FILE"),
            key.display().to_string(),
        )])
        .into_iter()
        .chain(std::iter::once((
            format!("{ENV_PREFIX}__DATABASE__URL_FILE"),
            url.display().to_string(),
        )))
        .collect()
    }

    #[test]
    fn the_test_profile_loads_as_shipped() {
        let c = Config::load(&profile("test"), &HashMap::new()).unwrap();
        assert_eq!(c.listen.port(), 3000);
        assert_eq!(c.admin_listen.port(), 3001);
        assert!(matches!(c.database, DatabaseUrl::Sqlite(_)));
    }

    #[test]
    fn the_dev_profile_loads_with_its_generated_secret() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = mounted_secrets(dir.path());
        env.retain(|k, _| k.contains("IDENTITY"));
        let c = Config::load(&profile("dev"), &env).unwrap();
        assert!(matches!(c.database, DatabaseUrl::Sqlite(_)));
        assert_eq!(c.log_format, LogFormat::Pretty);
    }

    #[test]
    fn the_prod_profile_loads_with_mounted_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::load(&profile("prod"), &mounted_secrets(dir.path())).unwrap();
        assert!(matches!(c.database, DatabaseUrl::Postgres(_)));
        assert_eq!(c.log_format, LogFormat::Json);
        assert!(
            !format!("{c:?}").contains("todo@127.0.0.1"),
            "database url leaked in Debug"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_naming_the_key() {
        let raw: RawConfig = settings::parse_str(
            "[server]\nlisten = \"nope\"\n[database]\nurl = \"mysql://x\"\nmax_connections = 0\n[identity]\nsecret = \"short\"\n[log]\nformat = \"xml\"\n",
            &HashMap::new(),
            ENV_PREFIX,
        )
        .unwrap();
        let err = Config::from_raw(raw, Path::new(".")).unwrap_err();
        let text = err.to_string();
        for key in [
            "server.listen",
            "database.url",
            "database.max_connections",
            "identity.secret",
            "log.format",
        ] {
            assert!(text.contains(key), "{key} missing from:\n{text}");
        }
    }

    #[test]
    fn eddsa_identity_takes_a_public_key_and_refuses_a_secret() {
        let load = |identity: &str| {
            let text = format!("[database]\nurl = \"sqlite:todo.db\"\n[identity]\n{identity}\n");
            let raw: RawConfig = settings::parse_str(&text, &HashMap::new(), ENV_PREFIX).unwrap();
            Config::from_raw(raw, Path::new("."))
        };
        // RFC 8032 TEST 1's public key in SPKI PEM (what `openssl pkey -pubout` prints).
        let public = "algorithm = \"EdDSA\"\npublic_key = \"\"\"\n-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n\"\"\"";
        let c = load(public).unwrap();
        assert!(matches!(c.identity.key, IdentityKey::EdDsa(k) if k[0] == 0xd7));
        let both = format!("{public}\nsecret = \"bzY5rOYUNEXYxpdnWPGmsnaEoygAgxash5EknaSJJ1Q=\""); // pragma: allowlist secret (a throwaway test value)
        let err = load(&both).unwrap_err().to_string();
        assert!(
            err.contains("identity.secret: not used with EdDSA"),
            "{err}"
        );
        let err = load("algorithm = \"EdDSA\"\npublic_key = \"nope\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("identity.public_key: not a PEM Ed25519 public key"),
            "{err}"
        );
        let err = load("algorithm = \"RS256\"").unwrap_err().to_string();
        assert!(err.contains("identity.algorithm"), "{err}");
    }
}
