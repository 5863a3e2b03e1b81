//! RTP port allocation over the configured range.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, PoisonError};

use super::NetError;

/// Hands out even RTP ports (with the odd RTCP port above) from a range; a port is free again
/// when its [`PortLease`] is dropped, however the call ended.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    range: RangeInclusive<u16>,
    next: u16,
    used: HashSet<u16>,
}

/// One allocated RTP/RTCP port pair; dropping it releases the pair.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    inner: Arc<Mutex<Inner>>,
}

/// The sockets of an allocated pair.
#[derive(Debug)]
pub struct BoundPair {
    /// Releases the ports on drop.
    pub lease: PortLease,
    /// The RTP socket (even port).
    pub rtp: UdpSocket,
    /// The RTCP socket (RTP port + 1).
    pub rtcp: UdpSocket,
}

impl PortAllocator {
    /// An allocator over `range` (its first even port up to its last odd one).
    #[must_use]
    pub fn new(range: RangeInclusive<u16>) -> Self {
        let start = range.start() + range.start() % 2;
        Self {
            inner: Arc::new(Mutex::new(Inner {
                range: start..=*range.end(),
                next: start,
                used: HashSet::new(),
            })),
        }
    }

    /// Binds the next free pair on `ip`. Ports are taken round-robin, so a just-released port
    /// is reused last (late packets of the old call do not reach the new one); ports another
    /// process holds are skipped.
    pub fn allocate(&self, ip: IpAddr) -> Result<BoundPair, NetError> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (lo, hi) = (*inner.range.start(), *inner.range.end());
        let pairs = (u32::from(hi) + 1 - u32::from(lo)) / 2;
        for _ in 0..pairs {
            let port = inner.next;
            inner.next = if u32::from(port) + 3 > u32::from(hi) {
                lo
            } else {
                port + 2
            };
            if inner.used.contains(&port) {
                continue;
            }
            let Ok(rtp) = UdpSocket::bind(SocketAddr::new(ip, port)) else {
                continue;
            };
            let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(ip, port + 1)) else {
                continue;
            };
            inner.used.insert(port);
            return Ok(BoundPair {
                lease: PortLease {
                    port,
                    inner: Arc::clone(&self.inner),
                },
                rtp,
                rtcp,
            });
        }
        Err(NetError::PortsExhausted { low: lo, high: hi })
    }

    /// How many pairs are allocated now.
    #[must_use]
    pub fn in_use(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .used
            .len()
    }
}

impl PortLease {
    /// The RTP port (RTCP is the next one).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .used
            .remove(&self.port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_even_pairs_releases_on_drop_and_skips_busy_ports() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        // Find a free block of 6 ports to play in.
        let base = (41000..60000u16)
            .step_by(6)
            .find(|b| (0..6).all(|i| UdpSocket::bind((ip, b + i)).is_ok()))
            .unwrap();
        let alloc = PortAllocator::new(base + 1..=base + 5); // odd start rounds up
        let busy = UdpSocket::bind((ip, base + 4)).unwrap(); // someone else holds base+4
        let a = alloc.allocate(ip).unwrap();
        assert_eq!(a.lease.port(), base + 2);
        assert_eq!(a.rtcp.local_addr().unwrap().port(), base + 3);
        let e = alloc.allocate(ip).unwrap_err();
        assert!(matches!(e, NetError::PortsExhausted { .. }), "{e}");
        assert_eq!(alloc.in_use(), 1);
        drop(a);
        assert_eq!(alloc.in_use(), 0);
        drop(busy);
        let b = alloc.allocate(ip).unwrap();
        assert_eq!(b.lease.port(), base + 4, "round-robin: the next pair first");
        let c = alloc.allocate(ip).unwrap();
        assert_eq!(c.lease.port(), base + 2);
    }
}
