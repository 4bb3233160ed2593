//! Hashing that must give the same answer in every gateway process: conversation keys and the
//! rendezvous scores that pin a conversation to a target. Fixed algorithms (FNV-1a, splitmix64's
//! finalizer), never std's randomly seeded `RandomState`, so instances agree without talking.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// A stable 64-bit key for a conversation, from whatever identifies it (for example the virtual
/// key's id and the first user message): FNV-1a 64 over each part, length first, so `["ab", "c"]`
/// and `["a", "bc"]` differ. The same parts give the same key in every process and every build.
pub fn conversation_key(parts: &[&str]) -> u64 {
    parts.iter().fold(FNV_OFFSET, |hash, part| fnv1a(fnv1a(hash, &(part.len() as u64).to_le_bytes()), part.as_bytes()))
}

/// splitmix64's finalizer: spreads FNV's weak low bits over the whole word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The rendezvous hash of a conversation on one deployment: each (conversation, deployment) pair
/// gets an independent pseudo-random number, and the conversation goes to the highest one.
pub(super) fn rendezvous_hash(conversation: u64, deployment_key: &str) -> u64 {
    mix(conversation ^ mix(fnv1a(FNV_OFFSET, deployment_key.as_bytes())))
}

/// Weighted rendezvous score `weight / -ln(u)`, with `u` in (0, 1) taken from `hash`: the highest
/// score wins, and a target wins a share of conversations proportional to its weight. With equal
/// weights it orders exactly as the hashes do (the function is increasing in `u`).
pub(super) fn rendezvous_score(hash: u64, weight: u32) -> f64 {
    // 52 bits, so `top + 0.5` is exact and `u` stays strictly below 1 (at 1, ln is 0 and the
    // best hash would score -inf).
    const SCALE: f64 = (1u64 << 52) as f64;
    let u = ((hash >> 12) as f64 + 0.5) / SCALE;
    f64::from(weight.max(1)) / -u.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_keys_are_fixed_values() {
        // Pinned: a change here would send every running conversation elsewhere after an upgrade,
        // and split them between old and new instances during a rolling one.
        assert_eq!(conversation_key(&[]), FNV_OFFSET);
        assert_eq!(conversation_key(&["key-1", "hello"]), PINNED);
        assert_ne!(conversation_key(&["ab", "c"]), conversation_key(&["a", "bc"]));
        assert_ne!(conversation_key(&["a"]), conversation_key(&["a", ""]));
    }

    const PINNED: u64 = 195_515_795_358_814_808;

    #[test]
    fn scores_follow_hashes_and_weights() {
        let (lo, hi) = (rendezvous_hash(1, "a/m"), rendezvous_hash(1, "b/m"));
        let (lo, hi) = if lo < hi { (lo, hi) } else { (hi, lo) };
        assert!(rendezvous_score(lo, 1) < rendezvous_score(hi, 1));
        assert!(rendezvous_score(hi, 1) < rendezvous_score(hi, 2));
        assert!(rendezvous_score(0, 1) > 0.0);
        assert!(
            rendezvous_score(u64::MAX, 1).is_finite()
                && rendezvous_score(u64::MAX, 1) > rendezvous_score(u64::MAX - (1 << 12), 1)
        );
    }
}
