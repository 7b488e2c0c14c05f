//! The kernel's own tests: what each change decides.

use super::*;
use crate::types::Reason;

const T: Timestamp = Timestamp(1_000);

fn queued(limit: Option<u64>) -> Job {
    new_job(
        NewJob {
            limit,
            ..crate::types::test_request(T)
        },
        T,
    )
}

fn running(limit: Option<u64>) -> Job {
    let mut job = queued(limit);
    claim(&mut job, &"w".into(), 1_000, T).expect("claim");
    job
}

fn lease(job: &Job) -> Lease {
    Lease {
        job: job.id,
        attempt: job.attempt,
    }
}

fn available(job: &Job) -> Option<Notice> {
    Some(Notice::Available(job.kind.clone()))
}

/// Every state change owes one status event (its id counted on the job) and the notice
/// its new state calls for; a call that changes no state owes nothing.
#[test]
fn each_change_decides_its_status_event_and_notice() {
    let job = queued(Some(1));
    assert_eq!(
        created(&job),
        Effects {
            left: None,
            status_event: true,
            notice: available(&job),
            refund: 0,
        }
    );

    let mut job = queued(Some(1));
    let e = claim(&mut job, &"w".into(), 1_000, T).expect("claim");
    assert_eq!(
        (e.left, e.status_event, e.notice),
        (Some(JobState::Queued), true, None)
    );
    assert_eq!(job.last_event_id, 2, "the status event is counted");

    let req = CancelRequest::default();
    let mut job = running(None);
    let e = cancel(&mut job, &req, T).expect("cancel running");
    assert_eq!(
        (e.left, e.notice),
        (
            Some(JobState::Running),
            Some(Notice::CancelRequested(job.id))
        )
    );
    let before = job.last_event_id;
    let again = cancel(&mut job, &req, T).expect("cancel again");
    assert_eq!(again, Effects::none(), "a repeated cancel owes nothing");
    assert!(!again.changed());
    assert_eq!(job.last_event_id, before);

    let mut job = queued(None);
    let e = cancel(&mut job, &req, T).expect("cancel queued");
    assert_eq!(
        (e.left, e.status_event, e.notice),
        (Some(JobState::Queued), true, None)
    );

    let mut job = running(Some(1));
    let e = extend(&mut job, 5, T).expect("extend running");
    assert_eq!(
        (e.left, e.status_event, e.notice),
        (
            None,
            false,
            Some(Notice::Extended {
                job: job.id,
                limit: 5
            })
        )
    );

    let mut job = running(Some(1));
    let l = lease(&job);
    let a = Append {
        lease: l,
        key: None,
        payload: "{}".into(),
        cost: 0,
    };
    append(&mut job, &a, None, None, T).expect("append");
    let e = finish(&mut job, l, &Finish::Done, T).expect("finish");
    assert_eq!(
        (job.state, job.reason),
        (JobState::Completed, Some(Reason::LimitMet))
    );
    assert_eq!((e.left, e.notice), (Some(JobState::Running), None));
    let e = extend(&mut job, 2, T).expect("extend limit_met");
    assert_eq!(
        (e.left, e.notice.clone()),
        (Some(JobState::Completed), available(&job)),
        "back in the queue: engines are told"
    );

    let mut job = running(None);
    let failed = Finish::Failed {
        error: "x".into(),
        retry_at: Some(T),
    };
    let l = lease(&job);
    let e = finish(&mut job, l, &failed, T).expect("fail, retry");
    assert_eq!(
        (job.state, e.notice.clone()),
        (JobState::Queued, available(&job))
    );

    let mut job = running(None);
    let fatal = Finish::Failed {
        error: "x".into(),
        retry_at: None,
    };
    let l = lease(&job);
    finish(&mut job, l, &fatal, T).expect("fail for good");
    assert_eq!((job.state, job.failures), (JobState::Failed, 1));
    let e = retry(&mut job, T.plus_ms(1)).expect("retry a failed job");
    assert_eq!(
        (job.state, job.reason, job.failures, job.cycle),
        (JobState::Queued, None, 0, 1)
    );
    assert_eq!(
        (e.left, e.notice.clone()),
        (Some(JobState::Failed), available(&job))
    );
    assert!(retry(&mut job, T).is_err(), "only a failed job is retried");

    let mut job = running(None);
    let e = expire(&mut job, T.plus_ms(5_000));
    assert_eq!(
        (job.state, e.notice.clone()),
        (JobState::Queued, available(&job))
    );
    assert_eq!(expire(&mut job, T.plus_ms(5_000)), Effects::none());
    assert_eq!(
        orphan(&mut job, T),
        Effects::none(),
        "a queued job is no orphan"
    );
}
