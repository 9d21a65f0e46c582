/*
 * fuzz_conf: conf_parse() on arbitrary bytes must never crash, must leave
 * the config untouched when it fails, and must report "fuzz.conf:<line>: "
 * errors. When it succeeds, --print-config output must parse back to a
 * config that dumps identically (the round trip conf_dump() promises).
 *
 * Seeds: test/fuzz/corpus/fuzz_conf/ (the shipped warren.conf and
 * variants). Build: see test/fuzz/fuzz.cmake; run e.g.
 *   ./fuzz_conf -max_len=4096 test/fuzz/corpus/fuzz_conf
 */
#include <stdio.h>
#include <stdlib.h>

#include "conf/conf.h"

static void
dump(const struct wr_config *c, struct buf *b)
{
    buf_init(b);
    conf_dump(c, b);
}

static void
check(bool ok, const char *what, const char *detail)
{
    if (!ok) {
        fprintf(stderr, "fuzz_conf: %s\n%s\n", what, detail);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct wr_config c, back;
    struct buf before, after, again;
    char err[256];
    int rc;

    conf_defaults(&c);
    dump(&c, &before);
    rc =
        conf_parse(&c, (const char *)data, size, "fuzz.conf", err, sizeof(err));
    dump(&c, &after);
    if (rc != WR_OK) {
        check(strncmp(err, "fuzz.conf:", 10) == 0, "bad error prefix", err);
        check(before.len == after.len &&
                  memcmp(before.data, after.data, before.len) == 0,
              "failed parse changed the config", err);
        goto out;
    }
    check(rc == WR_OK, "unexpected status", err);
    conf_defaults(&back);
    rc = conf_parse(&back, (const char *)after.data, after.len, "dump", err,
                    sizeof(err));
    buf_put_u8(&after, 0);
    check(rc == WR_OK, "dump does not parse back", err);
    dump(&back, &again);
    buf_put_u8(&again, 0);
    check(after.len == again.len &&
              memcmp(after.data, again.data, after.len) == 0,
          "dump changes after a round trip", (const char *)after.data);
    buf_fini(&again);
out:
    buf_fini(&before);
    buf_fini(&after);
    return 0;
}
