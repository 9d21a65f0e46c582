/*
 * vhostdir.c: where a vhost's message log lives, such that no vhost name
 * can ever be read as a path.
 *
 * A vhost's log is the directory
 *
 *     <data_dir>/vhosts/<SHA-256 of the vhost name, 64 lowercase hex>
 *
 * (RabbitMQ also names vhost directories by a hash of the name). Every
 * name, "." and ".." and "a/b" and 255 bytes of CJK included, maps to one
 * fixed-length component of hex digits, so a name never escapes vhosts/
 * and never exceeds the file system's name limit. The directory holds a
 * file "vhost-name" with the name, byte for byte, written atomically
 * before the log is opened: opening checks it, so a directory is never
 * shared by two vhosts (a mismatch stops startup; it would take a
 * SHA-256 collision or a hand-moved directory).
 *
 * Deleting a vhost renames its directory to "<hash>.deleting" (atomic,
 * directory fsynced), then removes the files in it and the directory
 * itself. Only a path that is exactly <data_dir>/vhosts/<64 hex> is ever
 * removed, and only one level deep: a subdirectory (which Warren never
 * makes) stays, with a log line. A deletion cut short by a crash is
 * finished at the next start (vhostdir__sweep).
 *
 * Migration. Warren before this layout used the percent-encoded name
 * (letters, digits, '-', '_' and '.' kept). At open, a vhost whose old
 * directory exists has it moved: the name file is written into the old
 * directory, then it is renamed to the hash name and vhosts/ is fsynced.
 * A crash at any point leaves either the old directory (the next start
 * does it again) or the new one. The old layout put the log of vhost "."
 * directly in vhosts/ and that of ".." in data_dir itself: their log
 * files are moved one by one (store_move_files), which a crash can
 * interrupt and the next start finishes.
 */
#include "vhost/vhost.h"
#include "vhost/vhost_int.h"

#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_FILE  "vhost-name"
#define HASH_HEX   64
#define TRASH_TAIL ".deleting"

static char *
path_join(const char *a, const char *b, const char *c)
{
    struct buf p;

    buf_init(&p);
    buf_printf(&p, "%s/%s%s%s", a, b, c ? "/" : "", c ? c : "");
    buf_put_u8(&p, 0);
    return (char *)p.data;
}

void
vhost_name_hash(const char *name, char out[HASH_HEX + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned len = 0;

    if (!EVP_Digest(name, strlen(name), md, &len, EVP_sha256(), NULL) ||
        len * 2 != HASH_HEX) {
        log_err("vhost '%s': SHA-256 is not available from libcrypto", name);
        abort();
    }
    for (unsigned i = 0; i < len; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[HASH_HEX] = '\0';
}

char *
vhostdir__path(const char *data_dir, const char *name)
{
    char h[HASH_HEX + 1];

    vhost_name_hash(name, h);
    return path_join(data_dir, "vhosts", h);
}

/* Whether s is exactly 64 lowercase hex digits followed by tail. */
static bool
is_hash_name(const char *s, const char *tail)
{
    for (int i = 0; i < HASH_HEX; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return strcmp(s + HASH_HEX, tail) == 0;
}

/* mkdir that counts an existing directory as success. */
static int
make_dir(const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return WR_OK;
    snprintf(err, errlen, "cannot create directory %s: %s", path,
             strerror(errno));
    return WR_ERR;
}

/* ---- the name file */

static int
write_name(const char *dir, const char *name, char *err, size_t errlen)
{
    char *path = path_join(dir, NAME_FILE, NULL), why[512];
    int rc =
        store_write_file_atomic(path, name, strlen(name), why, sizeof(why));

    if (rc != WR_OK)
        snprintf(err, errlen, "vhost '%s': %s", name, why);
    free(path);
    return rc;
}

/*
 * Makes sure dir holds the name file of vhost name: writes it when it is
 * missing, refuses when it names another vhost. Returns WR_OK or WR_ERR
 * with err filled.
 */
static int
check_name(const char *dir, const char *name, char *err, size_t errlen)
{
    char *path = path_join(dir, NAME_FILE, NULL), why[512];
    struct buf text;
    int rc = WR_OK;

    buf_init(&text);
    if (store_read_file(path, &text, why, sizeof(why)) != WR_OK) {
        if (errno == ENOENT)
            rc = write_name(dir, name, err, errlen);
        else {
            snprintf(err, errlen, "vhost '%s': %s", name, why);
            rc = WR_ERR;
        }
    } else if (text.len != strlen(name) || memcmp(text.data, name, text.len)) {
        snprintf(err, errlen,
                 "vhost '%s': its data directory %s belongs to vhost "
                 "'%.*s' (says %s); Warren will not mix two vhosts' "
                 "messages. Move that directory away, or restore the "
                 "definitions it belongs to",
                 name, dir, (int)WR_MIN(text.len, 300), (const char *)text.data,
                 path);
        rc = WR_ERR;
    }
    buf_fini(&text);
    free(path);
    return rc;
}

/* ---- migration from percent-encoded names */

/* The pre-hash directory of vhost name, or NULL when its last component
   could not have existed (longer than the file system allows). */
static char *
legacy_path(const char *data_dir, const char *name)
{
    struct buf b;
    size_t start;

    buf_init(&b);
    buf_printf(&b, "%s/vhosts/", data_dir);
    start = b.len;
    for (const char *p = name; *p; p++) {
        unsigned char ch = (unsigned char)*p;

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.')
            buf_put_u8(&b, ch);
        else
            buf_printf(&b, "%%%02X", ch);
    }
    if (b.len - start > NAME_MAX) {
        buf_fini(&b);
        return NULL;
    }
    buf_put_u8(&b, 0);
    return (char *)b.data;
}

/* "." and "..": the old layout shared vhosts/ or data_dir itself. */
static int
migrate_files(const char *old, const char *dir, const char *name, char *err,
              size_t errlen)
{
    char why[512];
    long n;

    if (make_dir(dir, err, errlen) != WR_OK ||
        check_name(dir, name, err, errlen) != WR_OK)
        return WR_ERR;
    n = store_move_files(old, dir, why, sizeof(why));
    if (n < 0) {
        snprintf(err, errlen, "vhost '%s': moving its log to %s: %s", name, dir,
                 why);
        return WR_ERR;
    }
    if (n > 0)
        log_info("vhost '%s': moved %ld log files from %s to %s", name, n, old,
                 dir);
    return WR_OK;
}

static int
migrate_dir(const char *data_dir, const char *old, const char *dir,
            const char *name, char *err, size_t errlen)
{
    char *vhosts = path_join(data_dir, "vhosts", NULL);
    struct stat st;
    int rc = WR_ERR;

    if (stat(dir, &st) == 0) {
        snprintf(err, errlen,
                 "vhost '%s': both %s (this Warren's layout) and %s (the "
                 "old one) exist; move the one that is not wanted away",
                 name, dir, old);
        goto out;
    }
    if (write_name(old, name, err, errlen) != WR_OK)
        goto out;
    if (rename(old, dir) != 0 || store_sync_dir(vhosts) != 0) {
        snprintf(err, errlen, "vhost '%s': cannot rename %s to %s: %s", name,
                 old, dir, strerror(errno));
        goto out;
    }
    log_info("vhost '%s': moved its data directory from %s to %s", name, old,
             dir);
    rc = WR_OK;
out:
    free(vhosts);
    return rc;
}

/* Moves the old directory of vhost name to dir, if there is one. */
static int
migrate(const char *data_dir, const char *name, const char *dir, char *err,
        size_t errlen)
{
    char *old = legacy_path(data_dir, name);
    struct stat st;
    int rc = WR_OK;

    if (!old)
        return WR_OK;
    if (stat(old, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            rc = migrate_files(old, dir, name, err, errlen);
        else
            rc = migrate_dir(data_dir, old, dir, name, err, errlen);
    }
    free(old);
    return rc;
}

int
vhostdir__prepare(const char *data_dir, const char *name, char **out, char *err,
                  size_t errlen)
{
    char *vhosts = path_join(data_dir, "vhosts", NULL);
    char *dir = vhostdir__path(data_dir, name);
    struct stat st;
    bool fresh;

    *out = NULL;
    if (make_dir(vhosts, err, errlen) != WR_OK ||
        migrate(data_dir, name, dir, err, errlen) != WR_OK)
        goto fail;
    fresh = stat(dir, &st) != 0;
    if (make_dir(dir, err, errlen) != WR_OK)
        goto fail;
    if (fresh && store_sync_dir(vhosts) != 0) {
        snprintf(err, errlen, "cannot fsync %s: %s", vhosts, strerror(errno));
        goto fail;
    }
    if (check_name(dir, name, err, errlen) != WR_OK)
        goto fail;
    free(vhosts);
    *out = dir;
    return WR_OK;
fail: /* nothing of the vhost's data was removed */
    free(vhosts);
    free(dir);
    return WR_ERR;
}

/* ---- deletion */

/* Removes the files in dir, then dir. Never recurses. */
static void
remove_flat(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!d) {
        if (errno != ENOENT)
            log_syserr("cannot open %s to remove it; remove it by hand", dir);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) != 0)
            log_syserr("cannot remove %s/%s; remove it by hand", dir,
                       e->d_name);
    }
    closedir(d);
    if (rmdir(dir) != 0)
        log_syserr("cannot remove directory %s; remove it by hand", dir);
}

void
vhostdir__remove(const char *data_dir, const char *name, const char *dir)
{
    char *want = vhostdir__path(data_dir, name), *trash, *vhosts;
    const char *last = strrchr(want, '/') + 1;

    /* Only ever the directory this vhost's name maps to. */
    if (!dir || strcmp(dir, want) != 0 || !is_hash_name(last, "")) {
        log_err("vhost '%s': not removing %s: it is not the vhost's data "
                "directory %s",
                name, dir ? dir : "(none)", want);
        free(want);
        return;
    }
    vhosts = path_join(data_dir, "vhosts", NULL);
    trash = path_join(vhosts, last, NULL);
    trash = xrealloc(trash, strlen(trash) + sizeof(TRASH_TAIL));
    strcat(trash, TRASH_TAIL);
    remove_flat(trash); /* a deletion of the same name cut short */
    if (rename(want, trash) != 0) {
        if (errno != ENOENT)
            log_syserr("vhost '%s' deleted, but its data directory %s could "
                       "not be renamed to %s; remove it by hand",
                       name, want, trash);
    } else {
        store_sync_dir(vhosts);
        remove_flat(trash);
    }
    free(vhosts);
    free(trash);
    free(want);
}

/* ---- a mirror's copy taking over */

int
vhostdir__adopt(const char *data_dir, const char *name, const char *from,
                char *err, size_t errlen)
{
    char *vhosts = path_join(data_dir, "vhosts", NULL);
    char *dir = vhostdir__path(data_dir, name);
    char *parent = xstrdup(from), *slash = strrchr(parent, '/');
    int rc = WR_ERR;

    if (slash)
        *slash = '\0';
    if (make_dir(vhosts, err, errlen) != WR_OK ||
        write_name(from, name, err, errlen) != WR_OK)
        goto out;
    /* what the node held of the vhost is older than the copy */
    vhostdir__remove(data_dir, name, dir);
    if (rename(from, dir) != 0 || store_sync_dir(vhosts) != 0 ||
        (slash && store_sync_dir(parent) != 0)) {
        snprintf(err, errlen, "vhost '%s': cannot rename %s to %s: %s", name,
                 from, dir, strerror(errno));
        goto out;
    }
    rc = WR_OK;
out:
    free(parent);
    free(dir);
    free(vhosts);
    return rc;
}

void
vhostdir__sweep(const char *data_dir)
{
    char *vhosts = path_join(data_dir, "vhosts", NULL);
    DIR *d = opendir(vhosts);
    struct dirent *e;

    while (d && (e = readdir(d)) != NULL) {
        char *p;

        if (strlen(e->d_name) != HASH_HEX + strlen(TRASH_TAIL) ||
            !is_hash_name(e->d_name, TRASH_TAIL))
            continue;
        p = path_join(vhosts, e->d_name, NULL);
        log_info("removing %s, left by a vhost deletion cut short", p);
        remove_flat(p);
        free(p);
    }
    if (d)
        closedir(d);
    free(vhosts);
}
