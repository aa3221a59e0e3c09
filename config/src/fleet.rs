//! Which agents probe which check: rendezvous hashing over the peer set,
//! spread over distinct zones first. Pure: every agent that sees the same
//! peers computes the same assignment, and ingest, which recomputes it over
//! the fleet it has heard from to decide whose votes count, uses this same
//! copy.

use crate::defaults::Locations;
use std::collections::BTreeMap;

/// One agent of the fleet.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Peer {
    /// The stable id: the node name in Kubernetes; never contains `/`.
    pub id: String,
    /// Its availability zone; empty when unknown.
    pub zone: String,
}

impl Peer {
    /// A peer from `id` and `zone`.
    pub fn new(id: impl Into<String>, zone: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            zone: zone.into(),
        }
    }

    /// Parses `id[@zone],...` as `--peers` takes it.
    pub fn parse_list(text: &str) -> Result<Vec<Peer>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                let (id, zone) = item.split_once('@').unwrap_or((item, ""));
                if id.is_empty() || id.contains('/') || id.contains(char::is_whitespace) {
                    Err(format!(
                        "`{item}` is not a peer: expected id[@zone], an id without `/` or spaces"
                    ))
                } else {
                    Ok(Peer::new(id, zone))
                }
            })
            .collect()
    }
}

/// An id claimed with two different zones: two agents think they are the same node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateId {
    /// The id.
    pub id: String,
    /// The zones it was seen with.
    pub zones: Vec<String>,
}

/// The agents that share the work, self included, in id order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fleet {
    peers: Vec<Peer>,
}

impl Fleet {
    /// The fleet of `me` and `others`. `me` always counts, and wins over a
    /// listed peer with the same id. Ids seen with different zones are returned.
    pub fn new(me: Peer, others: impl IntoIterator<Item = Peer>) -> (Fleet, Vec<DuplicateId>) {
        let mut by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in others {
            let zones = by_id.entry(p.id).or_default();
            if !zones.contains(&p.zone) {
                zones.push(p.zone);
            }
        }
        let duplicates = by_id
            .iter()
            .filter(|(id, zones)| {
                zones.len() > 1
                    || (**id == me.id && zones.iter().any(|z| *z != me.zone && !z.is_empty()))
            })
            .map(|(id, zones)| {
                let mut zones = zones.clone();
                if *id == me.id && !zones.contains(&me.zone) {
                    zones.push(me.zone.clone());
                }
                zones.sort();
                DuplicateId {
                    id: id.clone(),
                    zones,
                }
            })
            .collect();
        let mut peers: Vec<Peer> = by_id
            .into_iter()
            .filter(|(id, _)| *id != me.id)
            .map(|(id, zones)| Peer {
                id,
                zone: zones.into_iter().next().unwrap_or_default(),
            })
            .collect();
        peers.push(me);
        peers.sort();
        (Fleet { peers }, duplicates)
    }

    /// The fleet of `peers` as someone outside it sees them (ingest): no
    /// self, and an id listed twice counts once (its first zone).
    pub fn of(peers: impl IntoIterator<Item = Peer>) -> Fleet {
        let mut peers: Vec<Peer> = peers.into_iter().collect();
        peers.sort();
        peers.dedup_by(|b, a| a.id == b.id);
        Fleet { peers }
    }

    /// A fleet of one: standalone mode.
    pub fn alone(me: Peer) -> Fleet {
        Fleet { peers: vec![me] }
    }

    /// Every agent, in id order.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// How many agents a check with `locations` gets: min(locations, fleet size).
    pub fn assigned_count(&self, locations: Locations) -> u32 {
        let n = self.peers.len() as u32;
        match locations {
            Locations::All => n,
            Locations::Count(c) => c.min(n),
        }
    }

    /// The agents that probe `check`, best first: the highest rendezvous
    /// score of each zone, then the rest by score.
    pub fn assigned(&self, check: &str, locations: Locations) -> Vec<&Peer> {
        let want = self.assigned_count(locations) as usize;
        let mut ranked: Vec<(u64, &Peer)> = self
            .peers
            .iter()
            .map(|p| (score(check, &p.id), p))
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
        let mut chosen: Vec<&Peer> = Vec::with_capacity(want);
        let mut zones: Vec<&str> = Vec::new();
        for (_, p) in &ranked {
            if chosen.len() == want {
                break;
            }
            if !zones.contains(&p.zone.as_str()) {
                zones.push(&p.zone);
                chosen.push(p);
            }
        }
        for (_, p) in &ranked {
            if chosen.len() == want {
                break;
            }
            if !chosen.iter().any(|c| c.id == p.id) {
                chosen.push(p);
            }
        }
        chosen
    }

    /// Whether the agent `id` probes `check`.
    pub fn probes(&self, id: &str, check: &str, locations: Locations) -> bool {
        matches!(locations, Locations::All)
            || self.assigned(check, locations).iter().any(|p| p.id == id)
    }
}

/// The rendezvous score of (check, agent): a stable 64-bit hash, the same on
/// every platform and version (FNV-1a, then a splitmix64 finaliser to spread it).
pub fn score(check: &str, agent: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in check.bytes().chain([0u8]).chain(agent.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// splitmix64's finaliser.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    fn fleet(n: usize, zones: usize) -> Fleet {
        let others = (1..n).map(|i| Peer::new(format!("node-{i}"), format!("zone-{}", i % zones)));
        Fleet::new(Peer::new("node-0", "zone-0"), others).0
    }

    fn checks(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("check-{i}")).collect()
    }

    #[test]
    fn load_is_balanced_within_ten_percent() {
        let f = fleet(10, 1);
        for locations in [1, 3] {
            let mut load: HashMap<&str, usize> = HashMap::new();
            for c in checks(10_000) {
                for p in f.assigned(&c, Locations::Count(locations)) {
                    *load.entry(&p.id).or_default() += 1;
                }
            }
            let mean = 10_000.0 * f64::from(locations) / 10.0;
            for (id, n) in &load {
                let off = (*n as f64 - mean).abs() / mean;
                assert!(
                    off <= 0.10,
                    "{id} has {n}, mean {mean} (locations {locations})"
                );
            }
            assert_eq!(load.len(), 10);
        }
    }

    #[test]
    fn one_agent_joining_or_leaving_moves_about_one_nth() {
        let before = fleet(10, 1);
        let after = fleet(11, 1);
        let fewer = fleet(9, 1);
        let cs = checks(10_000);
        let assignment = |f: &Fleet, c: &str| -> BTreeSet<String> {
            f.assigned(c, Locations::Count(2))
                .iter()
                .map(|p| p.id.clone())
                .collect()
        };
        for (other, n) in [(&after, 11.0), (&fewer, 10.0)] {
            let moved: usize = cs
                .iter()
                .map(|c| {
                    assignment(&before, c)
                        .symmetric_difference(&assignment(other, c))
                        .count()
                        / 2
                })
                .sum();
            let total = cs.len() * 2;
            let share = moved as f64 / total as f64;
            assert!(share <= 1.0 / n + 0.02, "moved {share:.3} of assignments");
        }
    }

    #[test]
    fn three_zones_and_three_locations_cover_three_zones() {
        let f = fleet(9, 3);
        for c in checks(2_000) {
            let zones: BTreeSet<&str> = f
                .assigned(&c, Locations::Count(3))
                .iter()
                .map(|p| p.zone.as_str())
                .collect();
            assert_eq!(zones.len(), 3, "{c}");
        }
    }

    #[test]
    fn every_agent_computes_the_same_assignment_from_the_same_peers() {
        let ids: Vec<Peer> = (0..6)
            .map(|i| Peer::new(format!("n{i}"), format!("z{}", i % 2)))
            .collect();
        let views: Vec<Fleet> = (0..6)
            .map(|me| {
                let mut others: Vec<Peer> =
                    ids.iter().filter(|p| p.id != ids[me].id).cloned().collect();
                others.reverse();
                Fleet::new(ids[me].clone(), others).0
            })
            .collect();
        for c in checks(500) {
            let first: Vec<&str> = views[0]
                .assigned(&c, Locations::Count(3))
                .iter()
                .map(|p| p.id.as_str())
                .collect();
            for v in &views[1..] {
                let other: Vec<&str> = v
                    .assigned(&c, Locations::Count(3))
                    .iter()
                    .map(|p| p.id.as_str())
                    .collect();
                assert_eq!(first, other);
            }
            let probers = ids
                .iter()
                .filter(|p| views[0].probes(&p.id, &c, Locations::Count(3)))
                .count();
            assert_eq!(probers, 3);
        }
    }

    #[test]
    fn the_count_is_capped_by_the_fleet_and_all_means_everyone() {
        let alone = Fleet::alone(Peer::new("local", ""));
        assert_eq!(alone.assigned_count(Locations::Count(3)), 1);
        assert_eq!(alone.assigned("c", Locations::Count(3)).len(), 1);
        let f = fleet(4, 2);
        assert_eq!(f.assigned_count(Locations::All), 4);
        assert!(
            f.peers()
                .iter()
                .all(|p| f.probes(&p.id, "c", Locations::All))
        );
    }

    #[test]
    fn duplicate_ids_are_detected_and_self_always_counts() {
        let (f, dups) = Fleet::new(
            Peer::new("a", "z1"),
            [
                Peer::new("b", "z1"),
                Peer::new("b", "z2"),
                Peer::new("a", "z9"),
            ],
        );
        assert_eq!(f.peers().len(), 2);
        assert_eq!(
            f.peers()[0],
            Peer::new("a", "z1"),
            "self wins over a listed twin"
        );
        assert_eq!(
            dups,
            vec![
                DuplicateId {
                    id: "a".into(),
                    zones: vec!["z1".into(), "z9".into()]
                },
                DuplicateId {
                    id: "b".into(),
                    zones: vec!["z1".into(), "z2".into()]
                }
            ]
        );
    }

    #[test]
    fn peers_parse_from_the_flag() {
        assert_eq!(
            Peer::parse_list("a@z1, b ,c@").unwrap(),
            vec![Peer::new("a", "z1"), Peer::new("b", ""), Peer::new("c", "")]
        );
        assert_eq!(
            Peer::parse_list("a/b").unwrap_err(),
            "`a/b` is not a peer: expected id[@zone], an id without `/` or spaces"
        );
    }

    #[test]
    fn the_score_is_pinned() {
        // Changing the hash would reshuffle every fleet during a rolling update,
        // while old and new agents disagree. These values were computed
        // independently (FNV-1a 64 then splitmix64's finaliser, in Python).
        assert_eq!(score("website-homepage", "node-a"), 0x5825_35eb_0590_62da);
        assert_eq!(score("a", "b"), 0xeb38_c838_c62d_597e);
    }
}
