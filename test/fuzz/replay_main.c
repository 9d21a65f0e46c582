/*
 * replay_main.c: a main() for the fuzz targets without libFuzzer, so any
 * compiler can replay a corpus (ctest's fuzz_replay.<target> tests, also
 * under ASan/UBSan in CI).
 *
 *     replay_fuzz_frame DIR_OR_FILE...
 *
 * Runs LLVMFuzzerTestOneInput once on every regular file given or found
 * directly in a given directory (in name order, dot files skipped), each
 * from an exact-size heap copy so that ASan sees reads past the input.
 * A crash or a failed check aborts; an empty corpus is an error too, since
 * it means the test replays nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Returns 1 when the file ran, 0 when it was not a regular file, -1 on
 * error. */
static int
run_file(const char *path)
{
    struct stat st;
    uint8_t *data;
    FILE *f;
    size_t n;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode))
        return 0;
    f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    n = (size_t)st.st_size;
    data = malloc(n ? n : 1);
    if (!data || fread(data, 1, n, f) != n) {
        fprintf(stderr, "replay: %s: short read\n", path);
        fclose(f);
        free(data);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(data, n);
    free(data);
    return 1;
}

static int
skip_dot(const struct dirent *de)
{
    return de->d_name[0] != '.';
}

/* Runs every file in dir; returns how many ran, or -1 on error. */
static long
run_dir(const char *dir)
{
    struct dirent **names;
    char path[4096];
    long ran = 0;
    int n, i;

    n = scandir(dir, &names, skip_dot, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    for (i = 0; i < n; i++) {
        int r = 0;

        if (snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name) <
            (int)sizeof(path))
            r = run_file(path);
        free(names[i]);
        if (r < 0)
            ran = -1;
        else if (ran >= 0)
            ran += r;
    }
    free(names);
    return ran;
}

int
main(int argc, char **argv)
{
    long total = 0;
    int i;

    for (i = 1; i < argc; i++) {
        struct stat st;
        long ran;

        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        ran = S_ISDIR(st.st_mode) ? run_dir(argv[i]) : run_file(argv[i]);
        if (ran < 0)
            return 1;
        total += ran;
    }
    if (total == 0) {
        fprintf(stderr, "replay: no inputs\n");
        return 1;
    }
    printf("replayed %ld inputs\n", total);
    return 0;
}
