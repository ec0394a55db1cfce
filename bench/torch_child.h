/* PyTorch as a child process on two pipes, for the benches that time torch in the same run
 * (bench_core: torch_mlp.py, bench_train: torch_train.py). The script prints "ready ..."
 * once, then answers each "run N" line with "ms <milliseconds>". Header-only, as stats.h. */
#ifndef RELUD_BENCH_TORCH_CHILD_H
#define RELUD_BENCH_TORCH_CHILD_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct torch_child {
    pid_t pid;
    FILE *to, *from;
};

/* Runs /usr/bin/python3 argv[1..] (argv[0] "python3", NULL-terminated) and waits for its
 * "ready" line, kept in banner; -1 when it does not come. */
static int torch_start(struct torch_child *tc, char *const argv[], char *banner, size_t len)
{
    int in[2], out[2];
    if (pipe(in) || pipe(out))
        return -1;
    fflush(stdout);
    tc->pid = fork();
    if (tc->pid < 0)
        return -1;
    if (tc->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1); /* no spinning while relud runs */
        execv("/usr/bin/python3", argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    tc->to = fdopen(in[1], "w");
    tc->from = fdopen(out[0], "r");
    if (!tc->to || !tc->from || !fgets(banner, (int)len, tc->from) ||
        strncmp(banner, "ready", 5) != 0)
        return -1;
    banner[strcspn(banner, "\n")] = '\0';
    return 0;
}

/* Seconds for "run n", as torch timed it (negative on a broken pipe). */
static double torch_run(struct torch_child *tc, int n)
{
    char line[128];
    double ms = -1;
    fprintf(tc->to, "run %d\n", n);
    fflush(tc->to);
    if (fgets(line, sizeof line, tc->from))
        sscanf(line, "ms %lf", &ms);
    return ms * 1e-3;
}

static void torch_stop(struct torch_child *tc)
{
    if (tc->to)
        fclose(tc->to);
    if (tc->from)
        fclose(tc->from);
    if (tc->pid > 0)
        waitpid(tc->pid, NULL, 0);
    memset(tc, 0, sizeof *tc);
}

#endif
