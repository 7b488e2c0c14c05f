//! What haltway signs, verified by implementations that are not haltway's: the published
//! Standard Webhooks library, and verifiers for Scout's and Exa's schemes written here from
//! their documented formulas. And the refusal of targets that are not public.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use haltway_webhooks::{Message, Scheme, Secret, TargetError, TargetPolicy, resolve};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("seconds")
}

fn payload() -> serde_json::Value {
    json!({"type": "job.completed", "timestamp": "2026-12-02T10:00:00.000Z", "data": {"id": "01a2", "state": "completed", "usage": {"total": 80}}})
}

fn headers(signed: &haltway_webhooks::Signed) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in &signed.headers {
        map.insert(*name, value.parse().expect("header value"));
    }
    map
}

#[test]
fn standard_webhooks_library_verifies_every_valid_secret() {
    let (old, new, stranger) = (Secret::generate(), Secret::generate(), Secret::generate());
    let payload = payload();
    let message = Message {
        id: "msg_01a2b3",
        event: "job.completed",
        timestamp: now(),
        payload: &payload,
    };
    // One secret.
    let signed = Scheme::StandardWebhooks.sign(&message, &[&new]);
    let verifier = standardwebhooks::Webhook::new(&new.expose()).expect("secret");
    verifier
        .verify(&signed.body, &headers(&signed))
        .expect("the library verifies the signature");
    assert_eq!(signed.header("webhook-id"), Some("msg_01a2b3"));
    // A changed body or another secret fails.
    let mut tampered = signed.body.clone();
    tampered.push(b' ');
    assert!(verifier.verify(&tampered, &headers(&signed)).is_err());
    let other = standardwebhooks::Webhook::new(&stranger.expose()).expect("secret");
    assert!(other.verify(&signed.body, &headers(&signed)).is_err());
    // During a rotation both secrets verify.
    let rotating = Scheme::StandardWebhooks.sign(&message, &[&new, &old]);
    for s in [&old, &new] {
        standardwebhooks::Webhook::new(&s.expose())
            .expect("secret")
            .verify(&rotating.body, &headers(&rotating))
            .expect("both secrets verify during a rotation");
    }
    assert!(other.verify(&rotating.body, &headers(&rotating)).is_err());
    // An old timestamp is refused by the library (replay protection on the receiver's side).
    let stale = Message {
        timestamp: now() - 3600,
        ..message
    };
    let signed = Scheme::StandardWebhooks.sign(&stale, &[&new]);
    assert!(verifier.verify(&signed.body, &headers(&signed)).is_err());
}

fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
    mac.update(data);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Scout's documented check: `X-Scout-Signature` is `sha256=` and the hex HMAC-SHA256 of the
/// raw body under the secret.
fn scout_verifies(secret: &str, body: &[u8], signature: &str) -> bool {
    signature == format!("sha256={}", hmac_hex(secret.as_bytes(), body))
}

/// Exa's documented check: `Exa-Signature` is `t=<unix>,v1=<sig>[,v1=<sig>…]`, each signature
/// the hex HMAC-SHA256 of `"<t>.<body>"` under the secret.
fn exa_verifies(secret: &str, body: &[u8], header: &str) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = Some(v.to_owned()),
            Some(("v1", v)) => sigs.push(v.to_owned()),
            _ => return false,
        }
    }
    let Some(t) = t else { return false };
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    let expected = hmac_hex(secret.as_bytes(), &signed);
    sigs.contains(&expected)
}

#[test]
fn scout_signatures_follow_the_documented_formula() {
    let secret = Secret::generate();
    let payload = payload();
    let message = Message {
        id: "dlv_42",
        event: "findall.run.completed",
        timestamp: now(),
        payload: &payload,
    };
    let signed = Scheme::Scout.sign(&message, &[&secret]);
    let signature = signed.header("x-scout-signature").expect("signature");
    assert!(scout_verifies(&secret.expose(), &signed.body, signature));
    assert!(!scout_verifies(
        &Secret::generate().expose(),
        &signed.body,
        signature
    ));
    assert!(!scout_verifies(&secret.expose(), b"{}", signature));
    assert_eq!(
        signed.header("x-scout-event"),
        Some("findall.run.completed")
    );
    assert_eq!(
        signed.header("x-scout-timestamp"),
        Some(message.timestamp.to_string().as_str())
    );
    let body: serde_json::Value = serde_json::from_slice(&signed.body).expect("json body");
    assert_eq!(
        body["delivery_id"], "dlv_42",
        "the body carries a stable delivery id"
    );
    assert_eq!(body["data"], payload["data"]);
}

#[test]
fn exa_signatures_follow_the_documented_formula_with_one_per_secret() {
    let (old, new) = (Secret::generate(), Secret::generate());
    let payload = payload();
    let message = Message {
        id: "evt_9",
        event: "webset.idle",
        timestamp: now(),
        payload: &payload,
    };
    let signed = Scheme::Exa.sign(&message, &[&new, &old]);
    let header = signed.header("exa-signature").expect("signature");
    assert!(
        header.starts_with(&format!("t={},v1=", message.timestamp)),
        "{header}"
    );
    assert_eq!(header.matches("v1=").count(), 2);
    for s in [&old, &new] {
        assert!(exa_verifies(&s.expose(), &signed.body, header));
    }
    assert!(!exa_verifies(
        &Secret::generate().expose(),
        &signed.body,
        header
    ));
    let mut tampered = signed.body.clone();
    tampered[0] = b' ';
    assert!(!exa_verifies(&new.expose(), &tampered, header));
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(new.expose().trim_start_matches("whsec_"))
            .map(|b| b.len())
            .ok(),
        Some(32)
    );
}

#[tokio::test]
async fn targets_that_are_not_public_are_refused_after_resolution() {
    let strict = TargetPolicy::default();
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook", // a name that resolves to loopback
        "http://[::1]/hook",
        "https://10.0.0.7/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://192.168.1.10/",
        "http://[fe80::1]/",
        "http://224.0.0.1/",
        "http://0.0.0.0/",
    ] {
        match resolve(url, strict).await {
            Err(TargetError::NotPublic { .. }) => {}
            other => panic!("{url}: {other:?}"),
        }
    }
    for url in [
        "ftp://example.com/",
        "not a url",
        "http://",
        "file:///etc/passwd",
    ] {
        assert!(
            matches!(resolve(url, strict).await, Err(TargetError::BadUrl(_))),
            "{url}"
        );
    }
    assert_eq!(
        resolve("https://user:pw@93.184.216.34/", strict).await,
        Err(TargetError::Credentials)
    );
    // A public address passes, with the URL's port; a private one passes when allowed.
    let ok = resolve("https://93.184.216.34/hook", strict)
        .await
        .expect("public");
    assert_eq!(ok.addrs, vec!["93.184.216.34:443".parse().expect("addr")]);
    let local = resolve(
        "http://localhost:9000/hook",
        TargetPolicy {
            allow_private: true,
        },
    )
    .await
    .expect("allowed");
    assert!(
        local
            .addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 9000)
    );
}
