/*
 * epoll_echo.c: the smallest honest epoll echo server, as a yardstick.
 *
 * `make bench` runs `netlab epoll-demo --quiet` and this program under the
 * same load and compares the server CPU time each spends per echo round
 * trip. This is the floor for the design both share: one thread,
 * level-triggered epoll, non-blocking sockets, a fixed buffer per
 * connection, and partial writes kept until the socket is writable again
 * (while a connection's output is backed up we stop reading from it).
 *
 * Build and run:   cc -O2 -o epoll_echo epoll_echo.c && ./epoll_echo 127.0.0.1 0
 * It prints "listening on HOST:PORT" and serves until SIGINT or SIGTERM.
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 4096
#define MAX_EVENTS 256

/* One client: the bytes read but not yet written back. */
struct conn {
    char buf[BUF_SIZE];
    size_t start, end; /* pending output is buf[start..end) */
};

static volatile sig_atomic_t stopping;

static void on_signal(int signo) {
    (void)signo;
    stopping = 1;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* Watch fd for reading, or only for writing while output is pending. */
static void watch(int epfd, int op, int fd, int want_write) {
    struct epoll_event ev = {.events = want_write ? EPOLLOUT : EPOLLIN, .data.fd = fd};
    if (epoll_ctl(epfd, op, fd, &ev) < 0) die("epoll_ctl");
}

static void drop(int fd, struct conn **conns) {
    close(fd); /* also removes it from the epoll set */
    free(conns[fd]);
    conns[fd] = NULL;
}

/* Write what is pending. Returns 1 if all is out, 0 if the socket is
 * full, -1 if the connection is broken. */
static int flush_out(int fd, struct conn *c) {
    while (c->start < c->end) {
        ssize_t n = send(fd, c->buf + c->start, c->end - c->start, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            return -1;
        }
        c->start += (size_t)n;
    }
    c->start = c->end = 0;
    return 1;
}

int main(int argc, char **argv) {
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    int port = argc > 2 ? atoi(argv[2]) : 0;

    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* One descriptor per connection: allow as many as the hard limit. */
    struct rlimit lim = {.rlim_cur = 1024, .rlim_max = 1024};
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
    size_t max_fds = (size_t)lim.rlim_cur;
    struct conn **conns = calloc(max_fds, sizeof *conns);
    if (!conns) die("calloc");

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "not an IPv4 address: %s\n", host);
        return 1;
    }
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(lfd, SOMAXCONN) < 0) die("listen");
    socklen_t len = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &len);
    printf("listening on %s:%d\n", host, ntohs(addr.sin_port));
    fflush(stdout);

    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");
    watch(epfd, EPOLL_CTL_ADD, lfd, 0);

    struct epoll_event events[MAX_EVENTS];
    while (!stopping) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                /* Level-triggered: one accept per wakeup is enough; the
                 * listener stays ready while more are queued. */
                int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) continue; /* EAGAIN, ECONNABORTED, EMFILE... */
                if ((size_t)cfd >= max_fds || !(conns[cfd] = calloc(1, sizeof(struct conn)))) {
                    close(cfd);
                    continue;
                }
                watch(epfd, EPOLL_CTL_ADD, cfd, 0);
                continue;
            }
            struct conn *c = conns[fd];
            if (!c) continue;
            if (c->end > 0) { /* writable again: send the rest */
                int done = flush_out(fd, c);
                if (done < 0) drop(fd, conns);
                else if (done) watch(epfd, EPOLL_CTL_MOD, fd, 0);
                continue;
            }
            ssize_t got = recv(fd, c->buf, BUF_SIZE, 0);
            if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
                drop(fd, conns); /* EOF or reset */
                continue;
            }
            if (got < 0) continue;
            c->start = 0;
            c->end = (size_t)got;
            int done = flush_out(fd, c);
            if (done < 0) drop(fd, conns);
            else if (!done) watch(epfd, EPOLL_CTL_MOD, fd, 1); /* backed up */
        }
    }
    for (size_t fd = 0; fd < max_fds; fd++)
        if (conns[fd]) drop((int)fd, conns);
    free(conns);
    close(epfd);
    close(lfd);
    return 0;
}
