//! SHA extensions semantics on plain 128-bit values: SHA1RNDS4,
//! SHA1NEXTE, SHA1MSG1, SHA1MSG2, SHA256RNDS2, SHA256MSG1 and SHA256MSG2.
//! Dword 3 (bits 127:96) holds the first state word or message word, as
//! in the SDM's definitions.

fn dw(v: u128, i: usize) -> u32 {
    (v >> (32 * i)) as u32
}

/// Builds a value from dwords given most significant first.
fn from_dwords(d3: u32, d2: u32, d1: u32, d0: u32) -> u128 {
    u128::from(d3) << 96 | u128::from(d2) << 64 | u128::from(d1) << 32 | u128::from(d0)
}

/// SHA1RNDS4: four SHA-1 rounds on state A..D (`a`, A in dword 3) with
/// message words plus E in `b`; `imm[1:0]` selects the function and K.
pub(super) fn sha1rnds4(a: u128, b: u128, imm: u8) -> u128 {
    let f = |b: u32, c: u32, d: u32| match imm & 3 {
        0 => (b & c) ^ (!b & d),
        2 => (b & c) ^ (b & d) ^ (c & d),
        _ => b ^ c ^ d,
    };
    let k = [0x5a82_7999u32, 0x6ed9_eba1, 0x8f1b_bcdc, 0xca62_c1d6][usize::from(imm & 3)];
    let (mut sa, mut sb, mut sc, mut sd) = (dw(a, 3), dw(a, 2), dw(a, 1), dw(a, 0));
    let mut e = 0u32;
    for i in 0..4 {
        // W0 already carries E.
        let w = dw(b, 3 - i);
        let t = f(sb, sc, sd)
            .wrapping_add(sa.rotate_left(5))
            .wrapping_add(w)
            .wrapping_add(e)
            .wrapping_add(k);
        e = sd;
        sd = sc;
        sc = sb.rotate_left(30);
        sb = sa;
        sa = t;
    }
    from_dwords(sa, sb, sc, sd)
}

/// SHA1NEXTE: `b` with dword 3 increased by dword 3 of `a` rotated left 30.
pub(super) fn sha1nexte(a: u128, b: u128) -> u128 {
    let top = dw(b, 3).wrapping_add(dw(a, 3).rotate_left(30));
    (b & !(u128::from(u32::MAX) << 96)) | u128::from(top) << 96
}

/// SHA1MSG1: the XOR half of the next four message words.
pub(super) fn sha1msg1(a: u128, b: u128) -> u128 {
    let (w0, w1, w2, w3) = (dw(a, 3), dw(a, 2), dw(a, 1), dw(a, 0));
    let (w4, w5) = (dw(b, 3), dw(b, 2));
    from_dwords(w2 ^ w0, w3 ^ w1, w4 ^ w2, w5 ^ w3)
}

/// SHA1MSG2: the final rotate step of the next four message words.
pub(super) fn sha1msg2(a: u128, b: u128) -> u128 {
    let (w13, w14, w15) = (dw(b, 2), dw(b, 1), dw(b, 0));
    let w16 = (dw(a, 3) ^ w13).rotate_left(1);
    let w17 = (dw(a, 2) ^ w14).rotate_left(1);
    let w18 = (dw(a, 1) ^ w15).rotate_left(1);
    let w19 = (dw(a, 0) ^ w16).rotate_left(1);
    from_dwords(w16, w17, w18, w19)
}

fn big_sigma0(x: u32) -> u32 {
    x.rotate_right(2) ^ x.rotate_right(13) ^ x.rotate_right(22)
}

fn big_sigma1(x: u32) -> u32 {
    x.rotate_right(6) ^ x.rotate_right(11) ^ x.rotate_right(25)
}

fn sigma0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}

fn sigma1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}

/// SHA256RNDS2: two SHA-256 rounds. `a` holds C, D, G, H (dwords 3..0),
/// `b` holds A, B, E, F, `wk` (XMM0) the two message-plus-constant words;
/// the result holds A, B, E, F after the rounds.
pub(super) fn sha256rnds2(a: u128, b: u128, wk: u128) -> u128 {
    let (mut sa, mut sb, mut se, mut sf) = (dw(b, 3), dw(b, 2), dw(b, 1), dw(b, 0));
    let (mut sc, mut sd, mut sg, mut sh) = (dw(a, 3), dw(a, 2), dw(a, 1), dw(a, 0));
    for i in 0..2 {
        let ch = (se & sf) ^ (!se & sg);
        let maj = (sa & sb) ^ (sa & sc) ^ (sb & sc);
        let t1 = sh
            .wrapping_add(big_sigma1(se))
            .wrapping_add(ch)
            .wrapping_add(dw(wk, i));
        let t2 = big_sigma0(sa).wrapping_add(maj);
        sh = sg;
        sg = sf;
        sf = se;
        se = sd.wrapping_add(t1);
        sd = sc;
        sc = sb;
        sb = sa;
        sa = t1.wrapping_add(t2);
    }
    from_dwords(sa, sb, se, sf)
}

/// SHA256MSG1: `W[i] + sigma0(W[i+1])` for the four words of `a` and the
/// low word of `b`.
pub(super) fn sha256msg1(a: u128, b: u128) -> u128 {
    let w4 = dw(b, 0);
    let (w3, w2, w1, w0) = (dw(a, 3), dw(a, 2), dw(a, 1), dw(a, 0));
    from_dwords(
        w3.wrapping_add(sigma0(w4)),
        w2.wrapping_add(sigma0(w3)),
        w1.wrapping_add(sigma0(w2)),
        w0.wrapping_add(sigma0(w1)),
    )
}

/// SHA256MSG2: adds `sigma1` of the previous words to `a`, words 14 and 15
/// coming from the high dwords of `b`.
pub(super) fn sha256msg2(a: u128, b: u128) -> u128 {
    let (w14, w15) = (dw(b, 2), dw(b, 3));
    let w16 = dw(a, 0).wrapping_add(sigma1(w14));
    let w17 = dw(a, 1).wrapping_add(sigma1(w15));
    let w18 = dw(a, 2).wrapping_add(sigma1(w16));
    let w19 = dw(a, 3).wrapping_add(sigma1(w17));
    from_dwords(w19, w18, w17, w16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-256 of "abc" (FIPS 180-4 example) driven through the instruction
    /// functions the way optimized software uses them.
    #[test]
    fn sha256_abc_through_the_instructions() {
        const K: [u32; 64] = [
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
            0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
            0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
            0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
            0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
            0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
            0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
            0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
            0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
            0xc67178f2,
        ];
        let h0: [u32; 8] = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
            0x5be0cd19,
        ];
        let mut block = [0u8; 64];
        block[..3].copy_from_slice(b"abc");
        block[3] = 0x80;
        block[63] = 24;
        let mut w: Vec<u32> = (0..16)
            .map(|i| {
                u32::from_be_bytes([
                    block[4 * i],
                    block[4 * i + 1],
                    block[4 * i + 2],
                    block[4 * i + 3],
                ])
            })
            .collect();
        // Message schedule four words at a time (W[t-7] added in between).
        for t in (16..64).step_by(4) {
            let q = |k: usize| from_dwords(w[k + 3], w[k + 2], w[k + 1], w[k]);
            let m1 = sha256msg1(q(t - 16), q(t - 12));
            let x = q(t - 7);
            let sum = (0..4).fold(0u128, |r, i| {
                r | u128::from(dw(m1, i).wrapping_add(dw(x, i))) << (32 * i)
            });
            let next = sha256msg2(sum, q(t - 4));
            for i in 0..4 {
                w.push(dw(next, i));
            }
        }
        let [a, b, c, d, e, f, g, h] = h0;
        let mut abef = from_dwords(a, b, e, f);
        let mut cdgh = from_dwords(c, d, g, h);
        for t in (0..64).step_by(2) {
            let wk = u128::from(w[t].wrapping_add(K[t]))
                | u128::from(w[t + 1].wrapping_add(K[t + 1])) << 32;
            let new = sha256rnds2(cdgh, abef, wk);
            cdgh = abef;
            abef = new;
        }
        let out = [
            dw(abef, 3).wrapping_add(a),
            dw(abef, 2).wrapping_add(b),
            dw(cdgh, 3).wrapping_add(c),
            dw(cdgh, 2).wrapping_add(d),
            dw(abef, 1).wrapping_add(e),
            dw(abef, 0).wrapping_add(f),
            dw(cdgh, 1).wrapping_add(g),
            dw(cdgh, 0).wrapping_add(h),
        ];
        assert_eq!(
            out,
            [
                0xba7816bf, 0x8f01cfea, 0x414140de, 0x5dae2223, 0xb00361a3, 0x96177a9c, 0xb410ff61,
                0xf20015ad
            ]
        );
    }

    /// SHA-1 of "abc" (FIPS 180-4 example) with the schedule from
    /// SHA1MSG1/SHA1MSG2 and the rounds from SHA1RNDS4/SHA1NEXTE.
    #[test]
    fn sha1_abc_through_the_instructions() {
        let mut block = [0u8; 64];
        block[..3].copy_from_slice(b"abc");
        block[3] = 0x80;
        block[63] = 24;
        let mut w: Vec<u32> = block
            .chunks(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let q = |w: &[u32], k: usize| from_dwords(w[k], w[k + 1], w[k + 2], w[k + 3]);
        for t in (16..80).step_by(4) {
            let x = sha1msg1(q(&w, t - 16), q(&w, t - 12)) ^ q(&w, t - 8);
            let next = sha1msg2(x, q(&w, t - 4));
            w.extend([dw(next, 3), dw(next, 2), dw(next, 1), dw(next, 0)]);
        }
        let h: [u32; 5] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0];
        let start = from_dwords(h[0], h[1], h[2], h[3]);
        let mut abcd = start;
        let mut prev = 0u128;
        for g in 0..20 {
            let msg = if g == 0 {
                from_dwords(w[0].wrapping_add(h[4]), w[1], w[2], w[3])
            } else {
                sha1nexte(prev, q(&w, 4 * g))
            };
            prev = abcd;
            abcd = sha1rnds4(abcd, msg, (g / 5) as u8);
        }
        let e = dw(prev, 3).rotate_left(30).wrapping_add(h[4]);
        let out = [
            dw(abcd, 3).wrapping_add(h[0]),
            dw(abcd, 2).wrapping_add(h[1]),
            dw(abcd, 1).wrapping_add(h[2]),
            dw(abcd, 0).wrapping_add(h[3]),
            e,
        ];
        assert_eq!(
            out,
            [0xa9993e36, 0x4706816a, 0xba3e2571, 0x7850c26c, 0x9cd0d89d]
        );
    }
}
