/* bench/spawn.c: run one plugin and report its wall time, CPU time and peak RSS.
 *
 * Why C: a child forked (or vforked) from the Python harness starts with the harness's memory high-water
 * mark, which the kernel carries into ru_maxrss across exec; this small helper has a ~1 MB footprint, so
 * the plugin's own peak shows. The helper's own start-up is outside the measured interval.
 *
 * usage: spawn STDIN_FILE STDOUT_FILE STDERR_FILE EXE [ARG...]   (environment passed through unchanged)
 * prints: wall_ns cpu_us maxrss_kb exit_status
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s STDIN STDOUT STDERR EXE [ARG...]\n", argv[0]);
        return 2;
    }
    int in = open(argv[1], O_RDONLY), out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0600),
        err = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0 || err < 0) {
        perror("open");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        execve(argv[4], &argv[4], environ); /* argv[0] of the child is EXE, then the ARGs */
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (pid < 0 || wait4(pid, &status, 0, &ru) < 0) {
        perror("fork/wait4");
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long wall = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    long long cpu = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
    printf("%lld %lld %ld %d\n", wall, cpu, ru.ru_maxrss, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return 0;
}
