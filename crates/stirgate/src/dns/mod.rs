//! RFC 3263 for the forward targets, on hickory-resolver: NAPTR (SIP+D2U, SIP+D2T, SIPS+D2T),
//! then SRV (`_sip._udp`, `_sip._tcp`, `_sips._tcp`) by priority with the RFC 2782 weighted
//! choice, then A/AAAA. Results are cached until their smallest TTL runs out: a call whose
//! targets are cached and fresh is answered on the shard at once ([`Resolver::resolve_now`]);
//! otherwise the lookup runs in a task of its own and the call waits alone
//! ([`Resolver::resolve`]). A target whose host is an IP address never touches DNS.

mod order;
pub mod target;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use b2bua::Destination;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use sip_proto::endpoint::Transport;

pub use self::order::{order_srv, SrvChoice};
pub use self::target::TargetSpec;

/// How long a failed lookup (or one that found nothing) is remembered before trying again.
const NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// What one target resolved to, kept until `until`.
#[derive(Debug, Clone)]
struct Entry {
    /// Priority groups in ascending order; each holds its SRV choices (weight and addresses).
    groups: Vec<Vec<SrvChoice>>,
    until: Instant,
}

/// The forward targets' resolver and its cache (shared by the shards).
pub struct Resolver {
    inner: TokioResolver,
    cache: Mutex<HashMap<String, Entry>>,
}

impl Resolver {
    /// A resolver asking `servers` (UDP, then TCP for truncated answers), or the system's
    /// (`/etc/resolv.conf`) when the list is empty.
    pub fn new(servers: &[SocketAddr]) -> anyhow::Result<Self> {
        let provider = TokioConnectionProvider::default();
        let mut builder = if servers.is_empty() {
            TokioResolver::builder(provider)
                .map_err(|e| anyhow::anyhow!("forward.dns_servers: no system resolver: {e}"))?
        } else {
            let mut group = NameServerConfigGroup::new();
            for addr in servers {
                group.merge(NameServerConfigGroup::from_ips_clear(
                    &[addr.ip()],
                    addr.port(),
                    true,
                ));
            }
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], group),
                provider,
            )
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        Ok(Self {
            inner: builder.build(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The destinations of `targets`, in order, when none needs a lookup (IP hosts, or fresh in
    /// the cache); `None` means [`Self::resolve`] must run.
    pub fn resolve_now(&self, targets: &[String], now: Instant) -> Option<Vec<Destination>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for uri in targets {
            match TargetSpec::parse(uri).ok()?.fixed() {
                Some(dest) => out.push(dest),
                None => {
                    let entry = cache.get(uri).filter(|e| e.until > now)?;
                    out.extend(order_srv(&entry.groups, &mut rand::thread_rng()));
                }
            }
        }
        Some(out)
    }

    /// The destinations of `targets`, in order, looking up what is not fresh in the cache. A
    /// target that fails to resolve keeps its last known destinations (stale beats none) or
    /// contributes nothing.
    pub async fn resolve(&self, targets: &[String]) -> Vec<Destination> {
        let mut out = Vec::new();
        for uri in targets {
            let Ok(spec) = TargetSpec::parse(uri) else {
                continue;
            };
            if let Some(dest) = spec.fixed() {
                out.push(dest);
                continue;
            }
            let groups = self.lookup_cached(&spec).await;
            out.extend(order_srv(&groups, &mut rand::thread_rng()));
        }
        out
    }

    /// The SRV groups of one named target from the cache, or looked up (and cached by TTL).
    async fn lookup_cached(&self, spec: &TargetSpec) -> Vec<Vec<SrvChoice>> {
        let now = Instant::now();
        let stale = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            match cache.get(&spec.uri) {
                Some(e) if e.until > now => return e.groups.clone(),
                Some(e) => Some(e.groups.clone()),
                None => None,
            }
        };
        let (groups, until) = match self.lookup(spec).await {
            Some((groups, until)) if !groups.is_empty() => (groups, until),
            _ => match stale {
                Some(groups) if !groups.is_empty() => {
                    tracing::warn!(target = %spec.uri, "DNS lookup failed; using the last answer");
                    (groups, now + NEGATIVE_TTL)
                }
                _ => {
                    tracing::warn!(target = %spec.uri, "forward target resolves to no address");
                    (Vec::new(), now + NEGATIVE_TTL)
                }
            },
        };
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(
            spec.uri.clone(),
            Entry {
                groups: groups.clone(),
                until,
            },
        );
        groups
    }

    /// RFC 3263 §4.1–4.2 for a host name: the SRV groups and when the answer expires.
    async fn lookup(&self, spec: &TargetSpec) -> Option<(Vec<Vec<SrvChoice>>, Instant)> {
        let host = fqdn(&spec.host);
        let mut until = Instant::now() + Duration::from_secs(86_400);
        if !spec.uses_srv() {
            // A name with a port: A/AAAA only.
            return self.host_addresses(spec, &host).await;
        }
        // The SRV names to try, in order, with their transports.
        let mut services: Vec<(String, Transport)> = Vec::new();
        if spec.transport.is_none() {
            if let Ok(naptr) = self.inner.lookup(host.as_str(), RecordType::NAPTR).await {
                until = until.min(naptr.valid_until());
                let mut records: Vec<_> = naptr
                    .iter()
                    .filter_map(|r| match r {
                        RData::NAPTR(n) => Some(n.clone()),
                        _ => None,
                    })
                    .collect();
                records.sort_by_key(|n| (n.order(), n.preference()));
                for n in records {
                    if !n.flags().eq_ignore_ascii_case(b"s") {
                        continue;
                    }
                    let transport = match n.services().to_ascii_uppercase().as_slice() {
                        b"SIPS+D2T" => Transport::Tls,
                        b"SIP+D2T" if !spec.sips => Transport::Tcp,
                        b"SIP+D2U" if !spec.sips => Transport::Udp,
                        _ => continue,
                    };
                    services.push((n.replacement().to_ascii(), transport));
                }
            }
        }
        if services.is_empty() {
            let candidates: &[(&str, Transport)] = match (spec.sips, spec.transport) {
                (true, _) | (_, Some(Transport::Tls)) => &[("_sips._tcp", Transport::Tls)],
                (_, Some(Transport::Tcp)) => &[("_sip._tcp", Transport::Tcp)],
                (_, Some(Transport::Udp)) => &[("_sip._udp", Transport::Udp)],
                (false, None) => &[
                    ("_sip._udp", Transport::Udp),
                    ("_sip._tcp", Transport::Tcp),
                    ("_sips._tcp", Transport::Tls),
                ],
            };
            services = candidates
                .iter()
                .map(|(prefix, t)| (format!("{prefix}.{host}"), *t))
                .collect();
        }
        for (name, transport) in services {
            let Ok(srv) = self.inner.lookup(name.as_str(), RecordType::SRV).await else {
                continue;
            };
            let mut by_priority: Vec<(u16, Vec<SrvChoice>)> = Vec::new();
            let mut srv_until = until.min(srv.valid_until());
            for record in srv.iter() {
                let RData::SRV(s) = record else { continue };
                if s.target().is_root() {
                    continue; // "." : the service is not offered there (RFC 2782)
                }
                let Some((ips, valid)) = self.addresses(&s.target().to_ascii()).await else {
                    continue;
                };
                srv_until = srv_until.min(valid);
                let choice = SrvChoice {
                    weight: s.weight(),
                    destinations: ips
                        .into_iter()
                        .map(|ip| spec.destination(transport, SocketAddr::new(ip, s.port())))
                        .collect(),
                };
                match by_priority.iter_mut().find(|(p, _)| *p == s.priority()) {
                    Some((_, group)) => group.push(choice),
                    None => by_priority.push((s.priority(), vec![choice])),
                }
            }
            if by_priority.is_empty() {
                continue;
            }
            by_priority.sort_by_key(|(p, _)| *p);
            return Some((by_priority.into_iter().map(|(_, g)| g).collect(), srv_until));
        }
        // No SRV: the host's own addresses on the default transport and port (RFC 3263 §4.2).
        let (groups, valid) = self.host_addresses(spec, &host).await?;
        Some((groups, until.min(valid)))
    }

    /// The host's own A/AAAA addresses on the default transport and port, as one SRV group.
    async fn host_addresses(
        &self,
        spec: &TargetSpec,
        host: &str,
    ) -> Option<(Vec<Vec<SrvChoice>>, Instant)> {
        let transport = spec.default_transport();
        let port = spec.default_port(transport);
        let (ips, valid) = self.addresses(host).await?;
        let choice = SrvChoice {
            weight: 0,
            destinations: ips
                .into_iter()
                .map(|ip| spec.destination(transport, SocketAddr::new(ip, port)))
                .collect(),
        };
        Some((vec![vec![choice]], valid))
    }

    /// A/AAAA of a name (the hosts file first) and when they expire.
    async fn addresses(&self, name: &str) -> Option<(Vec<IpAddr>, Instant)> {
        let found = self.inner.lookup_ip(name).await.ok()?;
        let ips: Vec<IpAddr> = found.iter().collect();
        (!ips.is_empty()).then(|| (ips, found.valid_until()))
    }
}

/// A name as an absolute one (no search domains appended).
fn fqdn(host: &str) -> String {
    if host.ends_with('.') {
        host.to_owned()
    } else {
        format!("{host}.")
    }
}
