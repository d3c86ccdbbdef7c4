/*
 * privcheck: run from the device-test initramfs (`test=privilege`), as a
 * user process (CPL 3) under Linux. It tries each privileged instruction
 * and some port I/O and reports how the CPU and the kernel answered; the
 * SDM says which signal each must end in (#GP -> SIGSEGV, #UD -> SIGILL).
 *
 * One line per case:
 *     PRIV <case> <got> want=<want> ok|FAIL
 * where <got>/<want> are SIGSEGV, SIGILL, SIGBUS, SIGTRAP, "ran" (no
 * signal), or, for system calls, an errno name. Then
 *     PRIV-DONE <cases> <failures>
 * and the exit status is 0 when every case passed.
 *
 * Built statically by build-test-initramfs.sh (gcc -static -O2 -s).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/io.h>
#include <sys/prctl.h>
#include <unistd.h>

static sigjmp_buf env;
static volatile sig_atomic_t caught;
static int cases, failures;

static void on_signal(int sig)
{
    caught = sig;
    siglongjmp(env, 1);
}

static const char *signame(int sig)
{
    switch (sig) {
    case 0: return "ran";
    case SIGSEGV: return "SIGSEGV";
    case SIGILL: return "SIGILL";
    case SIGBUS: return "SIGBUS";
    case SIGTRAP: return "SIGTRAP";
    case SIGFPE: return "SIGFPE";
    default: return "other";
    }
}

static void report(const char *name, const char *got, const char *want)
{
    int ok = strcmp(got, want) == 0;
    cases++;
    if (!ok)
        failures++;
    printf("PRIV %s %s want=%s %s\n", name, got, want, ok ? "ok" : "FAIL");
    fflush(stdout);
}

/* Run `fn` and report the signal it ended in (or "ran"). */
static void check(const char *name, void (*fn)(void), int want)
{
    caught = 0;
    if (sigsetjmp(env, 1) == 0)
        fn();
    report(name, signame(caught), signame(want));
}

static uint64_t scratch[4];

#define INSN(fname, text)                                                   \
    static void fname(void)                                                 \
    {                                                                       \
        __asm__ volatile(text ::"D"(scratch), "S"(scratch)                  \
                         : "rax", "rcx", "rdx", "r11", "memory", "cc");     \
    }

INSN(do_cli, "cli")
INSN(do_sti, "sti")
INSN(do_hlt, "hlt")
INSN(do_rd_cr0, "mov %%cr0, %%rax")
INSN(do_rd_cr2, "mov %%cr2, %%rax")
INSN(do_rd_cr3, "mov %%cr3, %%rax")
INSN(do_rd_cr4, "mov %%cr4, %%rax")
INSN(do_rd_cr8, "mov %%cr8, %%rax")
INSN(do_wr_cr0, "mov %%cr0, %%rax\n\tmov %%rax, %%cr0")
INSN(do_wr_cr3, "xor %%eax, %%eax\n\tmov %%rax, %%cr3")
INSN(do_wr_cr4, "xor %%eax, %%eax\n\tmov %%rax, %%cr4")
INSN(do_wr_cr8, "mov $15, %%eax\n\tmov %%rax, %%cr8")
INSN(do_rd_cr1, ".byte 0x0f, 0x20, 0xc8")    /* mov %cr1, %rax: #UD */
INSN(do_rd_dr7, "mov %%dr7, %%rax")
INSN(do_wr_dr0, "xor %%eax, %%eax\n\tmov %%rax, %%dr0")
INSN(do_wbinvd, "wbinvd")
INSN(do_invd, "invd")
INSN(do_clts, "clts")
INSN(do_lmsw, "xor %%eax, %%eax\n\tlmsw %%ax")
INSN(do_invlpg, "invlpg (%%rdi)")
INSN(do_lgdt, "lgdt (%%rdi)")
INSN(do_lidt, "lidt (%%rdi)")
INSN(do_lldt, "xor %%eax, %%eax\n\tlldt %%ax")
INSN(do_ltr, "mov $0x40, %%eax\n\tltr %%ax")
INSN(do_rdmsr, "mov $0xc0000081, %%ecx\n\trdmsr")
INSN(do_wrmsr, "mov $0xc0000081, %%ecx\n\txor %%eax, %%eax\n\txor %%edx, %%edx\n\twrmsr")
INSN(do_swapgs, "swapgs")
INSN(do_sysret, "sysretq")
INSN(do_rdpmc, "xor %%ecx, %%ecx\n\trdpmc")
INSN(do_xsetbv, "xor %%ecx, %%ecx\n\tmov $3, %%eax\n\txor %%edx, %%edx\n\txsetbv")
INSN(do_stac, "stac")
INSN(do_clac, "clac")
INSN(do_monitor, "mov %%rdi, %%rax\n\txor %%ecx, %%ecx\n\txor %%edx, %%edx\n\tmonitor")
INSN(do_mwait, "xor %%eax, %%eax\n\txor %%ecx, %%ecx\n\tmwait")
INSN(do_invpcid, "mov $2, %%eax\n\tinvpcid (%%rdi), %%rax")
INSN(do_in71, "in $0x71, %%al")
INSN(do_out70, "mov $0x0a, %%al\n\tout %%al, $0x70")
INSN(do_in3fd, "mov $0x3fd, %%edx\n\tin %%dx, %%al")
INSN(do_insb, "mov $0x71, %%edx\n\tinsb")
INSN(do_outsb, "mov $0x80, %%edx\n\toutsb")
INSN(do_rdtsc, "rdtsc")
INSN(do_rdtscp, "rdtscp")
INSN(do_in72w, "mov $0x71, %%edx\n\tin %%dx, %%ax")

static struct __attribute__((packed)) {
    uint16_t limit;
    uint64_t base;
} gdtr, idtr;

static void do_sgdt(void)
{
    __asm__ volatile("sgdt %0" : "=m"(gdtr));
}

static void do_sidt(void)
{
    __asm__ volatile("sidt %0" : "=m"(idtr));
}

static uint32_t cpuid_ecx1(void)
{
    uint32_t a = 1, b, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    return c;
}

static uint32_t cpuid_ebx7(void)
{
    uint32_t a = 7, b, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    return b;
}

/* The errno name of a failed call, or "ok". */
static const char *errname(long r)
{
    if (r == 0)
        return "ok";
    switch (errno) {
    case ENOSYS: return "ENOSYS";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    default: return "error";
    }
}

/* Read the RTC's seconds register through ports 0x70/0x71 (BCD, < 0x60). */
static int rtc_seconds(void)
{
    outb(0x00, 0x70);
    return inb(0x71);
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGILL, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGTRAP, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);

    /* CPL 0 only: #GP(0). */
    check("cli", do_cli, SIGSEGV);
    check("sti", do_sti, SIGSEGV);
    check("hlt", do_hlt, SIGSEGV);
    check("mov-from-cr0", do_rd_cr0, SIGSEGV);
    check("mov-from-cr2", do_rd_cr2, SIGSEGV);
    check("mov-from-cr3", do_rd_cr3, SIGSEGV);
    check("mov-from-cr4", do_rd_cr4, SIGSEGV);
    check("mov-from-cr8", do_rd_cr8, SIGSEGV);
    check("mov-to-cr0", do_wr_cr0, SIGSEGV);
    check("mov-to-cr3", do_wr_cr3, SIGSEGV);
    check("mov-to-cr4", do_wr_cr4, SIGSEGV);
    check("mov-to-cr8", do_wr_cr8, SIGSEGV);
    check("mov-from-dr7", do_rd_dr7, SIGSEGV);
    check("mov-to-dr0", do_wr_dr0, SIGSEGV);
    check("wbinvd", do_wbinvd, SIGSEGV);
    check("invd", do_invd, SIGSEGV);
    check("clts", do_clts, SIGSEGV);
    check("lmsw", do_lmsw, SIGSEGV);
    check("invlpg", do_invlpg, SIGSEGV);
    check("lgdt", do_lgdt, SIGSEGV);
    check("lidt", do_lidt, SIGSEGV);
    check("lldt", do_lldt, SIGSEGV);
    check("ltr", do_ltr, SIGSEGV);
    check("rdmsr", do_rdmsr, SIGSEGV);
    check("wrmsr", do_wrmsr, SIGSEGV);
    check("swapgs", do_swapgs, SIGSEGV);
    check("sysret", do_sysret, SIGSEGV);
    check("rdpmc", do_rdpmc, SIGSEGV);
    /* XSETBV: #UD while CR4.OSXSAVE is clear (CPUID.1:ECX.OSXSAVE). */
    check("xsetbv", do_xsetbv, (cpuid_ecx1() >> 27) & 1 ? SIGSEGV : SIGILL);
    /* Not recognised (or #UD at CPL > 0). */
    check("mov-from-cr1", do_rd_cr1, SIGILL);
    check("stac", do_stac, SIGILL);
    check("clac", do_clac, SIGILL);
    check("monitor", do_monitor, SIGILL);
    check("mwait", do_mwait, SIGILL);
    /* INVPCID: #UD unless CPUID.7.0:EBX.INVPCID, then #GP(0). */
    check("invpcid", do_invpcid, (cpuid_ebx7() >> 10) & 1 ? SIGSEGV : SIGILL);
    /* Port I/O at IOPL 0 with no I/O bitmap: #GP(0). */
    check("in-0x71", do_in71, SIGSEGV);
    check("out-0x70", do_out70, SIGSEGV);
    check("in-0x3fd", do_in3fd, SIGSEGV);
    check("insb", do_insb, SIGSEGV);
    check("outsb", do_outsb, SIGSEGV);
    /* CR4.TSD through prctl(PR_SET_TSC). */
    check("rdtsc", do_rdtsc, 0);
    report("prctl-tsc-sigsegv", errname(prctl(PR_SET_TSC, PR_TSC_SIGSEGV)), "ok");
    check("rdtsc-with-tsd", do_rdtsc, SIGSEGV);
    check("rdtscp-with-tsd", do_rdtscp, SIGSEGV);
    report("prctl-tsc-enable", errname(prctl(PR_SET_TSC, PR_TSC_ENABLE)), "ok");
    check("rdtsc-again", do_rdtsc, 0);

    /*
     * UMIP: with CR4.UMIP set, SGDT/SIDT at CPL 3 raise #GP(0) and Linux
     * (CONFIG_X86_UMIP) answers with dummy bases; without it the CPU
     * stores the real (kernel) addresses.
     */
    check("sgdt", do_sgdt, 0);
    check("sidt", do_sidt, 0);
    printf("PRIV-SGDT base=%#llx\n", (unsigned long long)gdtr.base);
    if (gdtr.base == 0xfffffffffffe0000ULL) {
        printf("PRIV-UMIP emulated\n");
        report("sidt-dummy-base", idtr.base == 0xffffffffffff0000ULL ? "ok" : "bad", "ok");
    } else {
        printf("PRIV-UMIP off\n");
        report("sidt-kernel-base", idtr.base >> 47 == 0x1ffff ? "ok" : "bad", "ok");
    }

    /*
     * iopl(3) and ioperm() need CONFIG_X86_IOPL_IOPERM; without it they
     * are ENOSYS and the ports stay closed. With it, the granted ports
     * work and the others still fault.
     */
    long r = ioperm(0x70, 2, 1);
    const char *got = errname(r);
    printf("PRIV-IOPERM %s\n", got);
    if (r == 0) {
        check("ioperm-out-0x70", do_out70, 0);
        check("ioperm-in-0x71", do_in71, 0);
        check("ioperm-in-0x3fd", do_in3fd, SIGSEGV);
        check("ioperm-inw-0x71-straddles", do_in72w, SIGSEGV);
        int s = rtc_seconds();
        report("ioperm-rtc-seconds-bcd", (s & 0xf) < 10 && s < 0x60 ? "ok" : "bad", "ok");
    } else {
        report("ioperm-unavailable", got, "ENOSYS");
        check("in-0x71-after-ioperm", do_in71, SIGSEGV);
    }
    r = iopl(3);
    got = errname(r);
    printf("PRIV-IOPL %s\n", got);
    if (r == 0) {
        check("iopl3-in-0x3fd", do_in3fd, 0);
        int s = rtc_seconds();
        report("iopl3-rtc-seconds-bcd", (s & 0xf) < 10 && s < 0x60 ? "ok" : "bad", "ok");
        /* Linux emulates iopl(3) with the I/O bitmap, so IOPL stays 0 and
         * CLI raises #GP; since 5.18 the kernel then skips it as a NOP
         * ("attempts to use CLI/STI, pretending it's a NOP"). */
        check("iopl3-cli", do_cli, 0);
    } else {
        report("iopl-unavailable", got, "ENOSYS");
    }

    printf("PRIV-DONE %d %d\n", cases, failures);
    return failures != 0;
}
