/*
 * t.c: the runner behind t.h. Each case runs in a child process so that a
 * crash or abort in one case is reported as that case's failure and the
 * others still run.
 */
#include "test/harness/t.h"

#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];

const char *
t_tmpdir(void)
{
    return tmpdir;
}

void
t_hexdump(const char *label, const void *p, size_t n)
{
    const unsigned char *b = p;

    fprintf(stderr, "%s (%zu bytes):", label, n);
    for (size_t i = 0; i < n && i < 256; i++)
        fprintf(stderr, "%s%02x", i % 16 ? " " : "\n  ", b[i]);
    fprintf(stderr, "%s\n", n > 256 ? " ..." : "");
}

void
t_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

void
t_rm_rf(const char *dir)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static int
run_case(const struct t_case *c)
{
    const char *base = getenv("TMPDIR");
    int status;
    pid_t pid;

    snprintf(tmpdir, sizeof(tmpdir), "%s/warren-t-%s-XXXXXX",
             base ? base : "/tmp", c->name);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        c->fn();
        fflush(NULL);
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0) {
        perror("fork/waitpid");
        return 1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        t_rm_rf(tmpdir);
        printf("ok   %s\n", c->name);
        return 0;
    }
    if (WIFSIGNALED(status))
        fprintf(stderr, "case %s killed by signal %d\n", c->name,
                WTERMSIG(status));
    printf("FAIL %s (temp dir kept: %s)\n", c->name, tmpdir);
    return 1;
}

int
t_main(int argc, char **argv, const struct t_case *cases, size_t n)
{
    int failed = 0, ran = 0;

    for (size_t i = 0; i < n; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
            continue;
        ran++;
        failed += run_case(&cases[i]);
    }
    if (argc > 1 && ran == 0) {
        fprintf(stderr, "no case named %s\n", argv[1]);
        return 2;
    }
    printf("%d/%d cases passed\n", ran - failed, ran);
    return failed ? 1 : 0;
}
