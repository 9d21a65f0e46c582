/*
 * test_store_util.c: see test_store_util.h.
 */
#include "test/unit/test_store_util.h"

#include "store/store_int.h"
#include "test/harness/t.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- I/O seam */

static struct tio *
T(void *arg)
{
    return arg;
}

static bool
hit(_Atomic long *at)
{
    long v = atomic_load(at);

    while (v > 0) {
        if (atomic_compare_exchange_weak(at, &v, v - 1))
            return v == 1;
    }
    return false;
}

static int
t_open(void *arg, const char *path, int flags, unsigned mode)
{
    struct stat st;

    atomic_fetch_add(&T(arg)->opens, 1);
    if (hit(&T(arg)->fail_open_at)) {
        errno = atomic_load(&T(arg)->open_errno)
                    ? atomic_load(&T(arg)->open_errno)
                    : EIO;
        return -1;
    }
    /* a full disk has no room for a new file */
    if ((flags & O_CREAT) && atomic_load(&T(arg)->space) == 0 &&
        stat(path, &st) < 0) {
        errno = ENOSPC;
        return -1;
    }
    return store_io_default.open(NULL, path, flags, mode);
}

/* The bytes of a write of n at off that fit the simulated disk: writing
   within the file takes no space, growing it takes what it adds. -1
   (ENOSPC) when none fits. */
static ssize_t
room(struct tio *t, int fd, size_t n, uint64_t off)
{
    int64_t left = atomic_load(&t->space);
    struct stat st;

    if (left < 0 || fstat(fd, &st) < 0)
        return (ssize_t)n;
    for (;;) {
        uint64_t end = WR_MAX((uint64_t)st.st_size, off);
        uint64_t fit = end - off + (uint64_t)left;
        uint64_t k = WR_MIN((uint64_t)n, fit);
        int64_t grow = (int64_t)WR_MAX(off + k, end) - (int64_t)end;

        if (k == 0 && n > 0) {
            errno = ENOSPC;
            return -1;
        }
        if (atomic_compare_exchange_weak(&t->space, &left, left - grow))
            return (ssize_t)k;
        if (left < 0)
            return (ssize_t)n;
    }
}

static int
t_close(void *arg, int fd)
{
    (void)arg;
    return store_io_default.close(NULL, fd);
}

static ssize_t
t_pread(void *arg, int fd, void *buf, size_t n, uint64_t off)
{
    ssize_t k = store_io_default.pread(NULL, fd, buf, n, off);

    atomic_fetch_add(&T(arg)->preads, 1);
    if (k > 0)
        atomic_fetch_add(&T(arg)->bytes_read, (uint64_t)k);
    return k;
}

static ssize_t
t_pwrite(void *arg, int fd, const void *buf, size_t n, uint64_t off)
{
    struct tio *t = T(arg);
    size_t cap = atomic_load(&t->short_write);
    ssize_t k;

    atomic_fetch_add(&t->pwrites, 1);
    if (hit(&t->fail_pwrite_at)) {
        errno = atomic_load(&t->pwrite_errno);
        return -1;
    }
    if (cap && n > cap)
        n = cap;
    if ((k = room(t, fd, n, off)) < 0)
        return -1;
    k = store_io_default.pwrite(NULL, fd, buf, (size_t)k, off);
    if (k > 0)
        atomic_fetch_add(&t->bytes_written, (uint64_t)k);
    return k;
}

static int
t_fdatasync(void *arg, int fd)
{
    struct tio *t = T(arg);

    pthread_mutex_lock(&t->mu);
    t->gate_waiters++;
    pthread_cond_broadcast(&t->cv);
    while (t->gate_closed)
        pthread_cond_wait(&t->cv, &t->mu);
    t->gate_waiters--;
    pthread_mutex_unlock(&t->mu);
    atomic_fetch_add(&t->fdatasyncs, 1);
    if (hit(&t->fail_fdatasync_at)) {
        errno = atomic_load(&t->fdatasync_errno);
        return -1;
    }
    return store_io_default.fdatasync(NULL, fd);
}

static int
t_fsync(void *arg, int fd)
{
    atomic_fetch_add(&T(arg)->fsyncs, 1);
    if (hit(&T(arg)->fail_fsync_at)) {
        errno = EIO;
        return -1;
    }
    return store_io_default.fsync(NULL, fd);
}

static int
t_ftruncate(void *arg, int fd, uint64_t len)
{
    (void)arg;
    return store_io_default.ftruncate(NULL, fd, len);
}

static int
t_fsize(void *arg, int fd, uint64_t *size)
{
    (void)arg;
    return store_io_default.fsize(NULL, fd, size);
}

static int
t_unlink(void *arg, const char *path)
{
    struct stat st;
    int rc;

    atomic_fetch_add(&T(arg)->unlinks, 1);
    if (stat(path, &st) < 0)
        st.st_size = 0;
    rc = store_io_default.unlink(NULL, path);
    /* a simulated full disk gets the file's bytes back */
    if (rc == 0 && atomic_load(&T(arg)->space) >= 0)
        atomic_fetch_add(&T(arg)->space, (int64_t)st.st_size);
    return rc;
}

static int
t_rename(void *arg, const char *from, const char *to)
{
    atomic_fetch_add(&T(arg)->renames, 1);
    return store_io_default.rename(NULL, from, to);
}

void
tio_init(struct tio *t)
{
    memset(t, 0, sizeof(*t));
    t->io = (struct store_io){
        .open = t_open,
        .close = t_close,
        .pread = t_pread,
        .pwrite = t_pwrite,
        .fdatasync = t_fdatasync,
        .fsync = t_fsync,
        .ftruncate = t_ftruncate,
        .fsize = t_fsize,
        .unlink = t_unlink,
        .rename = t_rename,
        .arg = t,
    };
    atomic_store(&t->space, -1);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
}

void
tio_gate(struct tio *t, bool closed)
{
    pthread_mutex_lock(&t->mu);
    t->gate_closed = closed;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

void
tio_wait_gated(struct tio *t)
{
    pthread_mutex_lock(&t->mu);
    while (t->gate_waiters == 0)
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
}

/* ---- simulated loop */

void
tloop_init(struct tloop *l)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
}

void
tloop_fini(struct tloop *l)
{
    free(l->moved);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
}

void
tloop_wake(void *arg)
{
    struct tloop *l = arg;

    pthread_mutex_lock(&l->mu);
    l->wakes++;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static void
ev_durable(void *ctx, uint64_t lsn)
{
    struct tloop *l = ctx;

    l->durable = lsn;
}

static void
ev_moved(void *ctx, uint64_t qid, uint64_t id, uint64_t pos)
{
    struct tloop *l = ctx;

    if (l->nmoved == l->capmoved) {
        l->capmoved = l->capmoved ? 2 * l->capmoved : 64;
        l->moved = realloc(l->moved, l->capmoved * sizeof(*l->moved));
    }
    l->moved[l->nmoved++] = (struct moved_ev){qid, id, pos};
}

static void
ev_failed(void *ctx, const char *why)
{
    struct tloop *l = ctx;

    l->failed++;
    snprintf(l->why, sizeof(l->why), "%s", why);
}

const struct store_events tloop_events = {ev_durable, ev_moved, ev_failed};

bool
tloop_wait(struct tloop *l, uint64_t seen, int ms)
{
    struct timespec ts;
    bool woke;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&l->mu);
    while (l->wakes == seen) {
        if (pthread_cond_timedwait(&l->cv, &l->mu, &ts) != 0)
            break;
    }
    woke = l->wakes != seen;
    pthread_mutex_unlock(&l->mu);
    return woke;
}

static uint64_t
wakes(struct tloop *l)
{
    uint64_t n;

    pthread_mutex_lock(&l->mu);
    n = l->wakes;
    pthread_mutex_unlock(&l->mu);
    return n;
}

bool
tloop_wait_durable(struct tloop *l, struct store *s, uint64_t lsn)
{
    for (int i = 0; i < 10000; i++) {
        uint64_t w = wakes(l);

        store_flush(s);
        store_poll(s, &tloop_events, l);
        if (store_durable_lsn(s) >= lsn)
            return true;
        if (store_error(s))
            return false;
        tloop_wait(l, w, 20);
    }
    return false;
}

static bool
quiet(const struct store *s)
{
    struct store_stats st;

    if (s->cp.active || s->cp.job_out || s->cur->nch || s->cur->nunl ||
        s->infl_head || s->ndirty || compact_wanted(s))
        return false;
    for (size_t i = 0; i < s->nsegs; i++) {
        if (s->segs[i]->unlinking)
            return false;
    }
    store_get_stats(s, &st);
    return st.pending_bytes == 0;
}

void
tloop_drain(struct tloop *l, struct store *s)
{
    for (int i = 0; i < 100000; i++) {
        uint64_t w = wakes(l);

        store_flush(s);
        store_poll(s, &tloop_events, l);
        if (store_error(s))
            return;
        /* poll may have queued deletions or moves: flush them first */
        if (quiet(s))
            return;
        store_flush(s);
        tloop_wait(l, w, 20);
    }
    T_ASSERT(!"store did not settle");
}

/* ---- recovery results */

static void
rset_msg(void *ctx, const struct store_recovered *m)
{
    struct rset *r = ctx;

    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 256;
        r->v = realloc(r->v, r->cap * sizeof(*r->v));
    }
    r->v[r->n++] =
        (struct rmsg){m->qid, m->id, m->pos, m->body_len, m->meta_len};
}

const struct store_recover_cb rset_cb = {rset_msg};

void
rset_free(struct rset *r)
{
    free(r->v);
    memset(r, 0, sizeof(*r));
}

const struct rmsg *
rset_find(const struct rset *r, uint64_t qid, uint64_t id)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->v[i].qid == qid && r->v[i].id == id)
            return &r->v[i];
    }
    return NULL;
}

/* ---- misc */

struct store_config
tcfg(const char *dir, struct tio *io, struct tloop *l)
{
    struct store_config c;

    memset(&c, 0, sizeof(c));
    c.dir = dir;
    c.fsync = STORE_FSYNC_ALWAYS;
    c.segment_size = 64 << 10;
    c.io = io ? &io->io : NULL;
    c.wake = l ? tloop_wake : NULL;
    c.wake_arg = l;
    c.compact_rate = 1ull << 40;
    return c;
}

const char *
tpath(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", t_tmpdir(), name);
    return buf;
}

uint64_t
tappend(struct store *s, const uint64_t *qids, size_t nq, const char *meta,
        const void *body, size_t blen, uint64_t *id, uint64_t *pos)
{
    struct store_msg_in m;
    uint64_t id_, pos_;

    m.qids = qids;
    m.nqids = nq;
    m.meta = bytes_str(meta);
    m.body = bytes_of(body, blen);
    m.transient = false;
    return store_append_msg(s, &m, id ? id : &id_, pos ? pos : &pos_);
}

void
tbody(uint8_t *out, size_t len, uint64_t k)
{
    uint64_t x = k * 0x9e3779b97f4a7c15ULL + 1;

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[i] = (uint8_t)x;
    }
}

bool
tcheck_msg(struct store *s, uint64_t pos, const char *meta, const void *body,
           size_t blen)
{
    struct buf b;
    struct bytes m, bd;
    bool ok;

    buf_init(&b);
    ok = store_read_msg(s, pos, &b, &m, &bd) == WR_OK &&
         bytes_eq(m, bytes_str(meta)) && bytes_eq(bd, bytes_of(body, blen));
    buf_fini(&b);
    return ok;
}

size_t
tcount_segments(const char *dir, uint64_t *bytes)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    struct stat st;
    size_t n = 0;
    char p[1024];

    if (bytes)
        *bytes = 0;
    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);

        if (len < 4 || strcmp(e->d_name + len - 4, ".seg") != 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        /* the store thread may delete it under our feet */
        if (stat(p, &st) < 0)
            continue;
        n++;
        if (bytes)
            *bytes += (uint64_t)st.st_size;
    }
    closedir(d);
    return n;
}

static long
manifest_copy(const char *dir, int slot, uint32_t *nos, size_t max,
              uint64_t *seq)
{
    char p[1024];
    uint8_t *b;
    size_t len;
    FILE *f;
    const char *why;
    uint32_t n;

    snprintf(p, sizeof(p), "%s/MANIFEST.%d", dir, slot);
    if (!(f = fopen(p, "rb")))
        return -1;
    b = malloc(1u << 20);
    len = fread(b, 1, 1u << 20, f);
    fclose(f);
    if (!rec_manifest_decode(b, len, seq, &n, &why)) {
        free(b);
        return -1;
    }
    for (uint32_t i = 0; i < n && i < max; i++) {
        struct mf_entry e;

        rec_manifest_entry(b, i, &e);
        nos[i] = e.no;
    }
    free(b);
    return (long)WR_MIN(n, max);
}

long
tmanifest(const char *dir, uint32_t *nos, size_t max, uint64_t *seq)
{
    uint32_t *other = malloc(max * sizeof(*other) + 1);
    uint64_t s0 = 0, s1 = 0;
    long n0 = manifest_copy(dir, 0, nos, max, &s0);
    long n1 = manifest_copy(dir, 1, other, max, &s1);

    if (n1 >= 0 && (n0 < 0 || s1 > s0)) {
        memcpy(nos, other, (size_t)n1 * sizeof(*nos));
        n0 = n1;
        s0 = s1;
    }
    free(other);
    if (seq)
        *seq = s0;
    return n0;
}

bool
tsegment_exists(const char *dir, uint32_t no)
{
    char p[1024];
    struct stat st;

    seg_path(p, sizeof(p), dir, no);
    return stat(p, &st) == 0;
}

void
tnewest_segment(const char *dir, char *out, size_t n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char best[300] = "";

    T_ASSERT(d);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);

        if (len == 20 && strcmp(e->d_name + 16, ".seg") == 0 &&
            strcmp(e->d_name, best) > 0)
            snprintf(best, sizeof(best), "%s", e->d_name);
    }
    closedir(d);
    T_ASSERT(best[0]);
    snprintf(out, n, "%s/%s", dir, best);
}

static void
copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY), out;
    char b[65536];
    ssize_t k;

    T_ASSERT(in >= 0);
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    T_ASSERT(out >= 0);
    while ((k = read(in, b, sizeof(b))) > 0)
        T_ASSERT(write(out, b, (size_t)k) == k);
    close(in);
    close(out);
}

void
trm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];

    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

void
tcopy_dir(const char *src, const char *dst)
{
    DIR *d = opendir(src);
    struct dirent *e;
    char a[1024], b[1024];

    T_ASSERT(d);
    mkdir(dst, 0755);
    while ((e = readdir(d)) != NULL) {
        struct stat st;

        snprintf(a, sizeof(a), "%s/%s", src, e->d_name);
        if (stat(a, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        snprintf(b, sizeof(b), "%s/%s", dst, e->d_name);
        copy_file(a, b);
    }
    closedir(d);
}

uint64_t
tfile_size(const char *path)
{
    struct stat st;

    T_ASSERT(stat(path, &st) == 0);
    return (uint64_t)st.st_size;
}

void
ttruncate(const char *path, uint64_t size)
{
    T_ASSERT(truncate(path, (off_t)size) == 0);
}

void
tflip_byte(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR);
    uint8_t c;

    T_ASSERT(fd >= 0);
    T_ASSERT(pread(fd, &c, 1, (off_t)off) == 1);
    c ^= 0x40;
    T_ASSERT(pwrite(fd, &c, 1, (off_t)off) == 1);
    close(fd);
}

void
tappend_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND);

    T_ASSERT(fd >= 0);
    T_ASSERT(write(fd, p, n) == (ssize_t)n);
    close(fd);
}

size_t
tlist_records(const char *path, uint64_t *offs, uint32_t *lens, uint8_t *types,
              size_t max)
{
    uint64_t size = tfile_size(path), off = SEG_HDR_SIZE;
    int fd = open(path, O_RDONLY);
    size_t n = 0;

    T_ASSERT(fd >= 0);
    while (off + REC_HDR_SIZE <= size && n < max) {
        uint8_t h[REC_HDR_SIZE];

        T_ASSERT(pread(fd, h, sizeof(h), (off_t)off) == (ssize_t)sizeof(h));
        offs[n] = off;
        lens[n] = be32_load(h);
        types[n] = h[8];
        T_ASSERT(lens[n] >= REC_HDR_SIZE && off + lens[n] <= size);
        off += lens[n];
        n++;
    }
    close(fd);
    return n;
}
