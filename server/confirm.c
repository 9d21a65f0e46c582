/*
 * confirm.c: the confirm list of a channel in confirm mode: which
 * publishes are not answered yet, and the answers due.
 *
 * After confirm.select every publish gets the next sequence number from
 * 1. A publish that reached its queues, and whose log record (if any) is
 * durable, is confirmed at once; one whose record is not durable yet
 * waits here with the record's LSN (and, appended to a stream under
 * fsync = always, with the stream sync batch it needs: it waits for
 * both); one that was refused (a queue at its
 * x-max-length with reject-publish, a log that refused it) waits here to
 * be nacked in its turn. Answers go out in sequence order and coalesced:
 * one basic.ack with multiple=true covers every publish up to the first
 * that still waits.
 *
 *   given seqs 1-7, waiting (seq, lsn): (3, 90) (5, NACK) (6, 120)
 *   settle, durable up to 100: basic.ack 4 multiple (1-4), basic.nack 5;
 *   6 and 7 wait for 120 (7 needs nothing from the log, but comes after
 *   6).
 *
 * Invariants: seqs in `wait` strictly increase and exceed `upto`; their
 * LSNs and sync batches (NACK aside) never decrease; nothing here knows
 * sockets: the channel (publish.c) sends the answers settle hands it.
 */
#include "server/channel.h"

uint64_t
confirm_next(struct confirm_list *l)
{
    return ++l->seq;
}

static void
push(struct confirm_list *l, uint64_t seq, uint64_t lsn, uint64_t sync)
{
    struct confirm_wait *w = ring_push_back(&l->wait, sizeof(*w));

    WR_ASSERT(seq > l->upto);
    w->seq = seq;
    w->lsn = lsn;
    w->sync = sync;
}

void
confirm_wait(struct confirm_list *l, uint64_t seq, uint64_t lsn, uint64_t sync)
{
    push(l, seq, lsn, sync);
}

void
confirm_refuse(struct confirm_list *l, uint64_t seq)
{
    push(l, seq, CONFIRM_NACK, 0);
}

size_t
confirm_waiting(const struct confirm_list *l)
{
    return l->wait.n;
}

/* Answers every publish up to seq not answered yet. */
static void
answer_upto(struct confirm_list *l, uint64_t seq, bool ack,
            confirm_answer_fn *answer, void *arg)
{
    if (seq <= l->upto)
        return;
    answer(arg, seq, seq - l->upto > 1, ack);
    l->upto = seq;
}

void
confirm_settle(struct confirm_list *l, const struct confirm_durable *d,
               confirm_answer_fn *answer, void *arg)
{
    while (l->wait.n > 0) {
        struct confirm_wait *w = ring_at(&l->wait, sizeof(*w), 0);
        uint64_t seq = w->seq;
        bool log_wait = w->lsn > d->lsn, sync_wait = w->sync > d->sync;

        if (w->lsn != CONFIRM_NACK && !log_wait && !sync_wait) {
            ring_pop_front(&l->wait);
            continue;
        }
        /* Not durable yet: it waits, unless what it waits for failed
         * before the record was safe (then it is refused). */
        if (w->lsn != CONFIRM_NACK && !(log_wait && d->log_failed) &&
            !(sync_wait && d->sync_failed))
            break;
        answer_upto(l, seq - 1, true, answer, arg);
        answer_upto(l, seq, false, answer, arg);
        ring_pop_front(&l->wait);
    }
    if (l->wait.n > 0) {
        const struct confirm_wait *w = ring_at(&l->wait, sizeof(*w), 0);

        answer_upto(l, w->seq - 1, true, answer, arg);
    } else {
        answer_upto(l, l->seq, true, answer, arg);
    }
}

void
confirm_fini(struct confirm_list *l)
{
    ring_fini(&l->wait);
}
