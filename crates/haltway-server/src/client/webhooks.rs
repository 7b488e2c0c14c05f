//! `haltway webhooks …`: subscriptions, deliveries and their attempts.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::commands::or_dash;
use super::{Client, Exit, Outcome, seg};

/// `haltway webhooks`.
#[derive(Debug, Subcommand)]
pub enum WebhooksCmd {
    /// Subscribe a URL to the tenant's job events; prints the signing secret once.
    Create {
        /// The receiver's URL.
        url: String,
        /// An event type it wants (repeatable): `job.status`, `job.completed`,
        /// `job.cancelled`, `job.failed`, `item.delivered` [default: all but
        /// `item.delivered`].
        #[arg(long = "event-type")]
        event_types: Vec<String>,
        /// `standard` (Standard Webhooks), `scout` or `exa` [default: standard].
        #[arg(long)]
        scheme: Option<String>,
    },
    /// List the tenant's subscriptions.
    Ls,
    /// Delete a subscription.
    Rm {
        /// The subscription's id (`wh_…`).
        id: String,
    },
    /// Give a subscription a new secret (printed once); the old one signs on for a while.
    Rotate {
        /// The subscription's id.
        id: String,
        /// Seconds the old secret stays valid [default: 86400].
        #[arg(long)]
        expire_after_seconds: Option<u64>,
    },
    /// The attempts of a subscription (`wh_…`) or of one delivery (`msg_…`), newest first.
    Attempts {
        /// A subscription's or a delivery's id.
        id: String,
    },
    /// The tenant's deliveries, newest first.
    Deliveries {
        /// Only those of this job.
        #[arg(long)]
        job: Option<String>,
    },
    /// Send a delivery again, under the same id.
    Redeliver {
        /// The delivery's id (`msg_…`).
        id: String,
    },
    /// Print the secret that signs the tenant's per-job webhooks.
    Secret,
    /// Receive webhooks on a local port and print each one, saying whether its Standard
    /// Webhooks signature verifies; runs until Ctrl-C.
    Listen {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: String,
        /// The secret to verify with [default: the tenant's per-job secret, read from the
        /// server].
        #[arg(long)]
        secret: Option<String>,
    },
}

fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn subscription_line(w: &Value) -> String {
    let types = w["event_types"]
        .as_array()
        .filter(|a| !a.is_empty())
        .map_or_else(
            || "default".to_owned(),
            |a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            },
        );
    format!(
        "{:<35}  {:<8}  {:<8}  {:<24}  {}",
        text(w, "id"),
        text(w, "status"),
        text(w, "scheme"),
        types,
        text(w, "url")
    )
}

pub(super) async fn webhooks(c: &Client, cmd: WebhooksCmd) -> Outcome<Exit> {
    if let WebhooksCmd::Listen { listen, secret } = &cmd {
        let secret = match secret {
            Some(s) => s.clone(),
            None => text(
                &c.call(Method::GET, "/v1/webhook-secret", None).await?,
                "secret",
            ),
        };
        return listen_on(listen, &secret).await;
    }
    let out = match &cmd {
        WebhooksCmd::Create {
            url,
            event_types,
            scheme,
        } => {
            let mut body = json!({"url": url});
            if !event_types.is_empty() {
                body["event_types"] = json!(event_types);
            }
            if let Some(s) = scheme {
                body["scheme"] = json!(s);
            }
            c.call(Method::POST, "/v1/webhooks", Some(&body)).await?
        }
        WebhooksCmd::Ls => c.call(Method::GET, "/v1/webhooks", None).await?,
        WebhooksCmd::Rm { id } => {
            c.call(Method::DELETE, &format!("/v1/webhooks/{}", seg(id)), None)
                .await?
        }
        WebhooksCmd::Rotate {
            id,
            expire_after_seconds,
        } => {
            let body = match expire_after_seconds {
                Some(s) => json!({"expire_after_seconds": s}),
                None => json!({}),
            };
            c.call(
                Method::POST,
                &format!("/v1/webhooks/{}/rotate", seg(id)),
                Some(&body),
            )
            .await?
        }
        WebhooksCmd::Attempts { id } => {
            let path = if id.starts_with("msg_") {
                format!("/v1/webhook-deliveries/{}/attempts", seg(id))
            } else {
                format!("/v1/webhooks/{}/attempts", seg(id))
            };
            c.call(Method::GET, &path, None).await?
        }
        WebhooksCmd::Deliveries { job } => {
            let path = match job {
                Some(j) => format!("/v1/webhook-deliveries?job_id={}", seg(j)),
                None => "/v1/webhook-deliveries".to_owned(),
            };
            c.call(Method::GET, &path, None).await?
        }
        WebhooksCmd::Redeliver { id } => {
            c.call(
                Method::POST,
                &format!("/v1/webhook-deliveries/{}/redeliver", seg(id)),
                None,
            )
            .await?
        }
        WebhooksCmd::Secret | WebhooksCmd::Listen { .. } => {
            c.call(Method::GET, "/v1/webhook-secret", None).await?
        }
    };
    if c.json {
        println!("{out}");
        return Ok(Exit::Ok);
    }
    let rows = || out["data"].as_array().cloned().unwrap_or_default();
    let printed = match cmd {
        WebhooksCmd::Create { .. } | WebhooksCmd::Rotate { .. } => format!(
            "{}\n\nsigning secret (shown only this once):\n\n    {}",
            subscription_line(&out),
            text(&out, "secret")
        ),
        WebhooksCmd::Ls => {
            let mut s = format!(
                "{:<35}  {:<8}  {:<8}  {:<24}  {}\n",
                "ID", "STATUS", "SCHEME", "EVENTS", "URL"
            );
            for w in rows() {
                s.push_str(&subscription_line(&w));
                s.push('\n');
            }
            s.trim_end().to_owned()
        }
        WebhooksCmd::Rm { id } => format!("deleted webhook {id}"),
        WebhooksCmd::Attempts { .. } => {
            let mut s = format!(
                "{:<36}  {:>3}  {:<24}  {:>6}  {:>8}  {:<24}  {}\n",
                "DELIVERY", "N", "AT", "STATUS", "MS", "NEXT", "ERROR"
            );
            for a in rows() {
                s.push_str(&format!(
                    "{:<36}  {:>3}  {:<24}  {:>6}  {:>8}  {:<24}  {}\n",
                    text(&a, "delivery_id"),
                    text(&a, "attempt"),
                    text(&a, "at"),
                    text(&a, "status_code"),
                    text(&a, "latency_ms"),
                    text(&a, "next_attempt_at"),
                    or_dash(a["error"].as_str())
                ));
            }
            s.trim_end().to_owned()
        }
        WebhooksCmd::Deliveries { .. } => {
            let mut s = format!(
                "{:<36}  {:<15}  {:<9}  {:>3}  {:<32}  {}\n",
                "ID", "EVENT", "STATE", "N", "JOB", "URL"
            );
            for d in rows() {
                s.push_str(&format!(
                    "{:<36}  {:<15}  {:<9}  {:>3}  {:<32}  {}\n",
                    text(&d, "id"),
                    text(&d, "event_type"),
                    text(&d, "state"),
                    text(&d, "attempts"),
                    text(&d, "job_id"),
                    text(&d, "url")
                ));
            }
            s.trim_end().to_owned()
        }
        WebhooksCmd::Redeliver { id } => format!("delivery {id} is due again"),
        WebhooksCmd::Secret => text(&out, "secret"),
        WebhooksCmd::Listen { .. } => String::new(),
    };
    println!("{printed}");
    Ok(Exit::Ok)
}

/// Serves `POST /` (and any path) on `addr`, printing each delivery with whether its Standard
/// Webhooks signature verifies with `secret` (and its timestamp is within five minutes); a
/// delivery that does not verify is answered 400.
async fn listen_on(addr: &str, secret: &str) -> Outcome<Exit> {
    let secret = match haltway_webhooks::Secret::parse(secret.trim()) {
        Ok(s) => std::sync::Arc::new(s),
        Err(e) => {
            eprintln!("error: --secret: {e}");
            return Ok(Exit::Usage);
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e}");
            return Ok(Exit::Usage);
        }
    };
    let local = listener
        .local_addr()
        .map_or_else(|_| addr.to_owned(), |a| a.to_string());
    println!("listening on http://{local}/ for webhooks (Ctrl-C stops)");
    let app = axum::Router::new().fallback(axum::routing::post(
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let secret = secret.clone();
            async move {
                let h = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let (id, ts, sig) = (
                    h("webhook-id"),
                    h("webhook-timestamp"),
                    h("webhook-signature"),
                );
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let fresh = ts.parse::<u64>().is_ok_and(|t| t.abs_diff(now) <= 300);
                let ok = fresh && haltway_webhooks::verify_standard(&secret, &id, &ts, &body, &sig);
                let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                println!(
                    "{} {id} {} {}",
                    if ok { "verified" } else { "NOT VERIFIED" },
                    text(&payload, "type"),
                    payload
                        .get("data")
                        .map_or_else(String::new, Value::to_string)
                );
                if ok {
                    axum::http::StatusCode::NO_CONTENT
                } else {
                    axum::http::StatusCode::BAD_REQUEST
                }
            }
        },
    ));
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        eprintln!("error: {e}");
        return Ok(Exit::Failure);
    }
    Ok(Exit::Ok)
}
