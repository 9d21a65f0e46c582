/*
 * t.h: Warren's tiny unit-test harness.
 *
 * A test file defines cases with T_CASE(name) and lists them in a table:
 *
 *     T_CASE(parses_empty) { T_EQ_INT(f(), 0); }
 *     static const struct t_case cases[] = { T_REG(parses_empty), };
 *     T_MAIN(cases)
 *
 * CMake (test/CMakeLists.txt, wr_unit_test) greps the file for T_CASE
 * lines and registers every case as its own ctest test, so each runs in
 * its own process: `test_x <case>`. With no argument all cases run.
 * Every case gets a fresh temporary directory, t_tmpdir(), removed when
 * the case passes and kept (and printed) when it fails.
 */
#ifndef WARREN_T_H
#define WARREN_T_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct t_case {
    const char *name;
    void (*fn)(void);
};

#define T_CASE(name) static void name(void)
#define T_REG(name) \
    {               \
#name, name \
    }
#define T_MAIN(cases)                                                       \
    int main(int argc, char **argv)                                         \
    {                                                                       \
        return t_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0])); \
    }

int t_main(int argc, char **argv, const struct t_case *cases, size_t n);
/* The current case's temporary directory. */
const char *t_tmpdir(void);
/* rm -rf dir (tests' own scratch directories). */
void t_rm_rf(const char *dir);
/* Records a failure and ends the case. */
void t_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
/* Hex dump helper used by T_EQ_MEM. */
void t_hexdump(const char *label, const void *p, size_t n);

#define T_ASSERT(x)                                                 \
    do {                                                            \
        if (!(x))                                                   \
            t_fail(__FILE__, __LINE__, "assertion failed: %s", #x); \
    } while (0)

#define T_EQ_INT(a, b)                                                         \
    do {                                                                       \
        long long t_a_ = (long long)(a), t_b_ = (long long)(b);                \
        if (t_a_ != t_b_)                                                      \
            t_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, t_a_, \
                   t_b_);                                                      \
    } while (0)

#define T_EQ_STR(a, b)                                                       \
    do {                                                                     \
        const char *t_a_ = (a), *t_b_ = (b);                                 \
        if (!t_a_ || !t_b_ || strcmp(t_a_, t_b_) != 0)                       \
            t_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b, \
                   t_a_ ? t_a_ : "(null)", t_b_ ? t_b_ : "(null)");          \
    } while (0)

#define T_EQ_MEM(a, alen, b, blen)                                          \
    do {                                                                    \
        size_t t_al_ = (alen), t_bl_ = (blen);                              \
        if (t_al_ != t_bl_ || (t_al_ && memcmp((a), (b), t_al_) != 0)) {    \
            t_hexdump("got", (a), t_al_);                                   \
            t_hexdump("want", (b), t_bl_);                                  \
            t_fail(__FILE__, __LINE__, "memory differs: %s vs %s", #a, #b); \
        }                                                                   \
    } while (0)

#endif
