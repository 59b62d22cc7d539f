//! The metric catalog: every metric massgen records, named and described exactly once.
//!
//! Names carry their unit and, for counters, the `_total` suffix, so the exposition reads the
//! same with or without the exporter's "recommended naming" option. Recording goes through the
//! typed functions in [`super::quota`], [`super::provider`], [`super::pool`] and [`super::run`]; nothing else in
//! the crate names a metric.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Permits granted by the quota supervisor. Labels: `scope`.
pub const PERMITS_GRANTED: &str = "massgen_quota_permits_granted_total";
/// Permits refused or abandoned. Labels: `scope`, `reason`.
pub const PERMITS_DENIED: &str = "massgen_quota_permits_denied_total";
/// Time from asking for a permit to getting it. Labels: `scope`.
pub const PERMIT_WAIT: &str = "massgen_quota_permit_wait_seconds";
/// Requests waiting for a permit right now. Labels: `scope`.
pub const QUEUE_DEPTH: &str = "massgen_quota_queue_depth";
/// Permits in flight right now. Labels: `scope`.
pub const IN_FLIGHT: &str = "massgen_quota_in_flight";
/// Amount admitted in the trailing window of a limit. Labels: `scope`, `dimension`, `period`.
pub const WINDOW_USED: &str = "massgen_quota_window_used";
/// The limit in force (configured or learned, whichever is lower). Same labels as `WINDOW_USED`.
pub const WINDOW_LIMIT: &str = "massgen_quota_window_limit";
/// `WINDOW_USED / WINDOW_LIMIT`. Same labels as `WINDOW_USED`.
pub const WINDOW_UTILIZATION: &str = "massgen_quota_window_utilization_ratio";
/// 1 when the limit in force was learned from the provider (lower than configured). Same labels.
pub const LIMIT_LEARNED: &str = "massgen_quota_limit_learned";
/// Limits learned from provider answers. Labels: `scope`.
pub const LIMITS_LEARNED: &str = "massgen_quota_limits_learned_total";
/// Seconds until a closed scope admits again (0 when open). Labels: `scope`.
pub const COOLDOWN_REMAINING: &str = "massgen_quota_cooldown_remaining_seconds";
/// 1 when a scope is closed until a human acts (spend cap), else 0. Labels: `scope`.
pub const SCOPE_CLOSED: &str = "massgen_quota_scope_closed";
/// Cooldowns started. Labels: `scope`, `reason`.
pub const COOLDOWNS: &str = "massgen_quota_cooldowns_total";

/// Provider calls by result. Labels: `provider`, `model`, `status_class`.
pub const PROVIDER_REQUESTS: &str = "massgen_provider_requests_total";
/// Provider call latency. Labels: `provider`, `model`.
pub const PROVIDER_REQUEST_DURATION: &str = "massgen_provider_request_duration_seconds";
/// Rate-limit answers received. Labels: `provider`, `model`, `kind`.
pub const RATE_LIMIT_RESPONSES: &str = "massgen_provider_rate_limit_responses_total";
/// Tokens reported by providers. Labels: `provider`, `model`, `direction` (`input`|`output`).
pub const TOKENS: &str = "massgen_provider_tokens_total";
/// Cost of each priced call in US dollars; its `_sum` is the running cost. Labels: `provider`,
/// `model`. (A histogram because the metrics facade has integer counters only.)
pub const COST: &str = "massgen_provider_cost_usd";
/// State of an endpoint's circuit breaker: 0 closed, 1 half-open, 2 open. Labels: `provider`,
/// `endpoint`.
pub const PROVIDER_CIRCUIT_STATE: &str = "massgen_provider_circuit_state";
/// Latency of calls an endpoint answered (timeouts included), as its actor measured it from
/// the call's slot to the answer. Labels: `provider`, `endpoint`.
pub const PROVIDER_LATENCY: &str = "massgen_provider_latency_seconds";
/// Failed calls of an endpoint by error kind (`circuit_open` for calls its open circuit
/// refused without a request). Labels: `provider`, `endpoint`, `kind`.
pub const PROVIDER_ERRORS: &str = "massgen_provider_errors_total";
/// Cost of the calls recorded in the usage ledger, in millionths of a US dollar (an integer
/// counter: the metrics facade has no float counters). Labels: `agent`, `provider`, `model`.
pub const COST_MICRODOLLARS: &str = "massgen_cost_microdollars_total";

/// Pooled calls given a model (their first attempt). Labels: `pool`, `provider`, `model`.
pub const MODEL_SELECTED: &str = "massgen_model_selected_total";
/// Pooled calls moved to another model of their pool. Labels: `pool`, `from`, `to` (both
/// `<provider>/<model>`), `reason`.
pub const MODEL_ROTATIONS: &str = "massgen_model_rotations_total";
/// Times no model of a pool could take a call at once (it waited for the earliest freeing one,
/// or none was capable). Labels: `pool`.
pub const MODEL_UNAVAILABLE: &str = "massgen_model_unavailable_total";

/// Agent turns by outcome. Labels: `outcome`.
pub const AGENT_TURNS: &str = "massgen_agent_turns_total";
/// Coordination rounds: the first of each run, and each restart of finished agents by a new
/// answer. No labels.
pub const COORDINATION_ROUNDS: &str = "massgen_coordination_rounds_total";
/// Votes cast. No labels.
pub const VOTES: &str = "massgen_votes_total";
/// Whole-run wall time. Labels: `status`.
pub const RUN_DURATION: &str = "massgen_run_duration_seconds";

/// Buckets of [`PERMIT_WAIT`]: from "no wait" through minute windows to a daily reset.
pub const PERMIT_WAIT_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
    3600.0, 21_600.0, 86_400.0,
];
/// Buckets of [`PROVIDER_REQUEST_DURATION`].
pub const PROVIDER_DURATION_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];
/// Buckets of [`COST`] (dollars per call).
pub const COST_BUCKETS: &[f64] = &[
    0.000_01, 0.000_1, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
];
/// Buckets of [`RUN_DURATION`].
pub const RUN_DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21_600.0, 86_400.0,
];

/// Every histogram of the catalog with its explicit buckets (the exporter renders them as true
/// Prometheus histograms, never summaries).
pub const HISTOGRAM_BUCKETS: &[(&str, &[f64])] = &[
    (PERMIT_WAIT, PERMIT_WAIT_BUCKETS),
    (PROVIDER_REQUEST_DURATION, PROVIDER_DURATION_BUCKETS),
    (PROVIDER_LATENCY, PROVIDER_DURATION_BUCKETS),
    (COST, COST_BUCKETS),
    (RUN_DURATION, RUN_DURATION_BUCKETS),
];

/// Every metric name of the catalog, for docs checks and tests.
pub const ALL: &[&str] = &[
    PERMITS_GRANTED,
    PERMITS_DENIED,
    PERMIT_WAIT,
    QUEUE_DEPTH,
    IN_FLIGHT,
    WINDOW_USED,
    WINDOW_LIMIT,
    WINDOW_UTILIZATION,
    LIMIT_LEARNED,
    LIMITS_LEARNED,
    COOLDOWN_REMAINING,
    SCOPE_CLOSED,
    COOLDOWNS,
    PROVIDER_REQUESTS,
    PROVIDER_REQUEST_DURATION,
    RATE_LIMIT_RESPONSES,
    TOKENS,
    COST,
    PROVIDER_CIRCUIT_STATE,
    PROVIDER_LATENCY,
    PROVIDER_ERRORS,
    COST_MICRODOLLARS,
    MODEL_SELECTED,
    MODEL_ROTATIONS,
    MODEL_UNAVAILABLE,
    AGENT_TURNS,
    COORDINATION_ROUNDS,
    VOTES,
    RUN_DURATION,
];

/// Describes every metric (help text and unit) to the recorder in force: the global one, or a
/// local one inside `metrics::with_local_recorder`. Call it once after installing a recorder;
/// [`super::install_prometheus`] does.
pub fn describe_all() {
    describe_counter!(
        PERMITS_GRANTED,
        Unit::Count,
        "Permits granted by the quota supervisor, per scope"
    );
    describe_counter!(
        PERMITS_DENIED,
        Unit::Count,
        "Permits refused or given up, per scope and reason (never_fits, deadline_exceeded, scope_closed, unknown_scope, no_candidates, stopped, other)"
    );
    describe_histogram!(
        PERMIT_WAIT,
        Unit::Seconds,
        "Time a request waited for its quota permit, per scope"
    );
    describe_gauge!(
        QUEUE_DEPTH,
        Unit::Count,
        "Requests waiting for a quota permit now, per scope"
    );
    describe_gauge!(
        IN_FLIGHT,
        Unit::Count,
        "Permits granted and not yet settled, per scope"
    );
    describe_gauge!(
        WINDOW_USED,
        Unit::Count,
        "Requests or tokens admitted in the trailing window of a limit, per scope, dimension and period"
    );
    describe_gauge!(
        WINDOW_LIMIT,
        Unit::Count,
        "The limit in force for a window (configured, or learned when lower), per scope, dimension and period"
    );
    describe_gauge!(
        WINDOW_UTILIZATION,
        Unit::Percent,
        "Window usage divided by its limit (0 to 1), per scope, dimension and period"
    );
    describe_gauge!(
        LIMIT_LEARNED,
        Unit::Count,
        "1 when the limit in force was learned from the provider and is lower than configured, else 0"
    );
    describe_counter!(
        LIMITS_LEARNED,
        Unit::Count,
        "Lower limits learned from provider answers (headers or error messages), per scope"
    );
    describe_gauge!(
        COOLDOWN_REMAINING,
        Unit::Seconds,
        "Seconds until a closed scope admits requests again (0 when open), per scope"
    );
    describe_gauge!(
        SCOPE_CLOSED,
        Unit::Count,
        "1 when a scope is closed until a human acts (spend cap reached), else 0"
    );
    describe_counter!(
        COOLDOWNS,
        Unit::Count,
        "Cooldowns started, per scope and reason (startup, rate_limited, daily_quota, spend_cap, overloaded, exhausted, other)"
    );
    describe_counter!(
        PROVIDER_REQUESTS,
        Unit::Count,
        "Provider calls by provider, model and status class (2xx, 4xx, 5xx, transport, malformed, cancelled)"
    );
    describe_histogram!(
        PROVIDER_REQUEST_DURATION,
        Unit::Seconds,
        "Provider call latency, per provider and model"
    );
    describe_counter!(
        RATE_LIMIT_RESPONSES,
        Unit::Count,
        "Rate-limit answers received, per provider, model and kind (rate_limited, daily_quota_exhausted, overloaded, spend_cap_reached, request_too_large)"
    );
    describe_gauge!(
        PROVIDER_CIRCUIT_STATE,
        Unit::Count,
        "Circuit breaker of a provider endpoint: 0 closed, 1 half-open (one probe call decides), 2 open (calls refused without a request)"
    );
    describe_histogram!(
        PROVIDER_LATENCY,
        Unit::Seconds,
        "Latency of calls a provider endpoint answered, timeouts included, per provider and endpoint"
    );
    describe_counter!(
        PROVIDER_ERRORS,
        Unit::Count,
        "Failed calls of a provider endpoint, per provider, endpoint and error kind (transient, overloaded, rate_limited, auth, bad_request, malformed, circuit_open, ...)"
    );
    describe_counter!(
        TOKENS,
        Unit::Count,
        "Tokens the provider reported, per provider, model and direction (input, output)"
    );
    describe_histogram!(
        COST,
        "Cost of each call in US dollars at list prices, per provider and model; the _sum series is the running cost"
    );
    describe_counter!(
        COST_MICRODOLLARS,
        Unit::Count,
        "Cost of priced calls in millionths of a US dollar, per agent, provider and model (the usage ledger's price table)"
    );
    describe_counter!(
        MODEL_SELECTED,
        Unit::Count,
        "Pooled calls given a model of their pool (first attempt), per pool, provider and model"
    );
    describe_counter!(
        MODEL_ROTATIONS,
        Unit::Count,
        "Pooled calls moved to another model, per pool, from and to model (provider/model) and reason (rate_limited, overloaded, transient, auth, other)"
    );
    describe_counter!(
        MODEL_UNAVAILABLE,
        Unit::Count,
        "Times no model of a pool could take a call at once: it waited for the earliest freeing model, or none was capable, per pool"
    );
    describe_counter!(
        AGENT_TURNS,
        Unit::Count,
        "Agent turns, per outcome (answer, vote, presented, retry, failed)"
    );
    describe_counter!(
        COORDINATION_ROUNDS,
        Unit::Count,
        "Coordination rounds: the first round of each run and every restart of finished agents by a new answer"
    );
    describe_counter!(VOTES, Unit::Count, "Votes cast by agents");
    describe_histogram!(
        RUN_DURATION,
        Unit::Seconds,
        "Wall time of a whole run, per final status (completed, timed_out, failed)"
    );
}
