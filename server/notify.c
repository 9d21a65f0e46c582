/*
 * notify.c: tells the service manager how the broker is doing, with
 * systemd's sd_notify protocol, so that a unit with Type=notify counts
 * Warren as started only once clients can use it and orders its
 * dependents after that:
 *
 *   notify_ready()     READY=1, once the node has booted (definitions and
 *                      message logs recovered) and every AMQP and HTTP
 *                      listener is open (end of server_init);
 *   notify_stopping()  STOPPING=1, when SIGTERM or SIGINT starts the
 *                      shutdown (connections get 320, then the loop ends).
 *
 * With libsystemd (WARREN_HAVE_SYSTEMD: CMake defines it when pkg-config
 * finds libsystemd and WARREN_SYSTEMD is on) the messages go to
 * $NOTIFY_SOCKET; outside systemd that variable is unset and sd_notify
 * does nothing. Without libsystemd both functions are empty, and the
 * unit file CMake generates says Type=exec instead.
 */
#include "server/server.h"

#ifdef WARREN_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

static void
notify(const char *state)
{
#ifdef WARREN_HAVE_SYSTEMD
    int rc = sd_notify(0, state);

    if (rc < 0)
        log_warn("cannot notify systemd (%s): %s", state, strerror(-rc));
#else
    (void)state;
#endif
}

void
notify_ready(void)
{
    notify("READY=1");
}

void
notify_stopping(void)
{
    notify("STOPPING=1");
}
