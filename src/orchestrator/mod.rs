//! The MassGen coordination protocol: answers, votes, restarts, the winner and the final
//! presentation, one orchestrator actor per run.
