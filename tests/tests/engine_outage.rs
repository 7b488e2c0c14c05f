//! A store outage is visible: the engine reports it (`Engine::store_health`) from the first
//! failed call to the next that succeeds, and counts errors and outages.

use std::sync::Arc;
use std::time::Duration;

use haltway_core::{
    Engine, Error, JobContext, JobError, JobKind, MemoryStore, SubmitOptions, TenantId,
};
use haltway_testkit::Outage;

struct Nop;

impl JobKind for Nop {
    const NAME: &'static str = "nop";
    type Input = ();
    type Item = ();

    async fn run(&self, _ctx: JobContext<Self>, (): ()) -> Result<(), JobError> {
        Ok(())
    }
}

#[tokio::test]
async fn an_outage_is_reported_from_the_first_failure_to_the_next_success() {
    let store = Outage::new(Arc::new(MemoryStore::new()));
    let engine = Engine::builder(store.clone())
        .register(Nop)
        .store_retry(Duration::from_millis(200))
        .build();
    let tenant = TenantId::from("acme");
    engine
        .submit::<Nop>(tenant.clone(), &(), SubmitOptions::new())
        .await
        .expect("submit while up");
    let before = engine.store_health();
    assert!(before.reachable);
    assert_eq!((before.errors, before.outages), (0, 0));

    store.set_down(true);
    let e = engine
        .submit::<Nop>(tenant.clone(), &(), SubmitOptions::new())
        .await
        .expect_err("the store is down for longer than the retry window");
    assert!(e.is_transient(), "{e}");
    let down = engine.store_health();
    assert!(!down.reachable, "{down:?}");
    assert!(down.errors >= 2, "each retry counts: {down:?}");
    assert_eq!(down.outages, 1);
    assert!(down.down_for.is_some());
    // A read fails as well and stays within the same outage.
    assert!(matches!(
        engine
            .list(
                &tenant,
                &haltway_core::ListQuery {
                    limit: 1,
                    ..Default::default()
                }
            )
            .await,
        Err(Error::Store { .. })
    ));
    assert_eq!(engine.store_health().outages, 1);

    store.set_down(false);
    engine
        .submit::<Nop>(tenant.clone(), &(), SubmitOptions::new())
        .await
        .expect("submit once the store is back");
    let after = engine.store_health();
    assert!(after.reachable, "{after:?}");
    assert_eq!(after.outages, 1);
    assert_eq!(after.down_for, None);
    // A job that does not exist is the caller's error, not an outage.
    assert!(matches!(
        engine.get(&tenant, haltway_core::JobId::new()).await,
        Err(Error::NotFound)
    ));
    assert!(engine.store_health().reachable);
}
