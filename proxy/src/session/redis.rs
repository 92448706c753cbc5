//! `RedisSessionStore`: the allowlist shared by every proxy replica (R-JWT-3..6).
//!
//! Keys (all under the configured prefix):
//! - `jwt:jti:<jti>` = `<sub>`, expiring at the token's `exp` (`EXAT`): the allowlist entry;
//! - `jwt:user:<sub>`: set of the user's live jtis, expiring with the newest of them;
//! - `jwt:user_nbf:<sub>` = unix time of the last revoke-all, kept for one token lifetime.
//!
//! Every write is one Lua script, so concurrent replicas never see half an update; a check is one
//! `MGET` round trip. Nothing needs sweeping: every key carries its own expiry. Scripts build jti keys
//! from the prefix, so this store targets a single Redis (or a primary with replicas), not Cluster.
//! Requires Redis 7 (`EXPIRETIME`).

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::OnceCell;

use super::{SessionStatus, SessionStore, StoreError};

const INSERT: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'EXAT', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
if redis.call('EXPIRETIME', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('EXPIREAT', KEYS[2], ARGV[2])
end
return 1
";

const REVOKE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[2])
end
return 1
";

const REVOKE_ALL: &str = r"
local jtis = redis.call('SMEMBERS', KEYS[1])
for _, j in ipairs(jtis) do
  redis.call('DEL', ARGV[1] .. j)
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[2], 'EXAT', ARGV[3])
return #jtis
";

const REVOKE_JTI: &str = r"
local sub = redis.call('GET', KEYS[1])
if not sub then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', ARGV[1] .. sub, ARGV[2])
return 1
";

pub struct RedisSessionStore {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    prefix: String,
    timeout: Duration,
    insert: Script,
    revoke: Script,
    revoke_all: Script,
    revoke_jti: Script,
}

impl RedisSessionStore {
    /// Prepares the store; the connection is made on first use (and re-made after outages).
    pub fn new(url: &SecretString, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url.expose_secret())
            .map_err(|e| StoreError::Unavailable(format!("invalid redis url: {:?}", e.kind())))?;
        Ok(Self {
            client,
            conn: OnceCell::new(),
            prefix: prefix.to_owned(),
            timeout,
            insert: Script::new(INSERT),
            revoke: Script::new(REVOKE),
            revoke_all: Script::new(REVOKE_ALL),
            revoke_jti: Script::new(REVOKE_JTI),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(self.timeout)
                    .set_response_timeout(self.timeout)
                    .set_number_of_retries(1)
                    .set_max_delay(1_000);
                tokio::time::timeout(
                    self.timeout * 2,
                    ConnectionManager::new_with_config(self.client.clone(), config),
                )
                .await
                .map_err(|_| StoreError::Unavailable("connect timed out".into()))?
                .map_err(unavailable)
            })
            .await?;
        Ok(conn.clone())
    }

    /// Runs one store operation with the configured deadline; slow counts as unavailable.
    async fn within<T>(
        &self,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, op)
            .await
            .map_err(|_| StoreError::Unavailable("timed out".into()))?
            .map_err(unavailable)
    }

    fn jti_key(&self, jti: &str) -> String {
        format!("{}jwt:jti:{jti}", self.prefix)
    }
    fn user_key(&self, sub: &str) -> String {
        format!("{}jwt:user:{sub}", self.prefix)
    }
    fn nbf_key(&self, sub: &str) -> String {
        format!("{}jwt:user_nbf:{sub}", self.prefix)
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn insert(&self, jti: &str, sub: &str, exp: i64, _now: i64) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let mut inv = self.insert.key(self.jti_key(jti));
        inv.key(self.user_key(sub)).arg(sub).arg(exp).arg(jti);
        self.within(inv.invoke_async::<i64>(&mut c)).await?;
        Ok(())
    }

    async fn status(
        &self,
        jti: &str,
        sub: &str,
        iat: i64,
        _now: i64,
    ) -> Result<SessionStatus, StoreError> {
        let mut c = self.conn().await?;
        let (owner, nbf): (Option<String>, Option<i64>) = self
            .within(
                redis::cmd("MGET")
                    .arg(self.jti_key(jti))
                    .arg(self.nbf_key(sub))
                    .query_async(&mut c),
            )
            .await?;
        let live = owner.as_deref() == Some(sub);
        let before_revoke_all = nbf.is_some_and(|nbf| iat < nbf);
        Ok(if live && !before_revoke_all {
            SessionStatus::Active
        } else {
            SessionStatus::Revoked
        })
    }

    async fn revoke(&self, jti: &str, sub: &str) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let mut inv = self.revoke.key(self.jti_key(jti));
        inv.key(self.user_key(sub)).arg(sub).arg(jti);
        self.within(inv.invoke_async::<i64>(&mut c)).await?;
        Ok(())
    }

    async fn revoke_all(&self, sub: &str, now: i64, max_lifetime: i64) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let mut inv = self.revoke_all.key(self.user_key(sub));
        inv.key(self.nbf_key(sub))
            .arg(format!("{}jwt:jti:", self.prefix))
            .arg(now)
            .arg(now + max_lifetime);
        self.within(inv.invoke_async::<i64>(&mut c)).await?;
        Ok(())
    }

    async fn revoke_jti(&self, jti: &str) -> Result<bool, StoreError> {
        let mut c = self.conn().await?;
        let mut inv = self.revoke_jti.key(self.jti_key(jti));
        inv.arg(format!("{}jwt:user:", self.prefix)).arg(jti);
        let n: i64 = self.within(inv.invoke_async(&mut c)).await?;
        Ok(n == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        self.within(redis::cmd("PING").query_async::<String>(&mut c))
            .await
            .map(|_| ())
    }
}
