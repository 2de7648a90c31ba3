/* fork() while other threads are busy in frame scopes (taking chunks, freeing,
 * using the heap) and a frame clock ends frames: the child, which has only the
 * forking thread, must find every lock usable and every block intact. It frees
 * blocks made by its own thread and by threads that no longer exist in it,
 * allocates everywhere, starts a thread, forks once more, and exits 0. A deadlock
 * turns into SIGALRM. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload_test.h"

enum { WORKERS = 3, FORKS = 30, CHILD_SECONDS = 10, FRAME_MICROSECONDS = 500 };

static volatile int stop;
static unsigned char *worker_block[WORKERS]; /* made in a frame scope, alive */

static void *busy_worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    fa_scope_push(FA_FRAME);
    unsigned char *kept = memset(malloc(300), 'w' + id, 300);
    fa_scope_pop();
    __atomic_store_n(&worker_block[id], kept, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
        fa_scope_push(FA_FRAME);
        void *big[4];
        for (int i = 0; i < 4; i++)
            big[i] = malloc(60000); /* a new chunk every few blocks */
        void *small = malloc(100);
        for (int i = 0; i < 4; i++)
            free(big[i]);
        fa_scope_pop();
        free(small);
        free(malloc(200000)); /* the heap */
        free(malloc(64));     /* the pools */
    }
    return NULL;
}

/* Ends frames the way a game's main loop would; without it the workers' frame
 * memory would only grow (it is recycled when frames end). */
static void *frame_clock(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
        fa_frame_end();
        usleep(FRAME_MICROSECONDS);
    }
    return NULL;
}

static void *child_thread(void *arg)
{
    (void)arg;
    int ok = 1;
    FA_FRAME_SCOPE {
        for (int i = 0; i < 100; i++) {
            unsigned char *p = malloc(500);
            memset(p, 0x42, 500);
            ok &= all_bytes_are(p, 500, 0x42);
            free(p);
        }
    }
    return (void *)(intptr_t)ok;
}

/* Everything the child does; returns its exit status. */
static int child_work(unsigned char *parent_frame, unsigned char *parent_pool)
{
    alarm(CHILD_SECONDS);
    if (!all_bytes_are(parent_frame, 1000, 'p') || !all_bytes_are(parent_pool, 32, 'q'))
        return 2;
    free(parent_frame); /* made by this very thread in the parent */
    free(parent_pool);
    for (int i = 0; i < WORKERS; i++) {
        if (!all_bytes_are(worker_block[i], 300, (unsigned char)('w' + i)))
            return 3;
    }
    FA_FRAME_SCOPE {
        for (int i = 0; i < 200; i++)
            free(memset(malloc(1 + (size_t)i * 97), 1, 1 + (size_t)i * 97));
        unsigned char *grown = malloc(16);
        for (size_t n = 32; n <= 100000; n *= 2)
            grown = realloc(grown, n);
        free(grown);
    }
    free(malloc(5 << 20));
    fa_frame_end();
    pthread_t thread;
    void *thread_ok = NULL;
    if (pthread_create(&thread, NULL, child_thread, NULL) != 0 || pthread_join(thread, &thread_ok) != 0 || !thread_ok)
        return 4;
    /* And a grandchild, forked from a process that was itself forked. */
    pid_t pid = fork();
    if (pid == 0) {
        FA_FRAME_SCOPE {
            free(malloc(100));
        }
        _exit(0);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 5;
    return 0;
}

START_TEST(fork_while_threads_allocate_in_frame_scopes)
{
    pthread_t workers[WORKERS], clock;
    for (int i = 0; i < WORKERS; i++)
        ck_assert_int_eq(pthread_create(&workers[i], NULL, busy_worker, (void *)(intptr_t)i), 0);
    ck_assert_int_eq(pthread_create(&clock, NULL, frame_clock, NULL), 0);
    for (int i = 0; i < WORKERS; i++)
        while (!__atomic_load_n(&worker_block[i], __ATOMIC_ACQUIRE))
            sched_yield();
    for (int round = 0; round < FORKS; round++) {
        unsigned char *parent_frame, *parent_pool;
        FA_FRAME_SCOPE {
            parent_frame = memset(malloc(1000), 'p', 1000);
        }
        parent_pool = memset(malloc(32), 'q', 32);
        pid_t pid = fork();
        if (pid == 0)
            exit(child_work(parent_frame, parent_pool)); /* exit: the full process-end path */
        ck_assert_int_gt(pid, 0);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(!WIFSIGNALED(status), "fork %d: child killed by signal %d (SIGALRM: it hung)", round,
                      WTERMSIG(status));
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork %d: child exited with %d", round,
                      WEXITSTATUS(status));
        free(parent_frame);
        free(parent_pool);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < WORKERS; i++)
        ck_assert_int_eq(pthread_join(workers[i], NULL), 0);
    ck_assert_int_eq(pthread_join(clock, NULL), 0);
    for (int i = 0; i < WORKERS; i++)
        free(worker_block[i]);
}
END_TEST

Suite *preload_suite(void)
{
    Suite *s = suite_create("fork");
    TCase *tc = tcase_create("threads in frame scopes");
    tcase_set_timeout(tc, 40);
    tcase_add_test(tc, fork_while_threads_allocate_in_frame_scopes);
    suite_add_tcase(s, tc);
    return s;
}
