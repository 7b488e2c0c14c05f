//! Signing secrets and the three signing schemes.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of a secret's text form, as Standard Webhooks writes it.
const PREFIX: &str = "whsec_";
/// Random bytes in a new secret (Standard Webhooks asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// A signing secret: random bytes, written `whsec_<base64>`. Its `Debug` form hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

/// Why a secret's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not `whsec_` followed by base64.
    #[error("a secret is `whsec_` followed by base64")]
    Malformed,
    /// Fewer than 24 or more than 64 bytes.
    #[error("a secret holds 24 to 64 bytes, not {0}")]
    Length(usize),
}

impl Secret {
    /// A new random secret.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = vec![0; SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Secret(bytes)
    }

    /// Reads a secret's text form (`whsec_<base64>`).
    ///
    /// # Errors
    /// [`SecretError`] for text that is not a secret.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.strip_prefix(PREFIX).ok_or(SecretError::Malformed)?;
        let bytes = B64.decode(encoded).map_err(|_| SecretError::Malformed)?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(SecretError::Length(bytes.len()));
        }
        Ok(Secret(bytes))
    }

    /// A secret of these bytes (a derived one).
    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    /// The text form, to show the subscriber once and to store.
    #[must_use]
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", B64.encode(&self.0))
    }

    /// The HMAC key: the raw bytes for Standard Webhooks, the text form for the schemes whose
    /// documented formula keys the HMAC with the secret as given to the subscriber.
    fn key(&self, scheme: Scheme) -> Vec<u8> {
        match scheme {
            Scheme::StandardWebhooks => self.0.clone(),
            Scheme::Scout | Scheme::Exa => self.expose().into_bytes(),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// One event to send.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The delivery's id: the same on every attempt of one event (`webhook-id`).
    pub id: &'a str,
    /// The event's type (`job.completed`, `findall.run.cancelled`, …).
    pub event: &'a str,
    /// When this attempt is signed, in seconds since the UNIX epoch.
    pub timestamp: i64,
    /// The payload, `{type, timestamp, data}`.
    pub payload: &'a serde_json::Value,
}

/// A signed request: the headers to send and the exact body they sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Header names (lowercase) and values, `Content-Type` included.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Signed {
    /// The value of header `name`, if set.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How a delivery is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// [Standard Webhooks](https://www.standardwebhooks.com/) (the default; Parallel's):
    /// `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
    /// "id.timestamp.body">`, one space-separated signature per valid secret.
    StandardWebhooks,
    /// Scout's: `X-Scout-Signature: sha256=<hex HMAC-SHA256 of the body>`, `X-Scout-Timestamp`,
    /// `X-Scout-Event`; the body carries the delivery's id as `delivery_id`. The header holds
    /// one signature, made with the newest secret: during a rotation a receiver checks it
    /// against both of its secrets.
    Scout,
    /// Exa's: `Exa-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`, one `v1=` per valid
    /// secret.
    Exa,
}

impl Scheme {
    /// The scheme's name: `standard`, `scout` or `exa`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Scheme::StandardWebhooks => "standard",
            Scheme::Scout => "scout",
            Scheme::Exa => "exa",
        }
    }

    /// The signer of this scheme.
    #[must_use]
    pub fn signer(self) -> &'static dyn Signer {
        match self {
            Scheme::StandardWebhooks => &StandardWebhooksSigner,
            Scheme::Scout => &ScoutSigner,
            Scheme::Exa => &ExaSigner,
        }
    }

    /// Signs `message` with every secret in `secrets`, newest first (at least one), by this
    /// scheme's [`Signer`].
    ///
    /// # Panics
    /// If `secrets` is empty: a subscription always has a secret.
    #[must_use]
    pub fn sign(self, message: &Message<'_>, secrets: &[&Secret]) -> Signed {
        assert!(!secrets.is_empty(), "signing needs a secret");
        self.signer().sign(message, secrets)
    }
}

/// One way of signing a delivery: the headers to send and the exact body they sign. The three
/// schemes each implement it; [`Scheme::signer`] picks one by name.
pub trait Signer: Send + Sync + fmt::Debug {
    /// The scheme it implements.
    fn scheme(&self) -> Scheme;

    /// Signs `message` with every secret in `secrets` (newest first, at least one) where the
    /// scheme has room for several signatures, with the newest otherwise.
    fn sign(&self, message: &Message<'_>, secrets: &[&Secret]) -> Signed;
}

fn json_type() -> (&'static str, String) {
    ("content-type", "application/json".to_owned())
}

/// [Standard Webhooks](https://www.standardwebhooks.com/).
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardWebhooksSigner;

impl Signer for StandardWebhooksSigner {
    fn scheme(&self) -> Scheme {
        Scheme::StandardWebhooks
    }

    fn sign(&self, message: &Message<'_>, secrets: &[&Secret]) -> Signed {
        let json = json_type();
        let key = |s: &Secret| s.key(self.scheme());
        let body = message.payload.to_string().into_bytes();
        let mut signed = format!("{}.{}.", message.id, message.timestamp).into_bytes();
        signed.extend_from_slice(&body);
        let signatures: Vec<String> = secrets
            .iter()
            .map(|s| format!("v1,{}", B64.encode(mac(&key(s), &signed))))
            .collect();
        Signed {
            headers: vec![
                json,
                ("webhook-id", message.id.to_owned()),
                ("webhook-timestamp", message.timestamp.to_string()),
                ("webhook-signature", signatures.join(" ")),
            ],
            body,
        }
    }
}

/// Scout's scheme.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScoutSigner;

impl Signer for ScoutSigner {
    fn scheme(&self) -> Scheme {
        Scheme::Scout
    }

    fn sign(&self, message: &Message<'_>, secrets: &[&Secret]) -> Signed {
        let json = json_type();
        let key = |s: &Secret| s.key(self.scheme());
        let mut payload = message.payload.clone();
        if let Some(map) = payload.as_object_mut() {
            map.insert(
                "delivery_id".to_owned(),
                serde_json::Value::String(message.id.to_owned()),
            );
        }
        let body = payload.to_string().into_bytes();
        let signature = hex(&mac(&key(secrets[0]), &body));
        Signed {
            headers: vec![
                json,
                ("x-scout-signature", format!("sha256={signature}")),
                ("x-scout-timestamp", message.timestamp.to_string()),
                ("x-scout-event", message.event.to_owned()),
            ],
            body,
        }
    }
}

/// Exa's scheme.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExaSigner;

impl Signer for ExaSigner {
    fn scheme(&self) -> Scheme {
        Scheme::Exa
    }

    fn sign(&self, message: &Message<'_>, secrets: &[&Secret]) -> Signed {
        let json = json_type();
        let key = |s: &Secret| s.key(self.scheme());
        let body = message.payload.to_string().into_bytes();
        let mut signed = format!("{}.", message.timestamp).into_bytes();
        signed.extend_from_slice(&body);
        let mut header = format!("t={}", message.timestamp);
        for s in secrets {
            header.push_str(",v1=");
            header.push_str(&hex(&mac(&key(s), &signed)));
        }
        Signed {
            headers: vec![json, ("exa-signature", header)],
            body,
        }
    }
}

/// Checks a Standard Webhooks request as received: `signatures` is its `webhook-signature`
/// header, checked against the HMAC of `"id.timestamp.body"` with `secret`; `true` when one of
/// them matches (compared in constant time). A receiver also checks that `timestamp` is recent.
#[must_use]
pub fn verify_standard(
    secret: &Secret,
    id: &str,
    timestamp: &str,
    body: &[u8],
    signatures: &str,
) -> bool {
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let want = mac(&secret.key(Scheme::StandardWebhooks), &signed);
    signatures.split(' ').any(|s| {
        s.strip_prefix("v1,")
            .and_then(|b| B64.decode(b).ok())
            .is_some_and(|got| {
                got.len() == want.len()
                    && got.iter().zip(&want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
            })
    })
}

impl std::str::FromStr for Scheme {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "standard" => Ok(Scheme::StandardWebhooks),
            "scout" => Ok(Scheme::Scout),
            "exa" => Ok(Scheme::Exa),
            other => Err(format!(
                "unknown signing scheme `{other}` (known: standard, scout, exa)"
            )),
        }
    }
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length.
    let mut m = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("any key length"));
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_bad_text_is_refused() {
        let s = Secret::generate();
        assert_eq!(Secret::parse(&s.expose()), Ok(s.clone()));
        assert_eq!(format!("{s:?}"), "Secret(…)", "Debug hides the secret");
        assert_eq!(Secret::parse("nope"), Err(SecretError::Malformed));
        assert_eq!(Secret::parse("whsec_***"), Err(SecretError::Malformed));
        assert_eq!(
            Secret::parse(&format!("whsec_{}", B64.encode([1u8; 8]))),
            Err(SecretError::Length(8))
        );
        assert_ne!(Secret::generate(), Secret::generate());
    }

    #[test]
    fn a_standard_signature_verifies_with_each_secret_and_not_altered() {
        let (a, b) = (Secret::generate(), Secret::generate());
        let payload = serde_json::json!({"type": "job.status"});
        let m = Message {
            id: "msg_1",
            event: "job.status",
            timestamp: 1_800_000_000,
            payload: &payload,
        };
        let signed = Scheme::StandardWebhooks.sign(&m, &[&a, &b]);
        let header = signed.header("webhook-signature").expect("signature");
        let ts = "1800000000";
        assert!(verify_standard(&a, "msg_1", ts, &signed.body, header));
        assert!(verify_standard(&b, "msg_1", ts, &signed.body, header));
        assert!(!verify_standard(
            &Secret::generate(),
            "msg_1",
            ts,
            &signed.body,
            header
        ));
        assert!(!verify_standard(&a, "msg_2", ts, &signed.body, header));
        assert!(!verify_standard(&a, "msg_1", ts, b"{}", header));
        assert_eq!(Scheme::Exa.signer().scheme(), Scheme::Exa);
    }

    #[test]
    fn schemes_parse_by_name() {
        for scheme in [Scheme::StandardWebhooks, Scheme::Scout, Scheme::Exa] {
            assert_eq!(scheme.name().parse::<Scheme>(), Ok(scheme));
        }
        assert!("svix".parse::<Scheme>().is_err());
    }
}
