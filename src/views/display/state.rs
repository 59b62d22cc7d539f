//! What the terminal display shows, as plain data: updated from run events and quota snapshots,
//! read by [`super::render`]. No terminal in here, so every state can be built in a test.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::quota::time::instant_after;
use crate::runtime::{AgentState, RunEvent};
use crate::supervisor::{QuotaEvent, QuotaSnapshot};

/// How many run notes (retries, pool moves, failures) the display keeps.
const NOTES_KEPT: usize = 4;

/// One agent's panel.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentPanel {
    /// The agent id.
    pub id: String,
    /// Its state in a word or two (`thinking`, `waiting for quota`, `voted`...).
    pub state: String,
    /// More about the state (the blocking scope and limit, the agent voted for...).
    pub detail: String,
    /// While waiting for quota: when the wait is expected to end.
    pub wait_until: Option<Instant>,
    /// The label of its latest accepted answer (`agent2.1`).
    pub answer_label: Option<String>,
    /// The first characters of its latest answer.
    pub answer_preview: String,
    /// Answers accepted so far.
    pub answers: u32,
    /// Whom it voted for (its vote in force).
    pub voted_for: Option<String>,
    /// For an agent on a pool: the model its latest call went to (`simulated/sim-medium`).
    pub model: Option<String>,
}

impl AgentPanel {
    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            state: "starting".to_owned(),
            detail: String::new(),
            wait_until: None,
            answer_label: None,
            answer_preview: String::new(),
            answers: 0,
            voted_for: None,
            model: None,
        }
    }
}

/// One limit of a scope and its use in the trailing window.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitGauge {
    /// Short name: `rpm`, `tpm`, `rpd`, `requests/8s`.
    pub name: String,
    /// Used in the trailing window.
    pub used: u64,
    /// The limit enforced.
    pub limit: u64,
    /// Whether the limit was learned from the provider.
    pub learned: bool,
}

/// One quota scope's strip.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeStrip {
    /// The scope name (`gemini/gemini-2.5-pro`).
    pub name: String,
    /// Each limit with its usage.
    pub limits: Vec<LimitGauge>,
    /// Permits in flight.
    pub in_flight: u32,
    /// The concurrency cap, if any.
    pub concurrency: Option<u32>,
    /// Requests waiting.
    pub queue_depth: usize,
    /// What blocks the queue (`rpm`, `cooldown: startup`) and when it frees, when known.
    pub blocking: Option<(String, Option<Instant>)>,
    /// Why the scope is cooling down and until when (`None`: closed until a human acts).
    pub cooldown: Option<(String, Option<Instant>)>,
}

impl ScopeStrip {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            limits: Vec::new(),
            in_flight: 0,
            concurrency: None,
            queue_depth: 0,
            blocking: None,
            cooldown: None,
        }
    }
}

/// Everything the terminal display shows at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct DisplayState {
    /// The instant the display is drawn for (ETAs count down to it).
    pub now: Instant,
    /// When the run started.
    pub started: Instant,
    /// The question.
    pub question: String,
    /// One panel per agent, in config order.
    pub agents: Vec<AgentPanel>,
    /// Votes in force: voter -> agent voted for.
    pub votes: BTreeMap<String, String>,
    /// One strip per quota scope, in the supervisor's order.
    pub scopes: Vec<ScopeStrip>,
    /// Whether calls go through the quota supervisor.
    pub rate_limit: bool,
    /// The latest notes about the run, oldest first.
    pub notes: VecDeque<String>,
    /// The winner and its votes.
    pub winner: Option<(String, usize)>,
    /// The final answer's author and length in characters, once known.
    pub final_answer: Option<(String, usize)>,
    /// The run's end: status and how long it took.
    pub finished: Option<(String, Duration)>,
    /// Ctrl-C was pressed: the run is stopping.
    pub interrupted: bool,
}

impl DisplayState {
    /// A display for `agents` (in config order) answering `question`, starting at `now`.
    pub fn new(question: &str, agents: &[String], now: Instant) -> Self {
        Self {
            now,
            started: now,
            question: question.to_owned(),
            agents: agents.iter().map(|a| AgentPanel::new(a)).collect(),
            votes: BTreeMap::new(),
            scopes: Vec::new(),
            rate_limit: false,
            notes: VecDeque::new(),
            winner: None,
            final_answer: None,
            finished: None,
            interrupted: false,
        }
    }

    /// Votes `agent` received (votes in force).
    pub fn votes_for(&self, agent: &str) -> usize {
        self.votes.values().filter(|v| v.as_str() == agent).count()
    }

    fn agent(&mut self, id: &str) -> &mut AgentPanel {
        let index = match self.agents.iter().position(|a| a.id == id) {
            Some(i) => i,
            None => {
                self.agents.push(AgentPanel::new(id));
                self.agents.len() - 1
            }
        };
        &mut self.agents[index]
    }

    fn scope(&mut self, name: &str) -> &mut ScopeStrip {
        let index = match self.scopes.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                self.scopes.push(ScopeStrip::new(name));
                self.scopes.len() - 1
            }
        };
        &mut self.scopes[index]
    }

    /// Adds a note, dropping the oldest beyond the few kept.
    pub fn note(&mut self, text: String) {
        if self.notes.len() == NOTES_KEPT {
            self.notes.pop_front();
        }
        self.notes.push_back(text);
    }

    /// Folds one run event in, at `now`.
    pub fn apply(&mut self, event: &RunEvent, now: Instant) {
        self.now = now;
        match event {
            RunEvent::RunStarted {
                question,
                agents,
                rate_limit,
                ..
            } => {
                self.question.clone_from(question);
                self.rate_limit = *rate_limit;
                for a in agents {
                    self.agent(a);
                }
            }
            RunEvent::AgentState { agent, state } => self.set_state(agent, state, now),
            RunEvent::NewAnswer {
                agent,
                label,
                preview,
                ..
            } => {
                let panel = self.agent(agent);
                panel.answer_label = Some(label.clone());
                panel.answer_preview.clone_from(preview);
                panel.answers += 1;
            }
            RunEvent::Vote {
                agent, for_agent, ..
            } => {
                self.votes.insert(agent.clone(), for_agent.clone());
                self.agent(agent).voted_for = Some(for_agent.clone());
            }
            RunEvent::VotesDiscarded { agents, .. } => {
                for a in agents {
                    self.votes.remove(a);
                    self.agent(a).voted_for = None;
                }
            }
            RunEvent::Quota { quota } => self.apply_quota(quota, now),
            RunEvent::TurnRetry { .. } | RunEvent::ActorFailed { .. } => {
                if let Some(note) = crate::views::event_note(event) {
                    self.note(note);
                }
            }
            RunEvent::ModelSelected {
                agent,
                provider,
                model,
                ..
            } => self.agent(agent).model = Some(format!("{provider}/{model}")),
            RunEvent::ModelRotated { agent, to, .. } => {
                self.agent(agent).model = Some(to.clone());
                if let Some(note) = crate::views::event_note(event) {
                    self.note(note);
                }
            }
            // The supervisor's own wait (the agent's `waiting for quota` state) says more; a
            // pool without a supervisor waits for a model to come back from its rest.
            RunEvent::NoModelAvailable {
                agent,
                pool,
                eta_ms,
            } => {
                let panel = self.agent(agent);
                if panel.state != "waiting for quota" {
                    panel.state = "waiting for a model".to_owned();
                    panel.detail = format!("no model of pool {pool} available");
                    panel.wait_until =
                        eta_ms.map(|ms| instant_after(now, Duration::from_millis(ms)));
                }
            }
            RunEvent::BudgetExceeded {
                scope,
                limit_usd,
                spent_usd,
            } => self.note(format!(
                "{scope} budget ${limit_usd:.2} reached (spent ${spent_usd:.2})"
            )),
            RunEvent::WinnerSelected { agent, votes, .. } => {
                self.winner = Some((agent.clone(), *votes));
            }
            RunEvent::FinalAnswer { agent, chars, .. } => {
                self.final_answer = Some((agent.clone(), *chars));
            }
            RunEvent::RunFinished {
                status,
                duration_ms,
                ..
            } => {
                self.finished = Some((status.clone(), Duration::from_millis(*duration_ms)));
            }
            _ => {}
        }
    }

    fn set_state(&mut self, agent: &str, state: &AgentState, now: Instant) {
        let panel = self.agent(agent);
        panel.wait_until = match state {
            AgentState::WaitingQuota { eta_ms, .. } => {
                Some(instant_after(now, Duration::from_millis(*eta_ms)))
            }
            _ => None,
        };
        let (label, detail) = crate::views::state_words(state);
        panel.state = label.to_owned();
        panel.detail = detail;
    }

    fn apply_quota(&mut self, event: &QuotaEvent, now: Instant) {
        match event {
            QuotaEvent::Waiting {
                scope,
                limit,
                eta_ms,
                queue_depth,
                ..
            } => {
                let strip = self.scope(scope);
                strip.queue_depth = *queue_depth;
                let until = eta_ms.map(|ms| instant_after(now, Duration::from_millis(ms)));
                strip.blocking = Some((limit.clone().unwrap_or_else(|| "-".to_owned()), until));
            }
            QuotaEvent::CooldownStarted {
                scope,
                reason,
                duration_ms,
            } => {
                let until = (*duration_ms != u64::MAX)
                    .then(|| instant_after(now, Duration::from_millis(*duration_ms)));
                self.scope(scope).cooldown = Some((reason.clone(), until));
            }
            QuotaEvent::LimitLearned { scope, limit } => {
                self.note(format!("{scope}: learned limit {limit}"));
            }
            QuotaEvent::Denied { scope, reason, .. } => {
                self.note(format!("{scope}: refused: {reason}"));
            }
            QuotaEvent::Granted { .. } | QuotaEvent::Settled { .. } => {}
        }
    }

    /// Takes the supervisor's view of every scope, at `now`: usage of each limit, queue,
    /// calls in flight and cooldowns. What blocks a queue stays as the last wait said, and is
    /// dropped once nothing waits.
    pub fn apply_snapshot(&mut self, snapshot: &QuotaSnapshot, now: Instant) {
        self.now = now;
        for s in &snapshot.scopes {
            let strip = self.scope(&s.scope);
            strip.limits = s
                .limits
                .iter()
                .map(|l| LimitGauge {
                    name: limit_name(l.dimension, l.period_secs),
                    used: l.used,
                    limit: l.limit,
                    learned: l.learned,
                })
                .collect();
            strip.in_flight = s.in_flight;
            strip.concurrency = s.concurrency;
            strip.queue_depth = s.queue_depth;
            if s.queue_depth == 0 {
                strip.blocking = None;
            }
            strip.cooldown = match (s.cooldown_remaining_ms, &s.cooldown_reason) {
                (Some(ms), reason) => Some((
                    reason.clone().unwrap_or_else(|| "cooldown".to_owned()),
                    Some(instant_after(now, Duration::from_millis(ms))),
                )),
                (None, Some(reason)) => Some((reason.clone(), None)),
                (None, None) => None,
            };
        }
    }

    /// Moves the clock (ETAs count down) without any news.
    pub fn tick(&mut self, now: Instant) {
        self.now = now;
    }

    /// Time left until `until`, seen from the display's `now`.
    pub fn left(&self, until: Instant) -> Duration {
        until.saturating_duration_since(self.now)
    }
}

/// `requests` per 60 s -> `rpm`, `tokens` per 86 400 s -> `tpd`, `input_tokens` per 60 s ->
/// `itpm`; any other period -> `requests/8s`.
pub fn limit_name(dimension: &str, period_secs: f64) -> String {
    let short = match dimension {
        "requests" => "r",
        "tokens" => "t",
        "input_tokens" => "it",
        "output_tokens" => "ot",
        _ => "",
    };
    let unit = if (period_secs - 60.0).abs() < 1e-9 {
        Some("m")
    } else if (period_secs - 86_400.0).abs() < 1e-9 {
        Some("d")
    } else {
        None
    };
    match (short.is_empty(), unit) {
        (false, Some(u)) => format!("{short}p{u}"),
        _ => {
            let period = Duration::from_secs_f64(period_secs.max(0.0));
            format!(
                "{dimension}/{}",
                crate::telemetry::quota::period_label(period)
            )
        }
    }
}
