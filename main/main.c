/*
 * main.c: warren's entry point: command line, config, data directory,
 * then the loop.
 *
 *   warren [--config FILE] [--listen HOST:PORT] [--data-dir DIR]
 *          [--print-config] [--version] [--help]
 *
 * --listen and --data-dir override the config file (tests and scripts use
 * them); --listen 127.0.0.1:0 lets the kernel pick a port, which the log
 * line "listening on HOST:PORT (amqp)" reports.
 */
#include "server/mgmt/mgmt.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: warren [--config FILE] [--listen HOST:PORT] "
            "[--data-dir DIR]\n"
            "              [--repair] [--print-config] [--version] "
            "[--help]\n"
            "\n"
            "  --config FILE       read settings from FILE (RabbitMQ's "
            "rabbitmq.conf syntax;\n"
            "                      see conf/warren.conf)\n"
            "  --listen HOST:PORT  listen for AMQP there instead of "
            "listeners.tcp.*\n"
            "  --data-dir DIR      keep durable data in DIR instead of "
            "data_dir\n"
            "  --print-config      print the effective settings and exit\n"
            "  --repair            open damaged message logs, keeping every "
            "intact record\n"
            "                      and dropping (and logging) the damaged "
            "ones\n");
}

/* mkdir -p */
static int
make_dirs(const char *path)
{
    char tmp[4096];

    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return WR_ERR;
        *p = '/';
    }
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
        return WR_ERR;
    return WR_OK;
}

/* What the command line asks for. */
struct args {
    const char *config, *listen, *data_dir;
    bool print, repair;
};

/* Parses argv into *a. Returns -1 to go on, else the exit code (--help,
 * --version, a bad argument). */
static int
parse_args(int argc, char **argv, struct args *a)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"data-dir", required_argument, NULL, 'd'},
        {"print-config", no_argument, NULL, 'p'},
        {"repair", no_argument, NULL, 'r'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "c:l:d:prVh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            a->config = optarg;
            break;
        case 'l':
            a->listen = optarg;
            break;
        case 'd':
            a->data_dir = optarg;
            break;
        case 'p':
            a->print = true;
            break;
        case 'r':
            a->repair = true;
            break;
        case 'V':
            printf("warren %s\n", WARREN_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "warren: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    return -1;
}

/* The config file, then the command line's overrides. Returns WR_OK, or
 * WR_ERR having said why. */
static int
load_config(const struct args *a, struct wr_config *cfg)
{
    char err[1024];

    conf_defaults(cfg);
    if (a->config &&
        conf_load_file(cfg, a->config, err, sizeof(err)) != WR_OK) {
        fprintf(stderr, "warren: %s\n", err);
        return WR_ERR;
    }
    if (a->listen) {
        if (conf_parse_listener(a->listen, &cfg->listeners[0], err,
                                sizeof(err)) != WR_OK) {
            fprintf(stderr, "warren: --listen %s: %s\n", a->listen, err);
            return WR_ERR;
        }
        cfg->nlisteners = 1;
    }
    if (a->data_dir)
        snprintf(cfg->data_dir, sizeof(cfg->data_dir), "%s", a->data_dir);
    return WR_OK;
}

static void
print_config(const struct wr_config *cfg)
{
    struct buf out;

    buf_init(&out);
    conf_dump(cfg, &out);
    fwrite(out.data, 1, out.len, stdout);
    buf_fini(&out);
}

static enum log_format
log_format_of(int conf_format)
{
    return conf_format == CONF_LOG_JSON ? LOG_FMT_JSON : LOG_FMT_PLAIN;
}

/* The log outputs the config asks for, as RabbitMQ sets them up: an
 * output without its own level takes log.default.level, and only a
 * category given a level (log.connection.level) filters its lines before
 * the outputs do, so `log.file.level = debug` alone puts debug lines in
 * the file. Returns WR_OK, or WR_ERR having said why on stderr (the log
 * file could not be opened). */
static int
start_logging(const struct wr_config *cfg)
{
    int dflt = cfg->log_default_level;
    struct log_settings s = {
        .level = {LOG_DEBUG,
                  conf_log_level(cfg->log_connection_level, LOG_DEBUG)},
        .console = cfg->log_console,
        .console_level = conf_log_level(cfg->log_console_level, dflt),
        .console_format = log_format_of(cfg->log_console_format),
        .file = cfg->log_file,
        .file_level = conf_log_level(cfg->log_file_level, dflt),
        .file_format = log_format_of(cfg->log_file_format),
        .rotation_size = cfg->log_rotation_size,
        .rotation_count = cfg->log_rotation_count,
    };

    if (log_configure(&s) != WR_OK) {
        fprintf(stderr,
                "warren: log.file: cannot open %s for appending: %s (set "
                "log.file to a writable file, or to false)\n",
                cfg->log_file, strerror(errno));
        return WR_ERR;
    }
    return WR_OK;
}

/* Logging, data directory, allocator. Returns WR_OK, or WR_ERR having
 * said why. */
static int
prepare_process(const struct wr_config *cfg)
{
    if (start_logging(cfg) != WR_OK)
        return WR_ERR;
    if (make_dirs(cfg->data_dir) != WR_OK) {
        log_syserr("cannot create data directory %s (set data_dir or "
                   "--data-dir to a writable place)",
                   cfg->data_dir);
        return WR_ERR;
    }
    /* Messages come and go by the million: keep freed memory in the heap
     * (up to 16 MiB) rather than handing it back to the kernel and
     * faulting it in again, and keep bodies up to 1 MiB out of mmap. */
    mallopt(M_TRIM_THRESHOLD, 16 << 20);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    return WR_OK;
}

int
main(int argc, char **argv)
{
    static struct wr_config cfg;
    static struct server server;
    struct args a = {0};
    int rc = parse_args(argc, argv, &a);

    if (rc >= 0)
        return rc;
    if (load_config(&a, &cfg) != WR_OK)
        return 1;
    if (a.print) {
        print_config(&cfg);
        return 0;
    }
    if (prepare_process(&cfg) != WR_OK)
        return 1;
    log_info("Warren %s starting (config %s, data %s)", WARREN_VERSION,
             a.config ? a.config : "built-in defaults", cfg.data_dir);
    /* The node and the AMQP listeners, then the management API: the
     * broker is ready (notify_ready) once both listen. */
    if (server_init(&server, &cfg, a.repair) != WR_OK ||
        mgmt_start(&server) != WR_OK)
        return 1;
    notify_ready();
    server_run(&server);
    clustering_stop(&server);
    mgmt_stop(&server);
    server_fini(&server);
    return 0;
}
