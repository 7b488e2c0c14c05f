//! The transition table against docs/semantics.md §2 and against docs/state_machine.md.

use std::collections::BTreeSet;

use haltway_core::{ALL_TRANSITIONS, JobState, Reason, Transition, transition};

/// Every state a job can be in, with the reasons that change what is allowed.
fn situations() -> Vec<(JobState, Option<Reason>)> {
    vec![
        (JobState::Queued, None),
        (JobState::Running, None),
        (JobState::Cancelling, Some(Reason::UserCancelled)),
        (JobState::Completed, Some(Reason::Exhausted)),
        (JobState::Completed, Some(Reason::LimitMet)),
        (JobState::Failed, Some(Reason::Error)),
        (JobState::Failed, Some(Reason::Timeout)),
        (JobState::Cancelled, Some(Reason::UserCancelled)),
    ]
}

fn code_edges() -> BTreeSet<(String, String, String)> {
    let mut edges = BTreeSet::new();
    for (state, reason) in situations() {
        for event in ALL_TRANSITIONS {
            if let Ok(step) = transition(state, reason, event)
                && step.changed
            {
                edges.insert((
                    state.to_string(),
                    step.state.to_string(),
                    event.name().to_string(),
                ));
            }
        }
    }
    edges
}

fn doc_edges() -> BTreeSet<(String, String, String)> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/state_machine.md"
    ))
    .expect("docs/state_machine.md");
    let block = doc
        .split("```mermaid")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a mermaid block");
    block
        .lines()
        .filter_map(|line| {
            let (arrow, label) = line.trim().split_once(" : ")?;
            let (from, to) = arrow.split_once(" --> ")?;
            (from != "[*]" && to != "[*]")
                .then(|| (from.to_string(), to.to_string(), label.to_string()))
        })
        .collect()
}

#[test]
fn diagram_matches_the_code() {
    let code = code_edges();
    let doc = doc_edges();
    let missing: Vec<_> = code.difference(&doc).collect();
    let extra: Vec<_> = doc.difference(&code).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing from doc: {missing:?}\nnot in code: {extra:?}"
    );
}

#[test]
fn terminal_states_are_absorbing_except_extend_after_limit_met_and_retry_after_error() {
    for (state, reason) in situations().into_iter().filter(|(s, _)| s.is_terminal()) {
        for event in ALL_TRANSITIONS {
            let r = transition(state, reason, event);
            let reopen = (state == JobState::Completed
                && reason == Some(Reason::LimitMet)
                && event == Transition::Extend)
                || (state == JobState::Failed
                    && reason == Some(Reason::Error)
                    && event == Transition::Retry);
            if reopen {
                let step = r.expect("extend after limit_met, retry after error");
                assert_eq!((step.state, step.reason), (JobState::Queued, None));
            } else {
                assert!(
                    r.is_err(),
                    "{state} ({reason:?}) must refuse {event:?}, got {r:?}"
                );
            }
        }
    }
}

#[test]
fn cancel_rules() {
    use JobState::*;
    let cancel = Transition::Cancel(Reason::UserCancelled);
    let q = transition(Queued, None, cancel).expect("queued");
    assert_eq!(
        (q.state, q.reason),
        (Cancelled, Some(Reason::UserCancelled)),
        "immediate"
    );
    let r = transition(Running, None, Transition::Cancel(Reason::GroupCancelled)).expect("running");
    assert_eq!(
        (r.state, r.reason),
        (Cancelling, Some(Reason::GroupCancelled))
    );
    let again = transition(Cancelling, Some(Reason::GroupCancelled), cancel).expect("idempotent");
    assert!(!again.changed);
    assert_eq!(
        again.reason,
        Some(Reason::GroupCancelled),
        "the first request's reason is kept"
    );
    for event in ALL_TRANSITIONS {
        if let Ok(step) = transition(Cancelling, Some(Reason::UserCancelled), event)
            && step.changed
        {
            assert_eq!(
                (step.state, step.reason),
                (Cancelled, Some(Reason::UserCancelled)),
                "{event:?}"
            );
        }
    }
    assert!(
        transition(Running, None, Transition::Cancel(Reason::Error)).is_err(),
        "not a cancel reason"
    );
    let refusal = transition(Completed, Some(Reason::Exhausted), cancel).expect_err("terminal");
    assert_eq!(refusal.to_string(), "cannot cancel a job that is completed");
}

#[test]
fn only_queued_jobs_are_claimed_and_only_running_ones_complete() {
    for (state, reason) in situations() {
        assert_eq!(
            transition(state, reason, Transition::Claim).is_ok(),
            state == JobState::Queued
        );
        let done = transition(state, reason, Transition::HandlerDone);
        assert_eq!(
            done.is_ok(),
            matches!(state, JobState::Running | JobState::Cancelling)
        );
    }
}
