/* Byte scans, sorting and BMI1/BMI2 integer hashing: glibc's AVX2 string
 * functions (memchr, strlen, memcmp, memcpy, strchr), auto-vectorized
 * byte counting and transforms, a vectorizable merge sort next to qsort,
 * and hashes built from PDEP/PEXT, MULX, RORX, SHLX/SARX, ANDN, BLSR and
 * TZCNT/LZCNT. */
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "digest.h"

#define N 8192
static unsigned char buf[N + 64], out[N + 64];
static uint32_t keys[N], tmp[N], sorted[N];

__attribute__((noinline)) static unsigned count_byte(const unsigned char *p, int n, unsigned char c)
{
    unsigned k = 0;
    for (int i = 0; i < n; i++)
        k += p[i] == c;
    return k;
}

__attribute__((noinline)) static void transform(unsigned char *o, const unsigned char *p, int n)
{
    for (int i = 0; i < n; i++) {
        unsigned char c = p[i];
        o[i] = (c >= 'a' && c <= 'z') ? c - 32 : (unsigned char)(c ^ (c >> 3));
    }
}

static void merge_sort(uint32_t *a, uint32_t *t, int n)
{
    for (int w = 1; w < n; w *= 2) {
        for (int lo = 0; lo < n; lo += 2 * w) {
            int mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                t[k++] = a[i] <= a[j] ? a[i++] : a[j++];
            while (i < mid)
                t[k++] = a[i++];
            while (j < hi)
                t[k++] = a[j++];
        }
        memcpy(a, t, n * sizeof *a);
    }
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return (a > b) - (a < b);
}

__attribute__((noinline)) static uint64_t bmi_hash(const uint32_t *k, int n)
{
    uint64_t h = 0x243f6a8885a308d3ULL;
    for (int i = 0; i < n; i++) {
        uint64_t x = k[i] | ((uint64_t)k[(i * 7) % n] << 32);
        unsigned long long hi;
        uint64_t lo = _mulx_u64(x ^ h, 0x9e3779b97f4a7c15ULL, &hi);
        h = (lo ^ hi) + _pdep_u64(x, 0x5555aaaa3333ccccULL) + _pext_u64(h, 0xf0f0ff00ff0f00f0ULL);
        h = (h >> (x & 63)) | (h << ((64 - (x & 63)) & 63)); /* SHRX/SHLX or RORX */
        h ^= _andn_u64(x, h) + _blsr_u64(x | 1) + _tzcnt_u64(x | (1ULL << 63)) + _lzcnt_u64(h | 1);
        h += (uint64_t)((int64_t)x >> (h & 31)) + _bzhi_u64(x, (unsigned)(h & 63));
    }
    return h;
}

int main(void)
{
    for (int i = 0; i < N; i++)
        buf[i] = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;\n"[rnd() % 67];
    buf[N - 1] = 0;
    buf[5000] = 0;
    unsigned counts[4] = {count_byte(buf, N, 'e'), count_byte(buf, N, ' '),
                          count_byte(buf, N, '\n'), count_byte(buf, N, 0)};
    report("count_byte", counts, sizeof counts);
    transform(out, buf, N);
    report("transform", out, N);
    /* glibc's string functions at every alignment. */
    uint64_t pos = 0;
    for (int a = 0; a < 64; a++) {
        pos = pos * 31 + strlen((char *)buf + a);
        const unsigned char *m = memchr(buf + a, 'Q', N - a);
        pos = pos * 31 + (m ? (uint64_t)(m - buf) : 0);
        const char *c = strchr((char *)buf + a + 17, ';');
        pos = pos * 31 + (c ? (uint64_t)(c - (char *)buf) : 0);
        memcpy(out + a, buf + 64 - a, 3000 + a);
        pos = pos * 31 + (uint64_t)(memcmp(out + a, buf + 64 - a, 3000 + a) == 0);
        pos = pos * 31 + (uint64_t)(memcmp(out, buf, 200 + a) > 0);
    }
    report("string_fns", &pos, sizeof pos);
    report("memcpy_out", out, N);
    for (int i = 0; i < N; i++)
        keys[i] = (uint32_t)rnd() >> (i % 7);
    memcpy(sorted, keys, sizeof keys);
    merge_sort(sorted, tmp, N);
    report("merge_sort", sorted, sizeof sorted);
    memcpy(tmp, keys, sizeof keys);
    qsort(tmp, N, sizeof *tmp, cmp_u32);
    printf("sorts_agree %d\n", memcmp(tmp, sorted, sizeof tmp) == 0);
    uint64_t h = bmi_hash(keys, N);
    report("bmi_hash", &h, sizeof h);
    return 0;
}
