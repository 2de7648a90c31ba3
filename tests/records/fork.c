/* fork while recording: two threads allocate all the time while the main thread
 * forks. Each child allocates and frees, leaks CHILD_LEAKS blocks, writes its own
 * report with fa_report into DIR/child-N and exits 0 (through exit, so the library's
 * exit report runs in the child too). The parent's exit report goes to
 * FRAMEALLOC_REPORT. Usage: fork DIR. Prints the pids for the checker. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <framealloc.h>

enum { FORKS = 6, PARENT_LEAKS = 5, CHILD_LEAKS = 10, LEAK_SIZE = 128, RING = 64 };

static atomic_int stop;
static void *parent_kept[PARENT_LEAKS];
static void *child_kept[CHILD_LEAKS];

__attribute__((noinline)) static void *thread_site(size_t n)
{
    return malloc(n); /* @site:thread */
}

static void *allocator_thread(void *arg)
{
    unsigned seed = (unsigned)(size_t)arg;
    void *ring[RING] = {0};
    for (unsigned i = 0; !atomic_load(&stop); i++) {
        seed = seed * 1103515245u + 12345u;
        free(ring[i % RING]);
        ring[i % RING] = thread_site(16 + (seed >> 16) % 4000);
        memset(ring[i % RING], 1, 16);
    }
    for (int i = 0; i < RING; i++)
        free(ring[i]);
    return NULL;
}

__attribute__((noinline)) static void parent_site(int i)
{
    parent_kept[i] = malloc(LEAK_SIZE); /* @site:parent */
}

__attribute__((noinline)) static void child_site(int i)
{
    child_kept[i] = malloc(LEAK_SIZE); /* @site:child */
}

__attribute__((noinline)) static void child_churn(void)
{
    for (int i = 0; i < 1000; i++) {
        char *p = malloc(32 + (size_t)i % 500); /* @site:child_churn */
        p[0] = 1;
        free(p);
    }
}

static int child_main(const char *dir, int n)
{
    child_churn();
    for (int i = 0; i < CHILD_LEAKS; i++)
        child_site(i);
    char path[4096];
    snprintf(path, sizeof path, "%s/child-%d", dir, n);
    if (fa_report(path) != 0) {
        fprintf(stderr, "fork: child %d: fa_report(%s) failed\n", n, path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fork DIR\n");
        return 2;
    }
    for (int i = 0; i < PARENT_LEAKS; i++)
        parent_site(i);
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&threads[i], NULL, allocator_thread, (void *)(size_t)(i + 1));
    int failed = 0;
    for (int n = 0; n < FORKS; n++) {
        usleep(20000); /* let the threads run between forks */
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0)
            exit(child_main(argv[1], n));
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "fork: child %d (pid %d) did not exit 0 (status 0x%x)\n", n, (int)pid, status);
            failed = 1;
        }
        printf("child %d pid %d\n", n, (int)pid);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    printf("parent pid %d\n", (int)getpid());
    return failed;
}
