//! Reservations that are upper bounds of what the provider counts, and settlements that follow
//! how it counts.
//!
//! - Every request admitted by the supervisor carries the output cap it reserves: the agent's
//!   `max_tokens`, else the route's cap (from the limits table), filled in by [`capped`] before
//!   the request is estimated and before it is sent.
//! - The prompt is counted with the tokenizer of the model's family
//!   ([`estimate::TokenCounter`]).
//! - A request rebuilt after the grant (it carries what changed while it waited) that grew is
//!   topped up atomically before it is sent ([`refresh`]), or the permit is released and the
//!   call acquires again: nothing is sent under-reserved.
//! - [`settlement`] settles per dialect ([`Counting`]).

use super::Route;
use super::estimate::{self, TokenCounter};
use crate::provider::{ChatRequest, ChatResponse, ProviderError, ProviderErrorKind};
use crate::quota::TokenCount;
use crate::supervisor::Permit;

/// How a provider counts a call against its token limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// OpenAI-compatible: input + the sent output cap, counted when the request arrives;
    /// nothing is refunded inside the window. Settled at the reservation.
    AtArrival,
    /// Gemini (and the in-process simulated backend): the usage reported with the answer.
    /// Settled to it.
    ActualUsage,
    /// Anthropic: input counted at arrival, output estimated from `max_tokens` at arrival and
    /// adjusted to the actual output when the answer completes. Settled with the input kept and
    /// the output set to the actual.
    InputThenOutput,
}

impl Counting {
    /// The counting of a provider by its [`crate::provider::Provider::name`].
    pub fn of(provider: &str) -> Counting {
        match provider {
            "gemini" | "simulated" => Counting::ActualUsage,
            "claude" | "anthropic" => Counting::InputThenOutput,
            _ => Counting::AtArrival,
        }
    }
}

/// `request` with the route's output cap filled in when it names none and the route reserves
/// quota or has a budget (the cap reserved must be the cap sent).
///
/// `ceiling` lowers the route's cap for this call ([`fitting_cap`]); a cap the agent set itself
/// is never changed.
pub fn capped(route: &Route, mut request: ChatRequest, ceiling: Option<u32>) -> ChatRequest {
    // A budget reserves the output cap's price, so it sends the cap too.
    if (route.quota.is_some() || route.budget.is_some()) && request.max_tokens.is_none() {
        let cap = route
            .quota
            .as_ref()
            .and_then(|q| q.output_cap)
            .unwrap_or(estimate::DEFAULT_MAX_TOKENS);
        request.max_tokens = Some(ceiling.map_or(cap, |c| c.min(cap)));
    }
    request
}

/// After `error` refused `granted` as one that can never fit: a lower output cap that lets it
/// fit, when the cap came from the route (the agent's own request, `own_cap`, named none) and
/// the limit that refused it counts output tokens. The limits a route's default cap was chosen
/// against can tighten later: a token limit learned from the provider, or a shared group's.
/// Half of what the limit leaves beside the prompt, so other requests still fit beside it;
/// `None` when even a cap of one token cannot fit, or the cap was the agent's.
pub fn fitting_cap(
    own_cap: Option<u32>,
    granted: &ChatRequest,
    error: &crate::supervisor::AcquireError,
) -> Option<u32> {
    let lower = fitting_cap_of(own_cap, granted, error)?;
    tracing::info!(cap = lower, %error, "lowering the output cap of this call so it fits");
    Some(lower)
}

fn fitting_cap_of(
    own_cap: Option<u32>,
    granted: &ChatRequest,
    error: &crate::supervisor::AcquireError,
) -> Option<u32> {
    if own_cap.is_some() {
        return None;
    }
    let crate::supervisor::AcquireError::NeverFits {
        limit, requested, ..
    } = error
    else {
        return None;
    };
    let cap = u64::from(granted.max_tokens?);
    let prompt = match limit.dimension {
        crate::quota::Dimension::Tokens => requested.saturating_sub(cap),
        crate::quota::Dimension::OutputTokens => 0,
        _ => return None,
    };
    let room = limit.amount.get().checked_sub(prompt).filter(|r| *r > 0)?;
    let lower = (room / 2).max(1);
    (lower < cap).then(|| u32::try_from(lower).ok()).flatten()
}

/// What `request` reserves on `route`: its prompt counted with the model family's tokenizer,
/// and its output cap.
pub fn tokens(route: &Route, request: &ChatRequest) -> TokenCount {
    let counter = TokenCounter::for_model(route.provider.name(), &request.model);
    estimate::estimate_tokens(request, counter)
}

/// How many times a call gives its permit back because the rebuilt request outgrew it, before
/// it sends the request the permit was granted for instead.
pub const MAX_REGROWTHS: u32 = 3;

/// After a grant: rebuilds the request (capped) so it carries the latest state, and makes sure
/// the permit covers it, topping the reservation up if it grew. Returns the request to send, or
/// `None` when the grown request does not fit now (the caller releases the permit uncounted and
/// acquires again). After [`MAX_REGROWTHS`] such returns (`regrowths`), the request the permit
/// was granted for (`granted`) is sent instead.
pub async fn refresh<F>(
    route: &Route,
    permit: &mut Permit,
    granted: ChatRequest,
    build: &F,
    regrowths: u32,
    ceiling: Option<u32>,
) -> Option<ChatRequest>
where
    F: Fn() -> ChatRequest,
{
    let Some(q) = &route.quota else {
        return Some(granted);
    };
    let fresh = capped(route, build(), ceiling);
    // Nothing changed while it waited: the reservation was counted from this very request
    // (comparing is far cheaper than counting its tokens again).
    if fresh == granted {
        return Some(granted);
    }
    let needed = tokens(route, &fresh);
    if q.handle.top_up(permit, needed).await {
        return Some(fresh);
    }
    if regrowths >= MAX_REGROWTHS {
        tracing::info!(
            requester = %route.requester,
            "the rebuilt request outgrew its quota permit again; sending the request it covers"
        );
        return Some(granted);
    }
    None
}

/// What a settled permit should charge: `Some(tokens)`, or `None` when the provider counted
/// nothing (the request never reached it, or it said so with a 529 overload).
pub fn settlement(
    counting: Counting,
    reserved: TokenCount,
    result: &Result<ChatResponse, ProviderError>,
) -> Option<TokenCount> {
    let response = match result {
        Ok(r) => r,
        Err(e) if e.not_sent || e.kind == ProviderErrorKind::Overloaded => return None,
        // It reached the provider, which may have counted it in full.
        Err(_) => return Some(reserved),
    };
    let Some(usage) = response.usage else {
        return Some(reserved);
    };
    // A part the provider did not report keeps its reservation.
    let usage = usage.or_reserved(reserved.input, reserved.output);
    // Never below what the provider says it read.
    let input = reserved.input.max(usage.input_tokens);
    Some(match counting {
        // Counted at arrival; a provider reporting more output than the cap it was sent is
        // charged what it says.
        Counting::AtArrival => TokenCount::new(input, reserved.output.max(usage.output_tokens)),
        Counting::ActualUsage => TokenCount::new(usage.input_tokens, usage.output_tokens),
        Counting::InputThenOutput => TokenCount::new(input, usage.output_tokens),
    })
}

/// Settles `permit` after a call on `route` by the provider's counting.
pub fn settle(route: &Route, permit: Option<Permit>, result: &Result<ChatResponse, ProviderError>) {
    let Some(permit) = permit else {
        return;
    };
    match settlement(Counting::of(route.provider.name()), permit.tokens(), result) {
        Some(tokens) => permit.settle_tokens(tokens),
        None => permit.release_uncounted(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::result_large_err, clippy::unwrap_used)]

    use super::*;
    use crate::provider::Usage;

    fn ok(input: u64, output: u64) -> Result<ChatResponse, ProviderError> {
        Ok(ChatResponse {
            usage: Some(Usage::new(input, output)),
            ..ChatResponse::default()
        })
    }

    #[test]
    fn a_cap_from_the_route_is_lowered_to_fit_a_limit_that_refused_it() {
        use crate::quota::{Limit, ScopeId};
        use crate::supervisor::AcquireError;
        use std::num::NonZeroU64;
        let never = |limit: Limit, requested: u64| AcquireError::NeverFits {
            scope: ScopeId::from("s"),
            limit,
            requested,
        };
        let mut granted = ChatRequest {
            max_tokens: Some(4096),
            ..ChatRequest::default()
        };
        let tpm = Limit::tpm(NonZeroU64::new(1000).unwrap());
        // 300 of prompt beside the 4,096 cap: half of the 700 left.
        assert_eq!(fitting_cap(None, &granted, &never(tpm, 4396)), Some(350));
        // Output-only limits leave the prompt out.
        let otpm = Limit::otpm(NonZeroU64::new(500).unwrap());
        assert_eq!(fitting_cap(None, &granted, &never(otpm, 4096)), Some(250));
        // The agent's own cap stays, a prompt alone over the limit cannot be helped, and a
        // request limit is not about the cap.
        assert_eq!(fitting_cap(Some(4096), &granted, &never(tpm, 4396)), None);
        assert_eq!(fitting_cap(None, &granted, &never(tpm, 5200)), None);
        let rpm = Limit::rpm(NonZeroU64::new(1).unwrap());
        assert_eq!(fitting_cap(None, &granted, &never(rpm, 2)), None);
        // Never raised: a cap already at or below the fitting one stays refused.
        granted.max_tokens = Some(300);
        assert_eq!(fitting_cap(None, &granted, &never(tpm, 1400)), None);
    }

    #[test]
    fn each_dialect_settles_the_way_its_provider_counts() {
        let reserved = TokenCount::new(120, 500);
        let s = |c, r: &Result<ChatResponse, ProviderError>| settlement(c, reserved, r);
        assert_eq!(Counting::of("openai"), Counting::AtArrival);
        assert_eq!(Counting::of("groq"), Counting::AtArrival);
        assert_eq!(Counting::of("gemini"), Counting::ActualUsage);
        assert_eq!(Counting::of("claude"), Counting::InputThenOutput);
        // OpenAI-style: input + cap at arrival, no refund.
        assert_eq!(s(Counting::AtArrival, &ok(100, 40)), Some(reserved));
        // ... but never below the input the provider reports.
        assert_eq!(
            s(Counting::AtArrival, &ok(130, 40)),
            Some(TokenCount::new(130, 500))
        );
        // Gemini: the reported usage, above the reservation too.
        assert_eq!(
            s(Counting::ActualUsage, &ok(100, 40)),
            Some(TokenCount::new(100, 40))
        );
        assert_eq!(
            s(Counting::ActualUsage, &ok(100, 900)),
            Some(TokenCount::new(100, 900))
        );
        // Anthropic: input stays, output to the actual.
        assert_eq!(
            s(Counting::InputThenOutput, &ok(100, 40)),
            Some(TokenCount::new(120, 40))
        );
        // No usage reported: the reservation.
        let bare = Ok(ChatResponse::default());
        for c in [
            Counting::AtArrival,
            Counting::ActualUsage,
            Counting::InputThenOutput,
        ] {
            assert_eq!(s(c, &bare), Some(reserved));
        }
    }

    #[actix_rt::test]
    async fn the_route_cap_is_filled_in_only_when_quota_reserves_it() {
        use crate::config::SimulatedSettings;
        use crate::provider::{Message, SimulatedProvider};
        use crate::supervisor::{QuotaHandle, SupervisorSettings};
        use std::sync::Arc;

        let mut route = Route {
            provider: crate::provider::ProviderRef::start(
                &crate::system::ActorSystem::current().unwrap(),
                Arc::new(SimulatedProvider::new(
                    "a",
                    SimulatedSettings::default(),
                    &["a".to_owned()],
                )),
            ),
            key: None,
            retry: super::super::RetryPolicy::default(),
            requester: Arc::from("a"),
            quota: None,
            pool: None,
            models: None,
            usage: None,
            budget: None,
        };
        let request = |max_tokens| ChatRequest {
            options: Default::default(),
            model: "m".into(),
            messages: vec![Message::user("hi")],
            tools: Vec::new(),
            temperature: None,
            max_tokens,
            stream: false,
        };
        // No quota: nothing is reserved, nothing is added.
        assert_eq!(capped(&route, request(None), None).max_tokens, None);
        let handle = QuotaHandle::start_local(SupervisorSettings::default()).unwrap();
        route.quota = Some(super::super::QuotaRoute {
            handle,
            candidates: Vec::new(),
            deadline: None,
            run_deadline: None,
            output_cap: Some(300),
            extra_scopes: Vec::new(),
        });
        assert_eq!(capped(&route, request(None), None).max_tokens, Some(300));
        // The agent's own cap wins, and is what is reserved.
        let own = capped(&route, request(Some(77)), None);
        assert_eq!(own.max_tokens, Some(77));
        assert_eq!(tokens(&route, &own).output, 77);
        if let Some(q) = &mut route.quota {
            q.output_cap = None;
        }
        assert_eq!(
            capped(&route, request(None), None).max_tokens,
            Some(estimate::DEFAULT_MAX_TOKENS)
        );
    }

    #[test]
    fn failures_settle_at_the_estimate_unless_provably_uncounted() {
        let reserved = TokenCount::new(120, 500);
        let err = |kind| Err(ProviderError::new(kind, "x"));
        for c in [
            Counting::AtArrival,
            Counting::ActualUsage,
            Counting::InputThenOutput,
        ] {
            for kind in [
                ProviderErrorKind::RateLimited,
                ProviderErrorKind::Transient,
                ProviderErrorKind::Malformed,
                ProviderErrorKind::BadRequest,
            ] {
                assert_eq!(settlement(c, reserved, &err(kind)), Some(reserved));
            }
            assert_eq!(
                settlement(c, reserved, &err(ProviderErrorKind::Overloaded)),
                None
            );
            let refused = Err(ProviderError::new(ProviderErrorKind::Transient, "x").never_sent());
            assert_eq!(settlement(c, reserved, &refused), None);
        }
    }
}
