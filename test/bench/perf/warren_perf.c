/*
 * warren_perf.c: options and main of warren-perf, the bundled AMQP 0-9-1
 * load generator (see perf.h for the pieces).
 *
 *   warren-perf throughput|latency|connections|queues|backlog [options]
 *
 * Exit status: 0 when every check passed, 1 when a message was lost,
 * duplicated, corrupted, out of order, unexpected or nacked, or anything
 * failed (connection refused, channel closed, consumer cancelled), 2 for a
 * usage error.
 */
#include "test/bench/perf/perf.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>

atomic_bool perf_interrupted;

static const char usage_text[] =
    "usage: warren-perf throughput|latency|connections|queues|backlog "
    "[options]\n"
    "\n"
    "target:\n"
    "  --uri amqp://user:pass@host:port/vhost  (default "
    "amqp://guest:guest@127.0.0.1:5672/)\n"
    "  --host HOST  --port PORT\n"
    "messages (throughput, latency, backlog):\n"
    "  -x, --producers N       publishing connections (1)\n"
    "  -y, --consumers N       consuming connections (1); consumer i reads "
    "queue i %% queues\n"
    "  -q, --queues N          queues (1)\n"
    "  -s, --size BYTES        body size, at least 16 (16)\n"
    "  -z, --duration SECONDS  publishing time (10)\n"
    "  --exchange-type direct|fanout|topic|headers  (direct)\n"
    "  --exchange NAME         exchange to publish to "
    "(<queue-prefix>.<type>)\n"
    "  --topic-bindings N      topic: N bindings with * and # patterns\n"
    "  --persistent            delivery-mode 2\n"
    "  --confirm WINDOW        publisher confirms, at most WINDOW "
    "unconfirmed\n"
    "  --multi-ack-every N     manual acks, multiple=true every N "
    "(0 = auto-ack)\n"
    "  --prefetch N            basic.qos prefetch-count\n"
    "  --rate MSGS_PER_S       per producer (0 = as fast as possible; "
    "latency: 1000)\n"
    "  --queue-prefix NAME     queue names NAME-<i> (warren-perf)\n"
    "  --durable-queues        durable exchange and queues\n"
    "  --predeclared           use existing exchange, queues, bindings\n"
    "  --stream-offset SPEC    consumers' x-stream-offset (stream queues:\n"
    "                          first, last, next, or an offset)\n"
    "  --drain-timeout SECONDS stop draining after this long without a "
    "delivery (10)\n"
    "connections, queues, backlog:\n"
    "  -n, --count N           connections (1000), queues (10000), backlog "
    "messages (1000000)\n"
    "  --hold SECONDS          keep connections/queues before closing "
    "(2 / 1)\n"
    "  --threads N             parallel workers (1)\n"
    "  --keep                  queues: do not delete them\n"
    "reporting:\n"
    "  --json FILE             JSON summary to FILE (- for stdout)\n"
    "  --broker-pid PID        report the broker's CPU and RSS "
    "(beam.smp for RabbitMQ)\n"
    "  --quiet                 no live lines\n";

enum {
    OPT_URI = 256,
    OPT_HOST,
    OPT_PORT,
    OPT_XTYPE,
    OPT_EXCHANGE,
    OPT_TOPIC,
    OPT_PERSISTENT,
    OPT_CONFIRM,
    OPT_MULTI_ACK,
    OPT_PREFETCH,
    OPT_RATE,
    OPT_JSON,
    OPT_PREFIX,
    OPT_DURABLE,
    OPT_PREDECLARED,
    OPT_STREAM_OFFSET,
    OPT_HOLD,
    OPT_THREADS,
    OPT_KEEP,
    OPT_BROKER_PID,
    OPT_DRAIN,
    OPT_QUIET
};

static const struct option long_opts[] = {
    {"uri", required_argument, NULL, OPT_URI},
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"producers", required_argument, NULL, 'x'},
    {"consumers", required_argument, NULL, 'y'},
    {"queues", required_argument, NULL, 'q'},
    {"size", required_argument, NULL, 's'},
    {"duration", required_argument, NULL, 'z'},
    {"count", required_argument, NULL, 'n'},
    {"exchange-type", required_argument, NULL, OPT_XTYPE},
    {"exchange", required_argument, NULL, OPT_EXCHANGE},
    {"topic-bindings", required_argument, NULL, OPT_TOPIC},
    {"persistent", no_argument, NULL, OPT_PERSISTENT},
    {"confirm", required_argument, NULL, OPT_CONFIRM},
    {"multi-ack-every", required_argument, NULL, OPT_MULTI_ACK},
    {"prefetch", required_argument, NULL, OPT_PREFETCH},
    {"rate", required_argument, NULL, OPT_RATE},
    {"json", required_argument, NULL, OPT_JSON},
    {"queue-prefix", required_argument, NULL, OPT_PREFIX},
    {"durable-queues", no_argument, NULL, OPT_DURABLE},
    {"predeclared", no_argument, NULL, OPT_PREDECLARED},
    {"stream-offset", required_argument, NULL, OPT_STREAM_OFFSET},
    {"hold", required_argument, NULL, OPT_HOLD},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"keep", no_argument, NULL, OPT_KEEP},
    {"broker-pid", required_argument, NULL, OPT_BROKER_PID},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

const char *
perf_mode_name(enum perf_mode m)
{
    static const char *const names[] = {"throughput", "latency", "connections",
                                        "queues", "backlog"};

    return names[m];
}

const char *
perf_xtype_name(enum perf_xtype t)
{
    static const char *const names[] = {"direct", "fanout", "topic", "headers"};

    return names[t];
}

static void
copy(char *dst, size_t n, const char *src, size_t len, const char *what)
{
    if (len >= n)
        kit_usage_error("%s too long", what);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Copies src[0, len) percent-decoded. */
static void
copy_decoded(char *dst, size_t n, const char *src, size_t len, const char *what)
{
    size_t j = 0;

    for (size_t i = 0; i < len; i++) {
        char c = src[i];

        if (c == '%' && i + 2 < len && hexval(src[i + 1]) >= 0 &&
            hexval(src[i + 2]) >= 0) {
            c = (char)(hexval(src[i + 1]) * 16 + hexval(src[i + 2]));
            i += 2;
        }
        if (j + 1 >= n)
            kit_usage_error("%s too long", what);
        dst[j++] = c;
    }
    dst[j] = '\0';
}

/*
 * amqp://[user[:pass]@]host[:port][/vhost]. An empty path means vhost
 * "/" (as the default URI in the usage shows); "%2F" is "/" too.
 */
static void
parse_uri(struct perf_opts *o, const char *uri)
{
    const char *p;
    const char *auth_end;
    const char *at;
    const char *host;
    const char *colon;

    if (strncmp(uri, "amqp://", 7) != 0)
        kit_usage_error("--uri must start with amqp:// (got %s)", uri);
    p = uri + 7;
    auth_end = p + strcspn(p, "/");
    at = memchr(p, '@', (size_t)(auth_end - p));
    host = p;
    if (at != NULL) {
        const char *c = memchr(p, ':', (size_t)(at - p));

        if (c != NULL) {
            copy_decoded(o->user, sizeof(o->user), p, (size_t)(c - p), "user");
            copy_decoded(o->pass, sizeof(o->pass), c + 1, (size_t)(at - c - 1),
                         "password");
        } else {
            copy_decoded(o->user, sizeof(o->user), p, (size_t)(at - p), "user");
        }
        host = at + 1;
    }
    if (*host == '[') {
        const char *close = memchr(host, ']', (size_t)(auth_end - host));

        if (close == NULL)
            kit_usage_error("bad IPv6 address in %s", uri);
        copy(o->host, sizeof(o->host), host + 1, (size_t)(close - host - 1),
             "host");
        colon = close + 1 < auth_end && close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = memchr(host, ':', (size_t)(auth_end - host));
        copy(o->host, sizeof(o->host), host,
             (size_t)((colon ? colon : auth_end) - host), "host");
    }
    if (colon != NULL)
        copy(o->port, sizeof(o->port), colon + 1,
             (size_t)(auth_end - colon - 1), "port");
    if (*auth_end == '/' && auth_end[1] != '\0')
        copy_decoded(o->vhost, sizeof(o->vhost), auth_end + 1,
                     strlen(auth_end + 1), "vhost");
    else
        snprintf(o->vhost, sizeof(o->vhost), "/");
}

static enum perf_xtype
parse_xtype(const char *s)
{
    for (int t = XT_DIRECT; t <= XT_HEADERS; t++)
        if (strcmp(s, perf_xtype_name((enum perf_xtype)t)) == 0)
            return (enum perf_xtype)t;
    kit_usage_error("unknown exchange type %s", s);
}

static enum perf_mode
parse_mode(const char *s)
{
    for (int m = MODE_THROUGHPUT; m <= MODE_BACKLOG; m++)
        if (strcmp(s, perf_mode_name((enum perf_mode)m)) == 0)
            return (enum perf_mode)m;
    kit_usage_error("unknown mode %s", s);
}

static void
defaults(struct perf_opts *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->host, sizeof(o->host), "127.0.0.1");
    snprintf(o->port, sizeof(o->port), "5672");
    snprintf(o->user, sizeof(o->user), "guest");
    snprintf(o->pass, sizeof(o->pass), "guest");
    snprintf(o->vhost, sizeof(o->vhost), "/");
    snprintf(o->queue_prefix, sizeof(o->queue_prefix), "warren-perf");
    o->producers = 1;
    o->consumers = 1;
    o->queues = 1;
    o->size = 16;
    o->duration = 10;
    o->drain_timeout = 10;
    o->count = -1;
    o->hold = -1;
    o->rate = -1;
    o->threads = 1;
}

/* Mode-dependent defaults for what was not given. */
static void
finish_opts(struct perf_opts *o)
{
    static const long counts[] = {0, 0, 1000, 10000, 1000000};
    static const double holds[] = {0, 0, 2, 1, 0};

    if (o->count < 0)
        o->count = counts[o->mode];
    if (o->hold < 0)
        o->hold = holds[o->mode];
    if (o->rate < 0)
        o->rate = o->mode == MODE_LATENCY ? 1000 : 0;
    if (o->size < PMSG_HDR_SIZE) {
        fprintf(stderr,
                "warren-perf: --size raised to %d (the check "
                "header)\n",
                PMSG_HDR_SIZE);
        o->size = PMSG_HDR_SIZE;
    }
    if (o->mode == MODE_BACKLOG && o->count < 1)
        kit_usage_error("%s needs --count >= 1", "backlog");
    if ((o->mode == MODE_THROUGHPUT || o->mode == MODE_LATENCY ||
         o->mode == MODE_BACKLOG) &&
        o->producers < 1)
        kit_usage_error("%s needs at least one producer",
                        perf_mode_name(o->mode));
}

static void
parse_opt(struct perf_opts *o, int c, const char *arg)
{
    switch (c) {
    case OPT_URI:
        parse_uri(o, arg);
        break;
    case OPT_HOST:
        copy(o->host, sizeof(o->host), arg, strlen(arg), "host");
        break;
    case OPT_PORT:
        copy(o->port, sizeof(o->port), arg, strlen(arg), "port");
        break;
    case 'x':
        o->producers = (int)kit_num(arg, 0, 10000, "--producers");
        break;
    case 'y':
        o->consumers = (int)kit_num(arg, 0, 10000, "--consumers");
        break;
    case 'q':
        o->queues = (int)kit_num(arg, 1, 60000, "--queues");
        break;
    case 's':
        o->size = (size_t)kit_num(arg, 0, 128l << 20, "--size");
        break;
    case 'z':
        o->duration = kit_real(arg, 0.1, 1e6, "--duration");
        break;
    case 'n':
        o->count = kit_num(arg, 0, 100000000, "--count");
        break;
    case OPT_XTYPE:
        o->xtype = parse_xtype(arg);
        break;
    case OPT_EXCHANGE:
        copy(o->exchange, sizeof(o->exchange), arg, strlen(arg), "exchange");
        break;
    case OPT_TOPIC:
        o->topic_bindings = (int)kit_num(arg, 0, 1000000, "--topic-bindings");
        break;
    case OPT_PERSISTENT:
        o->persistent = true;
        break;
    case OPT_CONFIRM:
        o->confirm = (uint32_t)kit_num(arg, 0, 1 << 24, "--confirm");
        break;
    case OPT_MULTI_ACK:
        o->multi_ack = (uint32_t)kit_num(arg, 0, 1 << 24, "--multi-ack-every");
        break;
    case OPT_PREFETCH:
        o->prefetch = (uint16_t)kit_num(arg, 0, 65535, "--prefetch");
        break;
    case OPT_RATE:
        o->rate = kit_real(arg, 0, 1e9, "--rate");
        break;
    case OPT_JSON:
        o->json_path = arg;
        break;
    case OPT_PREFIX:
        copy(o->queue_prefix, sizeof(o->queue_prefix), arg, strlen(arg),
             "queue prefix");
        break;
    case OPT_DURABLE:
        o->durable_queues = true;
        break;
    case OPT_STREAM_OFFSET:
        o->stream_offset = arg;
        break;
    case OPT_PREDECLARED:
        o->predeclared = true;
        break;
    case OPT_HOLD:
        o->hold = kit_real(arg, 0, 1e6, "--hold");
        break;
    case OPT_THREADS:
        o->threads = (int)kit_num(arg, 1, 1000, "--threads");
        break;
    case OPT_KEEP:
        o->keep = true;
        break;
    case OPT_BROKER_PID:
        o->broker_pid = (pid_t)kit_num(arg, 1, 1l << 30, "--broker-pid");
        break;
    case OPT_DRAIN:
        o->drain_timeout = kit_real(arg, 0, 1e6, "--drain-timeout");
        break;
    case OPT_QUIET:
        o->quiet = true;
        break;
    case 'h':
        fputs(usage_text, stdout);
        exit(0);
    default:
        kit_usage_error("%s", "bad option");
    }
}

static void
parse_args(struct perf_opts *o, int argc, char **argv)
{
    int c;

    defaults(o);
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 &&
            (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
            fputs(usage_text, stdout);
            exit(0);
        }
        fputs(usage_text, stderr);
        exit(2);
    }
    o->mode = parse_mode(argv[1]);
    optind = 2;
    while ((c = getopt_long(argc, argv, "x:y:q:s:z:n:h", long_opts, NULL)) !=
           -1)
        parse_opt(o, c, optarg);
    if (optind < argc)
        kit_usage_error("unexpected argument %s", argv[optind]);
    finish_opts(o);
}

static void
on_sigint(int sig)
{
    (void)sig;
    atomic_store(&perf_interrupted, true);
}

static void
set_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND; /* a second ^C ends it at once */
    sigaction(SIGINT, &sa, NULL);
}

int
main(int argc, char **argv)
{
    struct perf_opts o;
    struct perf_result r;
    int rc;

    kit_prog = "warren-perf";
    perf_epoch_ns = perf_now_ns();
    report_out = stdout;
    parse_args(&o, argc, argv);
    if (o.json_path != NULL && strcmp(o.json_path, "-") == 0)
        report_out = stderr;
    set_signals();
    sysstat_raise_nofile();
    perf_result_init(&r, &o);
    switch (o.mode) {
    case MODE_CONNECTIONS:
        rc = admin_connections(&o, &r);
        break;
    case MODE_QUEUES:
        rc = admin_queues(&o, &r);
        break;
    default:
        rc = run_messages(&o, &r);
        break;
    }
    report_summary(&r);
    if (o.json_path != NULL && report_json(&r) != WR_OK) {
        fprintf(stderr, "warren-perf: cannot write %s\n", o.json_path);
        rc = WR_ERR;
    }
    rc = rc == WR_OK && perf_result_ok(&r) ? 0 : 1;
    perf_result_fini(&r);
    return rc;
}
