//! The one-shot subcommands: `submit`, `get`, `ls`, `cancel`, `extend`, `results`, `keys`, and
//! how they print jobs and results.

// The client's shared imports and helpers.
use super::views::{Entry, Job, Key, Page, decode};
use super::*;

pub(super) async fn submit(c: &Client, a: SubmitArgs) -> Outcome<Exit> {
    let mut body = json!({ "kind": a.kind });
    body["input"] = match &a.input {
        Some(text) => parse_json("input", text)?,
        None => json!({}),
    };
    if let Some(l) = a.limit {
        body["limit"] = json!(l);
    }
    if let Some(url) = &a.webhook {
        body["webhook"] = json!({ "url": url });
    }
    if let Some(g) = &a.group {
        body["group"] = json!(g);
    }
    if let Some(m) = &a.metadata {
        body["metadata"] = parse_json("metadata", m)?;
    }
    if let Some(m) = &a.cancel_mode {
        body["cancel_mode"] = json!(m);
    }
    if let Some(p) = &a.on_cancel {
        body["on_cancel"] = json!(p);
    }
    if let Some(p) = a.priority {
        body["priority"] = json!(p);
    }
    let mut req = c.request(Method::POST, "/v1/jobs")?.json(&body);
    if let Some(k) = &a.idempotency_key {
        req = req.header("idempotency-key", k);
    }
    let value = c.send(req).await?;
    let id = decode::<Job>(&value, "a job")?.id;
    if a.watch {
        if !c.json {
            println!("submitted job {id}");
        }
        return watch(c, &id, 0, false).await;
    }
    c.print(&value, "a job", |j: &Job| {
        format!(
            "{}\n\nfollow it:  haltway watch {id}\ncancel it:  haltway cancel {id}",
            job_text(j)
        )
    })?;
    Ok(Exit::Ok)
}

pub(super) async fn submit_batch(c: &Client, file: &str) -> Outcome<Exit> {
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    }
    .map_err(|e| fail(Exit::Usage, &format!("cannot read {file}: {e}")))?;
    let mut jobs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        jobs.push(parse_json(&format!("line {}", n + 1), line)?);
    }
    if jobs.is_empty() {
        return Err(fail(Exit::Usage, &format!("{file} holds no job")));
    }
    let (mut created, mut failed) = (0_usize, 0_usize);
    let mut results = Vec::with_capacity(jobs.len());
    for chunk in jobs.chunks(1000) {
        let req = c
            .request(Method::POST, "/v1/jobs/batch")?
            .json(&json!({ "jobs": chunk }));
        let value = c.send(req).await?;
        let data = value["data"]
            .as_array()
            .ok_or_else(|| fail(Exit::Failure, "the server's answer has no `data`"))?;
        for (k, item) in data.iter().enumerate() {
            let n = results.len() + 1;
            let status = item["status"].as_u64().unwrap_or(0);
            if status == 200 || status == 202 {
                created += 1;
            } else {
                failed += 1;
            }
            if !c.json {
                let what = match (item["job"]["id"].as_str(), &item["error"]) {
                    (Some(id), _) => format!(
                        "{id}{}",
                        if status == 200 {
                            "  (already created by its idempotency key)"
                        } else {
                            ""
                        }
                    ),
                    (None, e) => format!(
                        "{}: {}",
                        e["field"]
                            .as_str()
                            .map_or_else(|| format!("jobs.{k}"), str::to_owned),
                        e["message"].as_str().unwrap_or("failed")
                    ),
                };
                println!("#{n:<5} {status}  {what}");
            }
            results.push(item.clone());
        }
    }
    if c.json {
        println!("{}", json!({ "data": results }));
    } else {
        println!("{created} created or found, {failed} refused");
    }
    Ok(if failed == 0 { Exit::Ok } else { Exit::Failure })
}

pub(super) async fn ls(c: &Client, a: LsArgs) -> Outcome<Exit> {
    let mut q = vec![format!("limit={}", a.limit)];
    for (k, v) in [
        ("state", &a.state),
        ("kind", &a.kind),
        ("group", &a.group),
        ("cursor", &a.cursor),
    ] {
        if let Some(v) = v {
            q.push(format!("{k}={}", seg(v)));
        }
    }
    let page = c
        .call(Method::GET, &format!("/v1/jobs?{}", q.join("&")), None)
        .await?;
    c.print(&page, "a page of jobs", |p: &Page<Job>| {
        let mut out = format!(
            "{:<32}  {:<16}  {:<10}  {:<15}  {:>6}  {:>7}  {}\n",
            "ID", "KIND", "STATE", "REASON", "FOUND", "USAGE", "CREATED"
        );
        for j in &p.data {
            out.push_str(&format!(
                "{:<32}  {:<16}  {:<10}  {:<15}  {:>6}  {:>7}  {}\n",
                j.id,
                j.kind,
                j.state,
                or_dash(j.reason.as_deref()),
                j.progress.found,
                j.usage.total,
                j.created_at,
            ));
        }
        if let Some(next) = &p.next_cursor {
            out.push_str(&format!("more: haltway ls --cursor {next}\n"));
        }
        out.trim_end().to_owned()
    })?;
    Ok(Exit::Ok)
}

pub(super) async fn cancel(c: &Client, a: CancelArgs) -> Outcome<Exit> {
    if let Some(group) = &a.group {
        let out = c
            .call(
                Method::POST,
                &format!("/v1/groups/{}/cancel", seg(group)),
                None,
            )
            .await?;
        c.print(&out, "a group cancel", |o: &Page<Job>| {
            let mut s = format!("group {group}: {} active job(s) cancelled", o.data.len());
            for j in &o.data {
                s.push_str(&format!("\n  {}  {}", j.id, j.state));
            }
            s
        })?;
        return Ok(Exit::Ok);
    }
    let id = a.id.unwrap_or_default();
    let job = c
        .call(Method::POST, &format!("/v1/jobs/{}/cancel", seg(&id)), None)
        .await?;
    c.print(&job, "a job", |j: &Job| {
        let mut s = job_text(j);
        if j.state == "cancelling" {
            s.push_str(&format!(
                "\n\nthe handler is stopping; `haltway watch {id}` follows it to the end"
            ));
        }
        s
    })?;
    Ok(Exit::Ok)
}

pub(super) async fn results(c: &Client, a: ResultsArgs) -> Outcome<Exit> {
    let mut after = a.after;
    let mut left = a.limit.unwrap_or(u64::MAX);
    let mut total_cost = 0u64;
    let mut count = 0u64;
    while left > 0 {
        let page_size = left.min(1000);
        let page = c
            .call(
                Method::GET,
                &format!(
                    "/v1/jobs/{}/results?after={after}&limit={page_size}",
                    seg(&a.id)
                ),
                None,
            )
            .await?;
        let typed: Page<Entry> = decode(&page, "a page of results")?;
        for (r, raw) in typed
            .data
            .iter()
            .zip(page["data"].as_array().into_iter().flatten())
        {
            if c.json {
                println!("{raw}");
            } else {
                println!("{}", result_line(r));
            }
            after = r.seq;
            total_cost += r.cost;
            count += 1;
            left -= 1;
        }
        if !typed.has_more {
            break;
        }
    }
    if !c.json {
        eprintln!("{count} result(s), costs {total_cost}");
    }
    Ok(Exit::Ok)
}

pub(super) async fn keys(c: &Client, k: KeysCmd) -> Outcome<Exit> {
    match k {
        KeysCmd::Create {
            tenant,
            name,
            admin,
        } => {
            let out = c
                .call(
                    Method::POST,
                    "/v1/keys",
                    Some(&json!({"tenant": tenant, "name": name, "admin": admin})),
                )
                .await?;
            c.print(&out, "a key", |k: &Key| {
                format!(
                    "created key {} for tenant `{}`; it is shown only this once:\n\n    {}",
                    k.id,
                    k.tenant,
                    or_dash(k.key.as_deref())
                )
            })?;
        }
        KeysCmd::List { tenant } => {
            let path = match tenant {
                Some(t) => format!("/v1/keys?tenant={}", seg(&t)),
                None => "/v1/keys".to_owned(),
            };
            let out = c.call(Method::GET, &path, None).await?;
            c.print(&out, "a list of keys", |l: &Page<Key>| {
                let mut s = format!(
                    "{:<12}  {:<16}  {:<16}  {:<5}  {}\n",
                    "ID", "TENANT", "NAME", "ADMIN", "CREATED"
                );
                for k in &l.data {
                    s.push_str(&format!(
                        "{:<12}  {:<16}  {:<16}  {:<5}  {}\n",
                        k.id, k.tenant, k.name, k.admin, k.created_at
                    ));
                }
                s.trim_end().to_owned()
            })?;
        }
        KeysCmd::Revoke { id } => {
            let out = c
                .call(Method::DELETE, &format!("/v1/keys/{}", seg(&id)), None)
                .await?;
            if c.json {
                println!("{out}");
            } else {
                println!("revoked key {id}");
            }
        }
    }
    Ok(Exit::Ok)
}

/// The text, or `-` when there is none.
pub(super) fn or_dash(s: Option<&str>) -> &str {
    s.unwrap_or("-")
}

pub(super) fn job_text(j: &Job) -> String {
    let p = &j.progress;
    let completion = p
        .completion
        .map(|c| format!(" ({c:.0}%)"))
        .unwrap_or_default();
    let reason = j
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let mut s = format!(
        "job {}  {}  {}{reason}\n  progress          {} found, {} analyzed{completion}\n  usage             {} fixed + {} results = {}\n  created           {}",
        j.id,
        j.kind,
        j.state,
        p.found,
        p.analyzed,
        j.usage.fixed,
        j.usage.items,
        j.usage.total,
        j.created_at,
    );
    for (label, at) in [
        ("started", &j.started_at),
        ("cancel requested", &j.cancel_requested_at),
        ("finished", &j.finished_at),
    ] {
        if let Some(t) = at {
            s.push_str(&format!("\n  {label:<17} {t}"));
        }
    }
    if let Some(e) = &j.last_error {
        s.push_str(&format!("\n  error             {e}"));
    }
    s
}

pub(super) fn result_line(r: &Entry) -> String {
    let seq = format!("#{}", r.seq);
    format!("{seq:<5} {}  (cost {})", r.item, r.cost)
}
