//! A page of one group's jobs reads the group's rows of `job_tenants` (through
//! `job_tenants_group`), not every newer job of its tenant; migration 18 gives the rows already
//! stored their groups.

use haltway_core::Timestamp;
use haltway_core::{ClaimRequest, GroupId, JobId, JobState, ListQuery, NewJob, Store, TenantId};

use crate::PgStore;
use crate::exec::test_support::{
    drop_schema, explain, fresh_store, migrated_store, migrated_to, new_job,
};

/// A new job of tenant `t` in group `g`.
fn in_group(t: &str, g: &str) -> NewJob {
    NewJob {
        tenant: t.into(),
        group: Some(g.into()),
        ..new_job()
    }
}

/// Tenant `t`'s page of group `g`: its ids, whether there is more.
async fn page(store: &PgStore, t: &str, g: &str, q: ListQuery) -> (Vec<JobId>, bool) {
    let q = ListQuery {
        group: Some(GroupId::from(g)),
        ..q
    };
    let page = store.list(&TenantId::from(t), &q).await.expect("list");
    assert!(
        page.data
            .iter()
            .all(|j| j.group.as_ref().map(GroupId::as_str) == Some(g))
    );
    (page.data.iter().map(|j| j.id).collect(), page.has_more)
}

/// Claims `n` jobs of kind `k` (as worker `w`, at time 2), checks that all `n` were, and
/// answers them.
async fn claim_all(store: &PgStore, n: usize) -> Vec<haltway_core::Job> {
    let claim = ClaimRequest {
        worker: "w".into(),
        lease_ms: 30_000,
        kinds: vec![("k".into(), n)],
        max_running_per_tenant: None,
    };
    let claimed = store.claim(&claim, Timestamp(2)).await.expect("claim");
    assert_eq!(claimed.len(), n);
    claimed
}

fn first(limit: usize) -> ListQuery {
    ListQuery {
        limit,
        ..ListQuery::default()
    }
}

/// `n` finished jobs of tenant `t` without a group, newer than every job before, written by
/// hand as the store's batches write them (a row of `jobs` and one of `job_tenants`, and their
/// count).
async fn history(admin: &tokio_postgres::Client, s: &str, t: &str, n: usize) {
    let ids: Vec<uuid::Uuid> = (0..n).map(|_| uuid::Uuid::now_v7()).collect();
    admin
        .execute(
            &format!(
                "WITH n AS (INSERT INTO {s}.jobs (id, tenant, kind, state, run_at, started, \
                 discard, doc) SELECT id, $2, 'k', 3, 1, true, false, '{{}}' \
                 FROM unnest($1::uuid[]) id RETURNING tenant, id) \
                 , l AS (INSERT INTO {s}.job_tenants (tenant, id) SELECT tenant, id FROM n) \
                 INSERT INTO {s}.job_count_deltas (tenant, kind, state, d) \
                 SELECT $2, 'k', 3, count(*) FROM n"
            ),
            &[&ids, &t],
        )
        .await
        .expect("history");
}

/// A group's page holds its jobs of every state, newest first, only the tenant's, with the
/// state filter and cursor holding; jobs created one at a time and by bulk `COPY` are both
/// listed. Its plan reads `job_tenants_group` and never the key of `job_tenants` (by which
/// it would walk the tenant's newer jobs), on young tables and analyzed ones.
#[tokio::test]
async fn a_groups_page_reads_the_groups_rows() {
    let Some((store, admin, s)) = fresh_store().await else {
        return;
    };
    let mut g = Vec::new();
    for _ in 0..2 {
        g.push(
            store
                .submit(in_group("t", "g"), Timestamp(1))
                .await
                .expect("submit")
                .job
                .id,
        );
    }
    let bulk = vec![in_group("t", "g"), in_group("t", "h"), in_group("u", "g")];
    let made = store.submit_many(bulk, Timestamp(1)).await.expect("bulk");
    let made: Vec<JobId> = made
        .into_iter()
        .map(|r| r.expect("created").job.id)
        .collect();
    g.push(made[0]);
    history(&admin, &s, "t", 2_000).await;
    let claimed = claim_all(&store, 1).await;
    let newest_first: Vec<JobId> = g.iter().rev().copied().collect();
    assert_eq!(
        page(&store, "t", "g", first(100)).await,
        (newest_first.clone(), false)
    );
    assert_eq!(
        page(&store, "t", "g", first(2)).await,
        (newest_first[..2].to_vec(), true)
    );
    let rest = ListQuery {
        after: Some(newest_first[1]),
        ..first(2)
    };
    assert_eq!(
        page(&store, "t", "g", rest).await,
        (newest_first[2..].to_vec(), false)
    );
    let running = ListQuery {
        state: Some(JobState::Running),
        ..first(100)
    };
    assert_eq!(
        page(&store, "t", "g", running).await,
        (vec![claimed[0].id], false)
    );
    assert_eq!(
        page(&store, "t", "h", first(100)).await,
        (vec![made[1]], false)
    );
    assert_eq!(
        page(&store, "u", "g", first(100)).await,
        (vec![made[2]], false)
    );
    assert_eq!(page(&store, "u", "h", first(100)).await, (vec![], false));
    let sql = crate::exec::list_jobs(&s, true, false);
    let (none_id, none_state, none_kind) = (None::<uuid::Uuid>, None::<i16>, None::<&str>);
    for analyzed in [false, true] {
        if analyzed {
            admin
                .batch_execute(&format!("ANALYZE {s}.jobs; ANALYZE {s}.job_tenants"))
                .await
                .expect("analyze");
        }
        let plan = explain(
            &admin,
            &sql,
            &[&"t", &none_id, &none_state, &none_kind, &101_i64, &"g"],
        )
        .await;
        assert!(
            plan.contains("job_tenants_group"),
            "analyzed: {analyzed}\n{plan}"
        );
        assert!(
            !plan.contains("job_tenants_pkey"),
            "analyzed: {analyzed}\n{plan}"
        );
        assert!(!plan.contains("Seq Scan"), "analyzed: {analyzed}\n{plan}");
    }
    drop(store);
    drop_schema(&admin, &s).await;
}

/// Migration 18 copies each stored job's group into its `job_tenants` row, so that the groups
/// of jobs created before it are listed.
#[tokio::test]
async fn migration_18_lists_the_groups_of_jobs_already_stored() {
    let Some((admin, schema, s)) = migrated_to(17).await else {
        return;
    };
    let (a, b, c) = (
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
    );
    admin
        .batch_execute(&format!(
            "INSERT INTO {s}.jobs (id, tenant, kind, grp, state, run_at, started, discard, doc) \
             VALUES ('{a}', 't', 'k', 'g', 3, 1, true, false, '{{}}'), \
                    ('{b}', 't', 'k', NULL, 3, 1, true, false, '{{}}'), \
                    ('{c}', 't', 'k', 'g', 0, 1, false, false, '{{}}'); \
             INSERT INTO {s}.job_tenants (tenant, id) SELECT tenant, id FROM {s}.jobs"
        ))
        .await
        .expect("rows");
    let store = migrated_store(&schema).await;
    let rows = admin
        .query(
            &format!("SELECT id, grp FROM {s}.job_tenants WHERE tenant = 't' ORDER BY id"),
            &[],
        )
        .await
        .expect("rows");
    let listed: Vec<(uuid::Uuid, Option<String>)> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let g = Some("g".to_owned());
    assert_eq!(listed, vec![(a, g.clone()), (b, None), (c, g)]);
    let sql = crate::exec::list_jobs(&s, true, false);
    let (none_id, none_state, none_kind) = (None::<uuid::Uuid>, None::<i16>, None::<&str>);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
        [&"t", &none_id, &none_state, &none_kind, &101_i64, &"g"];
    let ids: Vec<uuid::Uuid> = admin
        .query(&sql, &params)
        .await
        .expect("list")
        .iter()
        .map(|r| r.get("id"))
        .collect();
    assert_eq!(ids, vec![c, a], "the group's jobs, newest first");
    drop(store);
    drop_schema(&admin, &s).await;
}

/// The rows of `job_tenants` that the page `sql` with `params` reads, from its plan's actual
/// row counts.
async fn listing_rows_read(
    admin: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> u64 {
    rows_from(
        &explain_analyze(admin, sql, params).await,
        "job_tenants_pkey",
    )
}

/// The rows that the first node of `plan` reading `index` produced.
fn rows_from(plan: &str, index: &str) -> u64 {
    let line = plan
        .lines()
        .find(|l| l.contains(index))
        .unwrap_or_else(|| panic!("{plan}"));
    let rows = line
        .split("rows=")
        .nth(1)
        .unwrap_or_else(|| panic!("{line}"));
    rows.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .expect("rows")
}

/// The plan of `sql` with `params` as run, with the rows each node produced.
async fn explain_analyze(
    admin: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> String {
    let rows = admin
        .query(
            &format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {sql}"),
            params,
        )
        .await
        .expect("explain");
    rows.iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A page filtered by state or kind ends at the last job of the tenant in that state or of that
/// kind (as `job_counts` and its delta rows count them): the tenant's three running jobs,
/// newer than its 2,000 finished ones, are found by reading three rows of `job_tenants`, not
/// every row of the tenant; a kind the tenant has none of reads none. A page with more to come
/// is full, with one more row to say so.
#[tokio::test]
async fn a_page_filtered_by_state_ends_at_its_last_job() {
    let Some((store, admin, s)) = fresh_store().await else {
        return;
    };
    history(&admin, &s, "t", 2_000).await;
    let mut running = Vec::new();
    for _ in 0..3 {
        running.push(
            store
                .submit(new_job(), Timestamp(1))
                .await
                .expect("submit")
                .job
                .id,
        );
    }
    claim_all(&store, 3).await;
    running.reverse();
    let t = TenantId::from("t");
    let of_state = ListQuery {
        state: Some(JobState::Running),
        ..first(100)
    };
    let page = store.list(&t, &of_state).await.expect("list");
    let ids: Vec<JobId> = page.data.iter().map(|j| j.id).collect();
    assert_eq!((ids, page.has_more), (running, false));
    let none = ListQuery {
        kind: Some("other".into()),
        ..first(100)
    };
    let page = store.list(&t, &none).await.expect("list");
    assert!(page.data.is_empty() && !page.has_more);
    let (no_id, no_kind) = (None::<uuid::Uuid>, None::<&str>);
    let running_code = Some(JobState::Running.code());
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
        [&"t", &no_id, &running_code, &no_kind, &101_i64];
    let bounded = crate::exec::list_jobs(&s, false, true);
    assert_eq!(listing_rows_read(&admin, &bounded, &params).await, 3);
    admin
        .batch_execute(&format!(
            "ANALYZE {s}.jobs; ANALYZE {s}.job_tenants; ANALYZE {s}.job_count_deltas"
        ))
        .await
        .expect("analyze");
    assert_eq!(
        listing_rows_read(&admin, &bounded, &params).await,
        3,
        "analyzed"
    );
    // The finished jobs (written by hand, so read here by SQL): a full page and one more.
    let finished = Some(JobState::Completed.code());
    let params_done: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
        [&"t", &no_id, &finished, &no_kind, &101_i64];
    let rows = admin.query(&bounded, &params_done).await.expect("page");
    assert_eq!(rows.len(), 101);
    let unbounded = crate::exec::list_jobs(&s, false, false);
    assert_eq!(listing_rows_read(&admin, &unbounded, &params).await, 2_003);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
        [&"t", &no_id, &None::<i16>, &Some("other"), &101_i64];
    let plan = explain_analyze(&admin, &bounded, &params).await;
    assert!(
        plan.lines()
            .filter(|l| l.contains("job_tenants_pkey"))
            .all(|l| l.contains("never executed") || l.contains("rows=0")),
        "{plan}"
    );
    drop(store);
    drop_schema(&admin, &s).await;
}

/// A page of running jobs takes the way its tenant's jobs call for, on young tables and
/// analyzed ones: tenant `t`, whose three runs are older than its 2,000 newer finished jobs,
/// finds them among the store's 305 runs (through `jobs_leased`) without walking its jobs;
/// tenant `w`, whose 300 jobs all run, is walked for its page of 101 and the store's runs are
/// read no further than that walk would go, plus one; tenant `u`, with two jobs, is walked the
/// same way. Each page is the tenant's runs, newest first.
#[tokio::test]
async fn a_running_page_reads_the_runs_not_the_newer_jobs() {
    let Some((store, admin, s)) = fresh_store().await else {
        return;
    };
    let of = |t: &str| NewJob {
        tenant: t.into(),
        ..new_job()
    };
    let mut runs = Vec::new();
    for t in ["t", "t", "t", "u", "u"] {
        runs.push(
            store
                .submit(of(t), Timestamp(1))
                .await
                .expect("submit")
                .job
                .id,
        );
    }
    let many = store
        .submit_many((0..300).map(|_| of("w")).collect(), Timestamp(1))
        .await
        .expect("submit_many");
    for r in many {
        runs.push(r.expect("submit").job.id);
    }
    history(&admin, &s, "t", 2_000).await;
    claim_all(&store, 305).await;
    let running = ListQuery {
        state: Some(JobState::Running),
        ..first(100)
    };
    for (t, want, more) in [
        ("t", &runs[..3], false),
        ("u", &runs[3..5], false),
        ("w", &runs[205..], true),
    ] {
        let page = store
            .list(&TenantId::from(t), &running)
            .await
            .expect("list");
        let ids: Vec<JobId> = page.data.iter().map(|j| j.id).collect();
        let newest_first: Vec<JobId> = want.iter().rev().copied().collect();
        assert_eq!((ids, page.has_more), (newest_first, more), "tenant {t}");
    }
    let sql = crate::exec::list_running(&s);
    for analyzed in [false, true] {
        if analyzed {
            admin
                .batch_execute(&format!(
                    "ANALYZE {s}.jobs; ANALYZE {s}.job_tenants; ANALYZE {s}.job_count_deltas"
                ))
                .await
                .expect("analyze");
        }
        let plan = running_plan(&admin, &sql, "t").await;
        assert!(
            plan.lines()
                .filter(|l| l.contains("job_tenants_pkey"))
                .all(|l| l.contains("never executed")),
            "analyzed {analyzed}: {plan}"
        );
        assert_eq!(rows_from(&plan, "jobs_leased"), 305, "{analyzed}: {plan}");
        let plan = running_plan(&admin, &sql, "w").await;
        assert_eq!(
            rows_from(&plan, "job_tenants_pkey"),
            101,
            "{analyzed}: {plan}"
        );
        assert_eq!(rows_from(&plan, "jobs_leased"), 102, "{analyzed}: {plan}");
        let plan = running_plan(&admin, &sql, "u").await;
        assert_eq!(
            rows_from(&plan, "job_tenants_pkey"),
            2,
            "{analyzed}: {plan}"
        );
        assert_eq!(rows_from(&plan, "jobs_leased"), 3, "{analyzed}: {plan}");
    }
    drop(store);
    drop_schema(&admin, &s).await;
}

/// The plan of tenant `t`'s first page of 100 running jobs (`sql`, from `list_running`) as
/// the store runs it, planned for its values.
async fn running_plan(admin: &tokio_postgres::Client, sql: &str, t: &str) -> String {
    let state = Some(JobState::Running.code());
    let (no_id, no_kind) = (None::<uuid::Uuid>, None::<&str>);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
        [&t, &no_id, &state, &no_kind, &101_i64];
    explain_analyze(admin, sql, &params).await
}
