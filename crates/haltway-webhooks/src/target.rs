//! Where a webhook may be sent: the checks that keep deliveries off loopback, private,
//! link-local and multicast addresses.
//!
//! # Invariants
//! - A target is checked after DNS resolution, on every attempt ([`resolve`] is called per
//!   attempt), and a delivery connects only to the addresses the check passed, so a DNS change
//!   between the check and the connection cannot point it elsewhere.
//! - A host name that resolves to several addresses is refused if any of them is not public.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What the operator allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Allow loopback, private, link-local and other non-public addresses (for a receiver on the
    /// same machine or network; off by default).
    pub allow_private: bool,
}

/// A target that passed the checks: where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as given.
    pub url: String,
    /// Its host name (or address literal).
    pub host: String,
    /// The addresses that passed the check, with the URL's port.
    pub addrs: Vec<SocketAddr>,
}

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// Not an absolute `http://` or `https://` URL with a host.
    #[error("not a webhook URL: {0}")]
    BadUrl(String),
    /// Credentials in the URL are refused (they would be sent to the receiver in clear).
    #[error("a webhook URL must not carry a user name or password")]
    Credentials,
    /// The host did not resolve.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The host.
        host: String,
        /// The resolver's error.
        reason: String,
    },
    /// The host resolves to an address that is not public.
    #[error("{host} resolves to {addr}, which is not a public address")]
    NotPublic {
        /// The host.
        host: String,
        /// The refused address.
        addr: IpAddr,
    },
}

/// Checks `url` and resolves its host: every address must be public unless the policy allows
/// private ones.
///
/// # Errors
/// [`TargetError`] for a malformed URL, a host that does not resolve, or an address refused.
pub async fn resolve(url: &str, policy: TargetPolicy) -> Result<Target, TargetError> {
    let (host, port) = check_url(url, policy)?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| TargetError::Resolve {
            host: host.clone(),
            reason: e.to_string(),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(TargetError::Resolve {
            host,
            reason: "no address".to_owned(),
        });
    }
    if !policy.allow_private
        && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip()))
    {
        return Err(TargetError::NotPublic {
            host,
            addr: bad.ip(),
        });
    }
    Ok(Target {
        url: url.to_owned(),
        host,
        addrs,
    })
}

/// The checks of `url` that need no DNS, for a subscription's create: an absolute `http` or
/// `https` URL without credentials, and (unless the policy allows them) no address literal
/// that is not public. Returns its host and port.
///
/// # Errors
/// [`TargetError`] for a malformed URL or a refused address literal.
pub fn check_url(url: &str, policy: TargetPolicy) -> Result<(String, u16), TargetError> {
    let parsed = url::Url::parse(url).map_err(|e| TargetError::BadUrl(format!("{url}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(TargetError::BadUrl(format!(
            "{url}: only http and https are allowed"
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(TargetError::Credentials);
    }
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(TargetError::BadUrl(format!("{url}: no host"))),
    };
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| TargetError::BadUrl(format!("{url}: no port")))?;
    if !policy.allow_private
        && let Ok(ip) = host.parse::<IpAddr>()
        && !is_public(ip)
    {
        return Err(TargetError::NotPublic { host, addr: ip });
    }
    Ok((host, port))
}

/// Whether `ip` is a public unicast address (not loopback, private, link-local, shared,
/// multicast, broadcast, unspecified, reserved or documentation space).
#[must_use]
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|x| *x == 0) {
        let [.., hi, lo] = s;
        return is_public_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0)) // IPv4-compatible and other ::/96
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_pass() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ] {
            let ip: IpAddr = private.parse().expect("address");
            assert!(!is_public(ip), "{private} passed");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = public.parse().expect("address");
            assert!(is_public(ip), "{public} refused");
        }
    }
}
