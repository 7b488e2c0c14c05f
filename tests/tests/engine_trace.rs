//! Trace context through the engine: a job created with a W3C `traceparent` keeps it, and its
//! attempt's span is handed, through `EngineBuilder::span_link`, the creating request's
//! `traceparent` when it starts and the cancelling request's when it stops for that cancel; a
//! value that is not a `traceparent` is not kept.

use std::sync::Arc;
use std::time::Duration;

use haltway_core::{
    CancelRequest, Engine, JobContext, JobError, JobKind, JobState, MemoryStore, SubmitOptions,
    TenantId,
};
use parking_lot::Mutex;

const CREATED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const CANCELLED: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// Runs until cancelled.
struct Waits;

impl JobKind for Waits {
    const NAME: &'static str = "waits";
    type Input = ();
    type Item = ();

    async fn run(&self, ctx: JobContext<Self>, _input: ()) -> Result<(), JobError> {
        ctx.cancelled().await;
        Err(ctx.checkpoint().await.expect_err("stopped"))
    }
}

// One thread: the subscriber that makes spans real is this thread's.
#[tokio::test(flavor = "current_thread")]
async fn attempt_spans_are_linked_to_the_creating_and_cancelling_requests() {
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry());
    let links: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen = links.clone();
    let engine = Engine::builder(MemoryStore::new())
        .register(Waits)
        .poll_interval(Duration::from_millis(5))
        .span_link(Arc::new(move |span, traceparent| {
            let name = span.metadata().map_or("-", |m| m.name()).to_owned();
            seen.lock().push((name, traceparent.to_owned()));
        }))
        .build();
    engine.start();
    let tenant = TenantId::from("acme");
    let job = engine
        .submit::<Waits>(tenant.clone(), &(), SubmitOptions::new().trace(CREATED))
        .await
        .expect("submit")
        .job;
    assert_eq!(job.trace.as_deref(), Some(CREATED));
    for _ in 0..400 {
        if engine.get(&tenant, job.id).await.expect("get").state == JobState::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let request = CancelRequest {
        requested_by: Some("alice".into()),
        trace: Some(CANCELLED.into()),
        ..CancelRequest::default()
    };
    engine
        .cancel(&tenant, job.id, &request)
        .await
        .expect("cancel");
    let end = engine.wait(&tenant, job.id).await.expect("wait");
    assert_eq!(end.state, JobState::Cancelled);
    assert_eq!(
        end.cancel.as_ref().and_then(|c| c.trace.as_deref()),
        Some(CANCELLED)
    );
    let got = links.lock().clone();
    assert_eq!(
        got,
        vec![
            ("job".to_owned(), CREATED.to_owned()),
            ("job".to_owned(), CANCELLED.to_owned())
        ],
        "the attempt's span, linked to the create, then to the cancel"
    );

    let plain = engine
        .submit::<Waits>(
            tenant.clone(),
            &(),
            SubmitOptions::new().trace("not-a-traceparent"),
        )
        .await
        .expect("submit")
        .job;
    assert_eq!(
        plain.trace, None,
        "a value that is not a traceparent is not kept"
    );
    engine.shutdown().await;
}
