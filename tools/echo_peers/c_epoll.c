/*
 * Reference echo server in C (not a peer: it shows what the machine and the load generator can do).
 * Level-triggered epoll, one thread, 127.0.0.1 and ::1. Usage: c_epoll --port P
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static int listener(int family, const char *host, int port)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET, a->sin_port = htons(port), len = sizeof *a;
        inet_pton(AF_INET, host, &a->sin_addr);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6, a->sin6_port = htons(port), len = sizeof *a;
        inet_pton(AF_INET6, host, &a->sin6_addr);
    }
    int one = 1, fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 1024) < 0) {
        perror(host);
        exit(1);
    }
    return fd;
}

static void on_signal(int sig) { (void)sig; _exit(0); }

int main(int argc, char **argv)
{
    int port = argc == 3 && !strcmp(argv[1], "--port") ? atoi(argv[2]) : 6839, one = 1;
    int ep = epoll_create1(0), lfd[2] = {listener(AF_INET, "127.0.0.1", port), -1};
    int fd6 = socket(AF_INET6, SOCK_STREAM, 0);  /* ::1 only where the machine has IPv6 */
    if (fd6 >= 0) {
        close(fd6);
        lfd[1] = listener(AF_INET6, "::1", port);
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < 2; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd[i]};
        if (lfd[i] >= 0)
            epoll_ctl(ep, EPOLL_CTL_ADD, lfd[i], &ev);
    }
    static char buf[65536];
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd[0] || fd == lfd[1]) {
                int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK);
                if (c < 0)
                    continue;
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                struct epoll_event ev = {.events = EPOLLIN, .data.fd = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                continue;
            }
            ssize_t r = recv(fd, buf, sizeof buf, 0);
            if (r < 0 && errno == EAGAIN)
                continue;
            /* A reference, not a general server: a full send buffer is waited out with poll-free
             * retries, which never happens with a closed-loop client on loopback. */
            for (ssize_t off = 0; r > 0 && off < r;) {
                ssize_t w = send(fd, buf + off, r - off, MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN)
                    r = -1;
                else if (w > 0)
                    off += w;
            }
            if (r <= 0)
                close(fd);  /* closing removes it from the epoll set */
        }
    }
}
