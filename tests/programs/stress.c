/* Multithreaded allocator stress test, meant to run under LD_PRELOAD=libframealloc.so
 * and, unchanged, under glibc malloc (which proves the test itself is right).
 *
 *   fa_stress [options] [ops-per-thread]
 *     --frames            workers run batches inside FA_FRAME scopes; main ends frames
 *     --fork              3 workers run while the main thread forks 20 children
 *     --require-library   fail unless libframealloc is loaded (and, with --frames,
 *                         unless frame arenas served allocations)
 *     --seed N            PRNG seed (default fixed)
 *
 * Every block carries a pattern derived from (address, size, seed) over its whole size,
 * written when it is allocated and verified completely before it is freed or resized.
 * Blocks travel between threads through mutex-protected exchange slots, so many are
 * freed by a thread other than the one that allocated them, some after that thread
 * has exited (workers run in two waves). */
#define _GNU_SOURCE /* pthread_tryjoin_np, strsignal */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "framealloc.h"

enum { WORKERS = 4, WAVES = 2, LOCAL_BLOCKS = 512, SLOTS = 256, FORK_WORKERS = 3, FORKS = 20 };

static uint64_t seed = 0x5eedf00dcafe1234ULL;
static int frames_mode;

/* ---- PRNG: splitmix64 to seed, xorshift64* per thread ---- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

typedef struct { uint64_t s; } rng_t;

static rng_t rng_make(uint64_t stream)
{
    uint64_t s = seed ^ (stream * 0xD1B54A32D192ED03ULL);
    rng_t r = { splitmix64(&s) | 1 };
    return r;
}

static uint64_t rng_next(rng_t *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [lo, hi]. */
static size_t rng_range(rng_t *r, size_t lo, size_t hi) { return lo + (size_t)(rng_next(r) % (hi - lo + 1)); }

/* Mostly small, some medium, a few large. */
static size_t random_size(rng_t *r)
{
    unsigned pick = (unsigned)(rng_next(r) % 1000);
    if (pick < 900)
        return rng_range(r, 1, 512);
    if (pick < 997)
        return rng_range(r, 513, 64 << 10);
    return rng_range(r, (64 << 10) + 1, 4 << 20);
}

/* ---- failures ---- */

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* write(2) only: the heap may be what is broken. */
    dprintf(2, "fa_stress: FAIL: %s\n", msg);
    abort();
}

/* ---- payload patterns ---- */

typedef struct {
    unsigned char *p;
    size_t size;
} block_t;

static uint64_t pattern_base(uintptr_t addr, size_t size)
{
    uint64_t s = addr ^ ((uint64_t)size << 17) ^ seed;
    return splitmix64(&s);
}

static uint64_t pattern_word(uint64_t base, size_t k) { return (base + k) * 0x9E3779B97F4A7C15ULL ^ base; }

static void fill(unsigned char *p, size_t size)
{
    uint64_t base = pattern_base((uintptr_t)p, size);
    size_t words = size / 8;
    for (size_t k = 0; k < words; k++) {
        uint64_t w = pattern_word(base, k);
        memcpy(p + 8 * k, &w, 8);
    }
    uint64_t tail = pattern_word(base, words);
    memcpy(p + 8 * words, &tail, size % 8);
}

/* Checks the first len bytes of a block that was filled at (addr, size). */
static void verify_as(const unsigned char *p, size_t len, uintptr_t addr, size_t size, const char *when)
{
    uint64_t base = pattern_base(addr, size);
    for (size_t k = 0; 8 * k < len; k++) {
        uint64_t w = pattern_word(base, k);
        size_t n = len - 8 * k < 8 ? len - 8 * k : 8;
        if (memcmp(p + 8 * k, &w, n) != 0) {
            size_t i = 0;
            while (p[8 * k + i] == ((unsigned char *)&w)[i])
                i++;
            fail("%s: block %p (size %zu, made at %#lx): byte %zu is 0x%02x, expected 0x%02x", when, (void *)p,
                 size, (unsigned long)addr, 8 * k + i, p[8 * k + i], ((unsigned char *)&w)[i]);
        }
    }
}

static void verify(block_t b, const char *when) { verify_as(b.p, b.size, (uintptr_t)b.p, b.size, when); }

static void release(block_t *b)
{
    if (!b->p)
        return;
    verify(*b, "before free");
    free(b->p);
    b->p = NULL;
    b->size = 0;
}

/* ---- the operations ---- */

static block_t make_malloc(rng_t *r)
{
    size_t size = random_size(r);
    block_t b = { malloc(size), size };
    if (!b.p)
        fail("malloc(%zu) returned NULL", size);
    /* glibc's guarantee on x86-64, whatever the size; programs rely on it. */
    if ((uintptr_t)b.p % 16)
        fail("malloc(%zu) = %p is not 16-byte aligned", size, (void *)b.p);
    if (malloc_usable_size(b.p) < size)
        fail("malloc_usable_size(%p) = %zu < requested %zu", (void *)b.p, malloc_usable_size(b.p), size);
    fill(b.p, size);
    return b;
}

static block_t make_calloc(rng_t *r)
{
    size_t size = random_size(r);
    size_t count = rng_range(r, 1, 4);
    size_t each = (size + count - 1) / count;
    block_t b = { calloc(count, each), count * each };
    if (!b.p)
        fail("calloc(%zu, %zu) returned NULL", count, each);
    for (size_t i = 0; i < b.size; i++)
        if (b.p[i])
            fail("calloc(%zu, %zu) = %p: byte %zu is 0x%02x, not zero", count, each, (void *)b.p, i, b.p[i]);
    fill(b.p, b.size);
    return b;
}

static block_t make_aligned(rng_t *r)
{
    static const size_t aligns[] = { 16, 32, 64, 128, 256, 1024, 4096, 8192, 65536 };
    size_t align = aligns[rng_next(r) % (sizeof aligns / sizeof aligns[0])];
    unsigned kind = (unsigned)(rng_next(r) % 8);
    size_t size = kind == 0 ? random_size(r) : kind < 3 ? rng_range(r, 1, 16) : rng_range(r, 1, 2048);
    block_t b = { NULL, size };
    const char *how;
    switch (rng_next(r) % 3) {
    case 0: {
        how = "posix_memalign";
        void *p = NULL;
        int err = posix_memalign(&p, align, size);
        if (err)
            fail("posix_memalign(%zu, %zu) failed: %s", align, size, strerror(err));
        b.p = p;
        break;
    }
    case 1:
        how = "aligned_alloc";
        b.size = (size + align - 1) / align * align; /* C11 wants a multiple */
        b.p = aligned_alloc(align, b.size);
        break;
    default:
        how = "memalign";
        b.p = memalign(align, size);
        break;
    }
    if (!b.p)
        fail("%s(%zu, %zu) returned NULL", how, align, b.size);
    if ((uintptr_t)b.p % align)
        fail("%s(%zu, %zu) = %p is misaligned", how, align, b.size, (void *)b.p);
    fill(b.p, b.size);
    return b;
}

/* Resizes b, checking the kept prefix, then refills it for its new address. */
static void resize(block_t *b, size_t size)
{
    verify(*b, "before realloc");
    uintptr_t old_addr = (uintptr_t)b->p;
    size_t old_size = b->size;
    unsigned char *q = realloc(b->p, size);
    if (!q)
        fail("realloc(%p, %zu) returned NULL", (void *)b->p, size);
    verify_as(q, old_size < size ? old_size : size, old_addr, old_size, "after realloc (kept prefix)");
    b->p = q;
    b->size = size;
    fill(q, size);
}

/* A vector that grows by doubling, then shrinks: the in-place realloc path. */
static void grow_and_shrink(rng_t *r)
{
    block_t b = { malloc(16), 16 };
    if (!b.p)
        fail("malloc(16) returned NULL");
    fill(b.p, 16);
    size_t top = rng_range(r, 64, rng_next(r) % 16 ? 16 << 10 : 256 << 10);
    while (b.size < top)
        resize(&b, b.size * 2 > top ? top : b.size * 2);
    resize(&b, b.size / 3 + 1);
    release(&b);
}

/* Short-lived temporaries freed in a random order: in a frame scope they let whole
 * chunks become free and be recycled around the longer-lived blocks. */
static void scratch(rng_t *r)
{
    block_t tmp[32];
    size_t n = rng_range(r, 1, 32);
    for (size_t i = 0; i < n; i++) {
        size_t size = rng_next(r) % 16 ? rng_range(r, 1, 512) : rng_range(r, 513, 16 << 10);
        tmp[i] = (block_t){ malloc(size), size };
        if (!tmp[i].p)
            fail("malloc(%zu) returned NULL", size);
        fill(tmp[i].p, size);
    }
    for (size_t left = n; left > 0; left--) {
        size_t i = rng_next(r) % left;
        release(&tmp[i]);
        tmp[i] = tmp[left - 1];
    }
}

/* ---- exchange slots ---- */

static struct slot {
    pthread_mutex_t lock;
    block_t b;
} slots[SLOTS];

/* Puts b in a random slot and returns what was there (maybe another thread's block). */
static block_t exchange(rng_t *r, block_t b)
{
    struct slot *s = &slots[rng_next(r) % SLOTS];
    pthread_mutex_lock(&s->lock);
    block_t old = s->b;
    s->b = b;
    pthread_mutex_unlock(&s->lock);
    return old;
}

static block_t take_slot(size_t i)
{
    pthread_mutex_lock(&slots[i].lock);
    block_t b = slots[i].b;
    slots[i].b = (block_t){ NULL, 0 };
    pthread_mutex_unlock(&slots[i].lock);
    return b;
}

/* ---- workers ---- */

typedef struct {
    unsigned id;
    long ops;                /* < 0: run until stop */
    int no_exchange;         /* in a forked child: a vanished thread may hold a slot lock */
    block_t local[LOCAL_BLOCKS];
} worker_t;

static atomic_int stop;

/* One random operation on a random local block. */
static void one_op(rng_t *r, worker_t *w)
{
    block_t *b = &w->local[rng_next(r) % LOCAL_BLOCKS];
    unsigned pick = (unsigned)(rng_next(r) % 100);
    if (pick < 40) {
        release(b);
        *b = make_malloc(r);
    } else if (pick < 52) {
        release(b);
    } else if (pick < 72) {
        if (w->no_exchange)
            return;
        /* Hand a block (maybe none) to the slots and adopt what was there. */
        block_t got = exchange(r, *b);
        if (got.p)
            verify(got, "after exchange");
        *b = got;
    } else if (pick < 82) {
        if (b->p) {
            size_t most = b->size < (2 << 20) ? 2 * b->size + 16 : 4 << 20;
            resize(b, rng_next(r) % 4 ? rng_range(r, 1, most) : random_size(r));
        }
    } else if (pick < 88) {
        release(b);
        *b = make_calloc(r);
    } else if (pick < 94) {
        release(b);
        *b = make_aligned(r);
    } else if (pick < 97) {
        scratch(r);
    } else {
        grow_and_shrink(r);
    }
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    rng_t r = rng_make(w->id + 1);
    long done = 0;
    while (w->ops < 0 ? !atomic_load(&stop) : done < w->ops) {
        long batch = (long)rng_range(&r, 16, 256);
        /* In frame mode most batches are frame-temporary; some run with the default
         * intent, and a few nest a heap scope inside the frame scope. */
        int in_frame = frames_mode && rng_next(&r) % 4 != 0;
        if (in_frame)
            fa_scope_push(FA_FRAME);
        for (long i = 0; i < batch; i++, done++) {
            if (in_frame && i == batch / 2 && rng_next(&r) % 8 == 0) {
                fa_scope_push(FA_HEAP);
                one_op(&r, w);
                fa_scope_pop();
            }
            one_op(&r, w);
        }
        if (in_frame)
            fa_scope_pop();
    }
    /* Half the blocks die with the thread; the rest go to the slots for others. */
    for (size_t i = 0; i < LOCAL_BLOCKS; i++) {
        if (i % 2)
            release(&w->local[i]);
        else if (w->local[i].p) {
            block_t old = exchange(&r, w->local[i]);
            release(&old);
            w->local[i] = (block_t){ NULL, 0 };
        }
    }
    return NULL;
}

static worker_t *start_workers(pthread_t *tids, unsigned n, unsigned first_id, long ops)
{
    worker_t *ws = calloc(n, sizeof *ws);
    if (!ws)
        fail("calloc for workers failed");
    for (unsigned i = 0; i < n; i++) {
        ws[i].id = first_id + i;
        ws[i].ops = ops;
        int err = pthread_create(&tids[i], NULL, worker_main, &ws[i]);
        if (err)
            fail("pthread_create: %s", strerror(err));
    }
    return ws;
}

static void join_workers(pthread_t *tids, unsigned n, worker_t *ws)
{
    for (unsigned i = 0; i < n; i++)
        pthread_join(tids[i], NULL);
    free(ws);
}

static void sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void drain_slots(void)
{
    for (size_t i = 0; i < SLOTS; i++) {
        block_t b = take_slot(i);
        release(&b);
    }
}

/* ---- modes ---- */

static void run_threads(long ops)
{
    for (unsigned wave = 0; wave < WAVES; wave++) {
        pthread_t tids[WORKERS];
        worker_t *ws = start_workers(tids, WORKERS, wave * WORKERS, ops);
        if (frames_mode) {
            /* The main loop: end frames while the workers run, with a frame-temporary
             * allocation of its own in each frame. */
            rng_t r = rng_make(1000 + wave);
            int joined[WORKERS] = { 0 };
            for (unsigned n = 0;; n++) {
                FA_FRAME_SCOPE {
                    block_t b = make_malloc(&r);
                    release(&b);
                }
                fa_frame_end();
                sleep_us(200);
                /* Poll the workers without blocking: pthread_tryjoin_np is GNU. */
                unsigned alive = 0;
                for (unsigned i = 0; i < WORKERS; i++) {
                    if (!joined[i] && pthread_tryjoin_np(tids[i], NULL) == 0)
                        joined[i] = 1;
                    alive += !joined[i];
                }
                if (!alive)
                    break;
            }
            free(ws);
        } else {
            join_workers(tids, WORKERS, ws);
        }
    }
    drain_slots();
}

/* The child of a fork: only this thread exists. It must be able to allocate (no lock
 * left held by a vanished thread), free blocks made by vanished threads, and use frames. */
static void child_work(block_t *inherited, size_t n_inherited, unsigned round)
{
    rng_t r = rng_make(5000 + round);
    for (size_t i = 0; i < n_inherited; i++)
        release(&inherited[i]);
    worker_t *w = calloc(1, sizeof *w);
    if (!w)
        fail("child: calloc returned NULL");
    w->no_exchange = 1;
    for (int i = 0; i < 2000; i++)
        one_op(&r, w);
    FA_FRAME_SCOPE {
        for (int i = 0; i < 2000; i++)
            one_op(&r, w);
    }
    fa_frame_end();
    fa_frame_end();
    for (size_t i = 0; i < LOCAL_BLOCKS; i++)
        release(&w->local[i]);
    free(w);
}

static void run_fork(void)
{
    enum { INHERIT = 16 };
    pthread_t tids[FORK_WORKERS];
    atomic_store(&stop, 0);
    worker_t *ws = start_workers(tids, FORK_WORKERS, 0, -1);
    rng_t r = rng_make(999);
    for (unsigned round = 0; round < FORKS; round++) {
        sleep_us(20000);
        /* Blocks made by the workers, for the child to free. */
        block_t inherited[INHERIT];
        size_t n = 0;
        for (size_t i = 0; i < INHERIT; i++) {
            block_t b = take_slot(rng_next(&r) % SLOTS);
            if (b.p)
                inherited[n++] = b;
        }
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
            fail("fork: %s", strerror(errno));
        if (pid == 0) {
            child_work(inherited, n, round);
            _exit(0);
        }
        for (size_t i = 0; i < n; i++)
            release(&inherited[i]);
        /* A child stuck on a lock held by a vanished thread would hang: give it 20 s. */
        int status;
        for (int waited = 0;; waited++) {
            pid_t got = waitpid(pid, &status, WNOHANG);
            if (got == pid)
                break;
            if (got < 0)
                fail("waitpid: %s", strerror(errno));
            if (waited == 2000) {
                kill(pid, SIGKILL);
                fail("fork round %u: child %d did not finish in 20 s (deadlock after fork?)", round, (int)pid);
            }
            sleep_us(10000);
        }
        if (WIFSIGNALED(status))
            fail("fork round %u: child killed by signal %d (%s)", round, WTERMSIG(status), strsignal(WTERMSIG(status)));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail("fork round %u: child exited with status %d", round, WEXITSTATUS(status));
        if (frames_mode)
            fa_frame_end();
    }
    atomic_store(&stop, 1);
    join_workers(tids, FORK_WORKERS, ws);
    drain_slots();
}

int main(int argc, char **argv)
{
    long ops = 30000;
    int fork_mode = 0, require = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--frames"))
            frames_mode = 1;
        else if (!strcmp(argv[i], "--fork"))
            fork_mode = 1;
        else if (!strcmp(argv[i], "--require-library"))
            require = 1;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 0);
        else if (argv[i][0] >= '0' && argv[i][0] <= '9')
            ops = atol(argv[i]);
        else {
            fprintf(stderr, "usage: %s [--frames] [--fork] [--require-library] [--seed N] [ops-per-thread]\n", argv[0]);
            return 2;
        }
    }
    if (require && !fa_active())
        fail("libframealloc is not loaded (run with LD_PRELOAD)");
    for (size_t i = 0; i < SLOTS; i++)
        pthread_mutex_init(&slots[i].lock, NULL);

    if (fork_mode)
        run_fork();
    else
        run_threads(ops);

    fa_stats st;
    if (fa_stats_get(&st) == 0) {
        printf("fa_stress: ok (framealloc: %llu frames, %llu frame allocations, %llu escapes)\n",
               (unsigned long long)st.frame, (unsigned long long)st.frame_allocs,
               (unsigned long long)st.frame_escapes);
        if (require && frames_mode && st.frame_allocs == 0)
            fail("frame mode, but no allocation was served by a frame arena");
    } else {
        printf("fa_stress: ok (libframealloc not loaded)\n");
    }
    return 0;
}
