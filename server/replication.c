/*
 * replication.c: the sockets of vhost replication (issue 12), both sides.
 *
 * Design (see also cluster/repl.h for the frames, cluster/mirror.h for a
 * mirror's copy on disk, store/store.h "Replication" for the records):
 *
 *   - The unit is a vhost's log. Its leader (the node holding the vhost's
 *     leader key; epoch = the key's create_revision) keeps one outgoing
 *     link per mirror. Mirrors: the first replicas - 1 running nodes
 *     other than the leader, in name order (replicas: the vhost's
 *     metadata or replication.replicas, repl_settings).
 *   - A link opens with the node-to-node handshake (cluster/peer.h,
 *     purpose PEER_REPL, payload {"vhost", "epoch"}): the mirror checks
 *     the epoch against the highest it has persisted for that vhost and
 *     refuses an older one (fencing), and refuses a vhost it leads.
 *   - A new link starts with a snapshot at the leader's current
 *     position P (SNAP, DEFS, the live persistent messages of the durable
 *     queues as RECS, SYNCED), read in slices between the loop's other
 *     work (see "snapshots in slices" below); from then on
 *     the link gets the leader's tap: the store's encoded MSG/ACK/QDEL
 *     payloads, cut once per loop pass (the same bytes to every mirror;
 *     a message routed to N queues is one record).
 *   - Catch-up from a position: the mirror's OK may carry {"epoch",
 *     "position", "lead"}, a complete copy up to that position of the
 *     lead named in the AUTH payload's "lead" (positions restart when a
 *     node stops and starts leading under the same key, so a position
 *     counts in one lead only; cluster/mirror.c keeps it across a link
 *     blip or a clean restart).
 *     The leader keeps the framed cuts of the last catchup_window bytes
 *     (struct chunk); a position inside that window gets the cuts after
 *     it, byte for byte as the streaming links got them, fed while the
 *     link holds under REPL_SNAP_OUT unsent (L_CATCHUP), and no
 *     snapshot. Anything else (another epoch, older than the window, no
 *     position) gets a snapshot. Mirrors that never send a position and
 *     leaders that ignore it still work: the OK's text was free before.
 *   - Side records (vhost/side.h: stream appends and trims, tracked stream
 *     offsets, the deduplication journal) are not in the log either: the
 *     vhost taps them into lead.side, each with a position of the log,
 *     and a cut sends them as SIDE frames before its RECS (so the window
 *     of cuts holds them too). A snapshot sends the journal and tracked
 *     offsets as of its position with SNAP and DEFS, then its messages,
 *     then the streams' records up to where they were at its position,
 *     all in slices (snap_step), then SYNCED and the cuts made meanwhile.
 *   - Definitions (exchanges, queues, bindings of the vhost) are not in
 *     the log: they travel as a complete definitions document (DEFS),
 *     stamped with the log position, whenever the node's definitions
 *     changed, ahead of the records that follow the change.
 *   - The mirror applies frames to its copy (cluster/mirror.c), which has
 *     its own group commit, and answers ACK(seq) once the copy is durable
 *     up to seq. The leader keeps each link's acked position and the time
 *     of its last ACK (management: GET /api/replication).
 *   - PING every REPL_PING_S with the leader's head keeps a quiet link
 *     current; a side silent for REPL_SILENT_S drops the link.
 *
 *   - Truncation in place (KIP-101): a node that wins a vhost from its
 *     copy knows where that copy of the previous lead ended exactly (its
 *     clean close's position: clustering.c take_over_copy); that is the
 *     previous lead's end here, and this lead's first position (LSN 1,
 *     the recovered state) is the same state. struct lead keeps it
 *     (prev_lead) and the AUTH payload names it ("prev": {"epoch",
 *     "lead", "end", "start"}, cluster/repl.h). Kept in memory with the
 *     lead, not persisted: positions count within one lead, and the cuts
 *     a truncated copy needs next are this lead's window, which is in
 *     memory too; a restarted leader starts a new lead whose predecessor
 *     is its own log, not a copy (no "prev"). A mirror whose copy of
 *     that lead holds "end" cuts its log back to it in place
 *     (cluster/mirror.c, from the marks of cluster/mirror_marks.h) and
 *     offers "start" of this lead with "truncated"; the catch-up from
 *     there starts with this lead's first cut, DEFS included.
 *
 *   - The returning old leader (KIP-101 too): the leader marks where
 *     each of its cuts ends in its own log (struct own: the same marks
 *     as a copy's, in the vhost's directory, kept for every vhost log
 *     the node has open, led or not), each written before the cut's
 *     frames leave, every deletion its log plans logged before
 *     node_flush hands it (repl_before_flush). A node whose own log has
 *     marks of a lead of an older epoch than a link that arrives (it
 *     restarted, or lost its lease, and another node won) makes that
 *     log its copy of the lead it ended (own_to_copy: one rename of the
 *     vhost's directory, the copy marked synced last), and mirror_open
 *     cuts it back to where that lead ended on the new leader like any
 *     copy, or the leader sends a snapshot (side files, a mark lost or
 *     a deletion since). The placement rules need nothing more: the new
 *     leader's win took the home, so the old leader is eligible only
 *     through its copy (isr_eligible).
 *
 * Not done yet: catch-up from beyond the window (the leader does not
 * read its own log back for it). Nor is a copy behind the previous
 * lead's end here truncated (no cuts of the previous lead are kept, and
 * a copy would have to switch leads mid-stream), or one holding side
 * files.
 */
#include "server/channel.h"
#include "server/conn.h"

#include "cluster/cluster.h"
#include "cluster/mirror.h"
#include "cluster/mirror_marks.h"
#include "cluster/peer.h"
#include "cluster/repl.h"
#include "vhost/side.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <utlist.h>

#define REPL_TICK_S      0.5
#define REPL_PING_S      1.0
#define REPL_SILENT_S    10.0
#define REPL_HANDSHAKE_S 5.0
#define REPL_RETRY_MS    1000u
#define REPL_READ        (256u << 10)
#define REPL_OUT_MAX     (512ull << 20) /* a mirror this far behind: drop */
/* A snapshot or a catch-up adds to a link holding less than this. */
#define REPL_SNAP_OUT (8u << 20)
/* The settings (replication.* keys, a vhost's metadata): how many copies
 * (replicas, repl_settings), how many in-sync members confirms need
 * (min_isr), and how long a mirror may lag before it leaves the in-sync
 * set (replication.timeout, repl_timeout_s). */

/* ---- state */

enum link_state {
    L_DOWN,       /* waiting to (re)connect */
    L_CONNECTING, /* non-blocking connect */
    L_HELLO,      /* waiting for the mirror's HELLO */
    L_AUTH,       /* AUTH sent, waiting for OK */
    L_STREAMING,  /* snapshot sent, following the tap */
    L_SNAPSHOT,   /* sending a snapshot in slices, the tap set aside */
    L_CATCHUP,    /* sending the window's cuts from feed on */
};

static const char *const state_names[] = {
    "down",      "connecting", "handshake", "handshake",
    "streaming", "snapshot",   "catch-up"};

struct lead;

/* A position sent to a mirror, and when. */
struct sent {
    uint64_t seq;
    double at;
};

/* The leader's link to one mirror. */
struct link {
    struct lead *lead;
    char *node;
    enum link_state state;
    int fd;
    ev_io rio, wio;
    uint8_t client_nonce[PEER_NONCE];
    struct buf in, out;
    size_t head;
    uint64_t acked;      /* the mirror's durable position */
    uint64_t synced_at;  /* the snapshot's position */
    double caught_up_at; /* it had all the leader had at this time */
    struct sent *sent;   /* positions sent and not yet acked, in order */
    size_t nsent, capsent, sent_head;
    /* the definitions generations of the DEFS frames sent and not yet
       acknowledged (DACK), in order; the last acknowledged */
    uint64_t *dq;
    size_t ndq, capdq, dq_head;
    uint64_t defs_acked;
    double last_heard;    /* ev_now of the last byte from the mirror */
    uint64_t retry_at_ms; /* L_DOWN: not before */
    char why[256];        /* why it went down last */
    bool wanted;          /* still one of the vhost's mirrors */
    /* L_SNAPSHOT: the streams still to send once the messages are
       (vhost/side.h), as of snap_at */
    struct side_snap *ss;
    uint64_t offered;  /* the position the mirror's OK offered, or 0 */
    bool truncated;    /* ... after cutting its copy back (KIP-101) */
    const char *start; /* how the last stream started (management) */
    /* L_SNAPSHOT: the pairs to send (vhost_repl_gather) as of position
       snap_at, the next one, and the cuts since, sent once it is done */
    struct vh_logged *snap;
    size_t snap_n, snap_i;
    uint64_t snap_at;
    size_t snap_moved_at; /* snap_i when positions were last taken again */
    double snap_next;     /* ev_time before which no slice (its share) */
    double snap_began;
    struct buf backlog;
    struct chunk *feed; /* L_CATCHUP: the next cut of the window to send */
    struct link *next, *prev;
};

/* One cut as framed for the streaming links, kept for catch-up: its
 * frames bring a copy from position from to seq. */
struct chunk {
    uint64_t from, seq;
    uint64_t defs_gen; /* its frames carry DEFS of this generation, or 0 */
    struct buf frames;
    struct chunk *next;
};

/* A vhost this node leads. */
struct lead {
    char *name;
    struct vhost *vh;
    uint64_t epoch;
    struct buf tap;    /* the store's tap, since the last cut */
    struct buf dtap;   /* delivery counts set since the last cut (DCNT) */
    struct buf side;   /* side records (vhost/side.h), since the last cut */
    struct buf frames; /* one cut, framed, for every streaming link */
    uint64_t cut;      /* position of the last cut */
    uint64_t defs_gen; /* node_defs_generation when DEFS was made */
    uint64_t defs_new; /* ... when it last differed from the one before */
    char *defs;        /* the last DEFS document */
    /* the in-sync set as committed in etcd (this node first) */
    char **isr;
    size_t nisr;
    bool isr_known; /* committed by this leader at least once */
    bool isr_busy;  /* a commit is in flight */
    bool acks_new;  /* an ACK came since the limit was computed */
    int64_t isr_mod;
    uint64_t limit;    /* confirms may go up to this position */
    double held_since; /* confirms wait on the in-sync set since, or 0 */
    /* records past the limit have waited since (0: none wait); reset by
     * every advance of the limit */
    double waiting_since;
    bool blocking; /* its publishers are blocked (repl_blocks) */
    /* the log's durable position on this node's disk, and since when it
       has not moved while records waited for it (disk_check) */
    uint64_t disk_seen;
    double disk_since;
    struct link *links;
    /* the catch-up window: every cut after position win_base, oldest
       first, win_bytes of frames in all */
    struct chunk *win, *win_last;
    size_t win_bytes;
    uint64_t win_base;
    uint64_t snapshots, catch_ups; /* streams started each way */
    /* catch-ups of a copy of the previous lead truncated in place */
    uint64_t truncations;
    /* where the previous lead ended here (repl.h; zero: unknown) */
    struct repl_prev prev_lead;
    /* this lead of the epoch: a node that stops leading (lost etcd) and
       leads again under the same key reopens the log, whose positions
       count from 1 again; a copy's position counts in one lead only */
    uint64_t lead_id;
    double snap_step_max; /* longest slice of a snapshot, s */
    double served_ms;     /* from winning the vhost to serving it */
    struct own *own;      /* the marks of its cuts in this node's log */
    struct lead *next, *prev;
};

/* A mirror's incoming link: this node's copy of another node's vhost. */
struct copy {
    char *vhost, *leader;
    int fd;
    ev_io rio, wio;
    struct buf in, out;
    size_t head;
    struct mirror *m;
    uint64_t acked_sent;
    double last_heard;
    double last_said; /* ev_now of the last ACK sent */
    struct copy *next, *prev;
};

/* A complete copy whose link dropped, kept open with its hot index
   (store.h): should this node win the vhost, it serves from it at once
   (repl_copy_take); a new link closes it first and opens the copy again
   (mirror_open). */
struct parked {
    char *vhost;
    struct mirror *m;
    struct parked *next, *prev;
};

/* The marks of where each cut of a lead of this node ends in its own log
 * of the vhost (cluster/mirror_marks.h, in the vhost's directory), kept
 * for every vhost log the node has open, led or not: if another node
 * takes the vhost over, this log becomes this node's copy of the lead it
 * ended and is truncated in place (own_to_copy). As on a mirror, every
 * deletion the log plans is on file before the store thread is handed
 * it (repl_before_flush runs before node_flush), and a mark names the
 * log's end just after the cut (store_end_pos), the records of the cut
 * handed at the next flush. */
struct own {
    struct vhost *vh;
    struct marks *mk;
    struct own *next, *prev;
};

static struct lead *leads;
static struct own *owns;
static uint64_t leads_made;
static struct copy *copies;
static struct parked *parked;
static ev_timer tick;
static bool inited;

static void link_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void copy_io_cb(struct ev_loop *loop, ev_io *w, int revents);

/* ---- the marks of this node's own logs (struct own) */

static struct own *
own_find(const struct vhost *vh)
{
    struct own *o;

    DL_FOREACH(owns, o)
    {
        if (o->vh == vh)
            return o;
    }
    return NULL;
}

/* Logs the deletions vh's log planned so far: before the next hand-off. */
static void
own_unlinks(struct own *o, bool force)
{
    marks_unlinks(o->mk, vhost_repl_unlinks(o->vh));
    marks_write(o->mk, force);
}

static void
own_free(struct own *o)
{
    own_unlinks(o, true);
    marks_close(o->mk);
    DL_DELETE(owns, o);
    free(o);
}

/* Opens vh's marks again (its log may have been replaced: a copy taken
 * over), or for the first time; none without a log open. */
static struct own *
own_open(struct vhost *vh)
{
    struct own *o = own_find(vh);
    const char *dir = vhost_repl_dir(vh);

    if (o)
        own_free(o);
    if (!dir)
        return NULL;
    o = xcalloc(1, sizeof(*o));
    o->vh = vh;
    o->mk = marks_open(dir);
    DL_APPEND(owns, o);
    own_unlinks(o, false);
    return o;
}

void
repl_own_boot(struct server *s)
{
    for (struct vhost *vh = node_vhost_next(s->node, NULL); vh;
         vh = node_vhost_next(s->node, vh))
        own_open(vh);
}

void
repl_own_forget(struct vhost *vh)
{
    struct own *o = own_find(vh);
    struct lead *d;

    DL_FOREACH(leads, d)
    {
        if (d->own == o)
            d->own = NULL;
    }
    if (o)
        own_free(o);
}

void
repl_before_flush(struct server *s)
{
    struct own *o;

    (void)s;
    DL_FOREACH(owns, o)
    {
        own_unlinks(o, false);
    }
}

/* A cut of the lead up to d->cut: where it ends in this node's log. One
 * write per cut (a loop pass), not synced: a power cut may lose marks,
 * which costs a snapshot, never a wrong truncation. */
static void
own_cut(struct lead *d)
{
    if (!d->own)
        return;
    marks_cut(d->own->mk, d->epoch, d->lead_id, d->cut,
              vhost_repl_end_pos(d->vh), 0);
    /* on file before the cut's frames leave: a mirror never holds a
       position of this lead whose mark a kill -9 of this node lost (a
       batch would lose the last ones, and the mirrors end exactly there
       when this node dies) */
    marks_write(d->own->mk, true);
}

/* ---- writing (both sides) */

/* Writes out from *head; WR_OK when all went, WR_AGAIN, WR_ERR. */
static int
write_out(int fd, struct buf *out, size_t *head, ev_io *wio)
{
    while (*head < out->len) {
        ssize_t n = write(fd, out->data + *head, out->len - *head);

        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            ev_io_start(srv->loop, wio);
            return WR_AGAIN;
        }
        if (n <= 0)
            return WR_ERR;
        *head += (size_t)n;
    }
    buf_reset(out);
    *head = 0;
    ev_io_stop(srv->loop, wio);
    return WR_OK;
}

/* ---- the leader's links */

static void
sent_push(struct link *l, uint64_t seq, double at)
{
    if (l->sent_head > 0 && l->sent_head == l->nsent)
        l->sent_head = l->nsent = 0;
    if (l->nsent == l->capsent) {
        l->capsent = l->capsent ? 2 * l->capsent : 64;
        l->sent = xrealloc(l->sent, l->capsent * sizeof(*l->sent));
    }
    l->sent[l->nsent++] = (struct sent){seq, at};
}

/* A DEFS frame of definitions generation gen went to the mirror. */
static void
dq_push(struct link *l, uint64_t gen)
{
    if (l->dq_head > 0 && l->dq_head == l->ndq)
        l->dq_head = l->ndq = 0;
    if (l->ndq == l->capdq) {
        l->capdq = l->capdq ? 2 * l->capdq : 8;
        l->dq = xrealloc(l->dq, l->capdq * sizeof(*l->dq));
    }
    l->dq[l->ndq++] = gen;
}

/* The mirror acked seq: it had everything the leader had when it sent
 * the last position <= seq. */
static void
sent_acked(struct link *l, uint64_t seq)
{
    while (l->sent_head < l->nsent && l->sent[l->sent_head].seq <= seq) {
        if (l->sent[l->sent_head].at > l->caught_up_at)
            l->caught_up_at = l->sent[l->sent_head].at;
        l->sent_head++;
    }
}

static void
link_down(struct link *l, const char *why)
{
    if (l->state != L_DOWN)
        log_warn("replication of vhost '%s' to node '%s' stopped: %s",
                 l->lead->name, l->node, why);
    snprintf(l->why, sizeof(l->why), "%s", why);
    ev_io_stop(srv->loop, &l->rio);
    ev_io_stop(srv->loop, &l->wio);
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    buf_fini(&l->in);
    buf_fini(&l->out);
    buf_fini(&l->backlog);
    free(l->snap);
    l->snap = NULL;
    l->feed = NULL;
    side_snap_free(l->ss);
    l->ss = NULL;
    l->head = 0;
    l->nsent = l->sent_head = 0;
    l->ndq = l->dq_head = 0;
    l->defs_acked = 0;
    l->state = L_DOWN;
    l->retry_at_ms = wr_now_ms() + REPL_RETRY_MS;
}

static void
link_free(struct link *l)
{
    link_down(l, "no longer a mirror");
    DL_DELETE(l->lead->links, l);
    free(l->sent);
    free(l->dq);
    free(l->node);
    free(l);
}

static void
link_flush(struct link *l)
{
    int rc = write_out(l->fd, &l->out, &l->head, &l->wio);

    if (rc == WR_ERR)
        link_down(l, errno ? strerror(errno) : "closed");
}

static void
link_connect(struct link *l)
{
    const struct cluster_node *n = cluster_node_find(srv->cluster, l->node);
    char why[256];

    if (!n || !n->running || !n->cluster_addr[0]) {
        l->retry_at_ms = wr_now_ms() + REPL_RETRY_MS;
        return;
    }
    l->fd = relay_connect(n->cluster_addr, why, sizeof(why));
    if (l->fd < 0) {
        link_down(l, why);
        return;
    }
    buf_init(&l->in);
    buf_init(&l->out);
    l->head = 0;
    l->state = L_CONNECTING;
    l->last_heard = ev_now(srv->loop);
    ev_io_init(&l->rio, link_io_cb, l->fd, EV_READ);
    ev_io_init(&l->wio, link_io_cb, l->fd, EV_WRITE);
    l->rio.data = l->wio.data = l;
    ev_io_start(srv->loop, &l->wio);
}

/* The definitions document of the lead's vhost, made again when the
 * node's definitions changed. Returns whether it differs from the last. */
static bool
defs_refresh(struct lead *d)
{
    uint64_t gen = node_defs_generation(srv->node);
    json_t *doc;
    char *text;

    if (d->defs && gen == d->defs_gen)
        return false;
    d->defs_gen = gen;
    doc = node_defs_export(srv->node, d->name);
    text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    if (d->defs && text && strcmp(text, d->defs) == 0) {
        free(text);
        return false;
    }
    free(d->defs);
    d->defs = text ? text : xstrdup("{}");
    d->defs_new = gen;
    return true;
}

/* The logged pairs of the lead's vhost as of now: the queues' ready
 * messages and the unacked deliveries the channels hold. */
static struct vh_logged *
snap_gather(struct lead *d, size_t *count)
{
    struct vh_logged *extra = NULL, *v;
    size_t n = 0, cap = 0;
    struct conn *c;

    DL_FOREACH(srv->conns, c)
    {
        struct channel *ch, *tmp;

        if (c->vh != d->vh)
            continue;
        HASH_ITER(hh, c->channels, ch, tmp)
        {
            for (size_t i = 0; i < ch->unacked.r.n; i++) {
                struct unacked *u = unacked_at(&ch->unacked, i);

                if (n == cap) {
                    cap = cap ? 2 * cap : 64;
                    extra = xrealloc(extra, cap * sizeof(*extra));
                }
                if (u->q && vhost_entry_logged(u->q, u->e, &extra[n]))
                    n++;
            }
        }
    }
    v = vhost_repl_gather(d->vh, extra, n, count);
    free(extra);
    return v;
}

static void snap_wanted(void);

/* A snapshot for a new link at the lead's current cut: SNAP, DEFS and
 * the side data that is not a stream's records (the deduplication
 * journal, tracked offsets) now, the messages then the streams' records
 * in slices (snap_step), the cuts made meanwhile held in the link's
 * backlog until SYNCED. */
static void
snap_begin(struct link *l)
{
    struct lead *d = l->lead;
    double t0 = ev_time();
    struct buf side;

    l->snap = snap_gather(d, &l->snap_n);
    /* listing the pairs is loop time too (about 0.1 s per million) */
    d->snap_step_max = WR_MAX(d->snap_step_max, ev_time() - t0);
    l->snap_i = 0;
    l->snap_at = d->cut;
    l->snap_moved_at = SIZE_MAX;
    l->snap_next = 0;
    l->snap_began = ev_time();
    buf_init(&l->backlog);
    defs_refresh(d);
    repl_frame_encode(&l->out, REPL_SNAP, d->epoch, d->cut, bytes_of(NULL, 0));
    repl_frame_encode(&l->out, REPL_DEFS, d->epoch, d->cut, bytes_str(d->defs));
    dq_push(l, d->defs_gen);
    /* every delivery count as of this position (quorum queues) */
    buf_init(&side);
    vhost_repl_dcounts(d->vh, &side);
    if (side.len)
        repl_frame_encode(&l->out, REPL_DCNT, d->epoch, d->cut,
                          buf_bytes(&side));
    buf_reset(&side);
    /* the streams as they are at this position: the appends after it
       are in the cuts that follow */
    l->ss = side_snap_begin(d->vh, &side);
    repl_encode_side(&l->out, d->epoch, d->cut, d->cut, buf_bytes(&side));
    buf_fini(&side);
    l->state = L_SNAPSHOT;
    snap_wanted();
}

/* The snapshot is complete: SYNCED, the cuts held back, and the link
 * follows the tap. */
static void
snap_end(struct link *l)
{
    struct lead *d = l->lead;

    repl_frame_encode(&l->out, REPL_SYNCED, d->epoch, l->snap_at,
                      bytes_of(NULL, 0));
    buf_append(&l->out, l->backlog.data, l->backlog.len);
    buf_fini(&l->backlog);
    free(l->snap);
    l->snap = NULL;
    l->state = L_STREAMING;
    l->synced_at = d->cut;
    sent_push(l, d->cut, ev_now(srv->loop));
    log_info("snapshot of vhost '%s' (epoch %llu) to node '%s': %zu "
             "queue entries at position %llu in %.3f s; following from %llu",
             d->name, (unsigned long long)d->epoch, l->node, l->snap_n,
             (unsigned long long)l->snap_at, ev_time() - l->snap_began,
             (unsigned long long)d->cut);
}

static void lead_cut(struct lead *d);

/* ---- the catch-up window */

static void
window_push(struct lead *d, uint64_t from, uint64_t seq, struct buf *frames,
            uint64_t defs_gen)
{
    struct chunk *k = xcalloc(1, sizeof(*k));

    k->from = from;
    k->seq = seq;
    k->defs_gen = defs_gen;
    k->frames = *frames; /* taken over: no copy */
    buf_init(frames);
    if (d->win_last)
        d->win_last->next = k;
    else
        d->win = k;
    d->win_last = k;
    d->win_bytes += k->frames.len;
    while (d->win && d->win_bytes > srv->cfg->catchup_window) {
        struct link *l, *tmp;

        k = d->win;
        DL_FOREACH_SAFE(d->links, l, tmp)
        {
            if (l->state == L_CATCHUP && l->feed == k)
                link_down(l, "the mirror fell out of the catch-up window");
        }
        d->win = k->next;
        if (!d->win)
            d->win_last = NULL;
        d->win_bytes -= k->frames.len;
        d->win_base = k->seq;
        buf_fini(&k->frames);
        free(k);
    }
}

static void
window_free(struct lead *d)
{
    while (d->win) {
        struct chunk *k = d->win;

        d->win = k->next;
        buf_fini(&k->frames);
        free(k);
    }
    d->win_last = NULL;
    d->win_bytes = 0;
}

/* Whether the window holds everything after pos: pos is within it and
 * no cut began before pos and ended after it (a copy there holds part
 * of a cut; positions the leader sent never are). */
static bool
window_covers(const struct lead *d, uint64_t pos)
{
    if (pos < d->win_base || pos > d->cut)
        return false;
    for (const struct chunk *k = d->win; k && k->from < pos; k = k->next) {
        if (k->seq > pos)
            return false;
    }
    return true;
}

/* The position a mirror's OK offers to resume from (its text, JSON
 * {"epoch", "position", "lead"}), when it is one of this lead; 0
 * otherwise.
 * Anything else in the text (an older mirror's empty one) is none. */
static uint64_t
offered_position(const struct lead *d, struct bytes text, bool *truncated)
{
    json_t *doc = json_loadb((const char *)text.ptr, text.len, 0, NULL);
    json_t *e = json_object_get(doc, "epoch"),
           *p = json_object_get(doc, "position"),
           *l = json_object_get(doc, "lead");
    uint64_t pos = 0;

    if (json_is_integer(e) && json_is_integer(p) && json_is_integer(l) &&
        json_integer_value(e) == (json_int_t)d->epoch &&
        json_integer_value(l) == (json_int_t)d->lead_id &&
        json_integer_value(p) > 0)
        pos = (uint64_t)json_integer_value(p);
    /* the copy was cut back to where the previous lead ended here */
    *truncated = pos > 0 && json_is_integer(json_object_get(doc, "truncated"));
    json_decref(doc);
    return pos;
}

/* The cuts after pos, as the streaming links got them: fed from the
 * window a few MiB at a time (catch_feed), not copied at once; the bytes
 * to send. */
static size_t
catch_up(struct link *l, uint64_t pos)
{
    size_t n = 0;

    l->feed = NULL;
    for (struct chunk *k = l->lead->win; k; k = k->next) {
        if (k->from < pos)
            continue;
        if (!l->feed)
            l->feed = k;
        n += k->frames.len;
    }
    return n;
}

/* The window's cuts into the link's output while it holds less than
 * limit; at the window's end the link follows the tap. */
static void
catch_feed(struct link *l, size_t limit)
{
    struct lead *d = l->lead;

    while (l->feed && l->out.len - l->head < limit) {
        buf_append(&l->out, l->feed->frames.data, l->feed->frames.len);
        if (l->feed->defs_gen) /* the mirror DACKs its DEFS */
            dq_push(l, l->feed->defs_gen);
        l->feed = l->feed->next;
    }
    if (l->feed)
        return;
    /* the head, so that a copy already there acks it at once */
    repl_frame_encode(&l->out, REPL_PING, d->epoch, d->cut, bytes_of(NULL, 0));
    l->state = L_STREAMING;
    l->synced_at = d->cut;
    sent_push(l, d->cut, ev_now(srv->loop));
}

static json_t *
prev_json(const struct repl_prev *p)
{
    return json_pack("{s:I, s:I, s:I, s:I}", "epoch", (json_int_t)p->epoch,
                     "lead", (json_int_t)p->lead, "end", (json_int_t)p->end,
                     "start", (json_int_t)p->start);
}

/* OK from the mirror: catch-up or snapshot, then stream. */
static void
link_ready(struct link *l)
{
    struct lead *d = l->lead;
    size_t n;

    /* what the tap holds goes to the links already streaming first (and
       into the window): the stream starts at the position after it */
    lead_cut(d);
    if (l->offered && window_covers(d, l->offered)) {
        n = catch_up(l, l->offered);
        d->catch_ups++;
        if (l->truncated)
            d->truncations++;
        l->start = l->truncated ? "truncation" : "catch-up";
        log_info("catching up vhost '%s' (epoch %llu) on node '%s' from "
                 "position %llu to %llu (%zu bytes)",
                 d->name, (unsigned long long)d->epoch, l->node,
                 (unsigned long long)l->offered, (unsigned long long)d->cut, n);
    } else {
        d->snapshots++;
        l->start = "snapshot";
        log_info("replicating vhost '%s' (epoch %llu) to node '%s' from "
                 "position %llu",
                 d->name, (unsigned long long)d->epoch, l->node,
                 (unsigned long long)d->cut);
    }
    l->acked = 0;
    l->caught_up_at = 0;
    if (strcmp(l->start, "snapshot") == 0) {
        snap_begin(l);
    } else {
        l->state = L_CATCHUP;
        catch_feed(l, REPL_SNAP_OUT);
        if (l->state == L_CATCHUP)
            snap_wanted();
    }
    link_flush(l);
}

static void
link_handshake(struct link *l)
{
    struct bytes secret = cluster_secret(srv->cluster);
    uint8_t nonce[PEER_NONCE], status;
    struct bytes text;
    const char *why = NULL;
    size_t used = 0;
    char msg[PEER_MAX_TEXT + 1], *payload;
    json_t *p;
    int rc;

    if (l->state == L_HELLO) {
        rc = peer_hello_parse(buf_bytes(&l->in), nonce, &used, &why);
        if (rc == WR_AGAIN)
            return;
        if (rc == WR_ERR) {
            link_down(l, why);
            return;
        }
        buf_consume(&l->in, used);
        p = json_pack("{s:s, s:I, s:I}", "vhost", l->lead->name, "epoch",
                      (json_int_t)l->lead->epoch, "lead",
                      (json_int_t)l->lead->lead_id);
        if (l->lead->prev_lead.end) /* KIP-101: a copy of it is cut back */
            json_object_set_new(p, "prev", prev_json(&l->lead->prev_lead));
        payload = json_dumps(p, JSON_COMPACT);

        peer_auth_encode(secret, nonce, l->client_nonce,
                         cluster_node_name(srv->cluster), PEER_REPL,
                         bytes_str(payload), &l->out);
        free(payload);
        json_decref(p);
        l->state = L_AUTH;
        link_flush(l);
        if (l->state != L_AUTH)
            return;
    }
    rc = peer_ok_parse(secret, l->client_nonce, buf_bytes(&l->in), &status,
                       &text, &used, &why);
    if (rc == WR_AGAIN)
        return;
    if (rc == WR_ERR) {
        link_down(l, why);
        return;
    }
    if (status != PEER_OK) {
        snprintf(msg, sizeof(msg), "refused: %.*s", BYTES_FMT(text));
        link_down(l, msg);
        return;
    }
    l->offered = offered_position(l->lead, text, &l->truncated);
    buf_consume(&l->in, used);
    link_ready(l);
}

/* ACKs from a streaming mirror. */
static void
link_acks(struct link *l)
{
    struct repl_frame f;
    const char *why = NULL;
    size_t used;
    int rc;

    while ((rc = repl_frame_parse(buf_bytes(&l->in), false, &f, &used, &why)) ==
           WR_OK) {
        if (f.epoch != l->lead->epoch || f.seq > l->lead->cut) {
            link_down(l, "garbage: an ACK of another epoch or beyond the "
                         "head");
            return;
        }
        if (f.kind == REPL_DACK) {
            if (l->dq_head == l->ndq) {
                link_down(l, "garbage: a DACK with no DEFS frame to answer");
                return;
            }
            l->defs_acked = l->dq[l->dq_head++];
            l->lead->acks_new = true;
            buf_consume(&l->in, used);
            continue;
        }
        if (f.seq > l->acked)
            l->acked = f.seq;
        sent_acked(l, f.seq);
        l->lead->acks_new = true;
        buf_consume(&l->in, used);
    }
    if (rc == WR_ERR) {
        char text[300];

        snprintf(text, sizeof(text), "garbage from the mirror: %s", why);
        link_down(l, text);
    }
}

static void
link_readable(struct link *l)
{
    uint8_t *dst = buf_reserve(&l->in, 4096);
    ssize_t n = read(l->fd, dst, 4096);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        link_down(l, n == 0 ? "the mirror closed the link" : strerror(errno));
        return;
    }
    l->in.len += (size_t)n;
    l->last_heard = ev_now(srv->loop);
    if (l->state == L_HELLO || l->state == L_AUTH)
        link_handshake(l);
    else if (l->state >= L_STREAMING)
        link_acks(l);
}

static void
link_connected(struct link *l)
{
    int err = 0;
    socklen_t len = sizeof(err);

    getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        link_down(l, strerror(err));
        return;
    }
    ev_io_stop(srv->loop, &l->wio);
    ev_io_start(srv->loop, &l->rio);
    l->state = L_HELLO;
}

static void
link_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct link *l = w->data;

    (void)loop;
    (void)revents;
    if (w == &l->wio && l->state == L_CONNECTING)
        link_connected(l);
    else if (w == &l->wio)
        link_flush(l);
    else
        link_readable(l);
    loop_pump(srv);
}

/* ---- leading */

static struct lead *
lead_find(const char *name)
{
    struct lead *d;

    DL_FOREACH(leads, d)
    {
        if (strcmp(d->name, name) == 0)
            return d;
    }
    return NULL;
}

static struct link *
link_find(struct lead *d, const char *node)
{
    struct link *l;

    DL_FOREACH(d->links, l)
    {
        if (strcmp(l->node, node) == 0)
            return l;
    }
    return NULL;
}

void
repl_settings(const struct vhost_info *vi, uint32_t *replicas,
              uint32_t *min_isr)
{
    *replicas = vi->repl_replicas ? vi->repl_replicas : srv->cfg->repl_replicas;
    *min_isr = vi->repl_min_isr ? vi->repl_min_isr : srv->cfg->repl_min_isr;
    *min_isr = WR_MIN(*min_isr, *replicas);
}

static uint32_t
lead_replicas(const struct lead *d)
{
    struct vhost_info vi;
    uint32_t replicas, min_isr;

    vhost_info(d->vh, &vi);
    repl_settings(&vi, &replicas, &min_isr);
    return replicas;
}

static double
repl_timeout_s(void)
{
    return srv->cfg->repl_timeout_ms / 1000.0;
}

/* Links to the vhost's mirrors: the first replicas - 1 running nodes
 * other than this one, in name order. */
static void
lead_reconcile(struct lead *d)
{
    const struct cluster_node *nodes;
    size_t n = cluster_nodes(srv->cluster, &nodes), want = 0;
    const char *me = cluster_node_name(srv->cluster);
    uint32_t replicas = lead_replicas(d);
    struct link *l, *tmp;

    DL_FOREACH(d->links, l)
    {
        l->wanted = false;
    }
    for (size_t i = 0; i < n && want < replicas - 1; i++) {
        if (strcmp(nodes[i].name, me) == 0 || !nodes[i].running)
            continue;
        want++;
        l = link_find(d, nodes[i].name);
        if (!l) {
            l = xcalloc(1, sizeof(*l));
            l->lead = d;
            l->node = xstrdup(nodes[i].name);
            l->fd = -1;
            l->state = L_DOWN;
            DL_APPEND(d->links, l);
        }
        l->wanted = true;
    }
    DL_FOREACH_SAFE(d->links, l, tmp)
    {
        if (!l->wanted)
            link_free(l);
        else if (l->state == L_DOWN && wr_now_ms() >= l->retry_at_ms)
            link_connect(l);
    }
}

/* One cut's frames to a streaming link: written at once from the cut's
 * buffer when nothing waits before them (the usual case), so that only
 * what the socket did not take is copied into the link's output. */
static void
link_send(struct link *l, struct bytes b)
{
    ssize_t n = 0;

    if (l->out.len == l->head) {
        n = write(l->fd, b.ptr, b.len);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            link_down(l, strerror(errno));
            return;
        }
        n = WR_MAX(n, 0);
    }
    if ((size_t)n < b.len) {
        buf_append(&l->out, b.ptr + n, b.len - (size_t)n);
        link_flush(l);
    }
}

/* Ships what the tap holds (and the definitions, if they changed) to
 * every streaming link. */
static void
lead_cut(struct lead *d)
{
    struct link *l, *tmp;
    uint64_t from = d->cut, seq;
    bool defs;

    /* most passes of the loop have nothing new: they return before the
       leading check, which hashes the vhost's name (the acks the cut
       encodes into the tap would be encoded at the next hand-off anyway) */
    seq = vhost_repl_cut(d->vh);
    if (seq == d->cut && d->tap.len == 0 && d->dtap.len == 0 &&
        d->side.len == 0 && d->defs &&
        node_defs_generation(srv->node) == d->defs_gen)
        return;
    if (!cluster_leads(srv->cluster, d->name))
        return;
    defs = defs_refresh(d);
    /* every position a mirror may end at (a PING's too) has its mark */
    if (seq > d->cut) {
        d->cut = seq;
        own_cut(d);
    }
    if (!defs && d->tap.len == 0 && d->dtap.len == 0 && d->side.len == 0)
        return;
    buf_reset(&d->frames);
    if (defs)
        repl_frame_encode(&d->frames, REPL_DEFS, d->epoch, from,
                          bytes_str(d->defs));
    /* side records first: the cut's seq is on its last frame */
    if (d->side.len)
        repl_encode_side(&d->frames, d->epoch, from, d->tap.len ? from : seq,
                         buf_bytes(&d->side));
    if (d->tap.len)
        repl_encode_recs(&d->frames, d->epoch, from, seq, buf_bytes(&d->tap));
    /* after the records: a count may be of a message they bring */
    if (d->dtap.len)
        repl_frame_encode(&d->frames, REPL_DCNT, d->epoch, WR_MAX(seq, from),
                          buf_bytes(&d->dtap));
    buf_reset(&d->tap);
    buf_reset(&d->dtap);
    buf_reset(&d->side);
    d->cut = WR_MAX(d->cut, seq);
    DL_FOREACH_SAFE(d->links, l, tmp)
    {
        if (l->state == L_SNAPSHOT && l->backlog.len > REPL_OUT_MAX) {
            link_down(l, "the mirror is too far behind (snapshot)");
            continue;
        }
        if (l->state == L_SNAPSHOT) {
            buf_append(&l->backlog, d->frames.data, d->frames.len);
            if (defs) /* its DACK comes after the snapshot's */
                dq_push(l, d->defs_gen);
        }
        if (l->state != L_STREAMING)
            continue;
        if (l->out.len - l->head > REPL_OUT_MAX) {
            link_down(l, "the mirror is too far behind");
            continue;
        }
        sent_push(l, d->cut, ev_now(srv->loop));
        if (defs)
            dq_push(l, d->defs_gen);
        link_send(l, buf_bytes(&d->frames));
    }
    window_push(d, from, d->cut, &d->frames, defs ? d->defs_gen : 0);
}

/* ---- snapshots in slices
 *
 * A snapshot is read from the log a slice at a time, before the loop
 * waits for events (ev_prepare), never while the link already holds
 * REPL_SNAP_OUT unsent: publishers and consumers are served between
 * slices, and a slow mirror slows its snapshot, not the loop. A slice is
 * at most 1 MiB and 1,000 messages (a few ms), and slices take at most
 * REPL_SNAP_SHARE of the loop's time while it has other work: the
 * leader's clients keep most of it (issue 12: >= 80% throughput during
 * a catch-up). When the loop has nothing else to do (its lowest-priority
 * ev_idle ran), the next slice goes at once; that ev_idle also keeps the
 * loop from blocking while a slice can go. The cuts made meanwhile wait
 * in the link's backlog (bounded like a slow mirror's output:
 * REPL_OUT_MAX), then follow SYNCED; once the backlog passes a quarter
 * of that bound the share no longer holds, so that a busy leader's
 * snapshot ends rather than starting over. */

#define REPL_SNAP_SLICE (1u << 20)
#define REPL_SNAP_MSGS  1000u
#define REPL_SNAP_SHARE 0.2

static bool snap_loop_idle; /* the ev_idle ran since the last prepare */

static ev_prepare snap_prep;
static ev_idle snap_idle;

/* The streams' next slice, once every message is sent. */
static void
snap_side_step(struct link *l)
{
    struct lead *d = l->lead;
    struct buf side;
    bool done;

    buf_init(&side);
    done = side_snap_next(l->ss, &side, REPL_SNAP_SLICE);
    repl_encode_side(&l->out, d->epoch, l->snap_at, l->snap_at,
                     buf_bytes(&side));
    buf_fini(&side);
    if (done) {
        side_snap_free(l->ss);
        l->ss = NULL;
    }
}

static void
snap_step(struct link *l)
{
    struct lead *d = l->lead;
    double t0 = ev_time(), took;
    struct buf recs;
    size_t nnow;
    struct vh_logged *now;
    char err[512];
    int rc = WR_OK;

    /* the mirror ACKs nothing of a snapshot before SYNCED: its draining
       of the slices (a step runs only below REPL_SNAP_OUT unsent) says
       it is alive meanwhile; a snapshot may outlast REPL_SILENT_S */
    l->last_heard = ev_now(srv->loop);
    if (l->snap_i == l->snap_n && l->ss) {
        snap_side_step(l);
        goto done;
    }
    buf_init(&recs);
    rc =
        vhost_repl_slice(d->vh, l->snap, l->snap_n, &l->snap_i, REPL_SNAP_SLICE,
                         REPL_SNAP_MSGS, &recs, err, sizeof(err));
    repl_encode_recs(&l->out, d->epoch, l->snap_at, l->snap_at,
                     buf_bytes(&recs));
    buf_fini(&recs);
    if (rc == WR_AGAIN && l->snap_moved_at != l->snap_i) {
        /* compaction moved a record since the list was made */
        now = snap_gather(d, &nnow);
        vhost_repl_regather(l->snap, l->snap_n, l->snap_i, now, nnow);
        free(now);
        l->snap_moved_at = l->snap_i;
    } else if (rc != WR_OK) {
        link_down(l, rc == WR_ERR ? err
                                  : "snapshot: a live message's record is "
                                    "gone from the log");
        return;
    }
done:
    took = ev_time() - t0;
    d->snap_step_max = WR_MAX(d->snap_step_max, took);
    l->snap_next = t0 + took / REPL_SNAP_SHARE;
    if (l->snap_i == l->snap_n && !l->ss)
        snap_end(l);
    link_flush(l);
}

static void
snap_prep_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct lead *d;
    struct link *l, *tmp;
    bool any = false, more = false, idle = snap_loop_idle;

    (void)w;
    (void)revents;
    snap_loop_idle = false;
    DL_FOREACH(leads, d)
    {
        DL_FOREACH_SAFE(d->links, l, tmp)
        {
            if (l->state == L_CATCHUP) {
                catch_feed(l, REPL_SNAP_OUT);
                link_flush(l);
                any = any || l->state == L_CATCHUP;
                more = more || (l->state == L_CATCHUP &&
                                l->out.len - l->head < REPL_SNAP_OUT);
                continue;
            }
            if (l->state != L_SNAPSHOT)
                continue;
            /* a backlog a quarter of the way to the limit would end the
               snapshot for nothing: it takes all the time it needs */
            if (l->out.len - l->head < REPL_SNAP_OUT &&
                (idle || ev_time() >= l->snap_next ||
                 l->backlog.len > REPL_OUT_MAX / 4))
                snap_step(l);
            any = any || l->state == L_SNAPSHOT;
            more = more || (l->state == L_SNAPSHOT &&
                            l->out.len - l->head < REPL_SNAP_OUT);
        }
    }
    if (!any)
        ev_prepare_stop(loop, &snap_prep);
    if (more)
        ev_idle_start(loop, &snap_idle);
    else
        ev_idle_stop(loop, &snap_idle);
}

static void
snap_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    /* at the lowest priority it runs only when nothing else is pending;
       its being active keeps the loop from blocking */
    (void)loop;
    (void)w;
    (void)revents;
    snap_loop_idle = true;
}

static void
snap_wanted(void)
{
    ev_prepare_start(srv->loop, &snap_prep);
    ev_idle_start(srv->loop, &snap_idle);
}

/* ---- the in-sync set (ISR) and the confirm limit
 *
 * The in-sync set lives in etcd beside the leader key (cluster.h,
 * cluster_isr_commit): this leader first, then the mirrors that have
 * everything the leader had replication.timeout ago or later (caught_up_at,
 * from the send times of the positions they acked). Changes are fenced
 * transactions, one at a time. Confirms (vhost_set_repl_limit) go up to
 * the lowest position acked by every mirror of the set as committed, and
 * only while the set has min_isr members: a mirror that falls
 * behind holds them until a committed change removes it, never a false
 * confirm. The limit only grows. */

static bool
link_in_sync(const struct link *l, double now)
{
    return l->state == L_STREAMING && l->acked >= l->synced_at &&
           l->caught_up_at > 0 && now - l->caught_up_at <= repl_timeout_s();
}

/* Confirms need this many members: the vhost's min_isr, or every member
 * of a smaller cluster. */
static size_t
min_isr(const struct lead *d)
{
    const struct cluster_node *nodes;
    size_t n = cluster_nodes(srv->cluster, &nodes);
    struct vhost_info vi;
    uint32_t replicas, need;

    vhost_info(d->vh, &vi);
    repl_settings(&vi, &replicas, &need);
    return WR_MIN((size_t)need, WR_MAX(n, (size_t)1));
}

/* Whether any lead blocks its publishers, for ALARM_REPL. */
static bool
any_blocking(void)
{
    for (const struct lead *d = leads; d; d = d->next) {
        if (d->blocking)
            return true;
    }
    return false;
}

/* Publishers are blocked while records past the limit have waited longer
 * than replication.blocked_after with no confirm going out; unblocked
 * when the limit moves. */
static void
hold_update(struct lead *d, double now, bool advanced)
{
    uint32_t after_ms = srv->cfg->repl_blocked_after_ms;
    bool waiting = d->limit < d->cut, block;

    if (!waiting)
        d->waiting_since = 0;
    else if (advanced || d->waiting_since == 0)
        d->waiting_since = now;
    block = after_ms > 0 && waiting && !advanced &&
            now - d->waiting_since >= after_ms / 1000.0;
    if (block == d->blocking)
        return;
    d->blocking = block;
    log_info("vhost '%s': confirms %s for the in-sync set: publishers %s",
             d->name, block ? "wait" : "flow again",
             block ? "blocked" : "unblocked");
    alarm_set_repl(srv, any_blocking());
}

bool
repl_defs_durable(const struct vhost *vh, uint64_t gen)
{
    const struct lead *d;

    for (d = leads; d && d->vh != vh; d = d->next)
        ;
    if (!d)
        return true;
    if (!d->isr_known || d->nisr < min_isr(d) ||
        !cluster_leads(srv->cluster, d->name))
        return false;
    for (size_t i = 1; i < d->nisr; i++) {
        const struct link *l = link_find((struct lead *)d, d->isr[i]);

        if (!l || l->state != L_STREAMING)
            return false;
        /* it acked gen, or the last document that differed, which is
           the one of gen (made at gen or later, unchanged since) */
        if (l->defs_acked < gen &&
            (l->defs_acked < d->defs_new || d->defs_gen < gen))
            return false;
    }
    return true;
}

bool
repl_blocks(const struct vhost *vh)
{
    for (const struct lead *d = leads; d; d = d->next) {
        if (d->vh == vh)
            return d->blocking;
    }
    return false;
}

static void
limit_update(struct lead *d, double now)
{
    uint64_t lim = UINT64_MAX;

    if (!d->isr_known || d->nisr < min_isr(d) ||
        !cluster_leads(srv->cluster, d->name)) {
        if (d->held_since == 0)
            d->held_since = now;
        hold_update(d, now, false);
        return;
    }
    d->held_since = 0;
    for (size_t i = 1; i < d->nisr; i++) {
        struct link *l = link_find(d, d->isr[i]);

        lim = WR_MIN(lim, l && l->state == L_STREAMING ? l->acked : 0);
    }
    if (lim == UINT64_MAX) /* a one-node cluster: the leader's disk */
        lim = UINT64_MAX - 1;
    if (lim > d->limit) {
        d->limit = lim;
        vhost_set_repl_limit(d->vh, lim);
        publish_durable_advanced(d->vh);
        hold_update(d, now, true);
        return;
    }
    hold_update(d, now, false);
}

struct isr_try {
    char *vhost;
    uint64_t epoch;
    char **nodes;
    size_t n;
};

static void
isr_try_free(struct isr_try *t)
{
    for (size_t i = 0; t->nodes && i < t->n; i++)
        free(t->nodes[i]);
    free(t->nodes);
    free(t->vhost);
    free(t);
}

static void
isr_log(const struct lead *d)
{
    struct buf b;

    buf_init(&b);
    for (size_t i = 0; i < d->nisr; i++)
        buf_printf(&b, "%s%s", i ? ", " : "", d->isr[i]);
    buf_put_u8(&b, 0);
    log_info("vhost '%s': in-sync set is now [%s] (epoch %llu)", d->name,
             (const char *)b.data, (unsigned long long)d->epoch);
    buf_fini(&b);
}

static void
isr_done(void *arg, bool committed, int64_t mod)
{
    struct isr_try *t = arg;
    struct lead *d = lead_find(t->vhost);

    if (!d || d->epoch != t->epoch) {
        isr_try_free(t);
        return;
    }
    d->isr_busy = false;
    if (!committed) {
        /* another writer or a stale view: take the view's revision and
           try again at the next tick (or the leader key is gone, and
           this lead with it) */
        int64_t vmod = 0;

        cluster_isr_of(srv->cluster, d->name, &vmod, NULL);
        d->isr_mod = vmod;
        isr_try_free(t);
        return;
    }
    for (size_t i = 0; i < d->nisr; i++)
        free(d->isr[i]);
    free(d->isr);
    d->isr = t->nodes;
    d->nisr = t->n;
    t->nodes = NULL;
    d->isr_mod = mod;
    d->isr_known = true;
    isr_log(d);
    isr_try_free(t);
    limit_update(d, ev_now(srv->loop));
}

static bool
isr_same(const struct lead *d, const char *const *want, size_t n)
{
    if (!d->isr_known || d->nisr != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        bool found = false;

        for (size_t k = 0; k < d->nisr && !found; k++)
            found = strcmp(d->isr[k], want[i]) == 0;
        if (!found)
            return false;
    }
    return true;
}

static void
isr_update(struct lead *d, double now)
{
    const char *want[VHOST_REPL_MAX];
    size_t n = 0, replicas = lead_replicas(d);
    struct link *l;
    struct isr_try *t;

    if (d->isr_busy || !cluster_leads(srv->cluster, d->name))
        return;
    want[n++] = cluster_node_name(srv->cluster);
    DL_FOREACH(d->links, l)
    {
        if (n < replicas && link_in_sync(l, now))
            want[n++] = l->node;
    }
    if (isr_same(d, want, n))
        return;
    if (!d->isr_known)
        cluster_isr_of(srv->cluster, d->name, &d->isr_mod, NULL);
    t = xcalloc(1, sizeof(*t));
    t->vhost = xstrdup(d->name);
    t->epoch = d->epoch;
    t->n = n;
    t->nodes = xcalloc(n, sizeof(*t->nodes));
    for (size_t i = 0; i < n; i++)
        t->nodes[i] = xstrdup(want[i]);
    d->isr_busy = true;
    cluster_isr_commit(srv->cluster, d->name, (int64_t)d->epoch, want, n,
                       d->isr_mod, isr_done, t);
}

/* Every tick: who is in sync, the set, the limit. */
static void
lead_check(struct lead *d, double now)
{
    struct link *l;

    DL_FOREACH(d->links, l)
    {
        /* nothing new since its last ACK: it has everything, now */
        if (l->state == L_STREAMING && l->acked >= d->cut &&
            l->acked >= l->synced_at && l->nsent == l->sent_head)
            l->caught_up_at = now;
    }
    isr_update(d, now);
    limit_update(d, now);
}

/* A leader whose disk has not made the log's tail durable for
 * replication.disk_stall_timeout (its write or fdatasync hangs) resigns
 * the vhost: confirms could not go out anyway, and its lease, kept alive
 * by a loop that still runs, would keep every in-sync mirror from taking
 * over (LavinMQ #2151). Its clients get 320; it stands again after as
 * long again. May free d. */
static void
disk_check(struct lead *d, double now)
{
    uint32_t bound_ms = srv->cfg->repl_disk_stall_ms;
    uint64_t disk = vhost_disk_lsn(d->vh);
    char why[200];

    if (disk >= d->cut || disk != d->disk_seen || d->disk_since == 0) {
        d->disk_seen = disk;
        d->disk_since = now;
        return;
    }
    if (bound_ms == 0 || now - d->disk_since < bound_ms / 1000.0)
        return;
    snprintf(why, sizeof(why),
             "its disk made nothing durable for %.1f s (replication."
             "disk_stall_timeout)",
             now - d->disk_since);
    log_err("vhost '%s': this node resigns as its leader: %s", d->name, why);
    cluster_resign(srv->cluster, d->name, bound_ms, why);
}

void
repl_lead(struct server *s, struct vhost *vh, const char *name, int64_t epoch,
          const struct repl_prev *prev)
{
    struct lead *d = lead_find(name);

    if (!s->cluster)
        return;
    if (d && d->epoch == (uint64_t)epoch && d->vh == vh)
        return;
    if (d)
        repl_unlead(s, name);
    d = xcalloc(1, sizeof(*d));
    d->name = xstrdup(name);
    d->vh = vh;
    d->epoch = (uint64_t)epoch;
    buf_init(&d->tap);
    buf_init(&d->dtap);
    buf_init(&d->side);
    buf_init(&d->frames);
    d->cut = vhost_repl_cut(vh);
    d->win_base = d->cut;
    d->lead_id = ((uint64_t)getpid() << 24 | ++leads_made) & INT64_MAX;
    /* its log may be a copy taken over: marks of this log from now on */
    d->own = own_open(vh);
    own_cut(d);
    /* this lead's first position is the previous lead's end (KIP-101):
       only while the log holds nothing since its recovery (LSN 1, store.h)
       or since the copy was handed over open (prev->start, its position
       then); a record appended before the tap was set would be in no cut */
    if (prev && prev->end && prev->epoch && prev->lead &&
        d->cut == (prev->start ? prev->start : 1)) {
        d->prev_lead = *prev;
        d->prev_lead.start = d->cut;
    } else if (prev && prev->end) {
        log_warn("vhost '%s': its log moved past the copy it took over "
                 "(position %llu) before replication began: no copy of the "
                 "previous lead is truncated in place",
                 name, (unsigned long long)d->cut);
    }
    /* nothing new is confirmed until the in-sync set has it */
    d->limit = d->cut;
    vhost_set_repl_limit(vh, d->limit);
    vhost_repl_tap(vh, &d->tap);
    vhost_repl_dcount_tap(vh, &d->dtap);
    vhost_repl_side_tap(vh, &d->side);
    DL_APPEND(leads, d);
    lead_reconcile(d);
}

void
repl_lead_served(const char *name, double ms)
{
    struct lead *d = lead_find(name);

    if (d)
        d->served_ms = ms;
}

void
repl_unlead(struct server *s, const char *name)
{
    struct lead *d = lead_find(name);

    (void)s;
    if (!d)
        return;
    vhost_repl_tap(d->vh, NULL);
    vhost_repl_dcount_tap(d->vh, NULL);
    vhost_repl_side_tap(d->vh, NULL);
    while (d->links)
        link_free(d->links);
    DL_DELETE(leads, d);
    if (d->blocking)
        alarm_set_repl(srv, any_blocking());
    buf_fini(&d->tap);
    buf_fini(&d->dtap);
    buf_fini(&d->side);
    buf_fini(&d->frames);
    window_free(d);
    for (size_t i = 0; i < d->nisr; i++)
        free(d->isr[i]);
    free(d->isr);
    free(d->defs);
    free(d->name);
    free(d);
}

/* ---- the mirror's side */

static struct parked *
parked_find(const char *vhost)
{
    struct parked *p;

    DL_FOREACH(parked, p)
    {
        if (strcmp(p->vhost, vhost) == 0)
            return p;
    }
    return NULL;
}

/* Takes the parked copy of vhost out; NULL when there is none. */
static struct mirror *
unpark(const char *vhost)
{
    struct parked *p = parked_find(vhost);
    struct mirror *m;

    if (!p)
        return NULL;
    m = p->m;
    DL_DELETE(parked, p);
    free(p->vhost);
    free(p);
    return m;
}

/* Keeps a complete copy open for a failover; closes any other. */
static void
park(const char *vhost, struct mirror *m)
{
    struct mirror_info mi;
    struct parked *p;

    mirror_get_info(m, &mi);
    mirror_close(unpark(vhost));
    if (!mi.synced) {
        mirror_close(m);
        return;
    }
    p = xcalloc(1, sizeof(*p));
    p->vhost = xstrdup(vhost);
    p->m = m;
    DL_APPEND(parked, p);
}

/* Ends the link; returns its copy, still open. */
static struct mirror *
copy_unlink(struct copy *c, const char *why)
{
    struct mirror *m = c->m;

    if (why)
        log_warn("copy of vhost '%s' from node '%s': link dropped: %s",
                 c->vhost, c->leader, why);
    ev_io_stop(srv->loop, &c->rio);
    ev_io_stop(srv->loop, &c->wio);
    close(c->fd);
    buf_fini(&c->in);
    buf_fini(&c->out);
    DL_DELETE(copies, c);
    free(c->vhost);
    free(c->leader);
    free(c);
    return m;
}

/* Ends the link; its copy stays open (parked) if complete. */
static void
copy_free(struct copy *c, const char *why)
{
    char *vhost = xstrdup(c->vhost);

    park(vhost, copy_unlink(c, why));
    free(vhost);
}

static struct copy *
copy_find(const char *vhost)
{
    struct copy *c;

    DL_FOREACH(copies, c)
    {
        if (strcmp(c->vhost, vhost) == 0)
            return c;
    }
    return NULL;
}

void
repl_copy_drop(const char *vhost, const char *why)
{
    struct copy *c = copy_find(vhost);

    if (c)
        mirror_close(copy_unlink(c, why));
    mirror_close(unpark(vhost));
}

struct mirror *
repl_copy_take(const char *vhost, const char *why)
{
    struct copy *c = copy_find(vhost);

    if (c)
        return copy_unlink(c, why);
    return unpark(vhost);
}

void
repl_forget(struct server *s, const char *vhost)
{
    char err[512];

    repl_unlead(s, vhost);
    repl_copy_drop(vhost, NULL);
    if (mirror_remove(s->cfg->data_dir, vhost, err, sizeof(err)) != WR_OK)
        log_warn("copy of deleted vhost '%s': %s", vhost, err);
}

/* ACK what became durable (or, keepalive, the same again: an idle link
 * or one busy with a long snapshot must not look silent to the leader);
 * false when the copy was dropped. */
static bool
copy_ack(struct copy *c, bool keepalive)
{
    uint64_t a = mirror_acked(c->m);
    struct mirror_info mi;

    if (a <= c->acked_sent && !keepalive)
        return true;
    mirror_get_info(c->m, &mi);
    c->acked_sent = WR_MAX(a, c->acked_sent);
    c->last_said = ev_now(srv->loop);
    repl_frame_encode(&c->out, REPL_ACK, mi.epoch, a, bytes_of(NULL, 0));
    if (write_out(c->fd, &c->out, &c->head, &c->wio) == WR_ERR) {
        copy_free(c, strerror(errno));
        return false;
    }
    return true;
}

/* Frames from the leader; false when the copy was dropped. */
static bool
copy_frames(struct copy *c)
{
    struct repl_frame f;
    const char *why = NULL;
    char err[600];
    size_t used;
    int rc;

    while ((rc = repl_frame_parse(buf_bytes(&c->in), true, &f, &used, &why)) ==
           WR_OK) {
        if (mirror_frame(c->m, &f, err, sizeof(err)) != WR_OK) {
            char text[700];

            snprintf(text, sizeof(text), "%s frame: %s", repl_kind_name(f.kind),
                     err);
            copy_free(c, text);
            return false;
        }
        /* the definitions are on disk (written and synced): say so */
        if (f.kind == REPL_DEFS)
            repl_frame_encode(&c->out, REPL_DACK, f.epoch, f.seq,
                              bytes_of(NULL, 0));
        buf_consume(&c->in, used);
    }
    if (c->out.len > c->head &&
        write_out(c->fd, &c->out, &c->head, &c->wio) == WR_ERR) {
        copy_free(c, strerror(errno));
        return false;
    }
    if (rc == WR_ERR) {
        snprintf(err, sizeof(err), "garbage from the leader: %s", why);
        copy_free(c, err);
        return false;
    }
    mirror_flush(c->m);
    /* a position with nothing new to write (a PING, a copy caught up at
       once) is durable already: no store wake-up will come to ACK it */
    mirror_poll(c->m);
    return copy_ack(c, false);
}

static void
copy_readable(struct copy *c)
{
    for (int i = 0; i < 16; i++) {
        uint8_t *dst = buf_reserve(&c->in, REPL_READ);
        ssize_t n = read(c->fd, dst, REPL_READ);

        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n <= 0) {
            copy_free(c,
                      n == 0 ? "the leader closed the link" : strerror(errno));
            return;
        }
        c->in.len += (size_t)n;
        c->last_heard = ev_now(srv->loop);
        if (!copy_frames(c))
            return;
        if ((size_t)n < REPL_READ)
            break;
    }
}

static void
copy_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct copy *c = w->data;

    (void)loop;
    (void)revents;
    if (w == &c->wio) {
        if (write_out(c->fd, &c->out, &c->head, &c->wio) == WR_ERR)
            copy_free(c, strerror(errno));
    } else {
        copy_readable(c);
    }
}

/* Why this node does not take a copy of vhost at epoch, or NULL. */
static const char *
copy_refusal(const char *vhost, int64_t epoch, char *why, size_t n)
{
    struct copy *old = copy_find(vhost);
    struct mirror_info mi;

    if (!node_vhost_find(srv->node, vhost)) {
        snprintf(why, n, "no vhost '%s' on node '%s'", vhost,
                 cluster_node_name(srv->cluster));
        return why;
    }
    if (cluster_leads(srv->cluster, vhost) || lead_find(vhost) != NULL) {
        snprintf(why, n, "node '%s' leads vhost '%s'",
                 cluster_node_name(srv->cluster), vhost);
        return why;
    }
    if (old) {
        mirror_get_info(old->m, &mi);
        if (mi.epoch > (uint64_t)epoch) {
            snprintf(why, n, "epoch %lld is older than epoch %llu",
                     (long long)epoch, (unsigned long long)mi.epoch);
            return why;
        }
    }
    return NULL;
}

static int
own_move(const char *logdir, void *arg, char *err, size_t errlen)
{
    return node_vhost_release_log(srv->node, arg, logdir, err, errlen);
}

/*
 * KIP-101 for the old leader: this node led the vhost (its own log has
 * marks of that lead's cuts) and another node's link of a newer epoch
 * arrives: the log becomes this node's copy of the lead it ended
 * (cluster/mirror.h mirror_copy_from_own), which mirror_open then cuts
 * back to where that lead ended on the new leader, or a snapshot
 * replaces. Not when the node holds a copy of that epoch or a newer one
 * already (its own log is older than that).
 */
static void
own_to_copy(const char *vhost, uint64_t epoch)
{
    struct vhost *vh = node_vhost_find(srv->node, vhost);
    struct own *o = vh ? own_find(vh) : NULL;
    uint64_t own_epoch, own_lead, copy_epoch = 0;
    bool synced;
    char err[1024], *defs;
    json_t *doc;
    struct mirror_own mo;

    if (!o || vhost_is_serving(vh) ||
        !marks_last_cut(vhost_repl_dir(vh), &own_epoch, &own_lead) ||
        own_epoch >= epoch ||
        mirror_copy_state(srv->cfg->data_dir, vhost, &copy_epoch, &synced, err,
                          sizeof(err)) != WR_OK ||
        copy_epoch >= own_epoch)
        return;
    doc = node_defs_export(srv->node, vhost);
    defs = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(doc);
    own_free(o); /* its last deletions on file, closed */
    mo = (struct mirror_own){.data_dir = srv->cfg->data_dir,
                             .vhost = vhost,
                             .defs = defs,
                             .epoch = own_epoch,
                             .move = own_move,
                             .arg = vh};
    if (mirror_copy_from_own(&mo, err, sizeof(err)) != WR_OK)
        log_warn("vhost '%s': this node's log of epoch %llu cannot become "
                 "its copy (%s); the leader sends a snapshot",
                 vhost, (unsigned long long)own_epoch, err);
    else
        log_info("vhost '%s': this node's log of epoch %llu (lead %llu), "
                 "which it led, is its copy now",
                 vhost, (unsigned long long)own_epoch,
                 (unsigned long long)own_lead);
    free(defs);
}

void
repl_take(int fd, const char *addr, const struct peer_auth *a,
          struct bytes early, struct buf *out, size_t head)
{
    json_t *doc =
        json_loadb((const char *)a->payload.ptr, a->payload.len, 0, NULL);
    const char *vhost = json_string_value(json_object_get(doc, "vhost"));
    json_int_t epoch = json_integer_value(json_object_get(doc, "epoch"));
    json_int_t lead_id = json_integer_value(json_object_get(doc, "lead"));
    struct repl_prev prev;
    const char *prev_why = NULL;
    struct mirror_config mc = {0};
    struct mirror *m = NULL;
    struct copy *c, *old;
    char why[600], node[256], offer[256] = "";
    const char *refused = NULL;
    struct mirror_info mi;

    snprintf(node, sizeof(node), "%.*s", BYTES_FMT(a->node));
    if (!vhost || !vhost[0] || epoch <= 0) {
        refused = "garbage: a replication hand-over that does not parse";
    } else if (!repl_prev_parse(a->payload, &prev, &prev_why)) {
        refused = prev_why;
    } else if (!srv->cluster) {
        refused = "this node is not in a cluster";
    } else {
        refused = copy_refusal(vhost, epoch, why, sizeof(why));
    }
    if (!refused) {
        /* a newer leader's link replaces an older one's; a copy kept
           since the last link is opened again (its position written) */
        old = copy_find(vhost);
        if (old)
            mirror_close(copy_unlink(old, "a newer link from the leader"));
        mirror_close(unpark(vhost));
        mc.data_dir = srv->cfg->data_dir;
        mc.vhost = vhost;
        mc.fsync = srv->cfg->fsync;
        mc.fsync_interval_ms = srv->cfg->fsync_interval_ms;
        mc.segment_size = srv->cfg->segment_size;
        mc.wake = loop_store_wake;
        mc.wake_arg = srv;
        mc.lead = lead_id > 0 ? (uint64_t)lead_id : 0;
        mc.prev = prev;
        own_to_copy(vhost, (uint64_t)epoch);
        if (mirror_open(&mc, (uint64_t)epoch, &m, why, sizeof(why)) != WR_OK)
            refused = why;
    }
    if (!refused) {
        /* a complete copy of this epoch offers where it stands */
        mirror_get_info(m, &mi);
        if (mi.resume && mi.resume_lead && mi.truncated)
            snprintf(offer, sizeof(offer),
                     "{\"epoch\":%llu,\"position\":%llu,\"lead\":%llu,"
                     "\"truncated\":%llu}",
                     (unsigned long long)mi.epoch,
                     (unsigned long long)mi.resume,
                     (unsigned long long)mi.resume_lead,
                     (unsigned long long)mi.truncated);
        else if (mi.resume && mi.resume_lead)
            snprintf(offer, sizeof(offer),
                     "{\"epoch\":%llu,\"position\":%llu,\"lead\":%llu}",
                     (unsigned long long)mi.epoch,
                     (unsigned long long)mi.resume,
                     (unsigned long long)mi.resume_lead);
    }
    peer_ok_encode(cluster_secret(srv->cluster), a->client_nonce,
                   refused ? PEER_REFUSED : PEER_OK, refused ? refused : offer,
                   out);
    if (refused) {
        log_warn("replication link from node '%s' (%s) refused: %s", node, addr,
                 refused);
        if (write(fd, out->data + head, out->len - head) < 0) {
            /* best effort: the leader logs the closed link instead */
        }
        close(fd);
        json_decref(doc);
        return;
    }
    c = xcalloc(1, sizeof(*c));
    c->vhost = xstrdup(vhost);
    c->leader = xstrdup(node);
    c->fd = fd;
    c->m = m;
    c->last_heard = ev_now(srv->loop);
    buf_init(&c->in);
    buf_init(&c->out);
    buf_append(&c->out, out->data + head, out->len - head);
    buf_append(&c->in, early.ptr, early.len);
    ev_io_init(&c->rio, copy_io_cb, fd, EV_READ);
    ev_io_init(&c->wio, copy_io_cb, fd, EV_WRITE);
    c->rio.data = c->wio.data = c;
    DL_APPEND(copies, c);
    log_info("keeping a copy of vhost '%s' led by node '%s' (epoch %lld)",
             vhost, node, (long long)epoch);
    json_decref(doc);
    ev_io_start(srv->loop, &c->rio);
    if (write_out(c->fd, &c->out, &c->head, &c->wio) == WR_ERR) {
        copy_free(c, strerror(errno));
        return;
    }
    if (c->in.len)
        copy_frames(c);
}

/* ---- the loop's calls */

void
repl_pump(struct server *s)
{
    struct lead *d;
    struct copy *c;

    (void)s;
    DL_FOREACH(leads, d)
    {
        lead_cut(d);
        if (d->acks_new) {
            d->acks_new = false;
            limit_update(d, ev_now(srv->loop));
        }
    }
    conn_release_held(srv);
    DL_FOREACH(copies, c)
    {
        mirror_flush(c->m);
    }
}

void
repl_poll(struct server *s)
{
    struct copy *c, *tmp;

    (void)s;
    DL_FOREACH_SAFE(copies, c, tmp)
    {
        mirror_poll(c->m);
        copy_ack(c, false);
    }
}

static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lead *d, *dtmp;
    struct link *l, *ltmp;
    struct copy *c, *ctmp;
    double now = ev_now(loop);

    (void)w;
    (void)revents;
    DL_FOREACH(leads, d)
    {
        lead_reconcile(d);
        lead_cut(d);
        lead_check(d, now);
        DL_FOREACH_SAFE(d->links, l, ltmp)
        {
            if (l->state == L_DOWN)
                continue;
            if (now - l->last_heard > REPL_SILENT_S) {
                link_down(l, "the mirror was silent for 10 s");
            } else if (l->state == L_STREAMING && l->out.len == 0 && !l->ss) {
                repl_frame_encode(&l->out, REPL_PING, d->epoch, d->cut,
                                  bytes_of(NULL, 0));
                link_flush(l);
            } else if (l->state < L_STREAMING &&
                       now - l->last_heard > REPL_HANDSHAKE_S) {
                link_down(l, "no handshake within 5 s");
            }
        }
    }
    DL_FOREACH_SAFE(leads, d, dtmp)
    {
        disk_check(d, now);
    }
    DL_FOREACH_SAFE(copies, c, ctmp)
    {
        if (now - c->last_heard > REPL_SILENT_S)
            copy_free(c, "the leader was silent for 10 s");
        else if (now - c->last_said >= REPL_PING_S)
            copy_ack(c, true);
    }
    loop_pump(srv);
}

void
repl_init(struct server *s)
{
    ev_timer_init(&tick, tick_cb, REPL_TICK_S, REPL_TICK_S);
    ev_timer_start(s->loop, &tick);
    ev_prepare_init(&snap_prep, snap_prep_cb);
    ev_idle_init(&snap_idle, snap_idle_cb);
    ev_set_priority(&snap_idle, EV_MINPRI);
    inited = true;
}

void
repl_fini(struct server *s)
{
    if (!inited)
        return;
    while (leads)
        repl_unlead(s, leads->name);
    while (copies)
        mirror_close(copy_unlink(copies, NULL));
    while (parked)
        mirror_close(unpark(parked->vhost));
    ev_timer_stop(s->loop, &tick);
    ev_prepare_stop(s->loop, &snap_prep);
    ev_idle_stop(s->loop, &snap_idle);
    inited = false;
}

/* ---- management: queues' members */

json_t *
repl_queue_members(const char *vhost, bool durable)
{
    struct lead *d = lead_find(vhost);
    const char *me;
    json_t *members, *online, *slaves, *synced;
    struct link *l;

    if (!d || !srv->cluster)
        return NULL;
    me = cluster_node_name(srv->cluster);
    members = json_pack("[s]", me);
    online = json_pack("[s]", me);
    slaves = json_array();
    synced = json_array();
    DL_FOREACH(d->links, l)
    {
        if (!durable)
            break;
        json_array_append_new(members, json_string(l->node));
        json_array_append_new(slaves, json_string(l->node));
        if (l->state == L_STREAMING)
            json_array_append_new(online, json_string(l->node));
        for (size_t i = 1; i < d->nisr; i++) {
            if (strcmp(d->isr[i], l->node) == 0)
                json_array_append_new(synced, json_string(l->node));
        }
    }
    return json_pack("{s:s, s:o, s:o, s:o, s:o}", "leader", me, "members",
                     members, "online", online, "slave_nodes", slaves,
                     "synchronised_slave_nodes", synced);
}

/* ---- management: GET /api/replication (this node's view) */

json_t *
repl_info(void)
{
    json_t *o = json_object(), *ls = json_array(), *cs = json_array();
    struct lead *d;
    struct copy *c;

    DL_FOREACH(leads, d)
    {
        json_t *ms = json_array();
        struct link *l;

        DL_FOREACH(d->links, l)
        {
            json_array_append_new(ms, json_pack("{s:s, s:s, s:I, s:s, s:s?}",
                                                "node", l->node, "state",
                                                state_names[l->state], "acked",
                                                (json_int_t)l->acked, "error",
                                                l->why, "start", l->start));
        }
        json_t *isr = json_array();

        for (size_t i = 0; i < d->nisr; i++)
            json_array_append_new(isr, json_string(d->isr[i]));
        json_array_append_new(
            ls, json_pack("{s:s, s:I, s:I, s:I, s:o, s:b, s:o}", "vhost",
                          d->name, "epoch", (json_int_t)d->epoch, "position",
                          (json_int_t)d->cut, "confirmed_up_to",
                          (json_int_t)WR_MIN(d->limit, d->cut), "isr", isr,
                          "confirms_held", d->held_since > 0, "mirrors", ms));
        /* streams started with a snapshot / from a position (catch-up) */
        json_t *last = json_array_get(ls, json_array_size(ls) - 1);

        json_object_set_new(last, "snapshots",
                            json_integer((json_int_t)d->snapshots));
        json_object_set_new(last, "catch_ups",
                            json_integer((json_int_t)d->catch_ups));
        json_object_set_new(last, "truncations",
                            json_integer((json_int_t)d->truncations));
        if (d->prev_lead.end)
            json_object_set_new(last, "previous_lead",
                                prev_json(&d->prev_lead));
        json_object_set_new(last, "snapshot_slice_max_ms",
                            json_real(d->snap_step_max * 1e3));
        json_object_set_new(last, "served_after_ms", json_real(d->served_ms));
        json_object_set_new(last, "on_disk",
                            json_integer((json_int_t)vhost_disk_lsn(d->vh)));
    }
    DL_FOREACH(copies, c)
    {
        struct mirror_info mi;

        mirror_get_info(c->m, &mi);
        json_array_append_new(
            cs, json_pack("{s:s, s:s, s:I, s:I, s:I, s:b, s:I}", "vhost",
                          c->vhost, "leader", c->leader, "epoch",
                          (json_int_t)mi.epoch, "position", (json_int_t)mi.seq,
                          "acked", (json_int_t)mi.acked, "synced", mi.synced,
                          "messages", (json_int_t)mi.live_msgs));
        if (mi.truncated)
            json_object_set_new(json_array_get(cs, json_array_size(cs) - 1),
                                "truncated_at",
                                json_integer((json_int_t)mi.truncated));
    }
    json_object_set_new(o, "leads", ls);
    json_object_set_new(o, "copies", cs);
    return o;
}
