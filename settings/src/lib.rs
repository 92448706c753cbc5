//! Configuration loading shared by `edge-proxy` and `todo-backend`.
//!
//! Both binaries load their config the same way (DESIGN.md section 5), so the mechanism lives here once:
//!
//! 1. a TOML file, deserialized into the binary's `RawConfig` (`deny_unknown_fields`, so unknown keys are
//!    errors that name the key);
//! 2. environment overrides `PREFIX__SECTION__KEY=value` applied on top of the file before deserializing;
//! 3. flags, applied by the binary itself.
//!
//! Loading is a pure function of its sources: callers pass the environment as a map, tests never touch
//! the process environment. Relative paths in a config file are resolved against the file's directory,
//! so a profile works from any working directory.
//!
//! Secrets ([`SecretSource`]) are given either inline or as a file (`key` / `key_file`), never both;
//! a file is read once and one trailing newline is stripped (SECURITY.md R-SEC-1). [`symmetric_key`]
//! refuses weak HMAC keys (R-SEC-2).
//!
//! [`init_tracing`] sets up logging the same way for both binaries (`log.format`, `log.filter`), and
//! [`healthcheck`] is their `healthcheck` subcommand (a probe of the running service's admin listener).

pub mod metrics;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::de::DeserializeOwned;

/// Every problem found while loading a config, reported together (never just the first).
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// One line per problem, each naming the key it is about.
    pub problems: Vec<String>,
}

impl ConfigError {
    pub fn single(problem: impl Into<String>) -> Self {
        Self {
            problems: vec![problem.into()],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration ({} problem", self.problems.len())?;
        if self.problems.len() != 1 {
            write!(f, "s")?;
        }
        write!(f, ")")?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// Collects problems while a `RawConfig` is turned into a validated `Config`.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    pub fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }

    /// Records the error of `result` (if any) and returns its value.
    pub fn take<T>(&mut self, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    pub fn into_result(self) -> Result<(), ConfigError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems: self.0 })
        }
    }
}

/// A parsed config document plus the directory relative paths are resolved against.
#[derive(Debug)]
pub struct Loaded<T> {
    pub raw: T,
    pub base_dir: PathBuf,
}

/// Reads `path`, applies env overrides with `prefix` (e.g. `EDGE_PROXY`) and deserializes `T`.
pub fn load_file<T: DeserializeOwned>(
    path: &Path,
    env: &HashMap<String, String>,
    prefix: &str,
) -> Result<Loaded<T>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::single(format!("cannot read config file {}: {e}", path.display()))
    })?;
    let base_dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let raw = parse_str(&text, env, prefix)
        .map_err(|e| ConfigError::single(format!("{}: {e}", path.display())))?;
    Ok(Loaded { raw, base_dir })
}

/// Parses TOML text with env overrides applied. Errors name the offending key.
pub fn parse_str<T: DeserializeOwned>(
    text: &str,
    env: &HashMap<String, String>,
    prefix: &str,
) -> Result<T, String> {
    let mut doc: toml::Table = toml::from_str(text).map_err(|e| e.message().to_owned())?;
    apply_env(&mut doc, env, prefix)?;
    T::deserialize(toml::Value::Table(doc)).map_err(|e| describe_de_error(&e))
}

fn describe_de_error(e: &toml::de::Error) -> String {
    e.message().trim().to_owned()
}

/// Applies `PREFIX__A__B=value` as `a.b = value`. Values are read as TOML literals when they parse as
/// one (numbers, booleans, arrays, quoted strings) and as plain strings otherwise.
fn apply_env(
    doc: &mut toml::Table,
    env: &HashMap<String, String>,
    prefix: &str,
) -> Result<(), String> {
    let marker = format!("{prefix}__");
    let mut keys: Vec<&String> = env.keys().filter(|k| k.starts_with(&marker)).collect();
    keys.sort();
    for key in keys {
        let value = &env[key];
        let path: Vec<String> = key[marker.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(format!("environment variable {key}: empty key segment"));
        }
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let mut table = &mut *doc;
        for seg in &path[..path.len() - 1] {
            let entry = table
                .entry(seg.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(format!(
                        "environment variable {key}: `{seg}` is not a table"
                    ))
                }
            };
        }
        table.insert(path[path.len() - 1].clone(), parsed);
    }
    Ok(())
}

/// Resolves a path from a config file against the file's directory.
pub fn resolve(base_dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir.join(p)
    }
}

/// A secret given inline (`key = "..."`) or as a file (`key_file = "..."`).
pub struct SecretSource<'a> {
    /// The TOML key of the inline form, e.g. `jwt.key` (for messages).
    pub name: &'a str,
    pub inline: Option<&'a str>,
    pub file: Option<&'a str>,
}

impl SecretSource<'_> {
    /// Reads the secret. Both forms set is an error naming both (R-SEC-1); a file loses exactly one
    /// trailing newline. `Ok(None)` when neither is set.
    pub fn read(&self, base_dir: &Path) -> Result<Option<SecretString>, String> {
        match (self.inline, self.file) {
            (Some(_), Some(_)) => Err(format!(
                "{name} and {name}_file are both set; give the secret one way only",
                name = self.name
            )),
            (Some(v), None) => Ok(Some(SecretString::from(v.to_owned()))),
            (None, Some(f)) => {
                let path = resolve(base_dir, f);
                let mut text = std::fs::read_to_string(&path).map_err(|e| {
                    format!("{}_file: cannot read {}: {e}", self.name, path.display())
                })?;
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                Ok(Some(SecretString::from(text)))
            }
            (None, None) => Ok(None),
        }
    }

    /// Like [`Self::read`] but the secret is required.
    pub fn require(&self, base_dir: &Path) -> Result<SecretString, String> {
        self.read(base_dir)?.ok_or_else(|| {
            format!(
                "{name} is required (set {name} or {name}_file)",
                name = self.name
            )
        })
    }
}

/// Minimum HMAC key length: RFC 7518 section 3.2 requires a key at least as long as the hash (256 bits).
pub const MIN_SYMMETRIC_KEY_BYTES: usize = 32;

/// 32 random bytes almost always hold close to 30 distinct values; fewer than this means the key was not
/// drawn at random (a repeated character, a short word padded out), which RFC 8725 section 3.5 forbids.
const MIN_DISTINCT_KEY_BYTES: usize = 16;

/// Decodes a symmetric key given as base64 (standard or URL-safe, padding optional) and refuses weak
/// material: fewer than 32 bytes, or visibly non-random bytes (SECURITY.md R-SEC-2).
pub fn symmetric_key(name: &str, secret: &SecretString) -> Result<SecretBox<Vec<u8>>, String> {
    let text = secret.expose_secret().trim();
    let decoded = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ]
    .iter()
    .find_map(|engine| engine.decode(text).ok())
    .ok_or_else(|| {
        format!("{name}: must be base64 of at least {MIN_SYMMETRIC_KEY_BYTES} random bytes (e.g. `openssl rand -base64 32`)")
    })?;
    if decoded.len() < MIN_SYMMETRIC_KEY_BYTES {
        return Err(format!(
            "{name}: key is {} bytes, at least {MIN_SYMMETRIC_KEY_BYTES} random bytes are required",
            decoded.len()
        ));
    }
    let mut seen = [false; 256];
    let distinct = decoded
        .iter()
        .filter(|b| !std::mem::replace(&mut seen[usize::from(**b)], true))
        .count();
    if distinct < MIN_DISTINCT_KEY_BYTES {
        return Err(format!(
            "{name}: key material is not random (only {distinct} distinct byte values); generate it with `openssl rand -base64 32`"
        ));
    }
    Ok(SecretBox::new(Box::new(decoded)))
}

/// Minimum admin-token length: 32 characters of a random token leave no room for guessing.
pub const MIN_TOKEN_CHARS: usize = 32;

/// Checks an opaque bearer token (admin token): at least 32 printable, non-space ASCII characters.
pub fn opaque_token(name: &str, secret: &SecretString) -> Result<(), String> {
    let t = secret.expose_secret();
    if t.len() < MIN_TOKEN_CHARS || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{name}: must be at least {MIN_TOKEN_CHARS} printable ASCII characters without spaces"
        ));
    }
    Ok(())
}

/// `log.format`: JSON in production, human-readable in development.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl LogFormat {
    /// Parses `log.format`.
    pub fn parse(v: &str) -> Result<Self, String> {
        match v {
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            other => Err(format!("log.format: `{other}` is not one of pretty, json")),
        }
    }
}

/// Installs the global tracing subscriber. `RUST_LOG` overrides `filter`. Lines are written by a
/// dedicated thread (tracing-appender's non-blocking writer): a slow stdout cannot stall requests,
/// and if the writer falls far behind, lines are dropped rather than queued without bound. Keep the
/// returned guard alive for the life of the process; dropping it flushes. Records of the `log`
/// crate (pingora's) become tracing events too.
pub fn init_tracing(
    format: LogFormat,
    filter: &str,
) -> tracing_appender::non_blocking::WorkerGuard {
    init_tracing_with(format, filter, None)
}

/// `init_tracing`, with `log` records going through `bridge` (which decides what reaches tracing)
/// instead of straight to tracing.
pub fn init_tracing_with(
    format: LogFormat,
    filter: &str,
    bridge: Option<Box<dyn log::Log>>,
) -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking(std::io::stdout());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let subscriber: Box<dyn tracing::Subscriber + Send + Sync> = match format {
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
        LogFormat::Pretty => Box::new(builder.finish()),
    };
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        use tracing_log::AsLog as _;
        let max = tracing::level_filters::LevelFilter::current().as_log();
        // Only the first installation in a process takes; later ones change nothing.
        let _installed = match bridge {
            Some(bridge) => log::set_boxed_logger(bridge)
                .map(|()| log::set_max_level(max))
                .is_ok(),
            None => tracing_log::LogTracer::builder()
                .with_max_level(max)
                .init()
                .is_ok(),
        };
    }
    guard
}

/// Where a local client reaches a listener: a wildcard bind (`0.0.0.0`, `::`) is reached on loopback.
pub fn reachable(listen: std::net::SocketAddr) -> std::net::SocketAddr {
    if listen.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], listen.port()))
    } else {
        listen
    }
}

/// How long a `healthcheck` probe waits before calling the service unhealthy.
pub const HEALTHCHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The `healthcheck` subcommand of both binaries (container `HEALTHCHECK`): `GET path` on the running
/// service's admin listener. `Ok`/`Err` carry the one line to print; exit 0 or 1 follows from it.
pub async fn healthcheck(admin: std::net::SocketAddr, path: &str) -> Result<String, String> {
    let addr = reachable(admin);
    let client = reqwest::Client::builder()
        .timeout(HEALTHCHECK_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("unhealthy: cannot build a client ({e})"))?;
    let resp = client
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .map_err(|e| format!("unhealthy: {addr}{path} unreachable ({})", e.without_url()))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if status.is_success() {
        Ok(format!("healthy: {path} answered {status}"))
    } else {
        Err(format!(
            "unhealthy: {path} answered {status}: {}",
            body.trim()
        ))
    }
}

/// The process environment as a map, for `main` (tests build their own map).
pub fn process_env() -> HashMap<String, String> {
    std::env::vars().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        name: String,
        #[serde(default)]
        section: Section,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Section {
        #[serde(default)]
        count: u32,
        #[serde(default)]
        flag: bool,
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn env_overrides_win_over_the_file_and_are_typed() {
        let doc: Doc = parse_str(
            "name = \"a\"\n[section]\ncount = 1\n",
            &env(&[
                ("APP__SECTION__COUNT", "7"),
                ("APP__SECTION__FLAG", "true"),
                ("OTHER__NAME", "x"),
            ]),
            "APP",
        )
        .unwrap();
        assert_eq!(doc.section.count, 7);
        assert!(doc.section.flag);
        assert_eq!(doc.name, "a");
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        let err = parse_str::<Doc>("name = \"a\"\nnmae = 1\n", &HashMap::new(), "APP").unwrap_err();
        assert!(err.contains("nmae"), "{err}");
        let err = parse_str::<Doc>(
            "name = \"a\"\n",
            &env(&[("APP__SECTION__CUONT", "1")]),
            "APP",
        )
        .unwrap_err();
        assert!(err.contains("cuont"), "{err}");
    }

    #[test]
    fn secret_given_inline_and_as_file_is_refused_naming_both() {
        let src = SecretSource {
            name: "jwt.key",
            inline: Some("x"),
            file: Some("/nonexistent"),
        };
        let err = src.read(Path::new(".")).unwrap_err();
        assert!(err.contains("jwt.key and jwt.key_file"), "{err}");
    }

    #[test]
    fn secret_file_loses_exactly_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s"), "value\n\n").unwrap();
        let src = SecretSource {
            name: "s",
            inline: None,
            file: Some("s"),
        };
        let got = src.require(dir.path()).unwrap();
        assert_eq!(got.expose_secret(), "value\n");
    }

    #[test]
    fn weak_symmetric_keys_are_refused() {
        let short = SecretString::from(base64::engine::general_purpose::STANDARD.encode([7u8; 16]));
        assert!(symmetric_key("k", &short).unwrap_err().contains("16 bytes"));
        let repeated =
            SecretString::from(base64::engine::general_purpose::STANDARD.encode([b'a'; 48]));
        assert!(symmetric_key("k", &repeated)
            .unwrap_err()
            .contains("not random"));
        let password = SecretString::from("correct horse battery staple".to_owned());
        assert!(symmetric_key("k", &password).is_err());
        let good: Vec<u8> = (0u8..32)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect();
        let good =
            SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(good));
        assert_eq!(symmetric_key("k", &good).unwrap().expose_secret().len(), 32);
    }

    #[test]
    fn a_wildcard_bind_is_reached_on_loopback() {
        assert_eq!(
            reachable("0.0.0.0:9901".parse().unwrap()).to_string(),
            "127.0.0.1:9901"
        );
        assert_eq!(
            reachable("[::]:9901".parse().unwrap()).to_string(),
            "127.0.0.1:9901"
        );
        assert_eq!(
            reachable("127.0.0.2:9901".parse().unwrap()).to_string(),
            "127.0.0.2:9901"
        );
    }

    #[test]
    fn short_or_spaced_admin_tokens_are_refused() {
        assert!(opaque_token("t", &SecretString::from("short".to_owned())).is_err());
        assert!(opaque_token("t", &SecretString::from("a b".repeat(20))).is_err());
        assert!(opaque_token("t", &SecretString::from("x".repeat(40))).is_ok());
    }
}
