//! What the Redis store holds per scope, for `/status` and `--validate`: read with the load
//! script (read only, on the server's clock), one round trip per scope.

use redis::Commands;
use serde_json::Value;

use super::RedisStore;
use crate::store::{
    CooldownStored, LearnedStored, ScopeStored, StoreError, StoreStatus, WindowUse,
};

impl RedisStore {
    /// Every scope any process described, with its admissions summed over each of
    /// `periods_ms` ending at the server's now.
    pub(super) fn read_status(
        &mut self,
        now_ms: i64,
        periods_ms: &[i64],
    ) -> Result<StoreStatus, StoreError> {
        let longest = periods_ms.iter().copied().max().unwrap_or(0).max(0);
        let scopes_key = self.key("scopes");
        let (tag, stream) = (self.tag.clone(), self.stream.clone());
        let scripts = std::sync::Arc::clone(&self.scripts);
        let since = self.clock.to_server_early(now_ms.saturating_sub(longest));
        let read = (|| -> redis::RedisResult<Vec<ScopeStored>> {
            let conn = self.connect()?;
            let mut names: Vec<String> = conn.smembers(&scopes_key)?;
            names.sort();
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                let data: String = scripts
                    .load
                    .key(&stream)
                    .arg(&tag)
                    .arg(&name)
                    .arg(since)
                    .invoke(conn)?;
                let v: Value = serde_json::from_str(&data).map_err(|e| {
                    redis::RedisError::from((redis::ErrorKind::Parse, "scope state", e.to_string()))
                })?;
                out.push(scope_stored(name, &v, periods_ms));
            }
            Ok(out)
        })();
        match read {
            Ok(scopes) => Ok(StoreStatus {
                store: format!("Redis {}", self.shown),
                shared: true,
                at_ms: now_ms,
                scopes,
            }),
            Err(e) => Err(self.failed(&e)),
        }
    }
}

/// One scope's state from the load script's answer (server milliseconds throughout; its
/// `now` is the server's clock when it read them).
fn scope_stored(scope: String, v: &Value, periods_ms: &[i64]) -> ScopeStored {
    let int = |v: Option<&Value>| v.and_then(Value::as_i64).unwrap_or(0);
    let uint = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let list = |k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let now = int(v.get("now"));
    let adm = list("adm");
    let mut periods: Vec<i64> = periods_ms.to_vec();
    periods.sort_unstable();
    periods.dedup();
    let windows = periods
        .into_iter()
        .map(|period_ms| {
            let mut w = WindowUse {
                period_ms,
                requests: 0,
                input_tokens: 0,
                output_tokens: 0,
            };
            for a in &adm {
                if int(a.get(1)) > now.saturating_sub(period_ms) {
                    w.requests += 1;
                    w.input_tokens += uint(a.get(2));
                    w.output_tokens += uint(a.get(3));
                }
            }
            w
        })
        .collect();
    let cooldowns = list("cool")
        .iter()
        .map(|c| {
            let reason = c.get(0).and_then(Value::as_str).unwrap_or("").to_owned();
            CooldownStored::new(reason, int(c.get(1)))
        })
        .collect();
    let learned = list("learned")
        .iter()
        .map(|l| LearnedStored {
            dimension: l.get(0).and_then(Value::as_str).unwrap_or("").to_owned(),
            amount: uint(l.get(1)),
            period_ms: int(l.get(2)),
        })
        .collect();
    let startup = list("startup");
    let startup_until_ms = startup
        .first()
        .and_then(Value::as_i64)
        .filter(|&until| until > now);
    let admissions = u64::try_from(adm.len()).unwrap_or(u64::MAX);
    ScopeStored {
        scope,
        admissions,
        rows: admissions,
        windows,
        cooldowns,
        learned,
        startup_until_ms,
    }
}
