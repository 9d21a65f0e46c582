/*
 * Unit tests for cluster/mirror_marks.c: where the leader's cuts end in a
 * mirror's copy, for a truncation in place. A mark is found by (epoch,
 * lead, position) after a close and reopen; a segment deletion planned
 * after it makes it unusable, before one it does not; the files rotate
 * and keep the newest marks; a damaged entry is skipped, not trusted.
 */
#include "cluster/mirror_marks.h"
#include "test/harness/t.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static int
find(uint64_t lead, uint64_t seq, uint64_t *pos)
{
    uint64_t dclen;
    char why[256];

    return marks_find(t_tmpdir(), 5, lead, seq, pos, &dclen, why, sizeof(why));
}

T_CASE(a_mark_is_found_after_a_reopen_with_its_position)
{
    struct marks *mk = marks_open(t_tmpdir());
    uint64_t pos = 0, dclen = 0;
    char why[256] = "";

    for (uint64_t s = 1; s <= 100; s++)
        marks_cut(mk, 5, 77, s * 10, 1000 + s, s * 40);
    marks_write(mk, true);
    marks_close(mk);
    T_EQ_INT(marks_find(t_tmpdir(), 5, 77, 500, &pos, &dclen, why, sizeof(why)),
             WR_OK);
    T_EQ_INT(pos, 1050);
    T_EQ_INT(dclen, 2000);
    /* another lead, another epoch, a position no cut ended at */
    T_EQ_INT(find(78, 500, &pos), WR_ERR);
    T_EQ_INT(marks_find(t_tmpdir(), 6, 77, 500, &pos, &dclen, why, sizeof(why)),
             WR_ERR);
    T_EQ_INT(find(77, 505, &pos), WR_ERR);
    T_ASSERT(strstr(why, "no mark") != NULL);
}

T_CASE(a_deletion_after_a_mark_makes_it_unusable)
{
    struct marks *mk = marks_open(t_tmpdir());
    uint64_t pos;
    uint64_t dclen;
    char why[256] = "";

    marks_cut(mk, 5, 77, 10, 100, 0);
    marks_unlinks(mk, 1); /* a segment planned for deletion */
    marks_cut(mk, 5, 77, 20, 200, 0);
    marks_cut(mk, 5, 77, 30, 300, 0);
    marks_unlinks(mk, 1); /* unchanged: nothing logged */
    marks_write(mk, true);
    marks_close(mk);
    T_EQ_INT(find(77, 20, &pos), WR_OK);
    T_EQ_INT(pos, 200);
    T_EQ_INT(marks_find(t_tmpdir(), 5, 77, 10, &pos, &dclen, why, sizeof(why)),
             WR_ERR);
    T_ASSERT(strstr(why, "deleted segments") != NULL);
    /* the count goes on across opens: a new open's first deletion is a
       deletion after every earlier mark */
    mk = marks_open(t_tmpdir());
    marks_unlinks(mk, 0);
    marks_write(mk, true);
    T_EQ_INT(find(77, 30, &pos), WR_OK);
    marks_unlinks(mk, 1);
    marks_write(mk, true);
    T_EQ_INT(find(77, 30, &pos), WR_ERR);
    marks_cut(mk, 5, 77, 40, 400, 0);
    marks_close(mk);
    T_EQ_INT(find(77, 40, &pos), WR_OK);
    /* a reset (a snapshot, a truncation) forgets every mark */
    mk = marks_open(t_tmpdir());
    marks_reset(mk);
    marks_close(mk);
    T_EQ_INT(find(77, 40, &pos), WR_ERR);
}

T_CASE(the_files_rotate_and_keep_the_newest_marks)
{
    struct marks *mk = marks_open(t_tmpdir());
    uint64_t pos;

    for (uint64_t s = 1; s <= 40000; s++) {
        marks_cut(mk, 5, 77, s, s * 8, 0);
        if (s % 1000 == 0)
            marks_write(mk, true);
    }
    marks_close(mk);
    T_EQ_INT(find(77, 40000, &pos), WR_OK);
    T_EQ_INT(pos, 320000);
    T_EQ_INT(find(77, 30000, &pos), WR_OK);
    T_EQ_INT(find(77, 1, &pos), WR_ERR); /* rotated away */
    /* a reopen appends after the newest */
    mk = marks_open(t_tmpdir());
    marks_cut(mk, 5, 77, 40001, 9, 0);
    marks_close(mk);
    T_EQ_INT(find(77, 40001, &pos), WR_OK);
    T_EQ_INT(pos, 9);
}

T_CASE(a_damaged_entry_is_skipped)
{
    struct marks *mk = marks_open(t_tmpdir());
    char path[600];
    uint64_t pos;
    int fd;

    marks_cut(mk, 5, 77, 10, 100, 0);
    marks_cut(mk, 5, 77, 20, 200, 0);
    marks_close(mk);
    snprintf(path, sizeof(path), "%s/marks.0", t_tmpdir());
    fd = open(path, O_WRONLY);
    T_ASSERT(fd >= 0);
    T_EQ_INT(pwrite(fd, "\xff", 1, 72 + 40), 1); /* the second's pos */
    close(fd);
    T_EQ_INT(find(77, 10, &pos), WR_OK);
    T_EQ_INT(find(77, 20, &pos), WR_ERR);
}

/* A leader's own log says which lead it ended (the newest cut mark),
 * whatever deletions were logged after it. */
T_CASE(the_last_cut_names_the_lead_the_log_ended)
{
    struct marks *mk = marks_open(t_tmpdir());
    uint64_t epoch = 1, lead = 1;

    T_ASSERT(!marks_last_cut(t_tmpdir(), &epoch, &lead));
    T_EQ_INT(epoch, 0);
    marks_cut(mk, 5, 77, 10, 100, 0);
    marks_cut(mk, 7, 91, 1, 300, 0);
    marks_unlinks(mk, 1);
    marks_close(mk);
    T_ASSERT(marks_last_cut(t_tmpdir(), &epoch, &lead));
    T_EQ_INT(epoch, 7);
    T_EQ_INT(lead, 91);
}

static const struct t_case cases[] = {
    T_REG(a_mark_is_found_after_a_reopen_with_its_position),
    T_REG(a_deletion_after_a_mark_makes_it_unusable),
    T_REG(the_files_rotate_and_keep_the_newest_marks),
    T_REG(a_damaged_entry_is_skipped),
    T_REG(the_last_cut_names_the_lead_the_log_ended),
};

T_MAIN(cases)
