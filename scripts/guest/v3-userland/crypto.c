/* Intrinsics: AES-128 (AESKEYGENASSIST, AESENC/AESENCLAST, AESIMC,
 * AESDEC/AESDECLAST, VEX-encoded under -mavx), a GHASH-style carry-less
 * multiply (PCLMULQDQ), CRC32C over 64-bit words, SHA-256 with
 * SHA256RNDS2/MSG1/MSG2 checked against a scalar SHA-256, and SSE4.2
 * string compares (PCMPISTRI/PCMPESTRI/PCMPISTRM). */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include "digest.h"

static __m128i expand_step(__m128i k, __m128i g)
{
    g = _mm_shuffle_epi32(g, 0xff);
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    return _mm_xor_si128(k, g);
}

#define EXPAND(i, rcon) rk[i] = expand_step(rk[i - 1], _mm_aeskeygenassist_si128(rk[i - 1], rcon))

static void aes_test(void)
{
    /* FIPS-197 appendix C.1. */
    const uint8_t key[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    uint8_t pt[16], ct[16], back[16];
    for (int i = 0; i < 16; i++)
        pt[i] = (uint8_t)(i * 0x11);
    __m128i rk[11], dk[11];
    rk[0] = _mm_loadu_si128((const __m128i *)key);
    EXPAND(1, 0x01); EXPAND(2, 0x02); EXPAND(3, 0x04); EXPAND(4, 0x08); EXPAND(5, 0x10);
    EXPAND(6, 0x20); EXPAND(7, 0x40); EXPAND(8, 0x80); EXPAND(9, 0x1b); EXPAND(10, 0x36);
    dk[0] = rk[10];
    for (int i = 1; i < 10; i++)
        dk[i] = _mm_aesimc_si128(rk[10 - i]);
    dk[10] = rk[0];
    __m128i b = _mm_loadu_si128((const __m128i *)pt);
    uint64_t chain = 0;
    for (int n = 0; n < 200; n++) {
        __m128i s = _mm_xor_si128(b, rk[0]);
        for (int i = 1; i < 10; i++)
            s = _mm_aesenc_si128(s, rk[i]);
        s = _mm_aesenclast_si128(s, rk[10]);
        if (n == 0)
            _mm_storeu_si128((__m128i *)ct, s);
        __m128i d = _mm_xor_si128(s, dk[0]);
        for (int i = 1; i < 10; i++)
            d = _mm_aesdec_si128(d, dk[i]);
        d = _mm_aesdeclast_si128(d, dk[10]);
        if (n == 0)
            _mm_storeu_si128((__m128i *)back, d);
        chain = fnv(chain, &s, 16);
        b = _mm_xor_si128(s, _mm_set1_epi32(n));
    }
    printf("aes_fips197 %s\n", memcmp(ct, "\x69\xc4\xe0\xd8\x6a\x7b\x04\x30\xd8\xcd\xb7\x80\x70\xb4\xc5\x5a", 16) == 0 && memcmp(back, pt, 16) == 0 ? "ok" : "BAD");
    printf("aes_chain %016llx\n", (unsigned long long)chain);
}

static void clmul_test(void)
{
    __m128i acc = _mm_setzero_si128();
    for (int n = 0; n < 300; n++) {
        __m128i x = _mm_set_epi64x((long long)rnd(), (long long)rnd());
        __m128i h = _mm_set_epi64x((long long)rnd(), (long long)rnd());
        __m128i lo = _mm_clmulepi64_si128(x, h, 0x00);
        __m128i hi = _mm_clmulepi64_si128(x, h, 0x11);
        __m128i mid = _mm_xor_si128(_mm_clmulepi64_si128(x, h, 0x01), _mm_clmulepi64_si128(x, h, 0x10));
        acc = _mm_xor_si128(acc, _mm_xor_si128(lo, _mm_slli_si128(mid, 8)));
        acc = _mm_xor_si128(_mm_shuffle_epi32(acc, 0x4e), _mm_xor_si128(hi, _mm_srli_si128(mid, 8)));
    }
    report("clmul", &acc, sizeof acc);
}

static void crc_test(void)
{
    uint64_t c = 0xffffffff;
    for (int n = 0; n < 4000; n++)
        c = _mm_crc32_u64(c, rnd());
    uint32_t c32 = _mm_crc32_u8((uint32_t)c, 0x5a);
    c32 = _mm_crc32_u16(c32, 0x1234);
    c32 = _mm_crc32_u32(c32, 0xdeadbeef);
    /* CRC32C of "123456789" is e3069283. */
    uint32_t chk = 0xffffffff;
    for (const char *p = "123456789"; *p; p++)
        chk = _mm_crc32_u8(chk, (uint8_t)*p);
    printf("crc32c %08x check %08x\n", c32, ~chk);
}

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_scalar(uint32_t h[8], const uint8_t *blk)
{
    uint32_t w[64], s[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)blk[4 * i] << 24 | blk[4 * i + 1] << 16 | blk[4 * i + 2] << 8 | blk[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(s, h, sizeof s);
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = s[7] + (ROR(s[4], 6) ^ ROR(s[4], 11) ^ ROR(s[4], 25)) + ((s[4] & s[5]) ^ (~s[4] & s[6])) + K[i] + w[i];
        uint32_t t2 = (ROR(s[0], 2) ^ ROR(s[0], 13) ^ ROR(s[0], 22)) + ((s[0] & s[1]) ^ (s[0] & s[2]) ^ (s[1] & s[2]));
        memmove(s + 1, s, 7 * sizeof *s);
        s[4] += t1;
        s[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++)
        h[i] += s[i];
}

static void sha_ni(uint32_t h[8], const uint8_t *blk)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xb1);
    __m128i s1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1b);
    __m128i s0 = _mm_alignr_epi8(t, s1, 8);
    s1 = _mm_blend_epi16(s1, t, 0xf0);
    __m128i a0 = s0, a1 = s1, w[16];
    for (int i = 0; i < 4; i++)
        w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(blk + 16 * i)), bswap);
    for (int i = 4; i < 16; i++) {
        __m128i m = _mm_sha256msg1_epu32(w[i - 4], w[i - 3]);
        m = _mm_add_epi32(m, _mm_alignr_epi8(w[i - 1], w[i - 2], 4));
        w[i] = _mm_sha256msg2_epu32(m, w[i - 1]);
    }
    for (int i = 0; i < 16; i++) {
        __m128i wk = _mm_add_epi32(w[i], _mm_loadu_si128((const __m128i *)&K[4 * i]));
        s1 = _mm_sha256rnds2_epu32(s1, s0, wk);
        s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(wk, 0x0e));
    }
    s0 = _mm_add_epi32(s0, a0);
    s1 = _mm_add_epi32(s1, a1);
    t = _mm_shuffle_epi32(s0, 0x1b);
    s1 = _mm_shuffle_epi32(s1, 0xb1);
    _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(t, s1, 0xf0));
    _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(s1, t, 8));
}

static void sha_test(void)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    uint32_t a[8], b[8];
    memcpy(a, iv, sizeof a);
    memcpy(b, iv, sizeof b);
    uint8_t blk[64];
    for (int n = 0; n < 64; n++) {
        for (int i = 0; i < 64; i++)
            blk[i] = (uint8_t)rnd();
        sha_scalar(a, blk);
        sha_ni(b, blk);
    }
    /* SHA-256("abc"): ba7816bf... */
    uint8_t abc[64] = {'a', 'b', 'c', 0x80};
    abc[63] = 24;
    uint32_t c[8];
    memcpy(c, iv, sizeof c);
    sha_ni(c, abc);
    printf("sha256_abc %08x%08x\n", c[0], c[1]);
    printf("sha_ni_agrees %d\n", memcmp(a, b, sizeof a) == 0);
    report("sha256", b, sizeof b);
}

static void strcmp_test(void)
{
    static const char text[] = "The quick brown fox jumps over the lazy dog; 0123456789 ABCDEF xyz!! "
                               "pack my box with five dozen liquor jugs. Sphinx of black quartz.";
    const __m128i vowels = _mm_setr_epi8('a', 'e', 'i', 'o', 'u', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m128i digits = _mm_setr_epi8('0', '9', 'A', 'F', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m128i word = _mm_setr_epi8('f', 'o', 'x', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    uint64_t h = 0;
    size_t n = sizeof text - 1;
    for (size_t off = 0; off + 16 <= n; off++) {
        __m128i s = _mm_loadu_si128((const __m128i *)(text + off));
        int r[6];
        r[0] = _mm_cmpistri(vowels, s, _SIDD_CMP_EQUAL_ANY | _SIDD_UBYTE_OPS);
        r[1] = _mm_cmpistri(digits, s, _SIDD_CMP_RANGES | _SIDD_MOST_SIGNIFICANT);
        r[2] = _mm_cmpestri(word, 3, s, 16, _SIDD_CMP_EQUAL_ORDERED);
        r[3] = _mm_cmpistrc(vowels, s, _SIDD_CMP_EQUAL_ANY | _SIDD_NEGATIVE_POLARITY);
        r[4] = _mm_cmpestrz(word, 3, s, (int)(n - off < 16 ? n - off : 16), _SIDD_CMP_EQUAL_EACH);
        __m128i m = _mm_cmpistrm(digits, s, _SIDD_CMP_RANGES | _SIDD_UNIT_MASK);
        r[5] = _mm_movemask_epi8(m);
        h = fnv(h, r, sizeof r);
    }
    printf("pcmpstr %016llx\n", (unsigned long long)h);
}

int main(void)
{
    aes_test();
    clmul_test();
    crc_test();
    sha_test();
    strcmp_test();
    return 0;
}
