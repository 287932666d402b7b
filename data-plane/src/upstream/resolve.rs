//! An upstream's host name, resolved at most once per TTL.
//!
//! Connections are opened only when no idle one is left, but under a
//! burst or after an upstream closed its connections that is many opens at
//! once; resolving the name for each would put the system resolver on the
//! request path. The answer is kept per endpoint for `dns_ttl`
//! (`--dns-ttl-ms`) and forgotten early when no address it gave could be
//! connected to, so a node that moved is found at the next connect. An IP
//! literal is never resolved. The system resolver (`getaddrinfo`, so
//! `/etc/hosts` and the host's resolver configuration apply) does not
//! report record TTLs: the TTL is the operator's, as with nginx's
//! `resolver … valid=`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

/// The addresses of one host name and when they were looked up.
#[derive(Debug)]
struct Lookup {
    at: Instant,
    addrs: Arc<[SocketAddr]>,
}

/// Where one endpoint's host is.
#[derive(Debug)]
pub struct Resolver {
    host: String,
    port: u16,
    /// Set when the host is an IP address.
    literal: Option<SocketAddr>,
    cached: ArcSwapOption<Lookup>,
}

impl Resolver {
    /// For `host` (brackets of an IPv6 literal already removed) at `port`.
    pub fn new(host: &str, port: u16) -> Self {
        Self {
            host: host.to_owned(),
            port,
            literal: host.parse::<IpAddr>().ok().map(|ip| (ip, port).into()),
            cached: ArcSwapOption::empty(),
        }
    }

    /// The addresses to try, from the cache while it is younger than `ttl`.
    pub async fn addrs(&self, ttl: Duration) -> io::Result<Arc<[SocketAddr]>> {
        if let Some(addr) = self.literal {
            return Ok(Arc::from([addr]));
        }
        if let Some(lookup) = self.cached.load_full()
            && lookup.at.elapsed() < ttl
        {
            return Ok(lookup.addrs.clone());
        }
        let addrs: Arc<[SocketAddr]> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .collect();
        if !addrs.is_empty() && !ttl.is_zero() {
            self.cached.store(Some(Arc::new(Lookup {
                at: Instant::now(),
                addrs: addrs.clone(),
            })));
        }
        Ok(addrs)
    }

    /// Drops the cached addresses: none of them could be connected to.
    pub fn forget(&self) {
        self.cached.store(None);
    }

    /// Whether an answer is cached (tests).
    pub fn is_cached(&self) -> bool {
        self.cached.load().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_are_resolved_once_per_ttl_and_literals_never() {
        let literal = Resolver::new("127.0.0.1", 8545);
        let addrs = literal.addrs(Duration::from_secs(30)).await.unwrap();
        assert_eq!(&addrs[..], &[SocketAddr::from(([127, 0, 0, 1], 8545))]);
        assert!(!literal.is_cached(), "a literal needs no lookup");

        let named = Resolver::new("localhost", 8545);
        let first = named.addrs(Duration::from_secs(30)).await.unwrap();
        assert!(
            first
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8545)
        );
        assert!(named.is_cached());
        let again = named.addrs(Duration::from_secs(30)).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again), "served from the cache");
        let expired = named.addrs(Duration::ZERO).await.unwrap();
        assert!(!Arc::ptr_eq(&first, &expired), "looked up again");
        named.forget();
        assert!(!named.is_cached());
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_an_error_and_not_cached() {
        let r = Resolver::new("no-such-host.invalid", 1);
        assert!(r.addrs(Duration::from_secs(30)).await.is_err());
        assert!(!r.is_cached());
    }
}
