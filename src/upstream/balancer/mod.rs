//! Balancers: in which order an upstream's usable servers are offered a request.
//!
//! A balancer sees the servers only through [`Candidate`] (weight, requests in flight, a
//! stable key), so it knows nothing of backends, handles or health, and each one is tested
//! alone. [`Balancer::order`] reorders the candidates in place: the first is tried first,
//! the rest are fallbacks for when it has no free slot. Which servers are candidates (up,
//! not failing, not excluded by a retry) and taking a slot are the caller's business.
//!
//! | `balancer`    | type                  | first candidate                                     |
//! |---------------|-----------------------|-----------------------------------------------------|
//! | `round_robin` | [`SmoothWeighted`]    | nginx's smooth weighted round-robin                 |
//! | `random`      | [`WeightedRandom`]    | drawn with probability weight / total weight        |
//! | `least_conn`  | [`LeastConn`]         | fewest in flight per weight, ties in turn           |
//! | `hash`        | [`Rendezvous`]        | highest weighted rendezvous score of the hash input |
//!
//! All weights 1 make `round_robin` the plain round-robin of GoAround and GoLancer. The
//! balancers hold their state behind atomics or a mutex held for a few instructions, so one
//! [`Balancer`] per upstream is shared by every worker.

mod least_conn;
mod random;
mod rendezvous;
mod smooth;

use std::net::IpAddr;
use std::sync::Arc;

use crate::http1::RequestHead;

use crate::config::file::{BalancerKind, HashKey};

pub use least_conn::LeastConn;
pub use random::WeightedRandom;
pub use rendezvous::Rendezvous;
pub use smooth::SmoothWeighted;

/// What a balancer needs to know of a server.
pub trait Candidate {
    /// Relative share of requests; 0 is read as 1.
    fn weight(&self) -> u32;
    /// Requests being served now.
    fn in_flight(&self) -> usize;
    /// Stable identity (e.g. the URL): balancers key their state and hash scores on it.
    fn key(&self) -> &str;
}

impl<C: Candidate + ?Sized> Candidate for &C {
    fn weight(&self) -> u32 {
        (**self).weight()
    }
    fn in_flight(&self) -> usize {
        (**self).in_flight()
    }
    fn key(&self) -> &str {
        (**self).key()
    }
}

impl<C: Candidate + ?Sized> Candidate for Arc<C> {
    fn weight(&self) -> u32 {
        (**self).weight()
    }
    fn in_flight(&self) -> usize {
        (**self).in_flight()
    }
    fn key(&self) -> &str {
        (**self).key()
    }
}

/// One upstream's balancer, chosen by its `balancer` setting.
#[derive(Debug)]
pub enum Balancer {
    RoundRobin(SmoothWeighted),
    Random(WeightedRandom),
    LeastConn(LeastConn),
    Hash(Rendezvous),
}

impl Default for Balancer {
    /// Round-robin, GoAround's only policy.
    fn default() -> Balancer {
        Balancer::RoundRobin(SmoothWeighted::default())
    }
}

impl Balancer {
    pub fn new(kind: &BalancerKind) -> Balancer {
        match kind {
            BalancerKind::RoundRobin => Balancer::RoundRobin(SmoothWeighted::default()),
            BalancerKind::Random => Balancer::Random(WeightedRandom::new()),
            BalancerKind::LeastConn => Balancer::LeastConn(LeastConn::default()),
            BalancerKind::Hash { .. } => Balancer::Hash(Rendezvous::default()),
        }
    }

    /// Reorders `candidates`: the first is tried first, the rest are fallbacks. `hash_input`
    /// is what the request hashes to (see [`hash_input`]); only `hash` reads it, and without
    /// one it goes round-robin.
    pub fn order<C: Candidate>(&self, candidates: &mut [C], hash_input: Option<&[u8]>) {
        match self {
            Balancer::RoundRobin(b) => b.order(candidates),
            Balancer::Random(b) => b.order(candidates),
            Balancer::LeastConn(b) => b.order(candidates),
            Balancer::Hash(b) => b.order(candidates, hash_input),
        }
    }
}

/// What a request hashes to under `key`, borrowed from the request where it can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashInput<'a> {
    V4([u8; 4]),
    V6([u8; 16]),
    Bytes(&'a [u8]),
}

impl HashInput<'_> {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            HashInput::V4(octets) => octets,
            HashInput::V6(octets) => octets,
            HashInput::Bytes(bytes) => bytes,
        }
    }
}

/// The hash input of a request: the client's address (an IPv4-mapped IPv6 address counts as
/// the IPv4 one, so a dual-stack listener hashes a client as an IPv4 one does), the request
/// target as the client sent it, or the first value of a header. `None` (header absent):
/// the request goes round-robin.
pub fn hash_input<'a>(
    key: &HashKey,
    client: IpAddr,
    request: &'a RequestHead,
) -> Option<HashInput<'a>> {
    match key {
        HashKey::ClientIp => Some(match client.to_canonical() {
            IpAddr::V4(ip) => HashInput::V4(ip.octets()),
            IpAddr::V6(ip) => HashInput::V6(ip.octets()),
        }),
        HashKey::Uri => Some(HashInput::Bytes(request.target.as_bytes())),
        HashKey::Header(name) => request.header(name.as_str()).map(HashInput::Bytes),
    }
}

/// A candidate's weight as the balancers count it: at least 1.
fn weight_of<C: Candidate>(c: &C) -> u64 {
    u64::from(c.weight().max(1))
}

/// SplitMix64's increment, the golden ratio in 64 bits.
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

#[cfg(test)]
pub(crate) mod test_support {
    use super::Candidate;

    /// A candidate for tests: a name, a weight, requests in flight.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct Server {
        pub(crate) name: String,
        pub(crate) weight: u32,
        pub(crate) in_flight: usize,
    }

    impl Candidate for Server {
        fn weight(&self) -> u32 {
            self.weight
        }
        fn in_flight(&self) -> usize {
            self.in_flight
        }
        fn key(&self) -> &str {
            &self.name
        }
    }

    /// Servers `a`, `b`, ... with these weights and nothing in flight.
    pub(crate) fn weighted(weights: &[u32]) -> Vec<Server> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| Server {
                name: char::from(b'a' + i as u8).to_string(),
                weight: *w,
                in_flight: 0,
            })
            .collect()
    }

    /// The first candidate's name after `pick` ordered a copy of `servers`, `n` times.
    pub(crate) fn firsts(
        servers: &[Server],
        n: usize,
        mut pick: impl FnMut(&mut [Server]),
    ) -> String {
        (0..n)
            .map(|_| {
                let mut c = servers.to_vec();
                pick(&mut c);
                c[0].name.clone()
            })
            .collect()
    }

    /// How many times each of `servers` came first in `picks` (a string of names).
    pub(crate) fn counts(servers: &[Server], picks: &str) -> Vec<usize> {
        servers
            .iter()
            .map(|s| picks.matches(s.name.as_str()).count())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn new_follows_the_kind() {
        let cases = [
            (BalancerKind::RoundRobin, "RoundRobin"),
            (BalancerKind::Random, "Random"),
            (BalancerKind::LeastConn, "LeastConn"),
            (BalancerKind::Hash { key: HashKey::Uri }, "Hash"),
        ];
        for (kind, want) in cases {
            let b = Balancer::new(&kind);
            assert!(format!("{b:?}").starts_with(want), "{kind:?}: {b:?}");
        }
        assert!(matches!(Balancer::default(), Balancer::RoundRobin(_)));
    }

    #[test]
    fn every_balancer_keeps_the_candidates() {
        let kinds = [
            BalancerKind::RoundRobin,
            BalancerKind::Random,
            BalancerKind::LeastConn,
            BalancerKind::Hash { key: HashKey::Uri },
        ];
        for kind in kinds {
            let b = Balancer::new(&kind);
            for input in [None, Some(&b"k"[..])] {
                let mut none: [Server; 0] = [];
                b.order(&mut none, input);
                let mut one = weighted(&[3]);
                b.order(&mut one, input);
                assert_eq!(one, weighted(&[3]));
                let servers = weighted(&[1, 2, 0, 5]);
                for _ in 0..20 {
                    let mut c = servers.clone();
                    b.order(&mut c, input);
                    c.sort_by(|x, y| x.name.cmp(&y.name));
                    assert_eq!(c, servers, "{kind:?}");
                }
            }
        }
    }

    #[test]
    fn round_robin_through_the_enum() {
        let b = Balancer::default();
        let servers = weighted(&[5, 1, 1]);
        assert_eq!(firsts(&servers, 7, |c| b.order(c, None)), "aabacaa");
    }

    #[test]
    fn hash_inputs() {
        let raw = "GET /a?b HTTP/1.1\r\nHost: h\r\nX-User: alice\r\nx-user: bob\r\n\r\n";
        let Ok(crate::http1::Parse::Complete(h)) = crate::http1::parse_request_head(raw.as_bytes())
        else {
            panic!("not a request head")
        };
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let user = HashKey::Header(http::HeaderName::from_static("x-user"));
        let other = HashKey::Header(http::HeaderName::from_static("x-other"));
        let input = |key: &HashKey, ip| hash_input(key, ip, &h).map(|i| i.as_bytes().to_vec());
        assert_eq!(input(&HashKey::ClientIp, v4), Some(vec![192, 0, 2, 7]));
        assert_eq!(input(&HashKey::ClientIp, mapped), Some(vec![192, 0, 2, 7]));
        assert_eq!(input(&HashKey::ClientIp, v6).map(|b| b.len()), Some(16));
        assert_eq!(input(&HashKey::Uri, v4), Some(b"/a?b".to_vec()));
        assert_eq!(input(&user, v4), Some(b"alice".to_vec()));
        assert_eq!(input(&other, v4), None);
    }
}
