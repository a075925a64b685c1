//! A tiny deterministic random number generator (SplitMix64), so the core stays pure: the same
//! seed gives the same election timeouts, which is what lets a simulation replay exactly.

#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `min..max` (max exclusive, max > min).
    pub fn range(&mut self, min: u64, max: u64) -> u64 {
        min + self.next_u64() % (max - min)
    }
}

/// Mixes a string into a seed (FNV-1a), so nodes with the same seed still differ.
pub fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
