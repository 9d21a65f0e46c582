/*
 * latency_floor.c: what one-way latency this machine allows at all.
 *
 *   warren-latency-floor [--rate N] [-z SECONDS] [--json]
 *
 * Scenario 8 (warren-perf latency) measures publisher -> broker ->
 * consumer: a producer thread wakes, writes, the broker process wakes,
 * reads and writes, a consumer thread wakes and reads. This tool does
 * exactly those wake-ups and system calls with nothing else in between: a
 * relay process that poll()s two loopback sockets and copies 16-byte
 * timestamps from one to the other, fed by a producer thread at a fixed
 * rate and read by a consumer thread. No broker can beat its percentiles
 * on the same machine, so it tells how far a latency goal is from what
 * the machine (its scheduler and its hypervisor) gives.
 *
 * Prints p50/p90/p99/p99.9/max in microseconds, or one JSON object with
 * --json.
 */
#include "test/bench/perf/perf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct floor {
    double rate;
    double seconds;
    int port;
    struct hist lat;
    uint64_t sent;
    uint64_t received;
};

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
die(const char *what)
{
    fprintf(stderr, "warren-latency-floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void
nodelay(int fd)
{
    int one = 1;

    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        die("TCP_NODELAY");
}

static int
dial(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        die("socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        die("connect to the relay");
    nodelay(fd);
    return fd;
}

static bool
read_full(int fd, void *buf, size_t n)
{
    char *p = buf;

    while (n > 0) {
        ssize_t r = read(fd, p, n);

        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            return false;
        }
        p += r;
        n -= (size_t)r;
    }
    return true;
}

/*
 * The relay, in a child process like a broker: accept the producer and
 * the consumer, then poll() and copy whatever arrives, as an event loop
 * would. Exits when the producer hangs up.
 */
static void
relay(int lfd)
{
    int in = accept(lfd, NULL, NULL);
    int out = accept(lfd, NULL, NULL);
    char buf[4096];

    if (in < 0 || out < 0)
        die("accept");
    nodelay(in);
    nodelay(out);
    for (;;) {
        struct pollfd pfd = {.fd = in, .events = POLLIN};
        ssize_t r;

        if (poll(&pfd, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        r = read(in, buf, sizeof(buf));
        if (r <= 0)
            break;
        if (write(out, buf, (size_t)r) != r)
            die("relay write");
    }
    _exit(0);
}

static void *
consumer_main(void *arg)
{
    struct floor *f = arg;
    int fd = dial(f->port);
    uint64_t ts;

    while (read_full(fd, &ts, sizeof(ts))) {
        hist_record(&f->lat, now_ns() - ts);
        f->received++;
    }
    close(fd);
    return NULL;
}

/* Sends one timestamp every 1/rate seconds, sleeping until each is due. */
static void
produce(struct floor *f, int fd)
{
    uint64_t t0 = now_ns();
    uint64_t end = t0 + (uint64_t)(f->seconds * 1e9);

    for (uint64_t i = 0;; i++) {
        uint64_t due = t0 + (uint64_t)((double)i * 1e9 / f->rate);
        struct timespec ts = {.tv_sec = (time_t)(due / 1000000000ull),
                              .tv_nsec = (long)(due % 1000000000ull)};
        uint64_t now;

        if (due >= end)
            break;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
               EINTR)
            ;
        now = now_ns();
        if (write(fd, &now, sizeof(now)) != (ssize_t)sizeof(now))
            die("write");
        f->sent++;
    }
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: warren-latency-floor [--rate MSGS_PER_S] [-z SECONDS] "
            "[--json]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"rate", required_argument, NULL, 'r'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0}};
    static struct floor f = {.rate = 1000, .seconds = 10};
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    bool json = false;
    pthread_t th;
    pid_t child;
    int c, lfd, fd;

    while ((c = getopt_long(argc, argv, "z:", longs, NULL)) != -1) {
        switch (c) {
        case 'r':
            f.rate = atof(optarg);
            break;
        case 'z':
            f.seconds = atof(optarg);
            break;
        case 'j':
            json = true;
            break;
        default:
            usage();
        }
    }
    if (optind != argc || !(f.rate > 0) || !(f.seconds > 0))
        usage();
    hist_init(&f.lat);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(lfd, 4) != 0 || getsockname(lfd, (struct sockaddr *)&sa, &sl))
        die("listen on loopback");
    f.port = ntohs(sa.sin_port);
    child = fork();
    if (child < 0)
        die("fork");
    if (child == 0)
        relay(lfd);
    close(lfd);
    fd = dial(f.port);
    if (pthread_create(&th, NULL, consumer_main, &f) != 0)
        die("pthread_create");
    /* The relay accepts in order: the consumer must be connected before
     * the first timestamp can go anywhere. */
    usleep(100000);
    if (!json)
        fprintf(stderr, "relaying %.0f msg/s for %.0f s...\n", f.rate,
                f.seconds);
    produce(&f, fd);
    close(fd);
    pthread_join(th, NULL);
    waitpid(child, NULL, 0);

    double q[] = {0.5, 0.9, 0.99, 0.999};
    double us[4];

    for (int i = 0; i < 4; i++)
        us[i] = (double)hist_quantile(&f.lat, q[i]) / 1e3;
    if (json)
        printf("{\"rate\": %.0f, \"seconds\": %.1f, \"sent\": %" PRIu64
               ", \"received\": %" PRIu64
               ", \"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, "
               "\"p999\": %.1f, \"max\": %.1f}\n",
               f.rate, f.seconds, f.sent, f.received, us[0], us[1], us[2],
               us[3], (double)ctr_get(&f.lat.max) / 1e3);
    else
        printf("%" PRIu64 " of %" PRIu64
               " relayed; one-way latency µs: p50 %.1f  p90 %.1f  p99 %.1f  "
               "p99.9 %.1f  max %.1f\n",
               f.received, f.sent, us[0], us[1], us[2], us[3],
               (double)ctr_get(&f.lat.max) / 1e3);
    return f.received == f.sent ? 0 : 1;
}
