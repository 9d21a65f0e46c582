/*
 * fsyncer.c: the sync thread of fsyncer.h.
 *
 * Two batches: `open` (the loop adds files to it) and `handed` (the
 * thread syncs it). The mutex guards the hand-over only; the loop never
 * waits for a sync, only for the thread to pick a batch up.
 *
 * Invariants: handed_no < open_no while a batch is handed; durable is the
 * number of the last handed batch whose syncs all succeeded, never
 * advanced after a failure.
 */
#include "store/fsyncer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct fent {
    uint64_t key;
    int fd;
    bool own, dir;
};

struct fbatch {
    struct fent *v;
    size_t n, cap;
    bool awaited;
};

struct fsyncer {
    char *name;
    void (*wake)(void *);
    void *wake_arg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct fbatch open, handed; /* handed: guarded by mu */
    uint64_t open_no, handed_no;
    bool busy, stopping; /* guarded by mu */
    _Atomic uint64_t durable;
    _Atomic uint64_t syncs;
    atomic_bool failed;
    char err[256]; /* written once, before failed is set */
};

static void
batch_clear(struct fbatch *b)
{
    b->n = 0;
    b->awaited = false;
}

static void
set_failed(struct fsyncer *f, const char *why, int err)
{
    pthread_mutex_lock(&f->mu);
    if (!atomic_load(&f->failed)) {
        if (err)
            snprintf(f->err, sizeof(f->err), "%s: %s", why, strerror(err));
        else
            snprintf(f->err, sizeof(f->err), "%s", why);
        atomic_store(&f->failed, true);
    }
    pthread_mutex_unlock(&f->mu);
}

/* Syncs and closes every file of b; false when a sync failed. */
static bool
sync_batch(struct fsyncer *f, struct fbatch *b)
{
    bool ok = !atomic_load(&f->failed);

    for (size_t i = 0; i < b->n; i++) {
        struct fent *e = &b->v[i];

        if (ok) {
            int r = e->dir ? fsync(e->fd) : fdatasync(e->fd);

            atomic_fetch_add(&f->syncs, 1);
            if (r != 0) {
                int err = errno;

                log_err("%s: %s failed: %s; files synced by this thread are "
                        "failed from now on (never retried)",
                        f->name, e->dir ? "fsync of a directory" : "fdatasync",
                        strerror(err));
                set_failed(f,
                           e->dir ? "fsync of a directory failed"
                                  : "fdatasync failed",
                           err);
                ok = false;
            }
        }
        close(e->fd);
    }
    return ok;
}

static void *
run(void *arg)
{
    struct fsyncer *f = arg;

    pthread_mutex_lock(&f->mu);
    for (;;) {
        uint64_t no;

        while (!f->busy && !f->stopping)
            pthread_cond_wait(&f->cv, &f->mu);
        if (!f->busy)
            break;
        no = f->handed_no;
        pthread_mutex_unlock(&f->mu);
        if (sync_batch(f, &f->handed))
            atomic_store(&f->durable, no);
        pthread_mutex_lock(&f->mu);
        batch_clear(&f->handed);
        f->busy = false;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        f->wake(f->wake_arg);
        pthread_mutex_lock(&f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

struct fsyncer *
fsyncer_start(const char *name, void (*wake)(void *), void *arg)
{
    struct fsyncer *f = xcalloc(1, sizeof(*f));
    int rc;

    f->name = xstrdup(name);
    f->wake = wake;
    f->wake_arg = arg;
    f->open_no = 1;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    rc = pthread_create(&f->thread, NULL, run, f);
    if (rc != 0) {
        log_err("%s: cannot start the sync thread: %s", name, strerror(rc));
        pthread_mutex_destroy(&f->mu);
        pthread_cond_destroy(&f->cv);
        free(f->name);
        free(f);
        return NULL;
    }
    return f;
}

bool
fsyncer_stop(struct fsyncer *f)
{
    bool ok;

    if (!f)
        return true;
    fsyncer_kick(f);
    pthread_mutex_lock(&f->mu);
    while (f->busy)
        pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
    /* what was added while the last batch synced */
    fsyncer_kick(f);
    pthread_mutex_lock(&f->mu);
    f->stopping = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    ok = !atomic_load(&f->failed);
    for (size_t i = 0; i < f->open.n; i++)
        close(f->open.v[i].fd);
    free(f->open.v);
    free(f->handed.v);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f->name);
    free(f);
    return ok;
}

void
fsyncer_add(struct fsyncer *f, uint64_t key, int fd, bool own, bool dir)
{
    struct fbatch *b = &f->open;
    int nfd = fd;

    if (!own) {
        for (size_t i = 0; i < b->n; i++) {
            if (!b->v[i].own && b->v[i].key == key && b->v[i].dir == dir)
                return;
        }
        nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (nfd < 0) {
            /* the write cannot be proven durable: fail as a sync would */
            log_syserr("%s: cannot dup a file to sync", f->name);
            set_failed(f, "cannot dup a file to sync", errno);
            return;
        }
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 8;
        b->v = xrealloc(b->v, b->cap * sizeof(*b->v));
    }
    b->v[b->n++] = (struct fent){key, nfd, own, dir};
}

uint64_t
fsyncer_batch(const struct fsyncer *f)
{
    return f->open_no;
}

uint64_t
fsyncer_ticket(struct fsyncer *f)
{
    f->open.awaited = true;
    return f->open_no;
}

bool
fsyncer_kick(struct fsyncer *f)
{
    struct fbatch t;

    if (f->open.n == 0 && !f->open.awaited)
        return false;
    pthread_mutex_lock(&f->mu);
    if (f->busy) {
        pthread_mutex_unlock(&f->mu);
        return false;
    }
    /* swap: the thread's cleared array becomes the open one */
    t = f->handed;
    f->handed = f->open;
    f->open = t;
    batch_clear(&f->open);
    f->handed_no = f->open_no++;
    f->busy = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return true;
}

bool
fsyncer_busy(const struct fsyncer *f)
{
    bool busy;

    pthread_mutex_lock((pthread_mutex_t *)&f->mu);
    busy = f->busy;
    pthread_mutex_unlock((pthread_mutex_t *)&f->mu);
    return busy || f->open.n > 0;
}

uint64_t
fsyncer_durable(const struct fsyncer *f)
{
    return atomic_load(&((struct fsyncer *)f)->durable);
}

void
fsyncer_fail(struct fsyncer *f, const char *why)
{
    set_failed(f, why, 0);
}

const char *
fsyncer_error(const struct fsyncer *f)
{
    return atomic_load(&((struct fsyncer *)f)->failed) ? f->err : NULL;
}

uint64_t
fsyncer_syncs(const struct fsyncer *f)
{
    return atomic_load(&((struct fsyncer *)f)->syncs);
}
