//! `RedisAttemptStore`: login throttling shared by every replica. `begin` and `finish` are one Lua
//! script each, so the check-and-reserve (R-LOGIN-7) and the state update are atomic across replicas.
//! The scripts mirror `ThrottlePolicy` (same formulas); the contract suite runs both stores.
//!
//! Keys under the prefix: `login:acct:<sha256(account)>` (hash: fail_count, last_fail, blocked_until,
//! locked; expires after reset + max wait unless locked), `login:lease:<sha256(account)>` (`SET NX PX`),
//! `login:ipfail:<ip>`, `login:ipban:<ip>`, `login:iptat:<ip>` (GCRA), `login:global:<minute>`.
//! Raw emails never appear in keys.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use super::{
    minute, AccountState, Attempt, AttemptStore, Begin, Finished, Outcome, ThrottlePolicy,
    ThrottleReason,
};
use crate::clock::UnixMillis;
use crate::store::{RedisConnector, StoreError};

const BEGIN: &str = r"
local now = tonumber(ARGV[1])
local ban = redis.call('PTTL', KEYS[3])
if ban > 0 then return {'ip_banned', ban} end
local threshold = tonumber(ARGV[5])
local attack = tonumber(redis.call('GET', KEYS[5]) or '0') > threshold
  or tonumber(redis.call('GET', KEYS[6]) or '0') > threshold
local rate = tonumber(ARGV[4])
if attack then rate = math.max(1, math.floor(rate / 2)) end
local emission = math.floor(60000 / rate)
local tolerance = emission * rate
local tat = tonumber(redis.call('GET', KEYS[4]) or '0')
local new_tat = math.max(tat, now) + emission
local allow_at = new_tat - tolerance
if now < allow_at then return {'ip_rate', allow_at - now} end
redis.call('SET', KEYS[4], string.format('%d', new_tat), 'PX', math.max(1, new_tat - now))
local a = redis.call('HMGET', KEYS[1], 'fail_count', 'last_fail', 'blocked_until', 'locked')
local fails = tonumber(a[1] or '0')
local last = tonumber(a[2] or '0')
local blocked = tonumber(a[3] or '0')
local locked = a[4] == '1'
if not locked and fails > 0 and now - last > tonumber(ARGV[6]) then fails = 0; blocked = 0 end
if locked then return {'locked', tonumber(ARGV[7])} end
if blocked > now then return {'backoff', blocked - now} end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  if redis.call('GET', KEYS[2]) ~= ARGV[2] then
    return {'in_flight', math.max(1, redis.call('PTTL', KEYS[2]))}
  end
end
return {'allowed', 0}
";

const FINISH: &str = r"
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
local now = tonumber(ARGV[1])
if ARGV[3] == 'success' then
  redis.call('DEL', KEYS[1])
  return {0, 0, 0, 0, 0, 0, 0}
end
local reset = tonumber(ARGV[9])
local a = redis.call('HMGET', KEYS[1], 'fail_count', 'last_fail', 'blocked_until', 'locked')
local fails = tonumber(a[1] or '0')
local last = tonumber(a[2] or '0')
local blocked = tonumber(a[3] or '0')
local locked = a[4] == '1'
if not locked and fails > 0 and now - last > reset then fails = 0; last = 0; blocked = 0 end
if ARGV[3] ~= 'failure' then
  return {fails, string.format('%d', last), string.format('%d', blocked), locked and 1 or 0, 0, 0, 0}
end
local backoff_after = tonumber(ARGV[4])
local max_wait = tonumber(ARGV[6])
local k = fails + 1
local nb = 0
if k >= backoff_after then
  local d = math.min(k - backoff_after, 40)
  nb = now + math.min(tonumber(ARGV[5]) * (2 ^ d), max_wait)
end
local nl = false
if k >= tonumber(ARGV[7]) then
  if ARGV[8] == '1' then nl = true else nb = now + max_wait end
end
redis.call('HSET', KEYS[1], 'fail_count', k, 'last_fail', string.format('%d', now),
  'blocked_until', string.format('%d', nb), 'locked', nl and '1' or '0')
if nl then redis.call('PERSIST', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], reset + max_wait) end
local threshold = tonumber(ARGV[13])
local attack = tonumber(redis.call('GET', KEYS[5]) or '0') > threshold
  or tonumber(redis.call('GET', KEYS[6]) or '0') > threshold
local limit = tonumber(ARGV[10])
if attack then limit = math.max(1, math.floor(limit / 2)) end
local c = redis.call('INCR', KEYS[3])
if c == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[11]) end
local banned = 0
if c >= limit then
  redis.call('SET', KEYS[4], '1', 'PX', ARGV[12])
  redis.call('DEL', KEYS[3])
  banned = 1
end
redis.call('INCR', KEYS[5])
redis.call('EXPIRE', KEYS[5], 180)
local locked_now = (nl and not locked) and 1 or 0
local blocked_now = (nb > now and blocked <= now) and 1 or 0
return {k, string.format('%d', now), string.format('%d', nb), nl and 1 or 0, locked_now, blocked_now, banned}
";

pub struct RedisAttemptStore {
    redis: Arc<RedisConnector>,
    policy: ThrottlePolicy,
    prefix: String,
    begin: Script,
    finish: Script,
}

fn hash(account: &str) -> String {
    hex::encode(Sha256::digest(account.as_bytes()))
}

impl RedisAttemptStore {
    pub fn new(
        url: &SecretString,
        prefix: &str,
        timeout: Duration,
        policy: ThrottlePolicy,
    ) -> Result<Self, StoreError> {
        Ok(Self::with_connector(
            Arc::new(RedisConnector::new(url, timeout)?),
            prefix,
            policy,
        ))
    }

    /// The store on a connection shared with the proxy's other Redis stores.
    pub fn with_connector(
        redis: Arc<RedisConnector>,
        prefix: &str,
        policy: ThrottlePolicy,
    ) -> Self {
        Self {
            redis,
            policy,
            prefix: prefix.to_owned(),
            begin: Script::new(BEGIN),
            finish: Script::new(FINISH),
        }
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}login:{kind}:{id}", self.prefix)
    }

    fn globals(&self, now: i64) -> (String, String) {
        let m = minute(now);
        (
            self.key("global", &m.to_string()),
            self.key("global", &(m - 1).to_string()),
        )
    }
}

fn parse_state(v: &[redis::Value]) -> AccountState {
    let n = |i: usize| -> i64 {
        v.get(i)
            .and_then(|x| redis::from_redis_value::<i64>(x).ok())
            .unwrap_or(0)
    };
    AccountState {
        fail_count: u32::try_from(n(0)).unwrap_or(u32::MAX),
        last_fail_at_ms: n(1),
        blocked_until_ms: n(2),
        locked: n(3) == 1,
    }
}

#[async_trait]
impl AttemptStore for RedisAttemptStore {
    async fn begin(&self, a: &Attempt<'_>, now: UnixMillis) -> Result<Begin, StoreError> {
        let (account, ip, attempt, now) = (a.account, a.ip, a.id, now.get());
        let p = &self.policy;
        let h = hash(account);
        let (cur, prev) = self.globals(now);
        let mut inv = self.begin.prepare_invoke();
        inv.key(self.key("acct", &h))
            .key(self.key("lease", &h))
            .key(self.key("ipban", ip))
            .key(self.key("iptat", ip))
            .key(cur)
            .key(prev)
            .arg(now)
            .arg(attempt)
            .arg(p.inflight_lease_ms)
            .arg(p.ip_rate_per_minute)
            .arg(p.attack_threshold_per_minute)
            .arg(p.failure_reset_ms)
            .arg(p.max_wait_ms);
        let mut c = self.redis.conn().await?;
        let (verdict, ms): (String, i64) = self.redis.within(inv.invoke_async(&mut c)).await?;
        let reason = match verdict.as_str() {
            "allowed" => return Ok(Begin::Allowed),
            "ip_banned" => ThrottleReason::IpBanned,
            "ip_rate" => ThrottleReason::IpRate,
            "locked" => ThrottleReason::Locked,
            "backoff" => ThrottleReason::Backoff,
            "in_flight" => ThrottleReason::InFlight,
            other => {
                return Err(StoreError::Unavailable(format!(
                    "unexpected throttle verdict {other}"
                )))
            }
        };
        Ok(Begin::Throttled {
            reason,
            retry_after_ms: ms,
        })
    }

    async fn finish(
        &self,
        a: &Attempt<'_>,
        outcome: Outcome,
        now: UnixMillis,
    ) -> Result<Finished, StoreError> {
        let (account, ip, attempt, now) = (a.account, a.ip, a.id, now.get());
        let p = &self.policy;
        let h = hash(account);
        let (cur, prev) = self.globals(now);
        let mut inv = self.finish.prepare_invoke();
        inv.key(self.key("acct", &h))
            .key(self.key("lease", &h))
            .key(self.key("ipfail", ip))
            .key(self.key("ipban", ip))
            .key(cur)
            .key(prev)
            .arg(now)
            .arg(attempt)
            .arg(match outcome {
                Outcome::Success => "success",
                Outcome::Failure => "failure",
                Outcome::Abandoned => "abandoned",
            })
            .arg(p.backoff_after)
            .arg(p.backoff_base_ms)
            .arg(p.max_wait_ms)
            .arg(p.max_failures)
            .arg(if p.permanent_lock { "1" } else { "0" })
            .arg(p.failure_reset_ms)
            .arg(p.ip_max_failures)
            .arg(p.ip_window_ms)
            .arg(p.ip_ban_ms)
            .arg(p.attack_threshold_per_minute);
        let mut c = self.redis.conn().await?;
        let v: Vec<redis::Value> = self.redis.within(inv.invoke_async(&mut c)).await?;
        let flag = |i: usize| {
            v.get(i)
                .and_then(|x| redis::from_redis_value::<i64>(x).ok())
                == Some(1)
        };
        Ok(Finished {
            state: parse_state(&v),
            locked_now: flag(4),
            blocked_now: flag(5),
            ip_banned_now: flag(6),
        })
    }

    async fn account(&self, account: &str, now: UnixMillis) -> Result<AccountState, StoreError> {
        let now = now.get();
        let h = hash(account);
        let mut c = self.redis.conn().await?;
        let v: Vec<redis::Value> = self
            .redis
            .within(
                redis::cmd("HMGET")
                    .arg(self.key("acct", &h))
                    .arg(&["fail_count", "last_fail", "blocked_until", "locked"])
                    .query_async(&mut c),
            )
            .await?;
        Ok(self.policy.current(parse_state(&v), now))
    }

    async fn unlock(&self, account: &str) -> Result<(), StoreError> {
        let h = hash(account);
        let mut c = self.redis.conn().await?;
        self.redis
            .within(
                redis::cmd("DEL")
                    .arg(self.key("acct", &h))
                    .arg(self.key("lease", &h))
                    .query_async::<i64>(&mut c),
            )
            .await?;
        Ok(())
    }
}
