//! External token issuers (SECURITY.md R-JWT-9): tokens minted by an identity provider that a platform
//! team already runs, verified locally against the issuer's JWKS.
//!
//! - Keys come from a JWKS file (loaded at start-up; a bad file is a config error) or an `https://` URL
//!   fetched with a 5 s timeout, a 64 KiB cap and no redirects, cached for `Cache-Control: max-age`
//!   clamped to [5 min, 24 h]. A stale set is refreshed in the background and kept while the issuer is
//!   down; a `kid` not in the set triggers at most one refetch per issuer per 60 s.
//! - Only RS256, PS256, ES256 and EdDSA (configurable subset); RSA keys under 2048 bits are refused. A
//!   key is chosen by `kid` among this issuer's keys only; `jku`, `x5u`, `jwk` and `x5c` are ignored,
//!   `crit` is refused.
//! - Claims are typed: `iss` exact, `aud` one of the configured audiences, `sub`, `jti`, integer `exp`
//!   and `iat` (and `nbf` if present), lifetime at most `max_lifetime_seconds`.
//!
//! Which verifier a token goes to is decided by its `iss` (`Verifier::verify`): the proxy's own issuer
//! goes to `TokenService` with the own keys, a configured external `iss` to that issuer's keys, anything
//! else is refused. Since the issuer names differ (checked at start-up) and each path only uses its own
//! keys, own and external tokens can never be accepted in each other's place (RFC 8725 section 3.12).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::clock::{SharedClock, UnixMillis, UnixSecs};
use crate::raw::RawIssuer;
use crate::tokens::own::{
    check_times, decode_claims, AccessClaims, AuthError, MAX_TOKEN_LIFETIME_SECS,
};

/// JWKS fetch limits (R-JWT-9).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
pub const MIN_CACHE: Duration = Duration::from_secs(300);
pub const MAX_CACHE: Duration = Duration::from_secs(86_400);
/// An unknown `kid` refetches at most this often per issuer.
pub const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(60);
/// While no key set was ever loaded, fetches are retried at most this often.
const INITIAL_RETRY: Duration = Duration::from_secs(5);
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// A file, read once when the config is validated.
    File { path: PathBuf, keys: Arc<KeySet> },
    Url {
        url: reqwest::Url,
        /// Extra trusted CA certificates (PEM), for an issuer behind a private CA.
        ca_pem: Option<Vec<u8>>,
    },
}

impl JwksSource {
    /// A JWKS file, read and parsed now.
    pub fn file(path: PathBuf, algorithms: &[Algorithm]) -> Result<Self, String> {
        let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
        let keys = Arc::new(parse_jwks(&bytes, algorithms)?);
        Ok(Self::File { path, keys })
    }
}

impl JwksSource {
    /// Validates `jwks` (and `jwks_ca_file`): an https URL without credentials, or a file that is
    /// read and parsed now (so a bad file is a start-up error, and it is read once).
    fn from_raw(
        key: &str,
        raw: &RawIssuer,
        algorithms: &[Algorithm],
        base_dir: &Path,
        problems: &mut Vec<String>,
    ) -> Option<Self> {
        if raw.jwks.starts_with("https://") {
            return Self::url_from_raw(key, raw, base_dir, problems);
        }
        if raw.jwks.contains("://") {
            problems.push(format!(
                "{key}.jwks: only https:// URLs or file paths are accepted (got `{}`)",
                url_for_errors(&raw.jwks)
            ));
            return None;
        }
        if raw.jwks_ca_file.is_some() {
            problems.push(format!(
                "{key}.jwks_ca_file: only applies to an https jwks URL"
            ));
        }
        let path = base_dir.join(&raw.jwks);
        let shown = path.display().to_string();
        let bytes = std::fs::read(&path)
            .map_err(|e| problems.push(format!("{key}.jwks: cannot read `{shown}`: {e}")))
            .ok()?;
        let set = parse_jwks(&bytes, algorithms)
            .map_err(|e| problems.push(format!("{key}.jwks: `{shown}`: {e}")))
            .ok()?;
        if !set.rejected.is_empty() {
            problems.extend(
                set.rejected
                    .iter()
                    .map(|r| format!("{key}.jwks: `{shown}`: {r}")),
            );
            return None;
        }
        if set.keys.is_empty() {
            problems.push(format!("{key}.jwks: `{shown}` holds no keys"));
            return None;
        }
        Some(Self::File {
            path,
            keys: Arc::new(set),
        })
    }

    fn url_from_raw(
        key: &str,
        raw: &RawIssuer,
        base_dir: &Path,
        problems: &mut Vec<String>,
    ) -> Option<Self> {
        let ca_pem = raw.jwks_ca_file.as_ref().and_then(|f| {
            std::fs::read(base_dir.join(f))
                .map_err(|e| problems.push(format!("{key}.jwks_ca_file: cannot read `{f}`: {e}")))
                .ok()
        });
        match reqwest::Url::parse(&raw.jwks) {
            Ok(url)
                if url.host_str().is_some()
                    && url.username().is_empty()
                    && url.password().is_none() =>
            {
                Some(Self::Url { url, ca_pem })
            }
            _ => {
                problems.push(format!(
                    "{key}.jwks: `{}` is not a valid https URL without credentials",
                    url_for_errors(&raw.jwks)
                ));
                None
            }
        }
    }
}

/// A validated `[[issuers]]` entry.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    pub name: String,
    pub iss: String,
    pub source: JwksSource,
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub rfc9068: bool,
    pub max_lifetime: i64,
}

impl IssuerConfig {
    /// Checks one `[[issuers]]` entry; every problem names its key.
    pub fn from_raw(i: usize, raw: &RawIssuer, base_dir: &Path) -> Result<Self, Vec<String>> {
        let key = format!("issuers[{i}]");
        let mut problems = Vec::new();
        if raw.name.is_empty()
            || raw.name.len() > 32
            || !raw
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            problems.push(format!(
                "{key}.name: use 1 to 32 letters, digits, `-` and `_` (it is a metric label and a store key)"
            ));
        }
        if raw.iss.is_empty() {
            problems.push(format!("{key}.iss: must not be empty"));
        }
        if raw.audiences.is_empty() || raw.audiences.iter().any(String::is_empty) {
            problems.push(format!(
                "{key}.audiences: at least one non-empty audience is required"
            ));
        }
        let algorithms: Vec<Algorithm> = raw
            .algorithms
            .iter()
            .filter_map(|alg| {
                external_algorithm(alg)
                    .map_err(|e| problems.push(format!("{key}.algorithms: {e}")))
                    .ok()
            })
            .collect();
        if raw.algorithms.is_empty() {
            problems.push(format!(
                "{key}.algorithms: at least one algorithm is required"
            ));
        }
        let source = JwksSource::from_raw(&key, raw, &algorithms, base_dir, &mut problems);
        let max_lifetime = i64::try_from(raw.max_lifetime_seconds)
            .ok()
            .filter(|l| (1..=MAX_TOKEN_LIFETIME_SECS).contains(l));
        if max_lifetime.is_none() {
            problems.push(format!(
                "{key}.max_lifetime_seconds: must be between 1 and {MAX_TOKEN_LIFETIME_SECS}"
            ));
        }
        let config = source.zip(max_lifetime).map(|(source, max_lifetime)| Self {
            name: raw.name.clone(),
            iss: raw.iss.clone(),
            source,
            audiences: raw.audiences.clone(),
            algorithms,
            rfc9068: raw.rfc9068,
            max_lifetime,
        });
        match config {
            Some(c) if problems.is_empty() => Ok(c),
            _ => Err(problems),
        }
    }
}

/// The asymmetric algorithms an external issuer may use.
fn external_algorithm(name: &str) -> Result<Algorithm, String> {
    match name {
        "RS256" => Ok(Algorithm::RS256),
        "PS256" => Ok(Algorithm::PS256),
        "ES256" => Ok(Algorithm::ES256),
        "EdDSA" => Ok(Algorithm::EdDSA),
        other => Err(format!(
            "`{other}` is not allowed; use RS256, PS256, ES256 or EdDSA (never HS*, RFC 8725 section 3.1)"
        )),
    }
}

/// Validates `[[issuers]]`: each entry, plus names and `iss` values distinct from each other and
/// from the proxy's own issuer (`own_iss`), so own and external tokens can never stand in for each
/// other.
pub(crate) fn issuers_from_raw(
    raw: &[RawIssuer],
    own_iss: &str,
    base_dir: &Path,
    p: &mut settings::Problems,
) -> Vec<IssuerConfig> {
    let mut names = std::collections::HashSet::new();
    for (i, issuer) in raw.iter().enumerate() {
        if issuer.iss == own_iss {
            p.push(format!("issuers[{i}].iss: must differ from jwt.issuer, so own and external tokens can never stand in for each other"));
        }
        if !names.insert(&issuer.name) {
            p.push(format!(
                "issuers[{i}].name: duplicate issuer name `{}`",
                issuer.name
            ));
        }
        if raw[..i].iter().any(|other| other.iss == issuer.iss) {
            p.push(format!(
                "issuers[{i}].iss: duplicate issuer `{}`",
                issuer.iss
            ));
        }
    }
    raw.iter()
        .enumerate()
        .filter_map(|(i, issuer)| {
            IssuerConfig::from_raw(i, issuer, base_dir)
                .map_err(|errors| errors.into_iter().for_each(|e| p.push(e)))
                .ok()
        })
        .collect()
}

/// One usable key of an issuer.
struct ExtKey {
    kid: Option<String>,
    /// The key type's algorithms (RSA: RS256/PS256; P-256: ES256; Ed25519: EdDSA), narrowed by the
    /// JWK's `alg` if it has one and by the issuer's allowed list.
    algorithms: Vec<Algorithm>,
    decoding: DecodingKey,
}

/// A parsed JWKS: the keys that can be used and why the others were refused.
pub struct KeySet {
    keys: Vec<ExtKey>,
    pub rejected: Vec<String>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("keys", &self.keys.len())
            .field("rejected", &self.rejected)
            .finish()
    }
}

impl KeySet {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key for a token's `kid`: an exact match, or the only key when the token names none.
    fn find(&self, kid: Option<&str>) -> Option<&ExtKey> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }
}

#[derive(Deserialize)]
struct JwksDoc {
    keys: Vec<serde_json::Value>,
}

/// Parses a JWKS document, keeping the keys usable with `allowed` algorithms. A document that is not
/// a JWKS is an error; a key that is refused (weak, unknown type, not for signing) is listed in
/// `rejected` and skipped.
pub fn parse_jwks(bytes: &[u8], allowed: &[Algorithm]) -> Result<KeySet, String> {
    let doc: JwksDoc =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut set = KeySet {
        keys: Vec::new(),
        rejected: Vec::new(),
    };
    for (i, value) in doc.keys.into_iter().enumerate() {
        let label = value
            .get("kid")
            .and_then(|k| k.as_str())
            .map_or_else(|| format!("key {i}"), |k| format!("key `{k}`"));
        match usable_key(value, allowed) {
            Ok(Some(key)) => set.keys.push(key),
            Ok(None) => {}
            Err(e) => set.rejected.push(format!("{label} refused: {e}")),
        }
    }
    Ok(set)
}

/// `Ok(None)` for keys that are fine but not for us (encryption keys, algorithms not allowed here).
/// Parsing is `jsonwebtoken::jwk`; the checks here are the ones it does not make (R-JWT-9: key sizes,
/// curves, `alg` against the key type).
fn usable_key(value: serde_json::Value, allowed: &[Algorithm]) -> Result<Option<ExtKey>, String> {
    // Named before parsing: an unknown type only fails jwk's untagged parameter enum.
    let kty = value
        .get("kty")
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_owned();
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| match kty.as_str() {
        "RSA" | "EC" | "OKP" => format!("malformed: {e}"),
        other => format!("key type `{other}` is not supported"),
    })?;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return Ok(None);
    }
    let family = key_family(&jwk.algorithm)?;
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| format!("invalid key: {e}"))?;
    let declared = match jwk.common.key_algorithm {
        None => None,
        Some(alg) => Some(
            alg.to_string()
                .parse::<Algorithm>()
                .ok()
                .filter(|a| family.contains(a))
                .ok_or_else(|| format!("`alg` {alg} does not fit the key type"))?,
        ),
    };
    let algorithms: Vec<Algorithm> = family
        .into_iter()
        .filter(|a| allowed.contains(a) && declared.is_none_or(|d| d == *a))
        .collect();
    if algorithms.is_empty() {
        return Ok(None);
    }
    Ok(Some(ExtKey {
        kid: jwk.common.key_id,
        algorithms,
        decoding,
    }))
}

/// The algorithms a key can verify, after the checks jsonwebtoken leaves to us: RSA of 2048 to 8192
/// bits, P-256 with 32-byte coordinates, Ed25519 on the curve. Anything else is refused.
fn key_family(params: &AlgorithmParameters) -> Result<Vec<Algorithm>, String> {
    let b64 = |s: &str, what: &str| -> Result<Vec<u8>, String> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| format!("`{what}` is not base64url"))
    };
    match params {
        AlgorithmParameters::RSA(rsa) => {
            let n = b64(&rsa.n, "n")?;
            let e = b64(&rsa.e, "e")?;
            let bits = n
                .iter()
                .position(|b| *b != 0)
                .map_or(0, |i| (n.len() - i) * 8 - n[i].leading_zeros() as usize);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA key of {bits} bits (at least {MIN_RSA_BITS} are required)"
                ));
            }
            if bits > MAX_RSA_BITS || e.len() > 8 {
                return Err(format!(
                    "RSA key of {bits} bits or its exponent is too large"
                ));
            }
            Ok(vec![Algorithm::RS256, Algorithm::PS256])
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            if b64(&ec.x, "x")?.len() != 32 || b64(&ec.y, "y")?.len() != 32 {
                return Err("P-256 coordinates must be 32 bytes".into());
            }
            Ok(vec![Algorithm::ES256])
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            let bytes: [u8; 32] = b64(&okp.x, "x")?
                .as_slice()
                .try_into()
                .map_err(|_| "Ed25519 `x` must be 32 bytes".to_owned())?;
            ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map_err(|_| "Ed25519 `x` is not a curve point".to_owned())?;
            Ok(vec![Algorithm::EdDSA])
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            Err(format!("key type `EC/{:?}` is not supported", ec.curve))
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            Err(format!("key type `OKP/{:?}` is not supported", okp.curve))
        }
        AlgorithmParameters::OctetKey(_) => Err("key type `oct` is not supported".into()),
    }
}

/// How long a fetched set may be used: `Cache-Control: max-age` clamped to [5 min, 24 h].
pub fn cache_lifetime(cache_control: Option<&str>) -> Duration {
    let max_age = cache_control.and_then(|cc| {
        cc.split(',').find_map(|d| {
            let (k, v) = d.trim().split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("max-age")
                .then(|| v.trim().trim_matches('"').parse::<u64>().ok())?
        })
    });
    max_age
        .map(Duration::from_secs)
        .unwrap_or(MIN_CACHE)
        .clamp(MIN_CACHE, MAX_CACHE)
}

/// The only header members looked at on an external token; the others (`jku`, `x5u`, `jwk`, `x5c`,
/// `x5t`, ...) are ignored. A duplicate of these is an error.
#[derive(Deserialize)]
struct ExternalHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct ExternalClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    iat: i64,
    #[serde(default)]
    nbf: Option<i64>,
    jti: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    roles: Option<Vec<String>>,
}

/// Why an external token could not be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyFailure {
    Invalid(AuthError),
    /// The issuer's keys have never been loaded (its JWKS endpoint is down): fail closed with 503.
    KeysUnavailable,
}

impl From<AuthError> for VerifyFailure {
    fn from(e: AuthError) -> Self {
        Self::Invalid(e)
    }
}

/// Mutable state of an issuer's key set.
struct Cached {
    keys: Option<Arc<KeySet>>,
    fresh_until: UnixMillis,
    last_attempt: Option<UnixMillis>,
    /// Last refetch caused by an unknown `kid` (rate-limited on its own, R-JWT-9).
    last_kid_refetch: Option<UnixMillis>,
}

/// One external issuer at run time.
pub struct Issuer {
    pub config: IssuerConfig,
    validations: Vec<(Algorithm, Validation)>,
    cached: RwLock<Cached>,
    fetch_lock: tokio::sync::Mutex<()>,
    refreshing: AtomicBool,
    client: Option<reqwest::Client>,
    fetches: prometheus::IntCounterVec,
    clock: SharedClock,
}

impl Issuer {
    pub fn new(
        config: IssuerConfig,
        fetches: prometheus::IntCounterVec,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        let validations = config
            .algorithms
            .iter()
            .map(|alg| {
                let mut v = Validation::new(*alg);
                v.set_issuer(&[&config.iss]);
                v.set_audience(&config.audiences);
                v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                v.validate_exp = false;
                v.validate_nbf = false;
                (*alg, v)
            })
            .collect();
        let (client, keys) = match &config.source {
            JwksSource::File { keys, .. } => (None, Some(Arc::clone(keys))),
            JwksSource::Url { ca_pem, .. } => {
                let mut builder = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .https_only(true)
                    .timeout(FETCH_TIMEOUT)
                    .connect_timeout(FETCH_TIMEOUT)
                    .user_agent("edge-proxy-jwks");
                if let Some(pem) = ca_pem {
                    for cert in reqwest::Certificate::from_pem_bundle(pem)? {
                        builder = builder.add_root_certificate(cert);
                    }
                }
                (Some(builder.build()?), None)
            }
        };
        Ok(Self {
            config,
            validations,
            cached: RwLock::new(Cached {
                keys,
                fresh_until: UnixMillis(i64::MAX),
                last_attempt: None,
                last_kid_refetch: None,
            }),
            fetch_lock: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
            client,
            fetches,
            clock,
        })
    }

    /// Time since `t` on the issuer's clock.
    fn since(&self, t: UnixMillis) -> Duration {
        Duration::from_millis(u64::try_from(self.clock.now_ms().get() - t.get()).unwrap_or(0))
    }

    fn snapshot(&self) -> (Option<Arc<KeySet>>, bool, Option<UnixMillis>) {
        let c = self.cached.read();
        (
            c.keys.clone(),
            self.clock.now_ms() >= c.fresh_until,
            c.last_attempt,
        )
    }

    /// Fetches the JWKS once (callers decide when). Keeps the old set on failure.
    async fn fetch(&self) {
        let (Some(client), JwksSource::Url { url, .. }) = (&self.client, &self.config.source)
        else {
            return;
        };
        let started = self.clock.now_ms();
        self.cached.write().last_attempt = Some(started);
        let result = fetch_jwks(client, url.clone(), &self.config.algorithms).await;
        let label = match &result {
            Ok(_) => "ok",
            Err(_) => "error",
        };
        self.fetches
            .with_label_values(&[&self.config.name, label])
            .inc();
        match result {
            Ok((set, lifetime)) => {
                for r in &set.rejected {
                    tracing::warn!(issuer = %self.config.name, "JWKS {r}");
                }
                tracing::info!(issuer = %self.config.name, keys = set.len(), cache_seconds = lifetime.as_secs(), "JWKS fetched");
                let mut c = self.cached.write();
                c.keys = Some(Arc::new(set));
                c.fresh_until = started.after(lifetime);
            }
            Err(error) => {
                tracing::warn!(issuer = %self.config.name, %error, "JWKS fetch failed; keeping the previous keys");
            }
        }
    }

    /// Fetches unless another caller fetched within `min_interval` (coalesces concurrent callers).
    async fn fetch_at_most_every(&self, min_interval: Duration) {
        let _guard = self.fetch_lock.lock().await;
        let (_, _, last) = self.snapshot();
        if last.is_some_and(|t| self.since(t) < min_interval) {
            return;
        }
        self.fetch().await;
    }

    /// A refetch for a `kid` not in the set: at most one per `UNKNOWN_KID_REFETCH`, however many
    /// invented kids arrive.
    async fn refetch_for_unknown_kid(&self) {
        let _guard = self.fetch_lock.lock().await;
        {
            let now = self.clock.now_ms();
            let mut c = self.cached.write();
            if c.last_kid_refetch
                .is_some_and(|t| self.since(t) < UNKNOWN_KID_REFETCH)
            {
                return;
            }
            c.last_kid_refetch = Some(now);
        }
        self.fetch().await;
    }

    /// Keys to verify with; loads them on first use and refreshes a stale set in the background.
    async fn keys(self: &Arc<Self>) -> Option<Arc<KeySet>> {
        let (keys, stale, _) = self.snapshot();
        match keys {
            None => {
                self.fetch_at_most_every(INITIAL_RETRY).await;
                self.snapshot().0
            }
            Some(keys) => {
                if stale && !self.refreshing.swap(true, Ordering::AcqRel) {
                    let this = Arc::clone(self);
                    tokio::spawn(async move {
                        this.fetch_at_most_every(UNKNOWN_KID_REFETCH).await;
                        this.refreshing.store(false, Ordering::Release);
                    });
                }
                Some(keys)
            }
        }
    }

    /// Verifies a token that names this issuer. Revocation is checked separately (denylist).
    pub async fn verify(
        self: &Arc<Self>,
        token: &str,
        header_json: &[u8],
        now: UnixSecs,
        leeway: i64,
    ) -> Result<AccessClaims, VerifyFailure> {
        let header: ExternalHeader =
            serde_json::from_slice(header_json).map_err(|_| AuthError::BadHeader)?;
        let (alg, validation) = self.accepted_header(&header)?;
        let kid = header.kid.as_deref();
        let mut keys = self.keys().await.ok_or(VerifyFailure::KeysUnavailable)?;
        if keys.find(kid).is_none() && matches!(self.config.source, JwksSource::Url { .. }) {
            // A rotated-in key: refetch, but at most once a minute however many invented kids arrive.
            self.refetch_for_unknown_kid().await;
            if let (Some(fresh), _, _) = self.snapshot() {
                keys = fresh;
            }
        }
        let key = keys.find(kid).ok_or(AuthError::BadHeader)?;
        if !key.algorithms.contains(&alg) {
            return Err(AuthError::BadHeader.into());
        }
        let c: ExternalClaims = decode_claims(token, &key.decoding, validation)?;
        let nbf = c.nbf.unwrap_or(c.iat);
        check_times(
            c.iat,
            nbf,
            c.exp,
            now.get(),
            leeway,
            self.config.max_lifetime,
        )?;
        Ok(self.claims(c)?)
    }

    /// The header checks: no `crit`, the RFC 9068 `typ` when required, an allowed `alg` and a
    /// bounded `kid`. Returns the algorithm and its validation.
    fn accepted_header(
        &self,
        header: &ExternalHeader,
    ) -> Result<(Algorithm, &Validation), AuthError> {
        if header.crit.is_some() {
            return Err(AuthError::BadHeader);
        }
        let at_jwt = |t: &str| {
            t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
        };
        if self.config.rfc9068 && !header.typ.as_deref().is_some_and(at_jwt) {
            return Err(AuthError::BadHeader);
        }
        if header.kid.as_deref().is_some_and(|k| k.len() > 256) {
            return Err(AuthError::BadHeader);
        }
        let alg: Algorithm = header.alg.parse().map_err(|_| AuthError::BadHeader)?;
        self.validations
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(a, v)| (*a, v))
            .ok_or(AuthError::BadHeader)
    }

    /// The verified external claims as the proxy's claim set: `iss` exact, `sub` and `jti` present,
    /// one configured audience.
    fn claims(&self, c: ExternalClaims) -> Result<AccessClaims, AuthError> {
        if c.iss != self.config.iss || c.sub.is_empty() || c.jti.is_empty() {
            return Err(AuthError::BadClaims);
        }
        let aud = match c.aud {
            Audience::One(a) => Some(a),
            Audience::Many(list) => list.into_iter().find(|a| self.config.audiences.contains(a)),
        };
        Ok(AccessClaims {
            iss: c.iss,
            aud: aud.ok_or(AuthError::BadClaims)?,
            sub: c.sub,
            email: c.email.unwrap_or_default(),
            roles: c.roles.unwrap_or_default(),
            iat: c.iat,
            nbf: c.nbf.unwrap_or(c.iat),
            exp: c.exp,
            jti: c.jti,
        })
    }
}

/// One bounded JWKS fetch: https only, no redirects, 5 s, at most 64 KiB.
async fn fetch_jwks(
    client: &reqwest::Client,
    url: reqwest::Url,
    allowed: &[Algorithm],
) -> Result<(KeySet, Duration), String> {
    let mut response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("status {}", response.status()));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
    {
        return Err(format!("body larger than {MAX_JWKS_BYTES} bytes"));
    }
    let lifetime = cache_lifetime(
        response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
    );
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!("body larger than {MAX_JWKS_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    let set = parse_jwks(&body, allowed)?;
    if set.is_empty() {
        return Err("no usable keys in the JWKS".into());
    }
    Ok((set, lifetime))
}

/// A URL as config errors may show it: scheme and host only, so credentials, paths and query
/// parameters (which may hold secrets) never reach a log.
fn url_for_errors(raw: &str) -> String {
    match reqwest::Url::parse(raw) {
        Ok(url) => format!("{}://{}", url.scheme(), url.host_str().unwrap_or("")),
        Err(_) => {
            let scheme = raw
                .split_once("://")
                .map(|(s, _)| s)
                .filter(|s| s.len() <= 16 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
                .unwrap_or("?");
            format!("{scheme}://…")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_issuer(jwks: &str) -> crate::raw::RawIssuer {
        toml::from_str(&format!(
            "name = \"idp\"\niss = \"https://idp.example\"\njwks = \"{jwks}\"\naudiences = [\"api\"]"
        ))
        .unwrap()
    }

    #[test]
    fn a_jwks_url_with_credentials_is_refused_without_echoing_them() {
        for jwks in [
            "https://alice:hunter2@idp.example/keys?token=s3cr3t", // pragma: allowlist secret
            "https://alice@idp.example/keys",
            "http://alice:hunter2@idp.example/keys", // pragma: allowlist secret
            "https://alice:hunter2@[::1/keys",       // pragma: allowlist secret
        ] {
            let problems = IssuerConfig::from_raw(0, &raw_issuer(jwks), Path::new("."))
                .err()
                .unwrap_or_else(|| panic!("{jwks} was accepted"));
            let text = problems.join("; ");
            assert!(text.contains("issuers[0].jwks"), "{text}");
            for secret in ["alice", "hunter2", "s3cr3t", "/keys"] {
                assert!(!text.contains(secret), "{jwks}: {text}");
            }
        }
        let problems = IssuerConfig::from_raw(
            0,
            &raw_issuer("https://alice:hunter2@idp.example/keys"), // pragma: allowlist secret
            Path::new("."),
        )
        .err()
        .unwrap();
        assert!(
            problems.join("; ").contains("`https://idp.example`"),
            "{problems:?}"
        );
    }

    #[test]
    fn cache_control_is_clamped_to_five_minutes_and_a_day() {
        assert_eq!(cache_lifetime(None), MIN_CACHE);
        assert_eq!(cache_lifetime(Some("no-store")), MIN_CACHE);
        assert_eq!(cache_lifetime(Some("max-age=10")), MIN_CACHE);
        assert_eq!(
            cache_lifetime(Some("public, max-age=3600")),
            Duration::from_secs(3600)
        );
        assert_eq!(cache_lifetime(Some("max-age=9999999")), MAX_CACHE);
        assert_eq!(cache_lifetime(Some("max-age=-5")), MIN_CACHE);
    }

    fn rsa_jwk(bits: usize) -> serde_json::Value {
        // Only the modulus length matters for the size check; a modulus with its top bit set.
        let mut n = vec![0xC5u8; bits / 8];
        n[bits / 8 - 1] |= 1;
        serde_json::json!({
            "kty": "RSA", "kid": format!("rsa{bits}"),
            "n": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&n),
            "e": "AQAB",
        })
    }

    /// RFC 8032 section 7.1 TEST 1's public key (published, not a secret).
    const RFC8032_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"; // pragma: allowlist secret

    #[test]
    fn weak_rsa_and_unknown_keys_are_refused_and_others_kept() {
        let doc = serde_json::json!({ "keys": [
            rsa_jwk(1024),
            rsa_jwk(2048),
            {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc",
             "x": RFC8032_X},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed",
             "x": RFC8032_X},
            {"kty": "OKP", "crv": "Ed25519", "kid": "mismatch", "alg": "RS256",
             "x": RFC8032_X},
        ]});
        let set = parse_jwks(
            doc.to_string().as_bytes(),
            &[Algorithm::RS256, Algorithm::EdDSA],
        )
        .unwrap();
        let kids: Vec<_> = set.keys.iter().filter_map(|k| k.kid.clone()).collect();
        assert_eq!(kids, ["rsa2048", "ed"]);
        assert_eq!(set.rejected.len(), 3, "{:?}", set.rejected);
        assert!(set.rejected[0].contains("1024 bits"), "{:?}", set.rejected);
        assert!(set.rejected[1].contains("`oct`"), "{:?}", set.rejected);
        assert!(
            set.rejected[2].contains("does not fit"),
            "{:?}",
            set.rejected
        );
        assert!(parse_jwks(b"{\"keys\": 5}", &[Algorithm::RS256]).is_err());
        // A key without kid is used only when it is the only one.
        assert!(set.find(None).is_none());
        assert!(set.find(Some("ed")).is_some());
        assert!(set.find(Some("../../etc/passwd")).is_none());
    }
}
