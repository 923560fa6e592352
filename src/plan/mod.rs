//! The plan for one launch: where the segments go and the mm fields ([`load`]), the initial
//! stack image ([`stack`]), the address ranges kept free ([`reserve`]) and the credentials the
//! program gets ([`credentials`]).

pub mod credentials;
pub mod finish;
pub mod ia32;
pub mod load;
pub mod reserve;
pub mod stack;
pub mod userns;

/// The randomness of one launch, as the kernel would draw it: the AT_RANDOM bytes, then the
/// PIE offset, brk offset and stack gap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Random {
    pub at_random: [u8; 16],
    pub mmap: u64,
    pub brk: u64,
    pub gap: u64,
}

impl Random {
    /// How many random bytes a launch draws.
    pub const BYTES: usize = 40;

    pub fn from_bytes(bytes: &[u8; Self::BYTES]) -> Self {
        let word = |at: usize| {
            let mut word = [0; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_ne_bytes(word)
        };
        let mut at_random = [0; 16];
        at_random.copy_from_slice(&bytes[..16]);
        Self { at_random, mmap: word(16), brk: word(24), gap: word(32) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_random_byte_goes_to_one_place() {
        let bytes: [u8; Random::BYTES] = core::array::from_fn(|i| i as u8);
        let random = Random::from_bytes(&bytes);
        assert_eq!(random.at_random, core::array::from_fn(|i| i as u8));
        assert_eq!(random.mmap.to_ne_bytes(), [16, 17, 18, 19, 20, 21, 22, 23]);
        assert_eq!(random.brk.to_ne_bytes(), [24, 25, 26, 27, 28, 29, 30, 31]);
        assert_eq!(random.gap.to_ne_bytes(), [32, 33, 34, 35, 36, 37, 38, 39]);
    }
}
