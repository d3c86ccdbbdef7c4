//! AES-NI semantics on plain 128-bit values (AESENC, AESENCLAST, AESDEC,
//! AESDECLAST, AESIMC, AESKEYGENASSIST), per FIPS-197 with the state in
//! the register's byte order: byte `4*c + r` is row `r` of column `c`.
//!
//! The S-boxes are computed at compile time from their definition
//! (multiplicative inverse in GF(2^8) followed by the affine map), and so
//! are the GF(2^8) multiplication tables MixColumns uses.

/// Multiply in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1.
const fn gmul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            p ^= a;
        }
        let hi = a & 0x80;
        a <<= 1;
        if hi != 0 {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    p
}

const fn sbox_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut x = 0usize;
    while x < 256 {
        // Inverse: the y with x*y = 1 (0 maps to 0).
        let mut inv = 0u8;
        let mut y = 1usize;
        while x != 0 && y < 256 {
            if gmul(x as u8, y as u8) == 1 {
                inv = y as u8;
            }
            y += 1;
        }
        let s = inv
            ^ inv.rotate_left(1)
            ^ inv.rotate_left(2)
            ^ inv.rotate_left(3)
            ^ inv.rotate_left(4)
            ^ 0x63;
        t[x] = s;
        x += 1;
    }
    t
}

const fn inv_table(s: &[u8; 256]) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut x = 0usize;
    while x < 256 {
        t[s[x] as usize] = x as u8;
        x += 1;
    }
    t
}

const fn mul_tables() -> [[u8; 256]; 15] {
    let mut t = [[0u8; 256]; 15];
    let mut k = 0usize;
    while k < 15 {
        let mut x = 0usize;
        while x < 256 {
            t[k][x] = gmul(k as u8, x as u8);
            x += 1;
        }
        k += 1;
    }
    t
}

/// The AES S-box.
static SBOX: [u8; 256] = sbox_table();
/// `MUL[k][x]` is `k * x` in GF(2^8), for the MixColumns coefficients.
static MUL: [[u8; 256]; 15] = mul_tables();
/// Its inverse.
static INV_SBOX: [u8; 256] = inv_table(&SBOX);

fn bytes(v: u128) -> [u8; 16] {
    v.to_le_bytes()
}

fn shift_rows(s: [u8; 16], inverse: bool) -> [u8; 16] {
    let mut o = [0u8; 16];
    for c in 0..4 {
        for r in 0..4 {
            let from = if inverse {
                (c + 4 - r) % 4
            } else {
                (c + r) % 4
            };
            o[4 * c + r] = s[4 * from + r];
        }
    }
    o
}

fn sub_bytes(s: [u8; 16], table: &[u8; 256]) -> [u8; 16] {
    s.map(|b| table[usize::from(b)])
}

fn mix_columns(s: [u8; 16], inverse: bool) -> [u8; 16] {
    let m: [u8; 4] = if inverse {
        [14, 11, 13, 9]
    } else {
        [2, 3, 1, 1]
    };
    let mut o = [0u8; 16];
    for c in 0..4 {
        for r in 0..4 {
            o[4 * c + r] = (0..4).fold(0, |acc, k| {
                acc ^ MUL[usize::from(m[(k + 4 - r) % 4])][usize::from(s[4 * c + k])]
            });
        }
    }
    o
}

/// AESENC (`last` false) and AESENCLAST: one encryption round of `state`
/// with round key `key`.
pub(super) fn encrypt_round(state: u128, key: u128, last: bool) -> u128 {
    let mut s = sub_bytes(shift_rows(bytes(state), false), &SBOX);
    if !last {
        s = mix_columns(s, false);
    }
    u128::from_le_bytes(s) ^ key
}

/// AESDEC (`last` false) and AESDECLAST: one equivalent-inverse-cipher
/// round of `state` with round key `key`.
pub(super) fn decrypt_round(state: u128, key: u128, last: bool) -> u128 {
    let mut s = sub_bytes(shift_rows(bytes(state), true), &INV_SBOX);
    if !last {
        s = mix_columns(s, true);
    }
    u128::from_le_bytes(s) ^ key
}

/// AESIMC: InvMixColumns of `v`.
pub(super) fn inverse_mix_columns(v: u128) -> u128 {
    u128::from_le_bytes(mix_columns(bytes(v), true))
}

fn sub_word(w: u32) -> u32 {
    u32::from_le_bytes(w.to_le_bytes().map(|b| SBOX[usize::from(b)]))
}

/// AESKEYGENASSIST: SubWord and RotWord^RCON of dwords 1 and 3 of `v`.
pub(super) fn keygen_assist(v: u128, rcon: u8) -> u128 {
    let x1 = sub_word((v >> 32) as u32);
    let x3 = sub_word((v >> 96) as u32);
    let rc = u32::from(rcon);
    u128::from(x1)
        | u128::from(x1.rotate_right(8) ^ rc) << 32
        | u128::from(x3) << 64
        | u128::from(x3.rotate_right(8) ^ rc) << 96
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(hex: &str) -> u128 {
        let b: Vec<u8> = (0..16)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect();
        u128::from_le_bytes(b.try_into().unwrap_or([0; 16]))
    }

    /// AES-128 key expansion with AESKEYGENASSIST, as software does it.
    fn expand(key: u128) -> [u128; 11] {
        let mut k = [0u128; 11];
        k[0] = key;
        let rcons = [1u8, 2, 4, 8, 16, 32, 64, 128, 0x1b, 0x36];
        for i in 1..11 {
            let t = keygen_assist(k[i - 1], rcons[i - 1]) >> 96;
            let t = t as u32;
            let mut w = [0u32; 4];
            let p = k[i - 1];
            w[0] = (p as u32) ^ t;
            w[1] = ((p >> 32) as u32) ^ w[0];
            w[2] = ((p >> 64) as u32) ^ w[1];
            w[3] = ((p >> 96) as u32) ^ w[2];
            k[i] = w
                .iter()
                .enumerate()
                .fold(0, |r, (j, &x)| r | u128::from(x) << (32 * j));
        }
        k
    }

    #[test]
    fn sbox_known_entries() {
        assert_eq!(SBOX[0], 0x63);
        assert_eq!(SBOX[0x53], 0xed);
        assert_eq!(INV_SBOX[0x63], 0);
    }

    #[test]
    fn fips197_appendix_c1_aes128() {
        let key = block("000102030405060708090a0b0c0d0e0f");
        let pt = block("00112233445566778899aabbccddeeff");
        let ct = block("69c4e0d86a7b0430d8cdb78070b4c55a");
        let k = expand(key);
        let mut s = pt ^ k[0];
        for rk in &k[1..10] {
            s = encrypt_round(s, *rk, false);
        }
        s = encrypt_round(s, k[10], true);
        assert_eq!(s, ct);
        // Decryption with the equivalent inverse cipher (AESIMC'd keys).
        let mut s = ct ^ k[10];
        for rk in k[1..10].iter().rev() {
            s = decrypt_round(s, inverse_mix_columns(*rk), false);
        }
        s = decrypt_round(s, k[0], true);
        assert_eq!(s, pt);
    }
}
