/*
 * alarm.c: resource alarms and flow control, which stop publishers
 * instead of letting memory or disk run out.
 *
 *   memory alarm  the process's resident memory is above the memory high
 *                 watermark (vm_memory_high_watermark.*);
 *   disk alarm    free space in data_dir is below disk_free_limit.*, or
 *                 a vhost's log waits for disk space (a write found the
 *                 disk full; vhost/persist.c node_disk_full), until both
 *                 are over;
 *   flow          the loop has more log records queued for the disk than
 *                 FLOW_HIGH bytes (the disk is slower than the network);
 *                 released below FLOW_LOW. Not an alarm: nobody is told,
 *                 as with RabbitMQ's credit flow.
 *
 * (Credit flow proper, which holds a publisher while a queue it feeds
 * fills faster than its consumers drain it, is flow.c's.)
 *
 * While any of them holds, a connection that publishes is blocked: the
 * broker stops reading from it (after the frame that published), and,
 * for an alarm, sends connection.blocked ("low on memory", "low on disk",
 * joined by " & " as RabbitMQ does) if the client announced the
 * capability. Connections that only consume are not blocked, so
 * consumers keep draining queues. When everything clears, blocked
 * connections get connection.unblocked and are read again.
 *
 * A replicated vhost whose confirms have waited for its in-sync set longer
 * than replication.blocked_after (replication.c) blocks its publishers
 * the same way, with the reason REPL_REASON, and only them.
 *
 * The alarms are checked once a second; flow at every loop iteration.
 * Between two readings of the resident size, the memory alarm also
 * watches the allocation path: every message allocated checks an
 * estimate, the resident size at the last reading minus what messages
 * and the logs' write buffers held then, plus what they hold now
 * (alarm_note_memory). A flood of publishes trips the alarm at the
 * message that crosses the watermark instead of up to a second later,
 * which let resident memory overshoot by half (issue 10).
 */
#include "server/channel.h"

#include <stdio.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <utlist.h>

#define FLOW_HIGH   (64u << 20)
#define FLOW_LOW    (16u << 20)

#define REPL_REASON "replication: waiting for in-sync replicas"

uint64_t
alarm_resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, rss = 0;

    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

uint64_t
alarm_total_ram(const struct wr_config *cfg)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

    if (cfg->total_memory_available_override)
        return cfg->total_memory_available_override;
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size
                                 : UINT64_C(1) << 30;
}

uint64_t
alarm_memory_watermark(const struct wr_config *cfg)
{
    if (cfg->vm_memory_high_watermark_absolute)
        return cfg->vm_memory_high_watermark_absolute;
    return (uint64_t)(cfg->vm_memory_high_watermark_relative *
                      (double)alarm_total_ram(cfg));
}

/* Memory for message bodies before queues page to disk: the configured
 * queue_memory_budget, else half the memory high watermark (so paging
 * starts well before the alarm blocks publishers). */
uint64_t
alarm_memory_budget(const struct wr_config *cfg)
{
    return cfg->memory_budget ? cfg->memory_budget
                              : alarm_memory_watermark(cfg) / 2;
}

static uint64_t
disk_limit(const struct wr_config *cfg)
{
    if (cfg->disk_free_limit_relative > 0)
        return (uint64_t)(cfg->disk_free_limit_relative *
                          (double)alarm_total_ram(cfg));
    return cfg->disk_free_limit_absolute;
}

/* The reason text for connection.blocked. */
static void
reason_text(uint32_t alarms, char *out, size_t n)
{
    snprintf(out, n, "%s%s%s", alarms & ALARM_MEMORY ? "low on memory" : "",
             (alarms & ALARM_MEMORY) && (alarms & ALARM_DISK) ? " & " : "",
             alarms & ALARM_DISK ? "low on disk" : "");
}

void
alarm_block(struct conn *c)
{
    struct amqp_method m = {.id = AMQP_CONNECTION_BLOCKED};
    uint32_t alarms = srv->alarms & (ALARM_MEMORY | ALARM_DISK);
    char reason[64];

    if (!c->blocked) {
        c->blocked = true;
        conn_update_reading(c);
    }
    if (!alarms && (srv->alarms & ALARM_REPL) && c->vh && repl_blocks(c->vh))
        snprintf(reason, sizeof(reason), "%s", REPL_REASON);
    else
        reason_text(alarms, reason, sizeof(reason));
    if (reason[0] && c->cap_blocked && !c->blocked_sent &&
        c->state == CONN_OPEN) {
        m.u.connection_blocked.reason = bytes_str(reason);
        conn_send_method(c, 0, &m);
        c->blocked_sent = true;
    }
}

static void
unblock(struct conn *c)
{
    struct amqp_method m = {.id = AMQP_CONNECTION_UNBLOCKED};

    if (c->blocked_sent && c->state == CONN_OPEN)
        conn_send_method(c, 0, &m);
    c->blocked_sent = false;
    if (c->blocked) {
        c->blocked = false;
        c->resume_input = true; /* frames that waited in `in` */
        conn_pending(c);
    }
}

bool
alarm_should_block(const struct conn *c)
{
    uint32_t a = srv->alarms;

    return ((a & ~(ALARM_SATURATED | ALARM_REPL)) && c->published) ||
           ((a & ALARM_SATURATED) && c->feeding) ||
           ((a & ALARM_REPL) && c->published && c->vh && repl_blocks(c->vh));
}

/* Applies a change of srv->alarms to every connection (and, with
 * ALARM_REPL, a change of which vhosts block: force). */
static void
apply_to_conns(struct server *s, uint32_t old, bool force)
{
    struct conn *c, *tmp;

    if (s->alarms == old && !force)
        return;
    DL_FOREACH_SAFE(s->conns, c, tmp)
    {
        if (alarm_should_block(c))
            alarm_block(c);
        else if (c->blocked)
            unblock(c);
    }
}

static void
apply(struct server *s, uint32_t old)
{
    apply_to_conns(s, old, false);
}

void
alarm_set_repl(struct server *s, bool any)
{
    uint32_t old = s->alarms;

    if (any)
        s->alarms |= ALARM_REPL;
    else
        s->alarms &= ~ALARM_REPL;
    apply_to_conns(s, old, true);
}

static void
set_alarm(struct server *s, uint32_t bit, bool on, const char *what,
          uint64_t value, uint64_t limit)
{
    uint32_t old = s->alarms;

    if (on == ((s->alarms & bit) != 0))
        return;
    if (on) {
        s->alarms |= bit;
        log_warn("%s alarm set: %llu bytes against a limit of %llu. "
                 "Publishers are blocked until it clears.",
                 what, (unsigned long long)value, (unsigned long long)limit);
    } else {
        s->alarms &= ~bit;
        log_warn("%s alarm cleared (%llu bytes, limit %llu)", what,
                 (unsigned long long)value, (unsigned long long)limit);
    }
    apply(s, old);
}

/* The resident bytes beside the tracked ones, for the estimate: the
 * largest of the last MEM_BASE_SAMPLES readings. A reading taken while a
 * buffer had grown but was not yet filled sees too little, and the
 * estimate must not run low. */
static void
note_base(struct server *s, uint64_t base)
{
    s->mem_bases[s->mem_nbase++ % MEM_BASE_SAMPLES] = base;
    s->mem_base = 0;
    for (size_t i = 0; i < MEM_BASE_SAMPLES; i++)
        s->mem_base = WR_MAX(s->mem_base, s->mem_bases[i]);
}

/* Bytes the estimate follows between readings of the resident size:
 * messages, and the logs' write buffers as of this iteration plus what
 * was appended since. */
static uint64_t
tracked_bytes(const struct server *s)
{
    return message_memory() + s->log_memory +
           (node_log_appended(s->node) - s->log_appended);
}

void
alarm_note_memory(struct server *s)
{
    uint64_t est;

    if ((s->alarms & ALARM_MEMORY) || !s->mem_mark)
        return;
    est = s->mem_base + tracked_bytes(s);
    if (est > s->mem_mark)
        set_alarm(s, ALARM_MEMORY, true, "memory", est, s->mem_mark);
}

void
alarm_check(struct server *s)
{
    uint64_t rss = alarm_resident_bytes(),
             mark = alarm_memory_watermark(s->cfg);
    uint64_t need = disk_limit(s->cfg), tracked = tracked_bytes(s);
    struct statvfs st;

    s->mem_mark = rss ? mark : 0;
    note_base(s, rss > tracked ? rss - tracked : 0);
    /* A watermark of 0 (vm_memory_high_watermark.relative = 0) holds the
     * alarm for good: no publishing at all, as RabbitMQ documents. */
    if (rss)
        set_alarm(s, ALARM_MEMORY,
                  mark == 0 || rss > mark || s->mem_base + tracked > mark,
                  "memory", rss, mark);
    if (statvfs(s->cfg->data_dir, &st) == 0) {
        uint64_t free_bytes = (uint64_t)st.f_bavail * st.f_frsize;

        /* a log that waits for space holds the alarm too, limit or not */
        set_alarm(s, ALARM_DISK,
                  (need && free_bytes < need) || node_disk_full(s->node),
                  "disk", free_bytes, need);
    }
}

void
alarm_check_flow(struct server *s)
{
    uint64_t backlog;
    uint32_t old = s->alarms;

    node_log_backlog(s->node, &backlog, &s->log_memory);
    s->log_appended = node_log_appended(s->node);
    if (!(s->alarms & ALARM_FLOW) && backlog > FLOW_HIGH)
        s->alarms |= ALARM_FLOW;
    else if ((s->alarms & ALARM_FLOW) && backlog < FLOW_LOW)
        s->alarms &= ~ALARM_FLOW;
    apply(s, old);
}

/*
 * Saturation: every 100 ms, the share of time the loop spent waiting in
 * epoll. Under 2% the broker is CPU bound; a connection that keeps
 * feeding queues whose consumers wait for it (c->feeding: a publish went
 * to a queue with consumers and a backlog) is then read no more until
 * the loop idles 10% again, so that deliveries get their share instead
 * of the backlog growing by millions (RabbitMQ's credit flow ends in the
 * same place). An unsaturated broker absorbs bursts at full speed, and
 * queues without consumers never slow anyone.
 */
void
alarm_loop_waited(struct server *s, double waited, double now)
{
    double span;
    uint32_t old = s->alarms;

    s->sat_waited += waited;
    span = now - s->sat_since;
    if (span < 0.1)
        return;
    if (s->sat_waited / span < 0.02)
        s->alarms |= ALARM_SATURATED;
    else if (s->sat_waited / span > 0.10)
        s->alarms &= ~ALARM_SATURATED;
    s->sat_since = now;
    s->sat_waited = 0;
    /* While saturated, wake up every 10 ms to look again: with the
     * feeders blocked and consumers drained, nothing else might. */
    if ((s->alarms & ALARM_SATURATED) && !ev_is_active(&s->sat_timer))
        ev_timer_start(s->loop, &s->sat_timer);
    else if (!(s->alarms & ALARM_SATURATED) && ev_is_active(&s->sat_timer))
        ev_timer_stop(s->loop, &s->sat_timer);
    if (!(s->alarms & ALARM_SATURATED) && (old & ALARM_SATURATED)) {
        struct conn *c;

        /* start afresh: feeding is re-learnt from the next publishes */
        for (c = s->conns; c; c = c->next)
            c->feeding = false;
    }
    apply(s, old);
}

static void
alarm_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    alarm_check(srv);
}

static void
sat_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

void
alarm_init(struct server *s)
{
    ev_timer_init(&s->sat_timer, sat_timer_cb, 0.01, 0.01);
    ev_timer_init(&s->alarm_timer, alarm_timer_cb, 1.0, 1.0);
    ev_timer_start(s->loop, &s->alarm_timer);
    alarm_check(s);
}
