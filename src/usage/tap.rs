//! [`UsageTap`]: what a route needs to record its calls (the run, the agent, the prices, the
//! ledger), [`CallRecorder`]: one call being recorded (a call cancelled before it ended is
//! recorded as `cancelled` when its recorder is dropped, at the tokens it reserved: the request
//! may already have reached the provider, which may serve and bill it anyway), and
//! [`RunUsage`]: the run's totals for its `status.json`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::UsageLedger;
use crate::config::PriceTable;
use crate::keys::ApiKey;
use crate::provider::{ChatRequest, ChatResponse, ProviderError, ProviderErrorKind};
use crate::quota::TokenCount;
use crate::routing::estimate::{TokenCounter, estimate_tokens};
use crate::store::UsageRecord;

/// The totals of one run's calls.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct UsageTotals {
    /// Provider calls made (every attempt, failed ones included).
    pub calls: u64,
    /// Calls that succeeded.
    pub ok: u64,
    /// Calls the provider refused with a rate limit.
    pub rate_limited: u64,
    /// Calls that failed otherwise (cancelled ones included).
    pub errors: u64,
    /// Input tokens the provider reported.
    pub input_tokens: u64,
    /// Output tokens the provider reported.
    pub output_tokens: u64,
    /// The cost of the calls whose model has a price, in US dollars.
    pub cost_usd: f64,
    /// Calls whose model has no price in the table (their cost is not in `cost_usd`).
    pub unpriced_calls: u64,
}

impl UsageTotals {
    fn add(&mut self, r: &UsageRecord) {
        self.calls += 1;
        match r.outcome.as_str() {
            o if o == "ok" || o.starts_with("ok:") => self.ok += 1,
            "rate_limited" => self.rate_limited += 1,
            _ => self.errors += 1,
        }
        self.input_tokens += r.input_tokens;
        self.output_tokens += r.output_tokens;
        match r.cost_usd {
            Some(c) => self.cost_usd += c,
            None => self.unpriced_calls += 1,
        }
    }
}

/// One run's usage: its totals (for `status.json`), and the ledger its records go to.
#[derive(Debug)]
pub struct RunUsage {
    run_id: Arc<str>,
    ledger: Option<UsageLedger>,
    prices: Arc<PriceTable>,
    totals: Mutex<UsageTotals>,
    agents: Mutex<std::collections::BTreeMap<String, UsageTotals>>,
}

impl RunUsage {
    /// The usage of run `run_id`, recorded into `ledger` (`None`: totals only).
    pub fn new(run_id: &str, ledger: Option<UsageLedger>, prices: Arc<PriceTable>) -> Arc<Self> {
        Arc::new(Self {
            run_id: Arc::from(run_id),
            ledger,
            prices,
            totals: Mutex::new(UsageTotals::default()),
            agents: Mutex::new(std::collections::BTreeMap::new()),
        })
    }

    /// The tap of `agent`'s route.
    pub fn tap(self: &Arc<Self>, agent: &str) -> UsageTap {
        UsageTap {
            run: self.clone(),
            agent: Arc::from(agent),
        }
    }

    /// The run's totals so far.
    pub fn totals(&self) -> UsageTotals {
        self.totals.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Each agent's totals so far, by agent id.
    pub fn agent_totals(&self) -> std::collections::BTreeMap<String, UsageTotals> {
        self.agents.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// The ledger, if records are kept.
    pub fn ledger(&self) -> Option<&UsageLedger> {
        self.ledger.as_ref()
    }

    /// What `status.json` says of the run's usage.
    pub fn summary(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self.totals()).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            // Per agent: the same figures (cost_usd is the agent's cost).
            map.insert(
                "agents".to_owned(),
                serde_json::to_value(self.agent_totals()).unwrap_or_default(),
            );
            map.insert(
                "ledger".to_owned(),
                match &self.ledger {
                    Some(l) => serde_json::json!({
                        "store": l.describe(),
                        "dropped": l.dropped(),
                    }),
                    None => serde_json::Value::Null,
                },
            );
        }
        v
    }

    fn add(&self, record: UsageRecord) {
        if let Ok(mut t) = self.totals.lock() {
            t.add(&record);
        }
        if let Ok(mut a) = self.agents.lock() {
            a.entry(record.agent.clone()).or_default().add(&record);
        }
        if let Some(l) = &self.ledger {
            l.record(record);
        }
    }
}

/// What a route records its calls with: the run's usage and the agent.
#[derive(Debug, Clone)]
pub struct UsageTap {
    run: Arc<RunUsage>,
    agent: Arc<str>,
}

impl UsageTap {
    /// Starts recording one call of `model` at `provider` with `key`; finish it with
    /// [`CallRecorder::finish`] (dropped unfinished, it records a cancelled call).
    pub fn start(&self, provider: &str, model: &str, key: Option<&ApiKey>) -> CallRecorder {
        CallRecorder {
            tap: self.clone(),
            provider: provider.to_owned(),
            model: model.to_owned(),
            key: key.map(ApiKey::fingerprint).unwrap_or_default(),
            started: Instant::now(),
            done: false,
            request: None,
        }
    }

    /// Starts recording one call of `request` at `provider` with `key`. Dropped unfinished
    /// (the call was cancelled, perhaps after the provider received it), it records the call
    /// at what `request` reserves: its prompt estimate and its output cap, so a later budget
    /// check counts what the provider may have billed.
    pub fn start_request(
        &self,
        provider: &str,
        request: &Arc<ChatRequest>,
        key: Option<&ApiKey>,
    ) -> CallRecorder {
        let mut recorder = self.start(provider, &request.model, key);
        recorder.request = Some(request.clone());
        recorder
    }
}

/// One call being recorded.
#[derive(Debug)]
pub struct CallRecorder {
    tap: UsageTap,
    provider: String,
    model: String,
    key: String,
    started: Instant,
    done: bool,
    /// The request, for the reserved tokens of a cancelled call.
    request: Option<Arc<ChatRequest>>,
}

/// The ledger's outcome of a call: `ok` (`ok:usage_unreported` when the provider reported no
/// token counts), `rate_limited`, `cancelled`, or `error:<kind>`.
pub fn outcome_of(result: &Result<ChatResponse, ProviderError>) -> String {
    match result {
        Ok(r) => match r.usage {
            Some(u) if !u.input_unreported && !u.output_unreported => "ok".to_owned(),
            _ => "ok:usage_unreported".to_owned(),
        },
        Err(e) => match e.kind {
            ProviderErrorKind::RateLimited => "rate_limited".to_owned(),
            ProviderErrorKind::Cancelled => "cancelled".to_owned(),
            k => format!("error:{}", k.as_str()),
        },
    }
}

impl CallRecorder {
    /// Records the call's result.
    pub fn finish(mut self, result: &Result<ChatResponse, ProviderError>) {
        self.done = true;
        let (input, output) = match result {
            Ok(ChatResponse { usage: Some(u), .. }) => (u.input_tokens, u.output_tokens),
            _ => (0, 0),
        };
        self.record(input, output, outcome_of(result));
    }

    fn record(&self, input: u64, output: u64, outcome: String) {
        let run = &self.tap.run;
        let cost = run
            .prices
            .lookup(&self.provider, &self.model)
            .map(|p| p.cost(input, output));
        if let Some(usd) = cost {
            crate::telemetry::provider::agent_cost(
                &self.tap.agent,
                &self.provider,
                &self.model,
                usd,
            );
        }
        run.add(UsageRecord {
            at_ms: chrono::Utc::now().timestamp_millis(),
            run_id: run.run_id.to_string(),
            agent: self.tap.agent.to_string(),
            provider: self.provider.clone(),
            model: self.model.clone(),
            key: self.key.clone(),
            input_tokens: input,
            output_tokens: output,
            cost_usd: cost,
            outcome,
            latency_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
    }
}

impl Drop for CallRecorder {
    fn drop(&mut self) {
        if !self.done {
            let reserved = self.request.as_ref().map_or(TokenCount::new(0, 0), |r| {
                let counter = TokenCounter::for_model(&self.provider, &r.model);
                estimate_tokens(r, counter)
            });
            self.record(reserved.input, reserved.output, "cancelled".to_owned());
        }
    }
}
