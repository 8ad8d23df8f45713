//! Where the platform's own requests may go: webhooks, OpenID Connect key sets. A URL a tenant
//! enters must not reach the platform's own network (loopback, private ranges, link-local and
//! the instance metadata address, their IPv6 forms), unless configuration allows a range for
//! receivers on the local network. The HTTP adapters apply [`OutboundPolicy::permits`] to every
//! address a name resolves to, on every redirect, at the time of the request.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum OutboundError {
    #[error("{0:?} is not a URL")]
    NotAUrl(String),
    #[error("only http and https URLs are allowed, not {0}")]
    Scheme(String),
    #[error("URLs must not carry a user name or password")]
    UserInfo,
    #[error(
        "{0} is not a public address; an operator can allow its range in the outbound allow-list"
    )]
    NotPublic(IpAddr),
    #[error("{0:?} is not a range (e.g. 192.168.1.0/24)")]
    Range(String),
}

/// The ranges beyond public addresses that requests may reach (empty by default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    allowed: Vec<IpNet>,
}

impl OutboundPolicy {
    /// From CIDR ranges or single addresses, e.g. `["127.0.0.1/32", "10.1.0.0/16"]`.
    pub fn allowing<S: AsRef<str>>(ranges: &[S]) -> Result<Self, OutboundError> {
        let allowed = ranges
            .iter()
            .map(|r| {
                let r = r.as_ref().trim();
                r.parse::<IpNet>()
                    .or_else(|_| r.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| OutboundError::Range(r.to_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { allowed })
    }

    /// From a comma-separated list, as configuration gives it (`"127.0.0.1, 10.1.0.0/16"`).
    pub fn from_list(list: &str) -> Result<Self, OutboundError> {
        let ranges: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .collect();
        Self::allowing(&ranges)
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allowed.iter().any(|net| net.contains(&canonical(ip)))
    }

    /// Checks what can be checked before resolving: the scheme, no user info, and the host
    /// when it is an address. Names are checked as they resolve.
    pub fn check_url(&self, text: &str) -> Result<url::Url, OutboundError> {
        let url = url::Url::parse(text).map_err(|_| OutboundError::NotAUrl(text.to_owned()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OutboundError::Scheme(url.scheme().to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OutboundError::UserInfo);
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(OutboundError::NotAUrl(text.to_owned())),
        };
        match ip {
            Some(ip) if !self.permits(ip) => Err(OutboundError::NotPublic(ip)),
            _ => Ok(url),
        }
    }
}

/// An IPv4 address written in IPv6 (mapped `::ffff:a.b.c.d`, or NAT64 `64:ff9b::a.b.c.d`) is
/// judged as the IPv4 address it reaches.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None if v6.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] => {
                let o = v6.octets();
                IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
            }
            None => ip,
        },
        v4 => v4,
    }
}

/// Globally routable unicast: none of the special-purpose ranges of RFC 6890 and its updates.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => public_v6(v6),
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16: the instance metadata address among them
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || ip.segments()[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn internal_addresses_in_every_form_are_not_public() {
        for internal in [
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
        ] {
            assert!(!is_public(ip(internal)), "{internal}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip(public)), "{public}");
        }
    }

    #[test]
    fn the_allow_list_opens_its_ranges_only() -> Result<(), OutboundError> {
        let policy = OutboundPolicy::allowing(&["127.0.0.1", "10.1.0.0/16"])?;
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(policy.permits(ip("::ffff:127.0.0.1")));
        assert!(policy.permits(ip("10.1.200.3")));
        assert!(!policy.permits(ip("10.2.0.1")));
        assert!(!policy.permits(ip("169.254.169.254")));
        assert!(OutboundPolicy::allowing(&["nonsense"]).is_err());
        Ok(())
    }

    #[test]
    fn urls_are_checked_as_parsed_urls() {
        let policy = OutboundPolicy::default();
        assert!(
            policy
                .check_url("https://hooks.example.com/x?token=1")
                .is_ok()
        );
        // A name is checked when it resolves, not here.
        assert!(policy.check_url("http://localhost.evil.example/").is_ok());
        for (refused, error) in [
            (
                "http://127.0.0.1:9/hook",
                OutboundError::NotPublic(ip("127.0.0.1")),
            ),
            (
                "http://[::ffff:a9fe:a9fe]/",
                OutboundError::NotPublic(ip("::ffff:169.254.169.254")),
            ),
            (
                "http://2130706433/",
                OutboundError::NotPublic(ip("127.0.0.1")),
            ),
            ("http://0x7f.1/", OutboundError::NotPublic(ip("127.0.0.1"))),
            ("file:///etc/passwd", OutboundError::Scheme("file".into())),
            ("https://user:pw@example.com/", OutboundError::UserInfo),
        ] {
            assert_eq!(
                policy.check_url(refused).map(|_| ()),
                Err(error),
                "{refused}"
            );
        }
    }
}
