/*
 * loadgen: a closed-loop echo load generator for the echo-server benchmark (issue 4).
 *
 * N connections each send a message of S bytes, wait for the whole echo, check it and send again, for a
 * short warm-up and then T measured seconds. One thread, one epoll set, non-blocking sockets, no
 * allocation after start-up, so it stays well ahead of any Python server on the other CPU.
 *
 * Prints one JSON line: requests/s, p50/p99/max latency (microseconds, from the first byte sent to the
 * last byte of the echo received), MB/s (echoed payload, one direction, 10^6 bytes) and its own CPU use
 * (percent of one CPU over warm-up and measurement).
 *
 *   cc -O2 -o build/loadgen loadgen.c
 *   build/loadgen --host 127.0.0.1 --port 6839 --conns 100 --size 64 --duration 5 --warmup 1
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    size_t sent, got;   /* bytes of the current request sent, and echoed back */
    uint64_t t0;        /* when the current request started, ns */
    int want_out;       /* EPOLLOUT is registered: a send was cut short */
};

/* Latency histogram: 100 ns buckets up to 100 ms; anything slower lands in the last bucket. */
#define BUCKET_NS 100
#define NBUCKETS 1000000
static uint32_t *hist;
static uint64_t measured, errors, max_ns;
static uint64_t t_start, t_end;  /* the measured window */
static size_t size;
static char *msg, *scratch;
static int ep;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static void die(const char *what)
{
    printf("{\"error\": \"%s: %s\"}\n", what, strerror(errno));
    exit(1);
}

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
    if (t >= t_start && t < t_end) {
        uint64_t lat = t - c->t0, b = lat / BUCKET_NS;
        hist[b < NBUCKETS ? b : NBUCKETS - 1]++;
        measured++;
        if (lat > max_ns)
            max_ns = lat;
    }
    start(c, t);
}

static double percentile_us(double p)
{
    uint64_t rank = (uint64_t)(p * measured + 0.999999), seen = 0;
    if (measured == 0)
        return 0;
    for (size_t b = 0; b < NBUCKETS; b++) {
        seen += hist[b];
        if (seen >= rank)
            return b == NBUCKETS - 1 ? max_ns / 1e3 : (b + 0.5) * BUCKET_NS / 1e3;
    }
    return max_ns / 1e3;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = "6839";
    int nconns = 10;
    double duration = 5, warmup = 1;
    size = 64;
    static const struct option opts[] = {
        {"host", 1, 0, 'H'}, {"port", 1, 0, 'p'}, {"conns", 1, 0, 'c'}, {"size", 1, 0, 's'},
        {"duration", 1, 0, 'd'}, {"warmup", 1, 0, 'w'}, {0, 0, 0, 0}};
    for (int o; (o = getopt_long(argc, argv, "H:p:c:s:d:w:", opts, NULL)) != -1;) {
        switch (o) {
        case 'H': host = optarg; break;
        case 'p': port = optarg; break;
        case 'c': nconns = atoi(optarg); break;
        case 's': size = strtoul(optarg, NULL, 10); break;
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        default:
            fprintf(stderr, "usage: %s [--host H] [--port P] [--conns N] [--size BYTES] "
                            "[--duration S] [--warmup S]\n", argv[0]);
            return 2;
        }
    }
    if (nconns < 1 || size < 1 || duration <= 0 || warmup < 0) {
        fprintf(stderr, "loadgen: --conns, --size and --duration must be positive\n");
        return 2;
    }

    hist = calloc(NBUCKETS, sizeof *hist);
    msg = malloc(size);
    scratch = malloc(size);
    struct conn *conns = calloc(nconns, sizeof *conns);
    if (!hist || !msg || !scratch || !conns)
        die("malloc");
    for (size_t i = 0; i < size; i++)
        msg[i] = 'a' + i % 26;

    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai) {
        printf("{\"error\": \"getaddrinfo %s: %s\"}\n", host, gai_strerror(gai));
        return 1;
    }
    if ((ep = epoll_create1(0)) < 0)
        die("epoll_create1");
    /* Connect blocking, then switch to non-blocking: connection set-up is not part of the run. */
    for (int i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        int one = 1;
        c->fd = socket(ai->ai_family, SOCK_STREAM, 0);
        if (c->fd < 0)
            die("socket");
        if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0)
            die("connect");
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0)
            die("fcntl");
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            die("epoll_ctl");
    }
    freeaddrinfo(ai);

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
    /* Our own CPU use under load: well below 100% shows the load generator is not the limit. */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    double cpu_pct = 100 * cpu / ((now_ns() - t_begin) / 1e9);

    printf("{\"host\": \"%s\", \"port\": %s, \"conns\": %d, \"size\": %zu, \"duration_s\": %.3f, "
           "\"requests\": %llu, \"rps\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f, "
           "\"mbps\": %.2f, \"errors\": %llu, \"cpu_pct\": %.0f}\n",
           host, port, nconns, size, duration, (unsigned long long)measured, measured / duration,
           percentile_us(0.50), percentile_us(0.99), max_ns / 1e3, measured * (double)size / duration / 1e6,
           (unsigned long long)errors, cpu_pct);
    return errors ? 1 : 0;
}
