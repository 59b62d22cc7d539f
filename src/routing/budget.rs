//! The budget check of one call, the same in every call path ([`super::call`] and
//! [`super::keyed::call`]): [`reserve`] the call's worst-case cost before its quota permit is
//! asked for, [`cover`] the request as rebuilt after the wait, [`settle`] to the actual cost
//! once it ended. A hold dropped on the way (the call went back to wait, or gave up) is released.
//! See [`crate::usage::budget`].

use std::time::Duration;

use super::{CallError, Route, reserve};
use crate::provider::{ChatRequest, ChatResponse, ProviderError};
use crate::supervisor::Permit;
use crate::usage::budget::{BudgetGuard, BudgetHold, BudgetRefusal};

/// The most `request` can cost on `route`: its prompt estimate and its output cap at the
/// model's price (0 for an unpriced model the budget allows).
pub fn worst_case(
    route: &Route,
    guard: &BudgetGuard,
    request: &ChatRequest,
) -> Result<f64, BudgetRefusal> {
    worst_case_at(route, guard, route.provider.name(), &request.model, request)
}

/// The most `request` can cost sent to `model` at `provider` (a member of a model pool).
fn worst_case_at(
    route: &Route,
    guard: &BudgetGuard,
    provider: &str,
    model: &str,
    request: &ChatRequest,
) -> Result<f64, BudgetRefusal> {
    let Some(price) = guard.price(provider, model)? else {
        return Ok(0.0);
    };
    let tokens = reserve::tokens(route, request);
    Ok(price.cost(tokens.input, tokens.output))
}

fn refused(refusal: BudgetRefusal, calls: u32, quota_wait: Duration) -> CallError {
    CallError::Budget {
        refusal,
        calls,
        quota_wait,
    }
}

/// Reserves `request`'s worst case on the route's budget (`None`: the route has none). An
/// error means the call must not be made; `calls` and `quota_wait` go into it.
#[allow(clippy::result_large_err)]
pub fn reserve(
    route: &Route,
    request: &ChatRequest,
    calls: u32,
    quota_wait: Duration,
) -> Result<Option<BudgetHold>, CallError> {
    let Some(guard) = &route.budget else {
        return Ok(None);
    };
    let cost = worst_case(route, guard, request).map_err(|r| refused(r, calls, quota_wait))?;
    guard
        .admit(cost)
        .map(Some)
        .map_err(|e| refused(BudgetRefusal::Exceeded(e), calls, quota_wait))
}

/// Reserves the worst case of `request` over every `(provider, model)` it may be sent to (the
/// candidates of a model pool, before the supervisor chose one): the dearest of them.
#[allow(clippy::result_large_err)]
pub fn reserve_most<'a>(
    route: &Route,
    targets: impl Iterator<Item = (&'a str, &'a str)>,
    request: &ChatRequest,
    calls: u32,
    quota_wait: Duration,
) -> Result<Option<BudgetHold>, CallError> {
    let Some(guard) = &route.budget else {
        return Ok(None);
    };
    let mut most = 0.0_f64;
    for (provider, model) in targets {
        let cost = worst_case_at(route, guard, provider, model, request)
            .map_err(|r| refused(r, calls, quota_wait))?;
        most = most.max(cost);
    }
    guard
        .admit(most)
        .map(Some)
        .map_err(|e| refused(BudgetRefusal::Exceeded(e), calls, quota_wait))
}

/// Makes `hold` cover `request` as it will be sent (rebuilt after the permit wait, it may have
/// grown) and passes `permit` on; when it cannot, the permit is given back unsent and the error
/// says the call must not be made.
#[allow(clippy::result_large_err)]
pub fn cover(
    route: &Route,
    hold: &mut Option<BudgetHold>,
    request: &ChatRequest,
    permit: Option<Permit>,
    calls: u32,
    quota_wait: Duration,
) -> Result<Option<Permit>, CallError> {
    let (Some(guard), Some(h)) = (&route.budget, hold.as_mut()) else {
        return Ok(permit);
    };
    let grown = match worst_case(route, guard, request) {
        Ok(cost) => h.grow(cost).map_err(BudgetRefusal::Exceeded),
        Err(r) => Err(r),
    };
    match grown {
        Ok(()) => Ok(permit),
        Err(r) => {
            if let Some(p) = permit {
                p.release_unsent();
            }
            Err(refused(r, calls, quota_wait))
        }
    }
}

/// Settles `hold` once the call of `request` ended with `result`: the price of the tokens the
/// provider reported (what the usage ledger records); a success that reported no usage keeps
/// its whole reservation, since what it cost is unknown.
pub fn settle(
    route: &Route,
    hold: Option<BudgetHold>,
    request: &ChatRequest,
    result: &Result<ChatResponse, ProviderError>,
) {
    settle_at(route, route.provider.name(), hold, request, result);
}

/// [`settle`] for a call sent to `provider` (a member of a model pool).
pub fn settle_at(
    route: &Route,
    provider: &str,
    hold: Option<BudgetHold>,
    request: &ChatRequest,
    result: &Result<ChatResponse, ProviderError>,
) {
    let (Some(guard), Some(hold)) = (&route.budget, hold) else {
        return;
    };
    let price = guard.price(provider, &request.model).ok().flatten();
    let actual = match (result, price) {
        (_, None) => 0.0,
        (Ok(ChatResponse { usage: Some(u), .. }), Some(p))
            if !u.input_unreported && !u.output_unreported =>
        {
            p.cost(u.input_tokens, u.output_tokens)
        }
        (Ok(_), Some(_)) => hold.reserved(),
        (Err(_), Some(_)) => 0.0,
    };
    hold.settle(actual);
}
