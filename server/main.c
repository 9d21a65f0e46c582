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
#include "server/server.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
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

int
main(int argc, char **argv)
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
    static struct wr_config cfg;
    static struct server server;
    const char *config = NULL, *listen = NULL, *data_dir = NULL;
    bool print = false, repair = false;
    char err[1024];
    int ch;

    while ((ch = getopt_long(argc, argv, "c:l:d:prVh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 'd':
            data_dir = optarg;
            break;
        case 'p':
            print = true;
            break;
        case 'r':
            repair = true;
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
    conf_defaults(&cfg);
    if (config && conf_load_file(&cfg, config, err, sizeof(err)) != WR_OK) {
        fprintf(stderr, "warren: %s\n", err);
        return 1;
    }
    if (listen) {
        if (conf_parse_listener(listen, &cfg.listeners[0], err, sizeof(err)) !=
            WR_OK) {
            fprintf(stderr, "warren: --listen %s: %s\n", listen, err);
            return 1;
        }
        cfg.nlisteners = 1;
    }
    if (data_dir)
        snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", data_dir);
    if (print) {
        struct buf out;

        buf_init(&out);
        conf_dump(&cfg, &out);
        fwrite(out.data, 1, out.len, stdout);
        buf_fini(&out);
        return 0;
    }
    if (cfg.log_level == CONF_LOG_NONE || !cfg.log_console)
        log_set_level(LOG_ERR);
    else
        log_set_level((enum log_level)cfg.log_level);
    if (make_dirs(cfg.data_dir) != WR_OK) {
        log_syserr("cannot create data directory %s (set data_dir or "
                   "--data-dir to a writable place)",
                   cfg.data_dir);
        return 1;
    }
    /* Messages come and go by the million: keep freed memory in the heap
     * (up to 16 MiB) rather than handing it back to the kernel and
     * faulting it in again, and keep bodies up to 1 MiB out of mmap. */
    mallopt(M_TRIM_THRESHOLD, 16 << 20);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    log_info("Warren %s starting (config %s, data %s)", WARREN_VERSION,
             config ? config : "built-in defaults", cfg.data_dir);
    if (server_init(&server, &cfg, repair) != WR_OK)
        return 1;
    server_run(&server);
    server_fini(&server);
    return 0;
}
