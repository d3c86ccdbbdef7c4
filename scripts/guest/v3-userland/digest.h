/* A 64-bit FNV-1a digest the v3 userland programs print their results
 * with, so the guest's output can be compared with the host's line by line. */
#ifndef V3_DIGEST_H
#define V3_DIGEST_H
#include <stdint.h>
#include <stdio.h>

static inline uint64_t fnv(uint64_t h, const void *p, unsigned long n)
{
    const unsigned char *b = p;
    if (h == 0)
        h = 0xcbf29ce484222325ULL;
    for (unsigned long i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static inline void report(const char *name, const void *p, unsigned long n)
{
    printf("%s %016llx\n", name, (unsigned long long)fnv(0, p, n));
}

/* A deterministic generator for the inputs (xorshift64*). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static inline uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}
#endif
