/* Auto-vectorized AVX2/FMA arithmetic: element-wise float and double
 * arithmetic with fused multiply-adds, square roots, divisions, min/max,
 * conversions, integer sums and a lane-split dot product, plus a few libm
 * calls (glibc picks its FMA/AVX2 variants through IFUNCs). */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "digest.h"

#define N 2048
static float fa[N], fb[N], fc[N], fr[N];
static double da[N], db[N], dr[N];
static int32_t ia[N], ib[N], ir[N];
static int64_t la[N];

__attribute__((noinline)) static void fma_f32(void)
{
    for (int i = 0; i < N; i++)
        fr[i] = fa[i] * fb[i] + fc[i];
}

__attribute__((noinline)) static void mixed_f32(void)
{
    for (int i = 0; i < N; i++) {
        float q = fa[i] / (fb[i] + 2.5f);
        fr[i] = fminf(q, fc[i]) + sqrtf(fabsf(fa[i])) - fmaxf(fb[i], -q);
    }
}

__attribute__((noinline)) static void f64_ops(void)
{
    for (int i = 0; i < N; i++)
        dr[i] = da[i] * db[i] - da[i] / (fabs(db[i]) + 1.0) + sqrt(fabs(da[i]));
}

__attribute__((noinline)) static double dot_f64(void)
{
    /* Eight partial sums: vectorizes without reassociating the source. */
    double part[8] = {0};
    for (int i = 0; i < N; i += 8)
        for (int k = 0; k < 8; k++)
            part[k] += da[i + k] * db[i + k];
    double s = 0;
    for (int k = 0; k < 8; k++)
        s += part[k];
    return s;
}

__attribute__((noinline)) static void int_ops(void)
{
    for (int i = 0; i < N; i++) {
        int32_t x = ia[i] * ib[i] + (ia[i] >> 3);
        ir[i] = x > ib[i] ? x - ib[i] : (ib[i] & 0x7fff) - x;
    }
}

__attribute__((noinline)) static int64_t int_sum(void)
{
    int64_t s = 0;
    for (int i = 0; i < N; i++)
        s += (int64_t)ia[i] * 3 + la[i];
    return s;
}

__attribute__((noinline)) static void convert(void)
{
    for (int i = 0; i < N; i++) {
        fr[i] = (float)ia[i] * 0.5f;
        ir[i] = (int32_t)(fb[i] * 100.0f);
        dr[i] = (double)fa[i] + (double)la[i];
    }
}

int main(void)
{
    for (int i = 0; i < N; i++) {
        uint64_t r = rnd();
        fa[i] = (float)(int32_t)r / 65536.0f;
        fb[i] = (float)(int32_t)(r >> 32) / 1048576.0f;
        fc[i] = (float)(int16_t)(r >> 17) / 128.0f;
        da[i] = (double)(int64_t)rnd() / 1e12;
        db[i] = (double)(int32_t)rnd() / 1e3;
        ia[i] = (int32_t)rnd();
        ib[i] = (int32_t)(rnd() >> 40);
        la[i] = (int64_t)rnd() >> 20;
    }
    fma_f32();
    report("fma_f32", fr, sizeof fr);
    mixed_f32();
    report("mixed_f32", fr, sizeof fr);
    f64_ops();
    report("f64_ops", dr, sizeof dr);
    double d = dot_f64();
    report("dot_f64", &d, sizeof d);
    int_ops();
    report("int_ops", ir, sizeof ir);
    int64_t s = int_sum();
    report("int_sum", &s, sizeof s);
    convert();
    report("convert_f", fr, sizeof fr);
    report("convert_i", ir, sizeof ir);
    report("convert_d", dr, sizeof dr);
    for (int i = 0; i < 256; i++) {
        fr[i] = expf(fa[i] / 4096.0f) + sinf(fb[i]) + logf(fabsf(fc[i]) + 1.0f);
        dr[i] = exp(da[i] / 1e7) + pow(fabs(db[i]) + 1.0, 0.3) + cos(da[i]);
    }
    report("libm_f", fr, 256 * sizeof(float));
    report("libm_d", dr, 256 * sizeof(double));
    printf("dot %.17g\n", d);
    return 0;
}
