//! The one-shot subcommands: `submit`, `get`, `ls`, `cancel`, `extend`, `results`, `keys`, and
//! how they print jobs and results.

// The client's shared imports and helpers.
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
    let mut req = c.request(Method::POST, "/v1/jobs")?.json(&body);
    if let Some(k) = &a.idempotency_key {
        req = req.header("idempotency-key", k);
    }
    let value = c.send(req).await?;
    let id = value["id"].as_str().unwrap_or_default().to_owned();
    if a.watch {
        if !c.json {
            println!("submitted job {id}");
        }
        return watch(c, &id, 0, false).await;
    }
    c.print(&value, |j| {
        format!(
            "{}\n\nfollow it:  haltway watch {id}\ncancel it:  haltway cancel {id}",
            job_text(j)
        )
    });
    Ok(Exit::Ok)
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
    c.print(&page, |p| {
        let mut out = format!(
            "{:<32}  {:<16}  {:<10}  {:<15}  {:>6}  {:>7}  {}\n",
            "ID", "KIND", "STATE", "REASON", "FOUND", "USAGE", "CREATED"
        );
        for j in p["data"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "{:<32}  {:<16}  {:<10}  {:<15}  {:>6}  {:>7}  {}\n",
                text(&j["id"]),
                text(&j["kind"]),
                text(&j["state"]),
                text(&j["reason"]),
                text(&j["progress"]["found"]),
                text(&j["usage"]["total"]),
                text(&j["created_at"]),
            ));
        }
        if let Some(next) = p["next_cursor"].as_str() {
            out.push_str(&format!("more: haltway ls --cursor {next}\n"));
        }
        out.trim_end().to_owned()
    });
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
        c.print(&out, |o| {
            let jobs = o["data"].as_array().cloned().unwrap_or_default();
            let mut s = format!("group {group}: {} active job(s) cancelled", jobs.len());
            for j in &jobs {
                s.push_str(&format!("\n  {}  {}", text(&j["id"]), text(&j["state"])));
            }
            s
        });
        return Ok(Exit::Ok);
    }
    let id = a.id.unwrap_or_default();
    let job = c
        .call(Method::POST, &format!("/v1/jobs/{}/cancel", seg(&id)), None)
        .await?;
    c.print(&job, |j| {
        let mut s = job_text(j);
        if j["state"] == "cancelling" {
            s.push_str(&format!(
                "\n\nthe handler is stopping; `haltway watch {id}` follows it to the end"
            ));
        }
        s
    });
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
        for r in page["data"].as_array().into_iter().flatten() {
            if c.json {
                println!("{r}");
            } else {
                println!("{}", result_line(r));
            }
            after = r["seq"].as_u64().unwrap_or(after);
            total_cost += r["cost"].as_u64().unwrap_or(0);
            count += 1;
            left -= 1;
        }
        if page["has_more"] != true {
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
            c.print(&out, |k| {
                format!(
                    "created key {} for tenant `{}`; it is shown only this once:\n\n    {}",
                    text(&k["id"]),
                    text(&k["tenant"]),
                    text(&k["key"])
                )
            });
        }
        KeysCmd::List { tenant } => {
            let path = match tenant {
                Some(t) => format!("/v1/keys?tenant={}", seg(&t)),
                None => "/v1/keys".to_owned(),
            };
            let out = c.call(Method::GET, &path, None).await?;
            c.print(&out, |l| {
                let mut s = format!(
                    "{:<12}  {:<16}  {:<16}  {:<5}  {}\n",
                    "ID", "TENANT", "NAME", "ADMIN", "CREATED"
                );
                for k in l["data"].as_array().into_iter().flatten() {
                    s.push_str(&format!(
                        "{:<12}  {:<16}  {:<16}  {:<5}  {}\n",
                        text(&k["id"]),
                        text(&k["tenant"]),
                        text(&k["name"]),
                        text(&k["admin"]),
                        text(&k["created_at"])
                    ));
                }
                s.trim_end().to_owned()
            });
        }
        KeysCmd::Revoke { id } => {
            let out = c
                .call(Method::DELETE, &format!("/v1/keys/{}", seg(&id)), None)
                .await?;
            c.print(&out, |_| format!("revoked key {id}"));
        }
    }
    Ok(Exit::Ok)
}

/// A JSON string without quotes, `-` for null, other values as JSON.
pub(super) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub(super) fn job_text(j: &Value) -> String {
    let p = &j["progress"];
    let completion = p["completion"]
        .as_f64()
        .map(|c| format!(" ({c:.0}%)"))
        .unwrap_or_default();
    let reason = j["reason"]
        .as_str()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let mut s = format!(
        "job {}  {}  {}{reason}\n  progress          {} found, {} analyzed{completion}\n  usage             {} fixed + {} results = {}\n  created           {}",
        text(&j["id"]),
        text(&j["kind"]),
        text(&j["state"]),
        p["found"],
        p["analyzed"],
        j["usage"]["fixed"],
        j["usage"]["items"],
        j["usage"]["total"],
        text(&j["created_at"]),
    );
    for (label, key) in [
        ("started", "started_at"),
        ("cancel requested", "cancel_requested_at"),
        ("finished", "finished_at"),
    ] {
        if let Some(t) = j[key].as_str() {
            s.push_str(&format!("\n  {label:<17} {t}"));
        }
    }
    if let Some(e) = j["last_error"].as_str() {
        s.push_str(&format!("\n  error             {e}"));
    }
    s
}

pub(super) fn result_line(r: &Value) -> String {
    let seq = format!("#{}", r["seq"].as_u64().unwrap_or(0));
    format!("{seq:<5} {}  (cost {})", r["item"], r["cost"])
}
