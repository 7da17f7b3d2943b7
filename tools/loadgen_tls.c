/*
 * loadgen_tls: the echo load generator of tools/loadgen.c over TLS (OpenSSL), for tools/bench_tls.py.
 *
 * Echo mode (the default): N connections are opened and their TLS handshakes done first (not timed);
 * then each sends a message of S bytes, waits for the whole echo, checks it and sends again, for a
 * warm-up and then T measured seconds.
 * Handshake mode (--handshakes): N connections at a time each go through a whole life again and again:
 * connect, TLS handshake, one S-byte echo, close_notify, close. A "request" is one such life; every
 * handshake is a full one (no session is kept for resumption).
 *
 * One thread, one epoll set, non-blocking sockets, one SSL_CTX, no allocation per request in echo mode,
 * so it measures the server: the client's share of the cryptography is the same C code the servers call,
 * and it has a CPU of its own.  The server's certificate is not verified (--cafile verifies it; the
 * signature of the handshake is checked either way): the benchmark measures servers, not the client.
 *
 * --hold (echo mode): once every handshake is done, print {"ready": N} and wait for a line on stdin
 * before starting the clock; at the end, print the result and wait for another line before closing the
 * connections: a profiler of the server can be zeroed and dumped around the measured run alone.
 *
 * Prints one JSON line, as loadgen does: requests/s, p50/p99/max latency (microseconds), MB/s of echoed
 * payload and its own CPU use.
 *
 *   cc -O2 -o build/loadgen_tls loadgen_tls.c -lssl -lcrypto
 *   build/loadgen_tls --port 6840 --conns 100 --size 64 --duration 5 --warmup 1 [--handshakes]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum phase { CONNECTING, HANDSHAKE, SENDING, RECEIVING };

struct conn {
    int fd;
    SSL *ssl;
    enum phase phase;
    size_t got;         /* bytes of the current echo received */
    uint64_t t0;        /* when the current request started, ns */
    int events;         /* what epoll watches for this fd */
};

#define BUCKET_NS 100
#define NBUCKETS 1000000
static uint32_t *hist;
static uint64_t measured, errors, max_ns;
static uint64_t t_start, t_end;
static size_t size;
static char *msg, *scratch;
static int ep, handshakes, hold;
static SSL_CTX *ctx;
static struct addrinfo *addr;
static const char *last_error = "";

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static void die(const char *what)
{
    printf("{\"error\": \"%s: %s\"}\n", what, errno ? strerror(errno) : "failed");
    exit(1);
}

static void watch(struct conn *c, int events)
{
    if (c->events == events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl");
    c->events = events;
}

static void drop(struct conn *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);  /* closing the fd takes it out of the epoll set */
    c->fd = -1;
    c->events = 0;
}

static void fail(struct conn *c, const char *why)
{
    errors++;
    last_error = why;
    drop(c);
}

/* After an SSL call returned r <= 0: wait for what it wants (1), or fail the connection (0). */
static int want(struct conn *c, int r, const char *what)
{
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        watch(c, EPOLLIN);
        return 1;
    case SSL_ERROR_WANT_WRITE:
        watch(c, EPOLLIN | EPOLLOUT);
        return 1;
    default:
        ERR_clear_error();
        fail(c, what);
        return 0;
    }
}

static void open_conn(struct conn *c, uint64_t t)
{
    int one = 1;
    c->t0 = t;
    c->fd = socket(addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0)
        die("socket");
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->ssl = SSL_new(ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd))
        die("SSL_new");
    SSL_set_connect_state(c->ssl);
    c->events = 0;
    c->phase = CONNECTING;
    if (connect(c->fd, addr->ai_addr, addr->ai_addrlen) < 0 && errno != EINPROGRESS) {
        fail(c, "connect");
        return;
    }
    watch(c, EPOLLOUT);
}

static void step(struct conn *c);
static void print_result(const char *host, const char *port, int nconns, double duration, uint64_t t_begin);

static void begin_request(struct conn *c, uint64_t t)
{
    c->t0 = t;
    c->got = 0;
    c->phase = SENDING;
    step(c);
}

static void finish_request(struct conn *c)
{
    uint64_t t = now_ns();
    if (t >= t_start && t < t_end) {
        uint64_t lat = t - c->t0, b = lat / BUCKET_NS;
        hist[b < NBUCKETS ? b : NBUCKETS - 1]++;
        measured++;
        if (lat > max_ns)
            max_ns = lat;
    }
    if (!handshakes) {
        begin_request(c, t);
        return;
    }
    SSL_shutdown(c->ssl);  /* close_notify, not waiting for the server's */
    drop(c);
    if (t < t_end)
        open_conn(c, t);
}

/* Move a connection along as far as it goes without waiting. */
static void step(struct conn *c)
{
    int r;
    for (;;) {
        switch (c->phase) {
        case CONNECTING: {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err) {
                fail(c, "connect");
                return;
            }
            c->phase = HANDSHAKE;
            break;
        }
        case HANDSHAKE:
            if ((r = SSL_do_handshake(c->ssl)) <= 0) {
                want(c, r, "handshake");
                return;
            }
            watch(c, EPOLLIN);
            if (!handshakes)
                return;  /* echo mode: handshakes are done before the run */
            c->phase = SENDING;
            c->got = 0;
            break;
        case SENDING:
            if ((r = SSL_write(c->ssl, msg, size)) <= 0) {
                want(c, r, "write");
                return;
            }
            c->phase = RECEIVING;
            watch(c, EPOLLIN);
            break;
        case RECEIVING:
            if ((r = SSL_read(c->ssl, scratch, size - c->got)) <= 0) {
                want(c, r, "read (end of stream or error)");
                return;
            }
            if (memcmp(scratch, msg + c->got, r) != 0) {
                fail(c, "wrong echo");
                return;
            }
            c->got += r;
            if (c->got == size) {
                finish_request(c);
                return;
            }
            break;
        }
    }
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
    const char *host = "127.0.0.1", *port = "6840", *cafile = NULL;
    int nconns = 10;
    double duration = 5, warmup = 1;
    size = 64;
    static const struct option opts[] = {
        {"host", 1, 0, 'H'}, {"port", 1, 0, 'p'}, {"conns", 1, 0, 'c'}, {"size", 1, 0, 's'},
        {"duration", 1, 0, 'd'}, {"warmup", 1, 0, 'w'}, {"handshakes", 0, 0, 'k'}, {"cafile", 1, 0, 'a'},
        {"hold", 0, 0, 'h'}, {0, 0, 0, 0}};
    for (int o; (o = getopt_long(argc, argv, "H:p:c:s:d:w:ka:h", opts, NULL)) != -1;) {
        switch (o) {
        case 'H': host = optarg; break;
        case 'p': port = optarg; break;
        case 'c': nconns = atoi(optarg); break;
        case 's': size = strtoul(optarg, NULL, 10); break;
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'k': handshakes = 1; break;
        case 'a': cafile = optarg; break;
        case 'h': hold = 1; break;
        default:
            fprintf(stderr, "usage: %s [--host H] [--port P] [--conns N] [--size BYTES] [--duration S] "
                            "[--warmup S] [--handshakes] [--cafile CA.pem] [--hold]\n", argv[0]);
            return 2;
        }
    }
    if (nconns < 1 || size < 1 || duration <= 0 || warmup < 0) {
        fprintf(stderr, "loadgen_tls: --conns, --size and --duration must be positive\n");
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

    if (!(ctx = SSL_CTX_new(TLS_client_method())))
        die("SSL_CTX_new");
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (cafile) {
        if (!SSL_CTX_load_verify_locations(ctx, cafile, NULL))
            die("SSL_CTX_load_verify_locations");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }

    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    int gai = getaddrinfo(host, port, &hints, &addr);
    if (gai) {
        printf("{\"error\": \"getaddrinfo %s: %s\"}\n", host, gai_strerror(gai));
        return 1;
    }
    if ((ep = epoll_create1(0)) < 0)
        die("epoll_create1");

    uint64_t t = now_ns(), t_begin = t;
    struct epoll_event evs[256];
    for (int i = 0; i < nconns; i++)
        open_conn(&conns[i], t);
    if (!handshakes) {
        /* Echo mode: every connection connected and handshaken before the clock starts. */
        int ready = 0;
        while (ready + (int)errors < nconns) {
            int n = epoll_wait(ep, evs, 256, 120000);
            if (n <= 0 && errno != EINTR)
                die("handshakes before the run");
            for (int i = 0; i < n; i++) {
                struct conn *c = evs[i].data.ptr;
                step(c);
                ready += c->fd >= 0 && SSL_is_init_finished(c->ssl);
            }
        }
        if (errors)
            die(last_error);
        if (hold) {  /* --hold: say so, and start when a line arrives on stdin (bench_tls --instructions) */
            char line[16];
            printf("{\"ready\": %d}\n", ready);
            fflush(stdout);
            if (!fgets(line, sizeof line, stdin))
                die("--hold: stdin closed");
        }
        t = now_ns();
    }
    t_start = t + (uint64_t)(warmup * 1e9);
    t_end = t_start + (uint64_t)(duration * 1e9);
    if (!handshakes)
        for (int i = 0; i < nconns; i++)
            begin_request(&conns[i], t);

    while ((t = now_ns()) < t_end && errors < (uint64_t)nconns * (handshakes ? 100 : 1)) {
        int n = epoll_wait(ep, evs, 256, (int)((t_end - t) / 1000000) + 1);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->fd >= 0)
                step(c);
            if (handshakes && c->fd < 0 && (t = now_ns()) < t_end)
                open_conn(c, t);  /* a failed life: start another (the error is counted) */
        }
    }
    if (hold) {  /* --hold: the result first, and the connections kept until a line arrives on stdin */
        print_result(host, port, nconns, duration, t_begin);
        char line[16];
        if (!fgets(line, sizeof line, stdin))
            die("--hold: stdin closed");
    }
    for (int i = 0; i < nconns; i++)
        drop(&conns[i]);
    if (!hold)
        print_result(host, port, nconns, duration, t_begin);
    return errors ? 1 : 0;
}

static void print_result(const char *host, const char *port, int nconns, double duration, uint64_t t_begin)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    double cpu_pct = 100 * cpu / ((now_ns() - t_begin) / 1e9);

    printf("{\"host\": \"%s\", \"port\": %s, \"conns\": %d, \"size\": %zu, \"handshakes\": %s, "
           "\"duration_s\": %.3f, \"requests\": %llu, \"rps\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
           "\"max_us\": %.1f, \"mbps\": %.2f, \"errors\": %llu, \"last_error\": \"%s\", \"cpu_pct\": %.0f}\n",
           host, port, nconns, size, handshakes ? "true" : "false", duration, (unsigned long long)measured,
           measured / duration, percentile_us(0.50), percentile_us(0.99), max_ns / 1e3,
           measured * (double)size / duration / 1e6, (unsigned long long)errors, last_error, cpu_pct);
    fflush(stdout);
}
