/*
 * sysstat.c: CPU time and memory of the load generator itself (getrusage)
 * and of the broker under test (/proc/<pid>/stat fields 14-15, utime and
 * stime in clock ticks; VmRSS from /proc/<pid>/status), and the CPU of
 * each of the broker's threads (/proc/<pid>/task/<tid>/stat and comm).
 * For RabbitMQ the pid to give is beam.smp's, the Erlang VM that does all
 * the work.
 */
#include "test/bench/perf/kit.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

uint64_t perf_epoch_ns;

uint64_t
perf_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double
sysstat_self_cpu(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime in seconds from a /proc .../stat file, or -1. */
static double
stat_file_cpu(const char *path)
{
    char text[2048];
    FILE *f;
    size_t n;
    char *p;
    unsigned long long utime;
    unsigned long long stime;

    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: fields
     * are counted from the last ')'. Field 3 follows it; utime is 14. */
    p = strrchr(text, ')');
    if (p == NULL)
        return -1;
    p++;
    for (int field = 3; field < 14; field++) {
        p = strchr(p + 1, ' ');
        if (p == NULL)
            return -1;
    }
    if (sscanf(p, " %llu %llu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

double
sysstat_pid_cpu(pid_t pid)
{
    char path[64];

    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    return stat_file_cpu(path);
}

/* Reads thread tid of pid into t; returns false when it is gone. */
static bool
read_thread(pid_t pid, int tid, struct sysstat_thread *t)
{
    char path[96];
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, tid);
    t->tid = tid;
    t->cpu_s = stat_file_cpu(path);
    if (t->cpu_s < 0)
        return false;
    snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)pid, tid);
    t->name[0] = '\0';
    f = fopen(path, "r");
    if (f != NULL) {
        if (fgets(t->name, sizeof(t->name), f) != NULL)
            t->name[strcspn(t->name, "\n")] = '\0';
        fclose(f);
    }
    return true;
}

int
sysstat_threads(pid_t pid, struct sysstat_thread **out)
{
    char path[64];
    DIR *d;
    struct dirent *e;
    int n = 0;
    int cap = 0;

    *out = NULL;
    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    d = opendir(path);
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        int tid = atoi(e->d_name);

        if (tid <= 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            *out = xrealloc(*out, (size_t)cap * sizeof(**out));
        }
        if (read_thread(pid, tid, &(*out)[n]))
            n++;
    }
    closedir(d);
    return n;
}

static int
busiest_first(const void *a, const void *b)
{
    const struct sysstat_thread *x = a;
    const struct sysstat_thread *y = b;

    if (x->cpu_s != y->cpu_s)
        return x->cpu_s < y->cpu_s ? 1 : -1;
    return x->tid - y->tid;
}

int
sysstat_threads_delta(const struct sysstat_thread *a, int na,
                      const struct sysstat_thread *b, int nb,
                      struct sysstat_thread **out)
{
    *out = xcalloc((size_t)WR_MAX(nb, 1), sizeof(**out));
    for (int i = 0; i < nb; i++) {
        double before = 0;

        for (int j = 0; j < na; j++) {
            if (a[j].tid == b[i].tid) {
                before = a[j].cpu_s;
                break;
            }
        }
        (*out)[i] = b[i];
        (*out)[i].cpu_s = WR_MAX(0.0, b[i].cpu_s - before);
    }
    qsort(*out, (size_t)WR_MAX(nb, 0), sizeof(**out), busiest_first);
    return WR_MAX(nb, 0);
}

/* A "Name:   N kB" line of /proc/PID/status, in KiB, or -1. */
static long
status_kb(pid_t pid, const char *name)
{
    char path[64];
    char line[256];
    size_t n = strlen(name);
    FILE *f;
    long kb = -1;

    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, name, n) == 0) {
            kb = strtol(line + n, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

long
sysstat_pid_rss_kb(pid_t pid)
{
    return status_kb(pid, "VmRSS:");
}

long
sysstat_pid_peak_kb(pid_t pid)
{
    return status_kb(pid, "VmHWM:");
}

bool
sysstat_pid_peak_reset(pid_t pid)
{
    char path[64];
    FILE *f;
    bool ok;

    if (pid <= 0)
        return false;
    snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)pid);
    f = fopen(path, "w");
    if (f == NULL)
        return false;
    ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

void
sysstat_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

json_t *
sysstat_threads_json(const struct sysstat_thread *t, int n)
{
    json_t *a = json_array();

    for (int i = 0; i < n; i++)
        json_array_append_new(a,
                              json_pack("{si ss sf}", "tid", t[i].tid, "name",
                                        t[i].name, "cpu_s", t[i].cpu_s));
    return a;
}
