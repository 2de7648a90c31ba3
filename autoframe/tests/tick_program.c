/* The autoframe tick tests' server: a headless loop of N ticks that sleeps or
 * waits between them by one route, then prints
 *   checksum: ticks N
 *   frames: F            (fa_stats_get; -1 without libframealloc)
 *
 * af_tick ROUTE N   ROUTE: nanosleep, clock_nanosleep (relative), clock_abs
 *                          (absolute deadlines), usleep, poll, ppoll, epoll (each
 *                          select, pselect (each 2 ms timeouts that expire),
 *                          epoll_event (no timeout, an event wakes it), sleep (1 s
 *                          each: keep N small), sdl_delay (af_tick_sdl2 only)
 * Every tick also does what must not end a frame: a zero-timeout poll and epoll,
 * a 20 us nanosleep and usleep (back-offs), and an interrupted sleep; and a second
 * thread sleeps 2 ms as often as the main one. So exactly N frames end when ticks
 * are counted right. Built twice more: with _FORTIFY_SOURCE (poll becomes
 * __poll_chk) and with SDL 2. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>
#ifdef WITH_SDL
#include <SDL.h>
#endif

#include "framealloc.h"

#define TICK_MS 2

static int count;
static int pipe_fds[2];
static int epoll_fd;

static void fail(const char *what)
{
    fprintf(stderr, "%s failed: %s\n", what, strerror(errno));
    exit(3);
}

/* Not a constant the compiler sees: with _FORTIFY_SOURCE, poll(fds, n, ...) then
 * calls __poll_chk, as poll calls in Debian's packages do. */
nfds_t poll_count = 1;

static const struct timespec tick_period = {0, TICK_MS * 1000000L};

/* What a tick does besides its sleep: short waits that are not ticks. */
static void not_ticks(void)
{
    struct pollfd fd = {.fd = pipe_fds[0], .events = POLLIN};
    if (poll(&fd, poll_count, 0) < 0)
        fail("poll with no timeout");
    struct epoll_event event;
    if (epoll_wait(epoll_fd, &event, 1, 0) < 0)
        fail("epoll_wait with no timeout");
    struct timeval no_wait = {0, 0};
    if (select(0, NULL, NULL, NULL, &no_wait) < 0)
        fail("select with no timeout");
    struct timespec back_off = {0, 20000};
    nanosleep(&back_off, NULL);
    usleep(20);
}

static void on_alarm(int sig) { (void)sig; }

/* A sleep that a signal cuts short: the caller sees EINTR and sleeps again, which
 * must not make two ticks (the route's own sleep is the tick). */
static void interrupted_sleep(void)
{
    timer_t timer;
    struct sigevent event = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM};
    if (timer_create(CLOCK_MONOTONIC, &event, &timer) != 0)
        fail("timer_create");
    /* Repeating: on a loaded machine the first expiry may come before the sleep starts. */
    struct itimerspec soon = {.it_value = {0, 1000000}, .it_interval = {0, 1000000}};
    timer_settime(timer, 0, &soon, NULL);
    struct timespec long_sleep = {5, 0};
    if (nanosleep(&long_sleep, NULL) == 0 || errno != EINTR)
        fail("interrupting a sleep");
    timer_delete(timer);
}

static void *other_thread(void *unused)
{
    (void)unused;
    for (int i = 0; i < count; i++)
        nanosleep(&tick_period, NULL);
    return NULL;
}

static void tick_sleep(const char *route, struct timespec *deadline)
{
    struct pollfd fd = {.fd = pipe_fds[0], .events = POLLIN};
    struct epoll_event event;
    if (strcmp(route, "nanosleep") == 0) {
        nanosleep(&tick_period, NULL);
    } else if (strcmp(route, "clock_nanosleep") == 0) {
        clock_nanosleep(CLOCK_MONOTONIC, 0, &tick_period, NULL);
    } else if (strcmp(route, "clock_abs") == 0) {
        deadline->tv_nsec += tick_period.tv_nsec;
        if (deadline->tv_nsec >= 1000000000L) {
            deadline->tv_sec++;
            deadline->tv_nsec -= 1000000000L;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, deadline, NULL);
    } else if (strcmp(route, "usleep") == 0) {
        usleep(TICK_MS * 1000);
    } else if (strcmp(route, "poll") == 0) {
        if (poll(&fd, poll_count, TICK_MS) != 0)
            fail("poll");
    } else if (strcmp(route, "ppoll") == 0) {
        if (ppoll(&fd, poll_count, &tick_period, NULL) != 0)
            fail("ppoll");
    } else if (strcmp(route, "epoll") == 0) {
        if (epoll_wait(epoll_fd, &event, 1, TICK_MS) != 0)
            fail("epoll_wait");
    } else if (strcmp(route, "select") == 0) {
        struct timeval timeout = {0, TICK_MS * 1000};
        fd_set in;
        FD_ZERO(&in);
        FD_SET(pipe_fds[0], &in);
        if (select(pipe_fds[0] + 1, &in, NULL, NULL, &timeout) != 0)
            fail("select");
    } else if (strcmp(route, "pselect") == 0) {
        fd_set in;
        FD_ZERO(&in);
        FD_SET(pipe_fds[0], &in);
        if (pselect(pipe_fds[0] + 1, &in, NULL, NULL, &tick_period, NULL) != 0)
            fail("pselect");
    } else if (strcmp(route, "sleep") == 0) {
        if (sleep(1) != 0)
            fail("sleep");
    } else if (strcmp(route, "epoll_event") == 0) {
        char byte = 1;
        if (write(pipe_fds[1], &byte, 1) != 1 || epoll_wait(epoll_fd, &event, 1, -1) != 1 ||
            read(pipe_fds[0], &byte, 1) != 1)
            fail("epoll_wait for an event");
#ifdef WITH_SDL
    } else if (strcmp(route, "sdl_delay") == 0) {
        SDL_Delay(TICK_MS);
#endif
    } else {
        fprintf(stderr, "unknown route %s\n", route);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *route = argv[1];
    count = atoi(argv[2]);
    if (pipe(pipe_fds) != 0 || (epoll_fd = epoll_create1(0)) < 0)
        fail("pipe or epoll_create1");
    struct epoll_event watch = {.events = EPOLLIN};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, pipe_fds[0], &watch) != 0)
        fail("epoll_ctl");
    signal(SIGALRM, on_alarm);
    /* The other thread blocks the alarm, so it interrupts the main thread's sleep. */
    sigset_t alarm;
    sigemptyset(&alarm);
    sigaddset(&alarm, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alarm, NULL);
    pthread_t other;
    pthread_create(&other, NULL, other_thread, NULL);
    pthread_sigmask(SIG_UNBLOCK, &alarm, NULL);

    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    for (int i = 0; i < count; i++) {
        free(malloc(100)); /* the tick's work */
        not_ticks();
        if (i == 0)
            interrupted_sleep();
        tick_sleep(route, &deadline);
    }
    pthread_join(other, NULL);

    fa_stats stats;
    int have_stats = fa_stats_get(&stats) == 0;
    printf("checksum: ticks %d\n", count);
    printf("frames: %lld\n", have_stats ? (long long)stats.frame : -1LL);
    return 0;
}
