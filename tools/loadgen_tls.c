/*
 * loadgen_tls: the echo load generator of tools/loadgen.c over TLS (OpenSSL), for tools/bench_tls.py
 * (what the two share is tools/loadgen_common.h).
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
#include "loadgen_common.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

enum phase { CONNECTING, HANDSHAKE, SENDING, RECEIVING };

struct conn {
    int fd;
    SSL *ssl;
    enum phase phase;
    size_t got;         /* bytes of the current echo received */
    uint64_t t0;        /* when the current request started, ns */
    int events;         /* what epoll watches for this fd */
};

static int handshakes, hold;
static SSL_CTX *ctx;
static const char *last_error = "";

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
    c->t0 = t;
    c->fd = new_socket(SOCK_NONBLOCK);
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
static void print_result(uint64_t t_begin);

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
    record(c->t0, t);
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

int main(int argc, char **argv)
{
    const char *cafile = NULL;
    static const struct option opts[] = {
        COMMON_OPTIONS, {"handshakes", 0, 0, 'k'}, {"cafile", 1, 0, 'a'}, {"hold", 0, 0, 'h'}, {0, 0, 0, 0}};
    port = "6840";
    for (int o; (o = getopt_long(argc, argv, COMMON_SHORT "ka:h", opts, NULL)) != -1;) {
        if (common_option(o))
            continue;
        switch (o) {
        case 'k': handshakes = 1; break;
        case 'a': cafile = optarg; break;
        case 'h': hold = 1; break;
        default:
            fprintf(stderr, "usage: %s " COMMON_USAGE " [--handshakes] [--cafile CA.pem] [--hold]\n", argv[0]);
            return 2;
        }
    }
    struct conn *conns = set_up("loadgen_tls", sizeof *conns);

    if (!(ctx = SSL_CTX_new(TLS_client_method())))
        die("SSL_CTX_new");
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (cafile) {
        if (!SSL_CTX_load_verify_locations(ctx, cafile, NULL))
            die("SSL_CTX_load_verify_locations");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }

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
        print_result(t_begin);
        char line[16];
        if (!fgets(line, sizeof line, stdin))
            die("--hold: stdin closed");
    }
    for (int i = 0; i < nconns; i++)
        drop(&conns[i]);
    if (!hold)
        print_result(t_begin);
    return errors ? 1 : 0;
}

static void print_result(uint64_t t_begin)
{
    double cpu_pct = cpu_percent(t_begin);

    printf("{\"host\": \"%s\", \"port\": %s, \"conns\": %d, \"size\": %zu, \"handshakes\": %s, "
           "\"duration_s\": %.3f, \"requests\": %llu, \"rps\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
           "\"max_us\": %.1f, \"mbps\": %.2f, \"errors\": %llu, \"last_error\": \"%s\", \"cpu_pct\": %.0f}\n",
           host, port, nconns, size, handshakes ? "true" : "false", duration, (unsigned long long)measured,
           measured / duration, percentile_us(0.50), percentile_us(0.99), max_ns / 1e3,
           measured * (double)size / duration / 1e6, (unsigned long long)errors, last_error, cpu_pct);
    fflush(stdout);
}
