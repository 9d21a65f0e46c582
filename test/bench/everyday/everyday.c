/*
 * everyday.c: options and main of warren-everyday, the load generator
 * that drives a broker the way everyday clients do (everyday.h says how).
 *
 *   warren-everyday throughput|latency|sweep [options]
 *
 * The options warren-perf also has keep its names and meanings, so
 * compare.py runs one scenario with either tool by changing the binary.
 * --multi-ack-every N is --ack-every N: with N = 1 every delivery gets its
 * own basic.ack, above 1 one ack with multiple=true every N.
 *
 * Exit status: 0 when every check passed, 1 when a message was lost,
 * duplicated, corrupted, out of order, unexpected or nacked, or anything
 * failed (connection refused, channel closed, consumer cancelled), 2 for a
 * usage error.
 */
#include "test/bench/everyday/everyday.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>

atomic_bool ed_interrupted;

static const char usage_text[] =
    "usage: warren-everyday throughput|latency|sweep [options]\n"
    "\n"
    "Publishes and consumes through rabbitmq-c the way everyday clients do:\n"
    "one connection per thread, one amqp_basic_publish per message, acks\n"
    "as deliveries come, confirms waited for one by one or in a window.\n"
    "\n"
    "target:\n"
    "  --host HOST  --port PORT  (127.0.0.1 5672)\n"
    "  --user USER  --password PASS  --vhost VHOST  (guest guest /)\n"
    "  --tls  --cacert FILE    AMQPS through rabbitmq-c's amqp_ssl_socket,\n"
    "                          the broker's certificate checked against "
    "FILE\n"
    "messages:\n"
    "  -x, --producers N       publishing connections (1)\n"
    "  -y, --consumers N       consuming connections (1); consumer i reads "
    "queue i %% queues\n"
    "  -q, --queues N          queues (1)\n"
    "  -s, --size BYTES        body size, at least 16 (16)\n"
    "  -z, --duration SECONDS  publishing time (10; not for sweep)\n"
    "  --exchange-type direct|fanout|topic  (direct)\n"
    "  --topic-bindings N      topic: N bindings with * and # patterns\n"
    "  --persistent            delivery-mode 2\n"
    "  --durable-queues        durable exchange and queues\n"
    "  --confirm W             publisher confirms: 1 waits for each one, W "
    "blocks\n"
    "                          while W are unconfirmed\n"
    "  --ack-every N           manual acks: 1 per message, N: multiple=true\n"
    "                          every N (0 = auto-ack, the default)\n"
    "  --multi-ack-every N     the same (warren-perf's name)\n"
    "  --prefetch N            basic.qos prefetch-count\n"
    "  --rate MSGS_PER_S       per producer (0 = as fast as possible; "
    "latency: 1000)\n"
    "  --queue-prefix NAME     queue names NAME-<i> (warren-everyday)\n"
    "  --drain-timeout SECONDS stop draining after this long without a "
    "delivery (10)\n"
    "sweep (rising aggregate rates, until deliveries lag):\n"
    "  --rates R1,R2,...       aggregate msg/s of each step\n"
    "  --step SECONDS          measured per step (5)\n"
    "  --settle SECONDS        at the step's rate before measuring (1)\n"
    "  --lag FRACTION          a step lags when it delivers less than\n"
    "                          (1 - FRACTION) x its rate (0.05)\n"
    "reporting:\n"
    "  --json FILE             JSON summary to FILE (- for stdout)\n"
    "  --broker-pid PID        report the broker's CPU, per thread too, and "
    "RSS\n"
    "                          (beam.smp for RabbitMQ)\n"
    "  --quiet                 no per-second lines\n";

enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_USER,
    OPT_PASS,
    OPT_VHOST,
    OPT_XTYPE,
    OPT_TOPIC,
    OPT_PERSISTENT,
    OPT_DURABLE,
    OPT_CONFIRM,
    OPT_ACK,
    OPT_PREFETCH,
    OPT_RATE,
    OPT_PREFIX,
    OPT_DRAIN,
    OPT_RATES,
    OPT_STEP,
    OPT_SETTLE,
    OPT_LAG,
    OPT_JSON,
    OPT_BROKER_PID,
    OPT_QUIET,
    OPT_TLS,
    OPT_CACERT
};

static const struct option long_opts[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"user", required_argument, NULL, OPT_USER},
    {"password", required_argument, NULL, OPT_PASS},
    {"vhost", required_argument, NULL, OPT_VHOST},
    {"producers", required_argument, NULL, 'x'},
    {"consumers", required_argument, NULL, 'y'},
    {"queues", required_argument, NULL, 'q'},
    {"size", required_argument, NULL, 's'},
    {"duration", required_argument, NULL, 'z'},
    {"exchange-type", required_argument, NULL, OPT_XTYPE},
    {"topic-bindings", required_argument, NULL, OPT_TOPIC},
    {"persistent", no_argument, NULL, OPT_PERSISTENT},
    {"durable-queues", no_argument, NULL, OPT_DURABLE},
    {"confirm", required_argument, NULL, OPT_CONFIRM},
    {"ack-every", required_argument, NULL, OPT_ACK},
    {"multi-ack-every", required_argument, NULL, OPT_ACK},
    {"prefetch", required_argument, NULL, OPT_PREFETCH},
    {"rate", required_argument, NULL, OPT_RATE},
    {"queue-prefix", required_argument, NULL, OPT_PREFIX},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN},
    {"rates", required_argument, NULL, OPT_RATES},
    {"step", required_argument, NULL, OPT_STEP},
    {"settle", required_argument, NULL, OPT_SETTLE},
    {"lag", required_argument, NULL, OPT_LAG},
    {"json", required_argument, NULL, OPT_JSON},
    {"broker-pid", required_argument, NULL, OPT_BROKER_PID},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"tls", no_argument, NULL, OPT_TLS},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

const char *
ed_mode_name(enum ed_mode m)
{
    static const char *const names[] = {"throughput", "latency", "sweep"};

    return names[m];
}

const char *
ed_xtype_name(enum ed_xtype t)
{
    static const char *const names[] = {"direct", "fanout", "topic"};

    return names[t];
}

static void
copy(char *dst, size_t n, const char *src, const char *what)
{
    if (strlen(src) >= n)
        kit_usage_error("%s too long", what);
    snprintf(dst, n, "%s", src);
}

/* "R1,R2,...": rising aggregate rates. */
static void
parse_rates(struct ed_opts *o, const char *arg)
{
    char text[1024];
    char *save = NULL;

    copy(text, sizeof(text), arg, "--rates");
    o->nrates = 0;
    for (char *t = strtok_r(text, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        if (o->nrates == ED_MAX_RATES)
            kit_usage_error("more than %d --rates", ED_MAX_RATES);
        o->rates[o->nrates++] = kit_real(t, 1, 1e9, "--rates");
    }
    if (o->nrates == 0)
        kit_usage_error("empty --rates");
}

static enum ed_xtype
parse_xtype(const char *s)
{
    for (int t = ED_DIRECT; t <= ED_TOPIC; t++)
        if (strcmp(s, ed_xtype_name((enum ed_xtype)t)) == 0)
            return (enum ed_xtype)t;
    kit_usage_error("unknown exchange type %s (direct, fanout, topic)", s);
}

static enum ed_mode
parse_mode(const char *s)
{
    for (int m = ED_THROUGHPUT; m <= ED_SWEEP; m++)
        if (strcmp(s, ed_mode_name((enum ed_mode)m)) == 0)
            return (enum ed_mode)m;
    kit_usage_error("unknown mode %s", s);
}

static void
defaults(struct ed_opts *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->host, sizeof(o->host), "127.0.0.1");
    o->port = 5672;
    snprintf(o->user, sizeof(o->user), "guest");
    snprintf(o->pass, sizeof(o->pass), "guest");
    snprintf(o->vhost, sizeof(o->vhost), "/");
    snprintf(o->queue_prefix, sizeof(o->queue_prefix), "warren-everyday");
    o->producers = 1;
    o->consumers = 1;
    o->queues = 1;
    o->size = 16;
    o->duration = 10;
    o->drain_timeout = 10;
    o->rate = -1;
    o->step = 5;
    o->settle = 1;
    o->lag = 0.05;
}

static void
parse_target_opt(struct ed_opts *o, int c, const char *arg)
{
    switch (c) {
    case OPT_HOST:
        copy(o->host, sizeof(o->host), arg, "host");
        break;
    case OPT_PORT:
        o->port = (int)kit_num(arg, 1, 65535, "--port");
        break;
    case OPT_USER:
        copy(o->user, sizeof(o->user), arg, "user");
        break;
    case OPT_PASS:
        copy(o->pass, sizeof(o->pass), arg, "password");
        break;
    case OPT_VHOST:
        copy(o->vhost, sizeof(o->vhost), arg, "vhost");
        break;
    case OPT_JSON:
        o->json_path = arg;
        break;
    case OPT_BROKER_PID:
        o->broker_pid = (pid_t)kit_num(arg, 1, 1l << 30, "--broker-pid");
        break;
    case OPT_QUIET:
        o->quiet = true;
        break;
    case OPT_TLS:
        o->tls = true;
        break;
    case OPT_CACERT:
        o->cacert = arg;
        break;
    case 'h':
        fputs(usage_text, stdout);
        exit(0);
    default:
        kit_usage_error("%s", "bad option");
    }
}

static void
parse_opt(struct ed_opts *o, int c, const char *arg)
{
    switch (c) {
    case 'x':
        o->producers = (int)kit_num(arg, 1, 10000, "--producers");
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
    case OPT_XTYPE:
        o->xtype = parse_xtype(arg);
        break;
    case OPT_TOPIC:
        o->topic_bindings = (int)kit_num(arg, 0, 1000000, "--topic-bindings");
        break;
    case OPT_PERSISTENT:
        o->persistent = true;
        break;
    case OPT_DURABLE:
        o->durable_queues = true;
        break;
    case OPT_CONFIRM:
        o->confirm = (uint32_t)kit_num(arg, 0, 1 << 24, "--confirm");
        break;
    case OPT_ACK:
        o->ack_every = (uint32_t)kit_num(arg, 0, 1 << 24, "--ack-every");
        break;
    case OPT_PREFETCH:
        o->prefetch = (uint16_t)kit_num(arg, 0, 65535, "--prefetch");
        break;
    case OPT_RATE:
        o->rate = kit_real(arg, 0, 1e9, "--rate");
        break;
    case OPT_PREFIX:
        copy(o->queue_prefix, sizeof(o->queue_prefix), arg, "queue prefix");
        break;
    case OPT_DRAIN:
        o->drain_timeout = kit_real(arg, 0, 1e6, "--drain-timeout");
        break;
    case OPT_RATES:
        parse_rates(o, arg);
        break;
    case OPT_STEP:
        o->step = kit_real(arg, 0.1, 1e6, "--step");
        break;
    case OPT_SETTLE:
        o->settle = kit_real(arg, 0, 1e6, "--settle");
        break;
    case OPT_LAG:
        o->lag = kit_real(arg, 0, 1, "--lag");
        break;
    default:
        parse_target_opt(o, c, arg);
    }
}

/* Mode-dependent defaults and checks. */
static void
finish_opts(struct ed_opts *o)
{
    if (o->rate < 0)
        o->rate = o->mode == ED_LATENCY ? 1000 : 0;
    if (o->size < PMSG_HDR_SIZE) {
        fprintf(stderr,
                "warren-everyday: --size raised to %d (the check header)\n",
                PMSG_HDR_SIZE);
        o->size = PMSG_HDR_SIZE;
    }
    if (o->mode == ED_SWEEP && o->nrates == 0)
        kit_usage_error("sweep needs --rates");
    if (o->mode != ED_SWEEP && o->nrates > 0)
        kit_usage_error("--rates is for sweep");
}

static void
parse_args(struct ed_opts *o, int argc, char **argv)
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
    while ((c = getopt_long(argc, argv, "x:y:q:s:z:h", long_opts, NULL)) != -1)
        parse_opt(o, c, optarg);
    if (optind < argc)
        kit_usage_error("unexpected argument %s", argv[optind]);
    finish_opts(o);
}

static void
on_sigint(int sig)
{
    (void)sig;
    atomic_store(&ed_interrupted, true);
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
    struct ed_opts o;
    struct ed_result r;
    int rc;

    kit_prog = "warren-everyday";
    perf_epoch_ns = perf_now_ns();
    ereport_out = stdout;
    parse_args(&o, argc, argv);
    if (o.json_path != NULL && strcmp(o.json_path, "-") == 0)
        ereport_out = stderr;
    set_signals();
    sysstat_raise_nofile();
    ed_result_init(&r, &o);
    rc = erun_messages(&o, &r);
    ereport_summary(&r);
    if (o.json_path != NULL && ereport_json(&r) != WR_OK) {
        fprintf(stderr, "warren-everyday: cannot write %s\n", o.json_path);
        rc = WR_ERR;
    }
    rc = rc == WR_OK && ed_result_ok(&r) ? 0 : 1;
    ed_result_fini(&r);
    return rc;
}
