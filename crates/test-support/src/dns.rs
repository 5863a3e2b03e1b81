//! A DNS server for tests, bound to loopback: hickory-server's in-memory authority serving one
//! zone's SRV, NAPTR and A records over UDP, counting the queries it answers per name and type
//! (so a test sees a resolver come back when a TTL ran out).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use hickory_server::authority::{Catalog, ZoneType};
use hickory_server::proto::rr::rdata::{A, NAPTR, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryAuthority;
use hickory_server::ServerFuture;

/// One record of the test zone.
#[derive(Debug, Clone)]
pub enum Rec {
    /// `name TTL IN A ip`
    A {
        /// Owner name (absolute, with the trailing dot).
        name: String,
        /// TTL in seconds.
        ttl: u32,
        /// The address.
        ip: Ipv4Addr,
    },
    /// `name TTL IN SRV priority weight port target`
    Srv {
        /// Owner name, e.g. `_sip._udp.pbx.example.test.`.
        name: String,
        /// TTL in seconds.
        ttl: u32,
        /// Priority (lower first).
        priority: u16,
        /// Weight.
        weight: u16,
        /// Port.
        port: u16,
        /// Target host.
        target: String,
    },
    /// `name TTL IN NAPTR order preference "s" service "" replacement`
    Naptr {
        /// Owner name.
        name: String,
        /// TTL in seconds.
        ttl: u32,
        /// Order.
        order: u16,
        /// Preference.
        preference: u16,
        /// `SIP+D2U`, `SIP+D2T` or `SIPS+D2T`.
        service: String,
        /// The SRV name it points to.
        replacement: String,
    },
}

/// Queries answered, per (name, type), e.g. (`_sip._udp.pbx.example.test.`, `SRV`).
type Counts = Arc<Mutex<HashMap<(String, String), usize>>>;

/// A running test DNS server (stops when dropped with the test process; its thread is
/// detached).
pub struct DnsServer {
    addr: SocketAddr,
    counts: Counts,
}

struct Counting {
    catalog: Catalog,
    counts: Counts,
}

#[async_trait::async_trait]
impl RequestHandler for Counting {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        if let Ok(info) = request.request_info() {
            let key = (
                info.query.name().to_string().to_ascii_lowercase(),
                info.query.query_type().to_string(),
            );
            *self
                .counts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key)
                .or_default() += 1;
        }
        self.catalog.handle_request(request, response_handle).await
    }
}

impl DnsServer {
    /// Serves `records` as the zone `origin` (e.g. `example.test.`) on a free UDP port of
    /// 127.0.0.1.
    pub fn start(origin: &str, records: &[Rec]) -> Self {
        let origin_name = Name::from_str(origin).expect("zone origin");
        let mut authority = InMemoryAuthority::empty(origin_name.clone(), ZoneType::Primary, false);
        let soa = SOA::new(
            Name::from_str(&format!("ns.{origin}")).expect("name"),
            Name::from_str(&format!("admin.{origin}")).expect("name"),
            1,
            3600,
            600,
            86_400,
            1,
        );
        authority.upsert_mut(
            Record::from_rdata(origin_name.clone(), 3600, RData::SOA(soa)),
            1,
        );
        let name = |n: &str| Name::from_str(n).expect("record name");
        for rec in records {
            let record = match rec {
                Rec::A { name: n, ttl, ip } => Record::from_rdata(name(n), *ttl, RData::A(A(*ip))),
                Rec::Srv {
                    name: n,
                    ttl,
                    priority,
                    weight,
                    port,
                    target,
                } => Record::from_rdata(
                    name(n),
                    *ttl,
                    RData::SRV(SRV::new(*priority, *weight, *port, name(target))),
                ),
                Rec::Naptr {
                    name: n,
                    ttl,
                    order,
                    preference,
                    service,
                    replacement,
                } => Record::from_rdata(
                    name(n),
                    *ttl,
                    RData::NAPTR(NAPTR::new(
                        *order,
                        *preference,
                        b"s".to_vec().into_boxed_slice(),
                        service.as_bytes().to_vec().into_boxed_slice(),
                        Vec::new().into_boxed_slice(),
                        name(replacement),
                    )),
                ),
            };
            authority.upsert_mut(record, 1);
        }
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin_name), vec![Arc::new(authority)]);
        let counts: Counts = Arc::default();
        let handler = Counting {
            catalog,
            counts: Arc::clone(&counts),
        };
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind the DNS socket");
        let addr = socket.local_addr().expect("local address");
        socket.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut server = ServerFuture::new(handler);
                server
                    .register_socket_std(socket)
                    .expect("register the DNS socket");
                let _ = server.block_until_done().await;
            });
        });
        Self { addr, counts }
    }

    /// Where it listens (for `forward.dns_servers`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many queries for `name` (absolute, lower case) of type `rtype` (`SRV`, `A`,
    /// `NAPTR`) it answered.
    pub fn queries(&self, name: &str, rtype: &str) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(name.to_ascii_lowercase(), rtype.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}
