/* Thread churn: memory a finished thread freed stays with the heap for the next
 * thread instead of going back to the kernel at the thread's exit and being
 * faulted in again (jemalloc purges an arena when its last attached thread exits;
 * issue 9's thread-churn case). Each of a run of short threads allocates a few
 * blocks above the pools' limit, writes every page and frees them; after the first
 * thread, the others should find those pages resident. Counts minor page faults
 * (getrusage), which are deterministic enough for a tenfold margin. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

enum { THREADS = 16, BLOCKS = 32, BLOCK_SIZE = 40 << 10, PAGE = 4096 };

static void *churn(void *arg)
{
    (void)arg;
    char *blocks[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(BLOCK_SIZE);
        if (!blocks[i])
            return (void *)1;
        for (size_t at = 0; at < BLOCK_SIZE; at += PAGE)
            ((volatile char *)blocks[i])[at] = (char)at; /* not a dead store */
    }
    for (int i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    return NULL;
}

static long run_thread(void)
{
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    pthread_t t;
    void *failed = NULL;
    if (pthread_create(&t, NULL, churn, NULL) != 0 || pthread_join(t, &failed) != 0 || failed) {
        fprintf(stderr, "thread_churn_faults: thread or allocation failed\n");
        exit(2);
    }
    getrusage(RUSAGE_SELF, &after);
    return after.ru_minflt - before.ru_minflt;
}

int main(void)
{
    /* Transparent huge pages would fault 2 MiB at a time: count 4 KiB pages. */
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    long first = run_thread();
    long later = 0;
    for (int i = 1; i < THREADS; i++)
        later += run_thread();
    long pages_per_thread = (long)BLOCKS * BLOCK_SIZE / PAGE;
    long mean = later / (THREADS - 1);
    printf("page faults: first thread %ld, later threads %ld on average (each writes %ld pages)\n", first, mean,
           pages_per_thread);
    if (mean * 10 > pages_per_thread) {
        fprintf(stderr, "thread_churn_faults: each new thread faulted in %ld of its %ld pages again: the heap gave "
                        "back a finished thread's free memory\n", mean, pages_per_thread);
        return 1;
    }
    return 0;
}
