/* spawn.c — the start-up harness of bench/cgi-startup.sh and bench/nginx-vs-loomiere.sh:
 * runs PROGRAM ARGS… N times (posix_spawn + waitpid, stdout to /dev/null, the caller's
 * environment), times each run with CLOCK_MONOTONIC and prints the median and the 90th
 * percentile in microseconds. Fails if any run exits non-zero.
 * Usage: spawn N PROGRAM [ARGS…] */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: spawn N PROGRAM [ARGS...]\n"); return 2; }
    int n = atoi(argv[1]);
    if (n < 1) { fprintf(stderr, "N must be at least 1\n"); return 2; }
    double *t = malloc(sizeof(double) * n);
    if (!t) return 1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    for (int i = 0; i < n; i++) {
        struct timespec a, b;
        pid_t pid;
        int st;
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (posix_spawn(&pid, argv[2], &fa, NULL, argv + 2, environ) != 0) { perror("spawn"); return 1; }
        waitpid(pid, &st, 0);
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) { fprintf(stderr, "child failed\n"); return 1; }
        t[i] = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
    }
    qsort(t, n, sizeof(double), cmp);
    printf("%8.0f %8.0f\n", t[n / 2], t[n * 9 / 10]);
    return 0;
}
