/*
 * What the ops tests need beyond the executor's probe (executor/tests/probes/probe.c), run inside
 * `hapnd sandbox exec`. Built statically, so it needs nothing from the host in the jail.
 *
 *   int80       an i386 system call (int $0x80) from this x86_64 program: the seccomp guard kills a process of
 *               another architecture, so reaching the end is an escape (prints a line, exits 1)
 *   cwd         prints the working directory
 *   environ     prints each environment entry on a line of its own, as the kernel passed it
 *   spin-for MS burns CPU for MS milliseconds of wall-clock time, then prints the CPU time it got:
 *               "cpu-ms=N wall-ms=M"
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long ms(clockid_t clock)
{
    struct timespec now;
    clock_gettime(clock, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: ops-probe int80 | cwd | environ | spin-for MS\n");
        return 2;
    }
    if (strcmp(argv[1], "int80") == 0) {
        long result = 20; /* getpid in the i386 table */
        __asm__ volatile("int $0x80" : "+a"(result) : : "memory");
        printf("int80: ESCAPED (the i386 call returned %ld)\n", result);
        return 1;
    }
    if (strcmp(argv[1], "cwd") == 0) {
        char dir[4096];
        if (!getcwd(dir, sizeof dir)) {
            printf("cwd: failed (%s)\n", strerror(errno));
            return 1;
        }
        printf("%s\n", dir);
        return 0;
    }
    if (strcmp(argv[1], "environ") == 0) {
        for (char **entry = environ; entry && *entry; entry++)
            printf("%s\n", *entry);
        return 0;
    }
    if (strcmp(argv[1], "spin-for") == 0 && argc == 3) {
        long long wall = atoll(argv[2]);
        long long start = ms(CLOCK_MONOTONIC);
        volatile unsigned long sink = 0;
        while (ms(CLOCK_MONOTONIC) - start < wall)
            for (int i = 0; i < 10000; i++)
                sink += (unsigned long)i;
        printf("cpu-ms=%lld wall-ms=%lld\n", ms(CLOCK_PROCESS_CPUTIME_ID), ms(CLOCK_MONOTONIC) - start);
        return 0;
    }
    fprintf(stderr, "ops-probe: unknown action %s\n", argv[1]);
    return 2;
}
