/*
 * loadgen: a closed-loop echo load generator for the echo-server benchmark (issue 4).
 *
 * N connections each send a message of S bytes, wait for the whole echo, check it and send again, for a
 * short warm-up and then T measured seconds. One thread, one epoll set, non-blocking sockets, no
 * allocation after start-up, so it stays well ahead of any Python server on the other CPU.
 *
 * Prints one JSON line: requests/s, p50/p99/max latency (microseconds, from the first byte sent to the
 * last byte of the echo received), MB/s (echoed payload, one direction, 10^6 bytes) and its own CPU use
 * (percent of one CPU over warm-up and measurement).  What it shares with loadgen_tls.c (options,
 * set-up, histogram, CPU use) is in loadgen_common.h.
 *
 *   cc -O2 -o build/loadgen loadgen.c
 *   build/loadgen --host 127.0.0.1 --port 6839 --conns 100 --size 64 --duration 5 --warmup 1
 */
#include "loadgen_common.h"

struct conn {
    int fd;
    size_t sent, got;   /* bytes of the current request sent, and echoed back */
    uint64_t t0;        /* when the current request started, ns */
    int want_out;       /* EPOLLOUT is registered: a send was cut short */
};

static void watch(struct conn *c, int out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl");
    c->want_out = out;
}

static void fail(struct conn *c)
{
    errors++;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

/* Send what is left of the current request; wait for EPOLLOUT if the socket buffer is full. */
static void push(struct conn *c)
{
    while (c->sent < size) {
        ssize_t n = send(c->fd, msg + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                if (!c->want_out)
                    watch(c, 1);
                return;
            }
            fail(c);
            return;
        }
        c->sent += n;
    }
    if (c->want_out)
        watch(c, 0);
}

static void start(struct conn *c, uint64_t t)
{
    c->t0 = t;
    c->sent = c->got = 0;
    push(c);
}

/* One recv per readiness event: it asks for exactly the rest of the echo, so a short read means the
 * socket is drained, and a second recv would only fail with EAGAIN. */
static void pull(struct conn *c)
{
    ssize_t n = recv(c->fd, scratch, size - c->got, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 || memcmp(scratch, msg + c->got, n) != 0) {
        fail(c);  /* reset, early EOF, or an echo that is not what was sent */
        return;
    }
    c->got += n;
    if (c->got < size)
        return;
    uint64_t t = now_ns();
    record(c->t0, t);
    start(c, t);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {COMMON_OPTIONS, {0, 0, 0, 0}};
    port = "6839";
    for (int o; (o = getopt_long(argc, argv, COMMON_SHORT, opts, NULL)) != -1;) {
        if (!common_option(o)) {
            fprintf(stderr, "usage: %s " COMMON_USAGE "\n", argv[0]);
            return 2;
        }
    }
    struct conn *conns = set_up("loadgen", sizeof *conns);

    /* Connect blocking, then switch to non-blocking: connection set-up is not part of the run. */
    for (int i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        c->fd = new_socket(0);
        if (connect(c->fd, addr->ai_addr, addr->ai_addrlen) < 0)
            die("connect");
        if (fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0)
            die("fcntl");
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            die("epoll_ctl");
    }
    freeaddrinfo(addr);

    uint64_t t = now_ns(), t_begin = t;
    t_start = t + (uint64_t)(warmup * 1e9);
    t_end = t_start + (uint64_t)(duration * 1e9);
    for (int i = 0; i < nconns; i++)
        start(&conns[i], t);

    struct epoll_event evs[256];
    while ((t = now_ns()) < t_end && errors < (uint64_t)nconns) {
        int n = epoll_wait(ep, evs, 256, (int)((t_end - t) / 1000000) + 1);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->fd >= 0 && (evs[i].events & EPOLLOUT))
                push(c);
            if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                pull(c);
        }
    }
    for (int i = 0; i < nconns; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    double cpu_pct = cpu_percent(t_begin);  /* our own CPU use under load */

    printf("{\"host\": \"%s\", \"port\": %s, \"conns\": %d, \"size\": %zu, \"duration_s\": %.3f, "
           "\"requests\": %llu, \"rps\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f, "
           "\"mbps\": %.2f, \"errors\": %llu, \"cpu_pct\": %.0f}\n",
           host, port, nconns, size, duration, (unsigned long long)measured, measured / duration,
           percentile_us(0.50), percentile_us(0.99), max_ns / 1e3, measured * (double)size / duration / 1e6,
           (unsigned long long)errors, cpu_pct);
    return errors ? 1 : 0;
}
