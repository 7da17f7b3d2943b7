/*
 * loadgen_common.h: what the echo load generators share (tools/loadgen.c, tools/loadgen_tls.c).
 *
 * Their common options (--host, --port, --conns, --size, --duration, --warmup), the set-up (message and
 * receive buffers, the connections, the server's address, the epoll set, a connection's socket), the
 * latency histogram and its percentiles, and the CPU use they report.  Everything here is static, so
 * each tool still builds from its one .c file: cc -O2 -o build/loadgen loadgen.c (the header is found
 * beside it).
 */
#ifndef LOADGEN_COMMON_H
#define LOADGEN_COMMON_H

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

/* Latency histogram: 100 ns buckets up to 100 ms; anything slower lands in the last bucket. */
#define BUCKET_NS 100
#define NBUCKETS 1000000
static uint32_t *hist;
static uint64_t measured, errors, max_ns;
static uint64_t t_start, t_end;  /* the measured window */
static size_t size = 64;         /* --size: bytes per message */
static char *msg, *scratch;      /* the message sent, and where its echo is received */
static int ep;                   /* the epoll set */
static struct addrinfo *addr;    /* the server's address */
static const char *host = "127.0.0.1", *port;
static int nconns = 10;
static double duration = 5, warmup = 1;

/* The common options, for getopt_long's table and its short-option string. */
#define COMMON_OPTIONS                                                                                  \
    {"host", 1, 0, 'H'}, {"port", 1, 0, 'p'}, {"conns", 1, 0, 'c'}, {"size", 1, 0, 's'},                \
        {"duration", 1, 0, 'd'}, {"warmup", 1, 0, 'w'}
#define COMMON_SHORT "H:p:c:s:d:w:"
#define COMMON_USAGE "[--host H] [--port P] [--conns N] [--size BYTES] [--duration S] [--warmup S]"

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

/* One of the common options (getopt_long's `o`): 1 if it was, else 0. */
static int common_option(int o)
{
    switch (o) {
    case 'H': host = optarg; return 1;
    case 'p': port = optarg; return 1;
    case 'c': nconns = atoi(optarg); return 1;
    case 's': size = strtoul(optarg, NULL, 10); return 1;
    case 'd': duration = atof(optarg); return 1;
    case 'w': warmup = atof(optarg); return 1;
    default: return 0;
    }
}

/* After the options: check them, then make the buffers, the epoll set and `nconns` zeroed connections of
 * `conn_size` bytes each (returned), and resolve the server's address. Exits with status 2 on a bad
 * option, and with an {"error": ...} line (status 1) on a failure. */
static void *set_up(const char *name, size_t conn_size)
{
    if (nconns < 1 || size < 1 || duration <= 0 || warmup < 0) {
        fprintf(stderr, "%s: --conns, --size and --duration must be positive\n", name);
        exit(2);
    }
    hist = calloc(NBUCKETS, sizeof *hist);
    msg = malloc(size);
    scratch = malloc(size);
    void *conns = calloc(nconns, conn_size);
    if (!hist || !msg || !scratch || !conns)
        die("malloc");
    for (size_t i = 0; i < size; i++)
        msg[i] = 'a' + i % 26;

    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    int gai = getaddrinfo(host, port, &hints, &addr);
    if (gai) {
        printf("{\"error\": \"getaddrinfo %s: %s\"}\n", host, gai_strerror(gai));
        exit(1);
    }
    if ((ep = epoll_create1(0)) < 0)
        die("epoll_create1");
    return conns;
}

/* A TCP socket for the server's address, with TCP_NODELAY; `flags` as socket(2)'s type (SOCK_NONBLOCK). */
static int new_socket(int flags)
{
    int one = 1, fd = socket(addr->ai_family, SOCK_STREAM | flags, 0);
    if (fd < 0)
        die("socket");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* A request that began at `t0` has ended at `t`: count its latency if it ended in the measured window. */
static void record(uint64_t t0, uint64_t t)
{
    if (t >= t_start && t < t_end) {
        uint64_t lat = t - t0, b = lat / BUCKET_NS;
        hist[b < NBUCKETS ? b : NBUCKETS - 1]++;
        measured++;
        if (lat > max_ns)
            max_ns = lat;
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

/* Our own CPU use since `t_begin`, in percent of one CPU: well below 100% shows the load generator is
 * not the limit. */
static double cpu_percent(uint64_t t_begin)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    return 100 * cpu / ((now_ns() - t_begin) / 1e9);
}

#endif
