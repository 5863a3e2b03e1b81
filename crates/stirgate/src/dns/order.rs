//! RFC 2782 ordering of SRV targets: ascending priority, and inside one priority a weighted
//! random order (each pick with probability weight / remaining total; weight 0 rarely first).

use b2bua::Destination;
use rand::Rng;

/// One SRV record's target: its weight and the addresses it resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvChoice {
    /// The SRV weight.
    pub weight: u16,
    /// Its addresses (each a destination, in the order A/AAAA gave them).
    pub destinations: Vec<Destination>,
}

/// The destinations of priority `groups` (already in ascending priority) in the order to try
/// them: group by group, each group in RFC 2782 weighted random order.
pub fn order_srv<R: Rng>(groups: &[Vec<SrvChoice>], rng: &mut R) -> Vec<Destination> {
    let mut out = Vec::new();
    for group in groups {
        // RFC 2782: zero-weight entries first, then pick by running sums.
        let mut left: Vec<&SrvChoice> = group.iter().filter(|c| c.weight == 0).collect();
        left.extend(group.iter().filter(|c| c.weight > 0));
        while !left.is_empty() {
            let total: u32 = left.iter().map(|c| u32::from(c.weight)).sum();
            let pick = rng.gen_range(0..=total);
            let mut running = 0u32;
            let index = left
                .iter()
                .position(|c| {
                    running += u32::from(c.weight);
                    running >= pick
                })
                .unwrap_or(0);
            out.extend(left.remove(index).destinations.iter().cloned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use sip_proto::endpoint::{Peer, Transport};

    fn choice(weight: u16, port: u16) -> SrvChoice {
        SrvChoice {
            weight,
            destinations: vec![Destination {
                uri: "sip:x@example.test".into(),
                peer: Peer {
                    transport: Transport::Udp,
                    addr: ([127, 0, 0, 1], port).into(),
                    conn: None,
                },
            }],
        }
    }

    #[test]
    fn priorities_come_in_order_and_weights_share_the_first_place() {
        let groups = vec![vec![choice(30, 1), choice(10, 2)], vec![choice(0, 3)]];
        let mut rng = StdRng::seed_from_u64(1);
        let mut first_is_1 = 0;
        for _ in 0..4000 {
            let order: Vec<u16> = order_srv(&groups, &mut rng)
                .iter()
                .map(|d| d.peer.addr.port())
                .collect();
            assert_eq!(order.len(), 3);
            assert_eq!(order[2], 3, "the lower priority comes last");
            if order[0] == 1 {
                first_is_1 += 1;
            }
        }
        // Weight 30 of 40: about 3 in 4 calls try it first.
        assert!((2700..3300).contains(&first_is_1), "{first_is_1} of 4000");
    }
}
