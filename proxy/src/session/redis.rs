//! `RedisSessionStore`: the allowlist shared by every proxy replica (R-JWT-3..6).
//!
//! Keys (all under the configured prefix):
//! - `jwt:jti:<jti>` = `<sub>`, expiring at the token's `exp` (`EXAT`): the allowlist entry;
//! - `jwt:user:<sub>`: set of the user's live jtis, expiring with the newest of them;
//! - `jwt:user_nbf:<sub>` = unix time of the last revoke-all, kept for one token lifetime;
//! - `jwt:ext:<issuer>:deny:<jti>`: an external token revoked, until its `exp` or longer;
//! - `jwt:ext:<issuer>:user_nbf:<sub>`: revoke-all time of an external user, for the issuer's lifetime.
//!
//! Every write is one Lua script, so concurrent replicas never see half an update; a check is one
//! `MGET` round trip. Nothing needs sweeping: every key carries its own expiry. Scripts build jti keys
//! from the prefix, so this store targets a single Redis (or a primary with replicas), not Cluster.
//! Requires Redis 7 (`EXPIRETIME`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use secrecy::SecretString;

use super::{SessionStatus, SessionStore, StoreError, TokenRef};
use crate::clock::UnixSecs;
use crate::store::RedisConnector;

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
    redis: Arc<RedisConnector>,
    prefix: String,
    insert: Script,
    revoke: Script,
    revoke_all: Script,
    revoke_jti: Script,
}

impl RedisSessionStore {
    /// Prepares the store; the connection is made on first use (and re-made after outages).
    pub fn new(url: &SecretString, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        Ok(Self::with_connector(
            Arc::new(RedisConnector::new(url, timeout)?),
            prefix,
        ))
    }

    /// The store on a connection shared with the proxy's other Redis stores, so that `/readyz`'s
    /// ping tests the very connection requests use.
    pub fn with_connector(redis: Arc<RedisConnector>, prefix: &str) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            insert: Script::new(INSERT),
            revoke: Script::new(REVOKE),
            revoke_all: Script::new(REVOKE_ALL),
            revoke_jti: Script::new(REVOKE_JTI),
        }
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
    /// Two keys in one round trip (every per-request check is exactly one `MGET`).
    async fn mget2<A: redis::FromRedisValue, B: redis::FromRedisValue>(
        &self,
        a: String,
        b: String,
    ) -> Result<(A, B), StoreError> {
        let mut c = self.redis.conn().await?;
        self.redis
            .within(redis::cmd("MGET").arg(a).arg(b).query_async(&mut c))
            .await
    }

    fn deny_key(&self, issuer: &str, jti: &str) -> String {
        format!("{}jwt:ext:{issuer}:deny:{jti}", self.prefix)
    }
    fn external_nbf_key(&self, issuer: &str, sub: &str) -> String {
        format!("{}jwt:ext:{issuer}:user_nbf:{sub}", self.prefix)
    }
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn insert(
        &self,
        token: &TokenRef<'_>,
        exp: UnixSecs,
        _now: UnixSecs,
    ) -> Result<(), StoreError> {
        let (jti, sub, exp) = (token.jti, token.sub, exp.get());
        let mut c = self.redis.conn().await?;
        let mut inv = self.insert.key(self.jti_key(jti));
        inv.key(self.user_key(sub)).arg(sub).arg(exp).arg(jti);
        self.redis.within(inv.invoke_async::<i64>(&mut c)).await?;
        Ok(())
    }

    async fn status(
        &self,
        token: &TokenRef<'_>,
        _now: UnixSecs,
    ) -> Result<SessionStatus, StoreError> {
        let (jti, sub, iat) = (token.jti, token.sub, token.iat.get());
        let (owner, nbf): (Option<String>, Option<i64>) =
            self.mget2(self.jti_key(jti), self.nbf_key(sub)).await?;
        let live = owner.as_deref() == Some(sub);
        let before_revoke_all = nbf.is_some_and(|nbf| iat < nbf);
        Ok(if live && !before_revoke_all {
            SessionStatus::Active
        } else {
            SessionStatus::Revoked
        })
    }

    async fn revoke(&self, jti: &str, sub: &str) -> Result<(), StoreError> {
        let mut c = self.redis.conn().await?;
        let mut inv = self.revoke.key(self.jti_key(jti));
        inv.key(self.user_key(sub)).arg(sub).arg(jti);
        self.redis.within(inv.invoke_async::<i64>(&mut c)).await?;
        Ok(())
    }

    async fn revoke_all(
        &self,
        sub: &str,
        until: UnixSecs,
        now: UnixSecs,
    ) -> Result<(), StoreError> {
        let mut c = self.redis.conn().await?;
        let mut inv = self.revoke_all.key(self.user_key(sub));
        inv.key(self.nbf_key(sub))
            .arg(format!("{}jwt:jti:", self.prefix))
            .arg(now.get())
            .arg(until.get());
        self.redis.within(inv.invoke_async::<i64>(&mut c)).await?;
        Ok(())
    }

    async fn revoke_jti(&self, jti: &str) -> Result<bool, StoreError> {
        let mut c = self.redis.conn().await?;
        let mut inv = self.revoke_jti.key(self.jti_key(jti));
        inv.arg(format!("{}jwt:user:", self.prefix)).arg(jti);
        let n: i64 = self.redis.within(inv.invoke_async(&mut c)).await?;
        Ok(n == 1)
    }

    async fn external_status(
        &self,
        issuer: &str,
        token: &TokenRef<'_>,
        _now: UnixSecs,
    ) -> Result<SessionStatus, StoreError> {
        let (jti, sub, iat) = (token.jti, token.sub, token.iat.get());
        let (denied, nbf): (Option<i64>, Option<i64>) = self
            .mget2(
                self.deny_key(issuer, jti),
                self.external_nbf_key(issuer, sub),
            )
            .await?;
        Ok(if denied.is_some() || nbf.is_some_and(|nbf| iat <= nbf) {
            SessionStatus::Revoked
        } else {
            SessionStatus::Active
        })
    }

    async fn deny(
        &self,
        issuer: &str,
        jti: &str,
        until: UnixSecs,
        _now: UnixSecs,
    ) -> Result<(), StoreError> {
        let until = until.get();
        let mut c = self.redis.conn().await?;
        // `GT` only ever extends an existing entry (a second, longer revocation wins).
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(self.deny_key(issuer, jti))
            .arg(1)
            .arg("NX")
            .arg("EXAT")
            .arg(until)
            .ignore()
            .cmd("EXPIREAT")
            .arg(self.deny_key(issuer, jti))
            .arg(until)
            .arg("GT")
            .ignore();
        self.redis.within(pipe.query_async::<()>(&mut c)).await
    }

    async fn deny_user(
        &self,
        issuer: &str,
        sub: &str,
        until: UnixSecs,
        now: UnixSecs,
    ) -> Result<(), StoreError> {
        let (until, now) = (until.get(), now.get());
        let mut c = self.redis.conn().await?;
        self.redis
            .within(
                redis::cmd("SET")
                    .arg(self.external_nbf_key(issuer, sub))
                    .arg(now)
                    .arg("EXAT")
                    .arg(until)
                    .query_async::<()>(&mut c),
            )
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.redis.ping().await
    }
}
