//! What travels between the store and its Lua scripts: the batch of a pass as JSON, the
//! changes read back from the stream and from a scope's state.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::Own;
use super::clock::Clock;
use crate::quota::{Dimension, Limit};
use crate::store::{Change, WindowLimit, Write};

pub(super) fn dimension_of(s: &str) -> Option<Dimension> {
    Some(match s {
        "requests" => Dimension::Requests,
        "tokens" => Dimension::Tokens,
        "input_tokens" => Dimension::InputTokens,
        "output_tokens" => Dimension::OutputTokens,
        _ => return None,
    })
}

/// A JSON number as i64 (the scripts' cjson may print integers as floats).
pub(super) fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite())
            .map(|f| f.round() as i64)
    })
}

fn uint(v: &Value) -> u64 {
    int(v).and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn id_of(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.parse().ok(),
        other => int(other),
    }
}

/// The batch of one pass: every buffered write (instants on the server's clock), and the
/// limits and horizon of every scope an admission or a token change touches.
pub(super) fn batch(
    writes: &[Write],
    limits: &HashMap<String, Vec<WindowLimit>>,
    horizons: &HashMap<String, i64>,
    admit_ids: &[i64],
    owners: &HashMap<i64, Own>,
    clock: &Clock,
) -> String {
    let mut admit_ids = admit_ids.iter();
    let mut out = Vec::with_capacity(writes.len());
    let mut scopes = serde_json::Map::new();
    let mut describe = |scope: &str| {
        if !scopes.contains_key(scope) {
            let ls: Vec<Value> = limits
                .get(scope)
                .into_iter()
                .flatten()
                .map(|l| json!([l.dimension.as_str(), l.amount, l.window_ms]))
                .collect();
            let h = horizons.get(scope).copied().unwrap_or(0);
            scopes.insert(scope.to_owned(), json!({"limits": ls, "horizon": h}));
        }
    };
    for w in writes {
        match w {
            Write::Admit {
                scope,
                input,
                output,
                ..
            } => {
                describe(scope);
                let id = admit_ids.next().map(i64::to_string).unwrap_or_default();
                out.push(json!(["A", id, scope, input, output]));
            }
            Write::Tokens { id, input, output } => {
                if let Some(scope) = owners.get(id).map(|o| o.scope.as_str()) {
                    describe(scope);
                    out.push(json!(["T", id.to_string(), scope, input, output]));
                }
            }
            Write::Remove { id } => {
                if let Some(scope) = owners.get(id).map(|o| o.scope.as_str()) {
                    out.push(json!(["R", id.to_string(), scope]));
                }
            }
            Write::Cooldown {
                scope,
                until_ms,
                reason,
            } => out.push(json!(["C", scope, clock.to_server_late(*until_ms), reason])),
            Write::Learned { scope, limit, .. } => {
                let period = i64::try_from(limit.period.as_millis()).unwrap_or(i64::MAX);
                out.push(json!([
                    "L",
                    scope,
                    limit.dimension.as_str(),
                    limit.amount.get(),
                    period
                ]));
            }
            Write::Scope {
                scope,
                horizon_ms,
                started_ms,
                startup_until_ms,
                ..
            } => out.push(json!([
                "S",
                scope,
                horizon_ms,
                clock.to_server_early(*started_ms),
                clock.to_server_late(*startup_until_ms)
            ])),
            Write::Limits { .. } => {}
        }
    }
    json!({"scopes": scopes, "writes": out}).to_string()
}

/// The changes of one stream entry (server instants converted to this process's clock).
pub(super) fn changes(data: &str, clock: &Clock, out: &mut Vec<Change>) {
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(data) else {
        tracing::warn!("an unreadable entry in the quota store's change stream was skipped");
        return;
    };
    for item in items {
        let Some(a) = item.as_array() else { continue };
        let at = |i: usize| a.get(i).unwrap_or(&Value::Null);
        let change = match at(0).as_str() {
            Some("A") => id_of(at(1))
                .zip(text(at(2)))
                .map(|(id, scope)| Change::Admission {
                    requests: 1,
                    id,
                    scope,
                    at_ms: clock.to_local(int(at(3)).unwrap_or(0)),
                    input: uint(at(4)),
                    output: uint(at(5)),
                }),
            Some("R") => id_of(at(1)).map(|id| Change::Removed { id }),
            Some("C") => text(at(1)).map(|scope| Change::Cooldown {
                scope,
                until_ms: clock.to_local(int(at(2)).unwrap_or(0)),
                reason: text(at(3)).unwrap_or_default(),
            }),
            Some("L") => learned(text(at(1)), at(2), at(3), at(4)),
            Some("S") => text(at(1)).map(|scope| Change::Cooldown {
                scope,
                until_ms: clock.to_local(int(at(2)).unwrap_or(0)),
                reason: "startup (another process)".to_owned(),
            }),
            _ => None,
        };
        out.extend(change);
    }
}

fn learned(scope: Option<String>, dim: &Value, amount: &Value, period: &Value) -> Option<Change> {
    let d = dimension_of(dim.as_str()?)?;
    let period = Duration::from_millis(u64::try_from(int(period)?).ok()?);
    let limit = Limit::new(d, uint(amount), period).ok()?;
    Some(Change::Learned {
        scope: scope?,
        limit,
    })
}

/// A scope's state as the load script returns it, without this process's own admissions.
pub(super) fn loaded(
    scope: &str,
    data: &str,
    process: i64,
    clock: &Clock,
) -> Result<Vec<Change>, String> {
    let v: Value =
        serde_json::from_str(data).map_err(|e| format!("unreadable scope state: {e}"))?;
    let mut out = Vec::new();
    let list = |k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for a in list("adm") {
        let Some(id) = a.get(0).and_then(id_of) else {
            continue;
        };
        if id >> 32 == process {
            continue;
        }
        out.push(Change::Admission {
            requests: 1,
            id,
            scope: scope.to_owned(),
            at_ms: clock.to_local(a.get(1).and_then(int).unwrap_or(0)),
            input: a.get(2).map_or(0, uint),
            output: a.get(3).map_or(0, uint),
        });
    }
    for c in list("cool") {
        out.push(Change::Cooldown {
            scope: scope.to_owned(),
            until_ms: clock.to_local(c.get(1).and_then(int).unwrap_or(0)),
            reason: c.get(0).and_then(text).unwrap_or_default(),
        });
    }
    let startup = list("startup");
    if let (Some(until), Some(p)) = (
        startup.first().and_then(int),
        startup.get(1).and_then(id_of),
    ) {
        if p != process {
            out.push(Change::Cooldown {
                scope: scope.to_owned(),
                until_ms: clock.to_local(until),
                reason: "startup (another process)".to_owned(),
            });
        }
    }
    for l in list("learned") {
        let null = Value::Null;
        let g = |i: usize| l.get(i).unwrap_or(&null);
        out.extend(learned(Some(scope.to_owned()), g(0), g(1), g(2)));
    }
    Ok(out)
}
