//! Embedding massgen in a plain tokio application: build a simulated team in code, watch the
//! events, print the final answer.
//!
//! Run with `cargo run --example embed -- "your question"`.

use std::time::Duration;

use massgen::config::{AgentConfig, SimulatedSettings, TeamConfig};
use massgen::{AgentState, RunEvent, Runtime, RuntimeOptions};

fn simulated_agent(id: &str, latency_ms: u64, seed: u64) -> AgentConfig {
    let settings = SimulatedSettings {
        latency: Duration::from_millis(latency_ms),
        seed,
        ..SimulatedSettings::default()
    };
    AgentConfig {
        system_message: Some("You are a careful, concise expert.".to_owned()),
        ..AgentConfig::simulated(id, settings)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let question = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Why is the sky blue?".to_owned());
    let team = TeamConfig::new(vec![
        simulated_agent("researcher", 300, 1),
        simulated_agent("critic", 450, 2),
        simulated_agent("writer", 200, 3),
    ]);
    let runtime = Runtime::new(team, RuntimeOptions::default())?;

    let mut events = runtime.subscribe();
    let printer = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                RunEvent::AgentState { agent, state } => match state {
                    AgentState::Thinking => eprintln!("  {agent}: thinking"),
                    AgentState::Answered { label } => eprintln!("  {agent}: answered ({label})"),
                    AgentState::Voted { for_agent } => {
                        eprintln!("  {agent}: voted for {for_agent}")
                    }
                    AgentState::Restarting => eprintln!("  {agent}: restarting (new answers)"),
                    AgentState::Presenting => eprintln!("  {agent}: presenting the final answer"),
                    other => eprintln!("  {agent}: {other:?}"),
                },
                RunEvent::WinnerSelected { agent, votes, .. } => {
                    eprintln!("winner: {agent} with {votes} vote(s)");
                }
                RunEvent::RunFinished { .. } => break,
                _ => {}
            }
        }
    });

    let outcome = runtime.run(&question).await?;
    printer.await?;
    println!("{}", outcome.final_answer);
    eprintln!(
        "{:?} in {:.1?}: {} answers, {} votes",
        outcome.status,
        outcome.duration,
        outcome.answers.len(),
        outcome.votes.len()
    );
    Ok(())
}
