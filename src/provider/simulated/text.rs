//! The simulated model's prose: a few seeded sentences built from the question's words.

const STOP_WORDS: [&str; 16] = [
    "what", "which", "when", "where", "does", "that", "this", "with", "from", "have", "there",
    "their", "about", "would", "could", "should",
];
const OPENERS: [&str; 4] = [
    "In short, the question about {t} comes down to {a} and {b}.",
    "The core of {t} is how {a} interacts with {b}.",
    "A practical answer on {t} starts from {a}, then weighs {b}.",
    "Looking at {t}, the deciding factors are {a} and {b}.",
];
const BODIES: [&str; 6] = [
    "Evidence from practice suggests that {a} matters most when constraints are tight.",
    "A careful reading shows {b} is often underestimated, so it deserves a closer look.",
    "Trade-offs appear once {a} grows: cost, latency and reliability pull apart.",
    "Comparing alternatives side by side makes the role of {b} much clearer.",
    "Small experiments with {a} usually reveal the limits before they hurt.",
    "Experts tend to agree that {b} should be measured, not assumed.",
];
const REVISIONS: [&str; 4] = [
    "Revision {r} adds a concrete example: start small, measure {a}, then scale.",
    "Revision {r} corrects an earlier gap by spelling out when {b} fails.",
    "Revision {r} tightens the argument with a checklist covering {a} and {b}.",
    "Revision {r} weighs the strongest counter-argument against relying on {a}.",
];

/// Plausible, seeded text about `question`; `round` > 1 adds a distinct revision sentence.
pub(super) fn compose_answer(question: &str, rng: &mut fastrand::Rng, round: u32) -> String {
    let mut words: Vec<String> = Vec::new();
    for w in question.split(|c: char| !c.is_alphanumeric() && c != '-') {
        let w = w.to_lowercase();
        if w.len() > 3 && !STOP_WORDS.contains(&w.as_str()) && !words.contains(&w) {
            words.push(w);
        }
    }
    let a = if words.is_empty() {
        "scope".to_owned()
    } else {
        words.swap_remove(rng.usize(..words.len()))
    };
    let b = if words.is_empty() {
        "context".to_owned()
    } else {
        words[rng.usize(..words.len())].clone()
    };
    let topic = if question.is_empty() {
        "the topic".to_owned()
    } else {
        question.trim_end_matches('?').chars().take(80).collect()
    };
    let fill = |s: &str| {
        s.replace("{t}", &topic)
            .replace("{a}", &a)
            .replace("{b}", &b)
            .replace("{r}", &round.to_string())
    };
    let mut text = fill(OPENERS[rng.usize(..OPENERS.len())]);
    let first = rng.usize(..BODIES.len());
    let second = (first + 1 + rng.usize(..BODIES.len() - 1)) % BODIES.len();
    for i in [first, second] {
        text.push(' ');
        text.push_str(&fill(BODIES[i]));
    }
    if round > 1 {
        text.push(' ');
        text.push_str(&fill(REVISIONS[(round as usize - 2) % REVISIONS.len()]));
    }
    text
}
