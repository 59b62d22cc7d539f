//! A run under a budget (`rate_limit.budget`): its [`BudgetGuard`], the stop it adds to the
//! run (the first refused call ends the run the way an interrupt does: calls in flight are
//! cancelled and the winner is picked from what exists), and how that end is reported.

use std::future::Future;
use std::sync::Arc;

use super::{RunError, RunOutcome, RunStatus};
use crate::agent::events::{Emitter, RunEvent};
use crate::config::{PriceTable, TeamConfig};
use crate::usage::budget::{BudgetExceeded, BudgetGuard};

/// The guard of run `run_id` when the team has a budget. The day limit reads the usage ledger
/// kept with the quota state (`rate_limit.state`); without one only this run counts.
pub(super) fn guard(
    team: &TeamConfig,
    prices: &Arc<PriceTable>,
    run_id: &str,
) -> Option<Arc<BudgetGuard>> {
    let settings = team.rate_limit.budget?;
    let day_store = match (&team.rate_limit.state, settings.per_day_usd) {
        (Some(spec), Some(_)) => match spec.open_usage() {
            Ok(store) => store,
            Err(e) => {
                tracing::warn!(
                    "the day budget counts only this run: cannot read the usage ledger: {e}"
                );
                None
            }
        },
        _ => None,
    };
    if settings.per_day_usd.is_some() && day_store.is_none() {
        tracing::info!(
            "no usage ledger (rate_limit.state): the day budget counts only this run's calls"
        );
    }
    Some(BudgetGuard::new(
        settings,
        prices.clone(),
        run_id,
        day_store,
    ))
}

/// `stop`, or the first call the budget refuses.
pub(super) async fn stop_or_trip(
    stop: impl Future<Output = ()> + Send,
    guard: Option<Arc<BudgetGuard>>,
) {
    match guard {
        Some(g) => {
            tokio::select! {
                () = stop => {}
                _ = g.tripped() => {}
            }
        }
        None => stop.await,
    }
}

/// Turns a run stopped by `exceeded` into its report: the outcome says so (status
/// `budget_exceeded` and the message first among its notes), a run with no answer becomes
/// [`RunError::BudgetExceeded`]; the event is emitted.
pub(super) fn report(
    result: Result<RunOutcome, RunError>,
    exceeded: BudgetExceeded,
    emitter: &Emitter,
) -> Result<RunOutcome, RunError> {
    emitter.emit(RunEvent::BudgetExceeded {
        scope: exceeded.scope.as_str().to_owned(),
        limit_usd: exceeded.limit_usd,
        spent_usd: exceeded.spent_usd,
    });
    let message = exceeded.to_string();
    match result {
        Ok(mut o) => {
            o.status = RunStatus::BudgetExceeded;
            // The stop was an interrupt as far as the orchestrator knew.
            o.notes
                .retain(|n| !n.starts_with("the run was interrupted"));
            o.notes.insert(
                0,
                format!(
                    "{message}: the call was not made; the winner was picked from the votes and \
                     answers that existed then"
                ),
            );
            Ok(o)
        }
        Err(
            e @ (RunError::Interrupted { .. }
            | RunError::AllAgentsFailed { .. }
            | RunError::NoAnswer { .. }
            | RunError::QuotaDeadline { .. }),
        ) => Err(RunError::BudgetExceeded {
            message,
            run_dir: e.run_dir().cloned(),
        }),
        Err(e) => Err(e),
    }
}
