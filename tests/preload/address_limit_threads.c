/* An address-space limit reached at run time while other threads allocate and free:
 * the region then gives back its frame part (never used here) and moves the bound
 * every free reads its pointer's arena from. Frees racing with that move must still
 * reach the right arena, heap blocks the kernel maps where the frame part was must
 * free as heap blocks, and frame scopes afterwards must still get memory. Every
 * block carries a pattern that is checked before it is freed. Exits 1 on any
 * damage; misrouted frees abort in the library. */
#include <errno.h>
#include <framealloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define WORKERS 3
#define SLOTS 512
#define LIMIT ((size_t)768 << 20)

static atomic_bool stop;
static atomic_int damaged;

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7);
}

static int intact(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7))
            return 0;
    return 1;
}

/* Pool-sized blocks, replaced at random until told to stop. */
static void *worker(void *arg)
{
    unsigned state = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    unsigned char *blocks[SLOTS] = {0};
    size_t sizes[SLOTS] = {0};
    while (!atomic_load(&stop)) {
        state = state * 1103515245u + 12345u;
        unsigned slot = (state >> 8) % SLOTS;
        if (blocks[slot]) {
            if (!intact(blocks[slot], sizes[slot], slot))
                atomic_fetch_add(&damaged, 1);
            free(blocks[slot]);
            blocks[slot] = NULL;
        }
        size_t size = 16 + (state >> 12) % 4000;
        if ((blocks[slot] = malloc(size))) {
            sizes[slot] = size;
            fill(blocks[slot], size, slot);
        }
    }
    for (unsigned slot = 0; slot < SLOTS; slot++) {
        if (blocks[slot] && !intact(blocks[slot], sizes[slot], slot))
            atomic_fetch_add(&damaged, 1);
        free(blocks[slot]);
    }
    return NULL;
}

/* 1 MiB blocks until malloc fails, each stamped and checked, then freed; the MiB it got. */
static size_t fill_the_limit(void)
{
    void **chain = NULL, **p;
    size_t count = 0;
    while ((p = malloc((size_t)1 << 20))) {
        p[0] = chain;
        p[1] = (void *)(uintptr_t)count;
        chain = p;
        count++;
    }
    if (errno != ENOMEM) {
        fprintf(stderr, "address_limit_threads: malloc failed with errno %d, not ENOMEM\n", errno);
        atomic_fetch_add(&damaged, 1);
    }
    for (size_t left = count; chain; left--) {
        void **next = chain[0];
        if ((uintptr_t)chain[1] != left - 1)
            atomic_fetch_add(&damaged, 1);
        free(chain);
        chain = next;
    }
    return count;
}

int main(void)
{
    pthread_t threads[WORKERS];
    for (uintptr_t i = 0; i < WORKERS; i++)
        if (pthread_create(&threads[i], NULL, worker, (void *)(i + 1)) != 0) {
            perror("pthread_create");
            return 1;
        }
    struct rlimit limit = {LIMIT, LIMIT};
    if (setrlimit(RLIMIT_AS, &limit) != 0) {
        perror("setrlimit");
        return 1;
    }
    /* The first round reaches the limit (the region gives back what it can); the
     * second maps blocks where the frame part was, while the workers keep freeing. */
    size_t first = fill_the_limit();
    size_t second = fill_the_limit();
    /* A frame scope after the frame part went back: its blocks come from elsewhere. */
    size_t in_scope = 0;
    FA_FRAME_SCOPE {
        for (unsigned i = 0; i < 1000; i++) {
            unsigned char *p = malloc(100);
            if (!p)
                break;
            fill(p, 100, i);
            if (!intact(p, 100, i))
                atomic_fetch_add(&damaged, 1);
            free(p);
            in_scope++;
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(threads[i], NULL);
    printf("address_limit_threads: %zu and %zu MiB under a %zu MiB limit, %zu blocks in a frame scope, %d damaged\n",
           first, second, LIMIT >> 20, in_scope, atomic_load(&damaged));
    if (second < first / 2 || in_scope != 1000) {
        fprintf(stderr, "address_limit_threads: the second round or the frame scope got too little\n");
        return 1;
    }
    return atomic_load(&damaged) ? 1 : 0;
}
