/* fabench: the allocator benchmark harness.
 *
 * One binary, run unchanged under every allocator through LD_PRELOAD (it links only
 * libc, pthread and libdl). It runs one workload: warm-up rounds, then timed rounds
 * split into samples; it prints the median (and min) over samples of the time per
 * round or per operation as "result key=value ..." lines on stdout.
 *
 * --markers makes it call the framealloc.h markers: the frame work runs inside
 * fa_scope_push(FA_FRAME) and fa_frame_end() is called where the workload resets.
 * Without the flag no marker is ever called. The code between markers is the same
 * either way: a malloc peer frees everything a frame allocated, in allocation order,
 * and framealloc with markers runs those same frees.
 *
 * The harness is compiled with -fno-builtin-malloc/free/... so the compiler cannot
 * elide or merge allocations; results are also folded into a volatile sink.
 * Workloads: `fabench --list`; the rules are in /work/shared/BENCHMARKS.md. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <framealloc.h>

/* ---- options and helpers ---------------------------------------------------- */

static bool markers;          /* --markers */
static bool quick;            /* --quick: a tenth of the repetitions */
static long opt_reps = -1;    /* --reps: timed rounds (default per workload) */
static long opt_warmup = -1;  /* --warmup: untimed rounds first */
static int opt_threads;       /* --threads: worker threads in w9 (default: cores - 1, 1-4) */
static const char *rss_log;   /* --rss-log FILE: w10 writes "frame,rss_kib,live_kib" rows */

static volatile uint64_t sink; /* results land here so nothing is dead code */

/* The only places the markers are called. */
static inline void scope_begin(void)
{
    if (markers)
        fa_scope_push(FA_FRAME);
}

static inline void scope_end(void)
{
    if (markers)
        fa_scope_pop();
}

static inline void frame_end(void)
{
    if (markers)
        fa_frame_end();
}

static void die(const char *what)
{
    fprintf(stderr, "fabench: %s\n", what);
    exit(2);
}

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        die("malloc failed");
    return p;
}

/* Harness memory (tables, pointer logs), allocated before timing starts. */
static void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count, size);
    if (!p)
        die("calloc failed");
    return p;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* splitmix64 with a fixed seed per workload: every allocator sees the same sizes. */
static uint64_t rng_state;

static void rng_seed(uint64_t seed) { rng_state = seed; }

static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static size_t rng_range(size_t lo, size_t hi) { return lo + (size_t)(rng() % (hi - lo + 1)); }

static size_t *size_table(size_t count, size_t lo, size_t hi)
{
    size_t *t = xcalloc(count, sizeof *t);
    for (size_t i = 0; i < count; i++)
        t[i] = rng_range(lo, hi);
    return t;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Spin briefly, then yield: the machine is shared and has few cores. */
static inline void backoff(unsigned *spins)
{
    if (++*spins < 2000)
        cpu_relax();
    else
        sched_yield();
}

static void wait_for(_Atomic uint64_t *v, uint64_t want)
{
    unsigned spins = 0;
    while (atomic_load_explicit(v, memory_order_acquire) != want)
        backoff(&spins);
}

/* ---- measurement ------------------------------------------------------------- */

typedef struct {
    const char *workload; /* full id, e.g. "w2-1000" */
    long n;               /* the workload's parameter */
    void (*round)(void);  /* one repetition */
    double ops;           /* operations per round: the result is time / ops */
    const char *unit;     /* "ns/op" or "us/round" ... */
    double scale;         /* ns -> unit */
} bench_t;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void result(const char *workload, const char *metric, const char *unit, double value, double min,
                   long reps)
{
    printf("result workload=%s metric=%s unit=%s value=%.6g min=%.6g reps=%ld markers=%d\n", workload, metric,
           unit, value, min, reps, markers ? 1 : 0);
}

/* Runs warmup rounds, then reps timed rounds in up to 15 samples; reports the median
 * and the minimum per-round (or per-op) time over the samples. Timing samples of
 * several rounds keeps clock overhead out of short rounds. */
static void measure(const bench_t *b, long reps, long warmup)
{
    if (quick) {
        reps = reps / 10 > 0 ? reps / 10 : 1;
        warmup = warmup / 10;
    }
    if (opt_reps > 0)
        reps = opt_reps;
    if (opt_warmup >= 0)
        warmup = opt_warmup;
    for (long i = 0; i < warmup; i++)
        b->round();
    long samples = reps < 15 ? reps : 15;
    double per[15];
    long done = 0;
    for (long s = 0; s < samples; s++) {
        long count = reps / samples + (s < reps % samples);
        double t0 = now_ns();
        for (long i = 0; i < count; i++)
            b->round();
        per[s] = (now_ns() - t0) / (double)count / b->ops * b->scale;
        done += count;
    }
    qsort(per, (size_t)samples, sizeof per[0], cmp_double);
    double median = samples % 2 ? per[samples / 2] : (per[samples / 2 - 1] + per[samples / 2]) / 2;
    result(b->workload, "time", b->unit, median, per[0], done);
}

/* Repetitions that give roughly `budget` allocations per run, within [lo, hi]. */
static long reps_for(double allocs_per_round, double budget, long lo, long hi)
{
    double r = budget / allocs_per_round;
    return r < lo ? lo : r > hi ? hi : (long)r;
}

#define NS 1.0
#define US 1e-3

/* ---- per-operation workloads -------------------------------------------------- */

#define PAIR_TABLE 4096 /* power of two */
static size_t *pair_sizes;
static long pair_ops;

/* malloc+free pairs, writing the first and last byte (the memory is used). */
static void round_pairs(void)
{
    uint64_t acc = 0;
    for (long i = 0; i < pair_ops; i++) {
        size_t n = pair_sizes[i & (PAIR_TABLE - 1)];
        char *p = xmalloc(n);
        p[0] = (char)i;
        p[n - 1] = (char)i;
        acc += (uintptr_t)p >> 4;
        free(p);
    }
    sink += acc;
}

/* The same pairs as one frame: inside a frame scope, then a frame boundary. */
static void round_frame_pairs(void)
{
    scope_begin();
    round_pairs();
    scope_end();
    frame_end();
}

static void run_pairs(bench_t *b, size_t lo, size_t hi, long ops, long reps)
{
    rng_seed(0x5a11 + lo);
    pair_sizes = size_table(PAIR_TABLE, lo, hi);
    pair_ops = ops;
    b->round = round_pairs;
    b->ops = (double)ops;
    b->unit = "ns/op";
    b->scale = NS;
    measure(b, reps, reps / 10 + 1);
}

static void run_frame_pairs(bench_t *b)
{
    rng_seed(0xf4a3e);
    pair_sizes = size_table(PAIR_TABLE, 16, 256);
    pair_ops = 1000;
    b->round = round_frame_pairs;
    b->ops = 1000;
    b->unit = "ns/op";
    b->scale = NS;
    measure(b, 4000, 400);
}

/* Small-object churn (issue 4's workload): 20 000 live blocks of 8-256 B, each
 * operation frees a random one and allocates a replacement; every 10 000 operations
 * a burst of 1000 blocks is allocated and freed. ns per malloc+free pair. */
#define CHURN_LIVE 20000
#define CHURN_OPS 100000
static char **churn_live;
static char *churn_burst[1000];

static void churn_fill(void)
{
    churn_live = xcalloc(CHURN_LIVE, sizeof *churn_live);
    for (int i = 0; i < CHURN_LIVE; i++) {
        churn_live[i] = xmalloc(rng_range(8, 256));
        churn_live[i][0] = (char)i;
    }
}

static void round_churn(void)
{
    uint64_t acc = 0;
    for (long op = 0; op < CHURN_OPS; op++) {
        size_t k = (size_t)(rng() % CHURN_LIVE);
        acc += (unsigned char)churn_live[k][0];
        free(churn_live[k]);
        churn_live[k] = xmalloc(rng_range(8, 256));
        churn_live[k][0] = (char)op;
        if (op % 10000 == 9999) {
            for (int i = 0; i < 1000; i++) {
                churn_burst[i] = xmalloc(rng_range(8, 256));
                churn_burst[i][0] = (char)i;
            }
            for (int i = 0; i < 1000; i++)
                free(churn_burst[i]);
        }
    }
    sink += acc;
}

static void run_churn(bench_t *b)
{
    rng_seed(0xc4u);
    churn_fill();
    b->round = round_churn;
    b->ops = CHURN_OPS + CHURN_OPS / 10000 * 1000;
    b->unit = "ns/op";
    b->scale = NS;
    measure(b, 20, 3);
}

/* Cross-thread frees: the main thread allocates, a consumer thread frees, through a
 * bounded single-producer single-consumer ring. A round (one frame) ends when the
 * consumer has freed everything, so strict mode never recycles memory in use. */
#define RING 4096 /* deep enough that a descheduled thread rarely stalls the other */
static struct {
    _Alignas(64) _Atomic uint64_t head; /* consumer: slots freed */
    _Alignas(64) _Atomic uint64_t tail; /* producer: slots filled */
    _Alignas(64) void *slot[RING];
    _Atomic int stop;
} ring;

static void *ring_consumer(void *arg)
{
    (void)arg;
    uint64_t head = 0, acc = 0;
    for (;;) {
        unsigned spins = 0;
        while (atomic_load_explicit(&ring.tail, memory_order_acquire) == head) {
            if (atomic_load_explicit(&ring.stop, memory_order_acquire))
                goto out;
            backoff(&spins);
        }
        uint64_t *p = ring.slot[head % RING];
        acc += *p;
        free(p);
        atomic_store_explicit(&ring.head, ++head, memory_order_release);
    }
out:
    sink += acc;
    return NULL;
}

static void round_xthread(void)
{
    uint64_t tail = atomic_load_explicit(&ring.tail, memory_order_relaxed);
    scope_begin();
    for (long i = 0; i < pair_ops; i++) {
        uint64_t *p = xmalloc(pair_sizes[i & (PAIR_TABLE - 1)]);
        *p = (uint64_t)i;
        unsigned spins = 0;
        while (tail - atomic_load_explicit(&ring.head, memory_order_acquire) == RING)
            backoff(&spins);
        ring.slot[tail % RING] = p;
        atomic_store_explicit(&ring.tail, ++tail, memory_order_release);
    }
    scope_end();
    wait_for(&ring.head, tail);
    frame_end();
}

static void run_xthread(bench_t *b)
{
    rng_seed(0xc0ffee);
    pair_sizes = size_table(PAIR_TABLE, 16, 256);
    pair_ops = 10000;
    pthread_t consumer;
    if (pthread_create(&consumer, NULL, ring_consumer, NULL))
        die("pthread_create failed");
    b->round = round_xthread;
    b->ops = (double)pair_ops;
    b->unit = "ns/op";
    b->scale = NS;
    measure(b, 150, 15);
    atomic_store_explicit(&ring.stop, 1, memory_order_release);
    pthread_join(consumer, NULL);
}

/* ---- W1-W8: frames that allocate, then reset ----------------------------------- */

static void **ptr_log;   /* every allocation of a frame, in order */
static size_t log_len;
static size_t *sizes;    /* the sizes of a round's allocations */
static size_t sizes_len;

static inline void logged(void *p) { ptr_log[log_len++] = p; }

/* The reset: free everything the frame allocated, in allocation order. */
static void free_logged(void)
{
    for (size_t i = 0; i < log_len; i++)
        free(ptr_log[i]);
    log_len = 0;
}

/* W1-W4: allocate every size in the table, then free all; one frame. */
/* One frame: allocate n blocks of the given sizes, then free them in order. */
static uint64_t one_frame(const size_t *s, size_t n)
{
    uint64_t acc = 0;
    scope_begin();
    for (size_t i = 0; i < n; i++) {
        void *p = xmalloc(s[i]);
        acc += (uintptr_t)p;
        logged(p);
    }
    free_logged();
    scope_end();
    frame_end();
    return acc;
}

static void round_alloc_all(void) { sink += one_frame(sizes, sizes_len); }

/* W7: 60 frames, each a different slice of the size table. */
#define W7_FRAMES 60
static size_t w7_per_frame;

static void round_sustained(void)
{
    for (int f = 0; f < W7_FRAMES; f++)
        sink += one_frame(sizes + (size_t)f * w7_per_frame, w7_per_frame);
}

/* Draw packets (W5, W6, W8): 5 + n allocations: a header, an array of item pointers,
 * n = 1-8 draw items each its own allocation, and arrays of sort keys, filter masks
 * and resource pointers (four per item). */
typedef struct {
    const void *geometry, *pipeline;
    uint32_t index_count, first_index, instance_count, stencil_ref;
    float depth;
    uint32_t flags;
} draw_item_t;

typedef struct {
    uint32_t item_count;
    uint32_t view_mask;
    draw_item_t **items;
    uint64_t *sort_keys;
    uint8_t *filter_masks;
    const void **resources;
    uint64_t id;
    uint64_t reserved[2];
} packet_t;

#define RESOURCES_PER_ITEM 4
static uint8_t *packet_items; /* item count of each packet */
static size_t packet_count;
static packet_t **packets;    /* headers of the round, for W8's read-back */
static bool packet_touch;     /* W8: write the packets and read them back */

static packet_t *build_packet(size_t k, unsigned n)
{
    packet_t *h = xmalloc(sizeof *h);
    logged(h);
    draw_item_t **items = xmalloc(n * sizeof *items);
    logged(items);
    for (unsigned i = 0; i < n; i++) {
        items[i] = xmalloc(sizeof(draw_item_t));
        logged(items[i]);
    }
    uint64_t *keys = xmalloc(n * sizeof *keys);
    logged(keys);
    uint8_t *masks = xmalloc(n);
    logged(masks);
    const void **res = xmalloc(n * RESOURCES_PER_ITEM * sizeof *res);
    logged(res);
    if (packet_touch) {
        h->item_count = n;
        h->view_mask = (uint32_t)k;
        h->items = items;
        h->sort_keys = keys;
        h->filter_masks = masks;
        h->resources = res;
        h->id = k;
        for (unsigned i = 0; i < n; i++) {
            draw_item_t *d = items[i];
            d->geometry = h;
            d->pipeline = items;
            d->index_count = 3 * (i + 1);
            d->first_index = (uint32_t)k;
            d->instance_count = 1;
            d->stencil_ref = i;
            d->depth = (float)i * 0.5f;
            d->flags = i & 3;
            keys[i] = (uint64_t)k << 8 | i;
            masks[i] = (uint8_t)(1u << (i & 7));
            for (int r = 0; r < RESOURCES_PER_ITEM; r++)
                res[i * RESOURCES_PER_ITEM + r] = d;
        }
    } else {
        sink += (uintptr_t)h ^ (uintptr_t)res;
    }
    return h;
}

static uint64_t read_packet(const packet_t *h)
{
    uint64_t acc = h->id + h->view_mask;
    for (uint32_t i = 0; i < h->item_count; i++) {
        const draw_item_t *d = h->items[i];
        acc += d->index_count + d->first_index + d->instance_count + d->stencil_ref + d->flags + (uint64_t)d->depth;
        acc += h->sort_keys[i] ^ h->filter_masks[i];
        for (int r = 0; r < RESOURCES_PER_ITEM; r++)
            acc += (uintptr_t)h->resources[i * RESOURCES_PER_ITEM + r] == (uintptr_t)d;
    }
    return acc;
}

static void round_packets(void)
{
    scope_begin();
    for (size_t k = 0; k < packet_count; k++)
        packets[k] = build_packet(k, packet_items[k]);
    if (packet_touch) {
        uint64_t acc = 0;
        for (size_t k = 0; k < packet_count; k++)
            acc += read_packet(packets[k]);
        sink += acc;
    }
    free_logged();
    scope_end();
    frame_end();
}

static void setup_packets(size_t count)
{
    packet_count = count;
    packet_items = xcalloc(count, 1);
    for (size_t k = 0; k < count; k++)
        packet_items[k] = (uint8_t)rng_range(1, 8);
    packets = xcalloc(count, sizeof *packets);
    ptr_log = xcalloc(count * (5 + 8), sizeof *ptr_log);
}

/* W6: a plan of draw packets, staging buffers and small misc allocations with
 * exactly n allocations. Per 170 allocations about 10 packets (~95 allocations),
 * 5 staging buffers of 4-64 KiB and 70 misc blocks of 16-256 B. */
typedef struct {
    uint32_t size; /* staging or misc size; 0 for a packet */
    uint8_t items; /* packet item count */
} mixed_op_t;

static mixed_op_t *mixed_ops;
static size_t mixed_len;

static void setup_mixed(size_t n)
{
    mixed_ops = xcalloc(n, sizeof *mixed_ops);
    size_t allocs = 0;
    while (allocs < n) {
        mixed_op_t *op = &mixed_ops[mixed_len++];
        uint64_t pick = rng() % 85;
        size_t left = n - allocs;
        if (pick < 10 && left >= 6) {
            op->items = (uint8_t)rng_range(1, left - 5 < 8 ? left - 5 : 8);
            allocs += 5 + op->items;
        } else if (pick < 15) {
            op->size = (uint32_t)rng_range(4096, 65536);
            allocs++;
        } else {
            op->size = (uint32_t)rng_range(16, 256);
            allocs++;
        }
    }
    ptr_log = xcalloc(n, sizeof *ptr_log);
}

static void round_mixed(void)
{
    uint64_t acc = 0;
    scope_begin();
    for (size_t i = 0; i < mixed_len; i++) {
        const mixed_op_t *op = &mixed_ops[i];
        if (op->size) {
            void *p = xmalloc(op->size);
            acc += (uintptr_t)p;
            logged(p);
        } else {
            acc += (uintptr_t)build_packet(i, op->items);
        }
    }
    free_logged();
    scope_end();
    frame_end();
    sink += acc;
}

static void run_alloc_all(bench_t *b, size_t n, size_t lo, size_t hi, uint64_t seed)
{
    rng_seed(seed);
    sizes = size_table(n, lo, hi);
    sizes_len = n;
    ptr_log = xcalloc(n, sizeof *ptr_log);
    b->round = round_alloc_all;
    b->ops = 1;
    b->unit = "us/round";
    b->scale = US;
    long reps = reps_for((double)n, 4e6, 50, 100000);
    measure(b, reps, reps / 10 + 1);
}

/* ---- W9: multithreaded frame ---------------------------------------------------- */

/* Each frame: workers allocate in frame scopes and publish their blocks; then the
 * main thread reads and frees the even-numbered blocks (cross-thread frees) while each
 * worker frees its odd-numbered ones; then the main thread ends the frame. */
#define W9_MAX_THREADS 16
static _Atomic uint64_t w9_phase; /* odd: allocate, even: free; UINT64_MAX: exit */
static _Atomic uint64_t w9_done;  /* phases completed, summed over workers */
static uint64_t **w9_blocks[W9_MAX_THREADS];
static size_t w9_per_thread;

static void *w9_worker(void *arg)
{
    int w = (int)(intptr_t)arg;
    uint64_t seen = 0, acc = 0;
    for (;;) {
        unsigned spins = 0;
        uint64_t phase;
        while ((phase = atomic_load_explicit(&w9_phase, memory_order_acquire)) == seen)
            backoff(&spins);
        if (phase == UINT64_MAX)
            break;
        seen = phase;
        uint64_t **blocks = w9_blocks[w];
        if (phase & 1) {
            scope_begin();
            for (size_t i = 0; i < w9_per_thread; i++) {
                uint64_t *p = xmalloc(sizes[i]);
                p[0] = i;
                p[1] = (uint64_t)w;
                blocks[i] = p;
            }
            scope_end();
        } else {
            for (size_t i = 1; i < w9_per_thread; i += 2) {
                acc += blocks[i][0];
                free(blocks[i]);
            }
        }
        atomic_fetch_add_explicit(&w9_done, 1, memory_order_acq_rel);
    }
    sink += acc;
    return NULL;
}

static void round_w9(void)
{
    uint64_t phase = atomic_load_explicit(&w9_phase, memory_order_relaxed);
    uint64_t workers = (uint64_t)opt_threads;
    atomic_store_explicit(&w9_phase, phase + 1, memory_order_release); /* allocate */
    wait_for(&w9_done, (phase + 1) * workers);
    atomic_store_explicit(&w9_phase, phase + 2, memory_order_release); /* free */
    uint64_t acc = 0;
    for (int w = 0; w < opt_threads; w++)
        for (size_t i = 0; i < w9_per_thread; i += 2) {
            acc += w9_blocks[w][i][0] + w9_blocks[w][i][1];
            free(w9_blocks[w][i]);
        }
    wait_for(&w9_done, (phase + 2) * workers);
    frame_end();
    sink += acc;
}

static void run_w9(bench_t *b)
{
    if (opt_threads == 0) {
        /* One core for the main thread, the rest for workers: threads that spin-wait
         * must not outnumber cores, or the figure measures the scheduler. */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        opt_threads = cores <= 2 ? 1 : cores > 5 ? 4 : (int)cores - 1;
    }
    if (opt_threads < 1 || opt_threads > W9_MAX_THREADS)
        die("--threads must be 1-16");
    printf("info workers=%d allocations_per_worker=%ld\n", opt_threads, b->n > 0 ? b->n : 2000L);
    rng_seed(0x9999);
    w9_per_thread = (size_t)(b->n > 0 ? b->n : 2000);
    sizes = size_table(w9_per_thread, 16, 1024);
    pthread_t tid[W9_MAX_THREADS];
    for (int w = 0; w < opt_threads; w++) {
        w9_blocks[w] = xcalloc(w9_per_thread, sizeof *w9_blocks[w]);
        if (pthread_create(&tid[w], NULL, w9_worker, (void *)(intptr_t)w))
            die("pthread_create failed");
    }
    b->round = round_w9;
    b->ops = 1;
    b->unit = "us/frame";
    b->scale = US;
    long reps = reps_for((double)w9_per_thread * opt_threads, 4e6, 50, 20000);
    measure(b, reps, reps / 10 + 1);
    atomic_store_explicit(&w9_phase, UINT64_MAX, memory_order_release);
    for (int w = 0; w < opt_threads; w++)
        pthread_join(tid[w], NULL);
}

/* ---- W10: long run, persistent entities and frame temporaries -------------------- */

/* Reads a "Name:   123 kB" field of /proc/self/status without allocating. */
static long status_kib(const char *field)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    const char *at = strstr(buf, field);
    return at ? strtol(at + strlen(field) + 1, NULL, 10) : -1;
}

/* An entity: its struct, a component buffer and a name, allocated together outside
 * any frame scope (persistent), destroyed in random order later. */
typedef struct {
    char *name;
    void *components;
    size_t components_size;
    uint64_t id;
    char payload[48];
} entity_t;

static entity_t **entities;
static size_t entity_count;
static size_t entity_bytes; /* bytes the live entities asked for: the RSS chart's reference */

static void entity_create(uint64_t id)
{
    entity_t *e = xmalloc(sizeof *e);
    e->id = id;
    memset(e->payload, (int)id, sizeof e->payload);
    e->components_size = rng_range(128, 4096);
    e->components = xmalloc(e->components_size);
    memset(e->components, (int)id, e->components_size);
    size_t name_len = rng_range(16, 64);
    e->name = xmalloc(name_len);
    memset(e->name, 'a' + (int)(id % 26), name_len - 1);
    e->name[name_len - 1] = 0;
    entity_bytes += sizeof *e + e->components_size + name_len;
    entities[entity_count++] = e;
}

static void entity_destroy_random(void)
{
    size_t k = (size_t)(rng() % entity_count);
    entity_t *e = entities[k];
    entities[k] = entities[--entity_count];
    sink += e->id + (uint8_t)e->name[0];
    entity_bytes -= sizeof *e + e->components_size + strlen(e->name) + 1;
    free(e->name);
    free(e->components);
    free(e);
}

/* Target population over the run (fractions of the run): start, a level load,
 * a plateau, an unload, a second level, and a quiet end. */
static size_t target_population(long f, long frames)
{
    static const double at[] = {0, 0.15, 0.40, 0.50, 0.70, 1.0};
    static const double pop[] = {1000, 16000, 16000, 3000, 10000, 2000};
    double x = (double)f / (double)frames;
    for (int i = 1; i < 6; i++)
        if (x <= at[i])
            return (size_t)(pop[i - 1] + (pop[i] - pop[i - 1]) * (x - at[i - 1]) / (at[i] - at[i - 1]));
    return (size_t)pop[5];
}

#define W10_TEMPS 300
#define W10_SAMPLE_EVERY 100

static void run_w10(bench_t *b)
{
    long frames = b->n > 0 ? b->n : 10000;
    if (quick && b->n <= 0)
        frames = 1000;
    rng_seed(0x10);
    entities = xcalloc(20000, sizeof *entities);
    size_t *temp_sizes = size_table(4096, 16, 1024);
    void **temps = xcalloc(W10_TEMPS + 1, sizeof *temps);
    FILE *log = rss_log ? fopen(rss_log, "w") : NULL;
    if (rss_log && !log)
        die("cannot open --rss-log file");
    if (log)
        fprintf(log, "frame,rss_kib,live_kib\n");
    double busy = 0;
    uint64_t acc = 0;
    for (long f = 0; f < frames; f += W10_SAMPLE_EVERY) {
        double t0 = now_ns();
        for (long g = f; g < f + W10_SAMPLE_EVERY && g < frames; g++) {
            /* Game update: a little churn, then move towards the target population. */
            size_t target = target_population(g, frames);
            for (int i = 0; i < 2 && entity_count > 0; i++)
                entity_destroy_random();
            for (int i = 0; i < 2; i++)
                entity_create((uint64_t)g);
            for (int i = 0; i < 20 && entity_count < target; i++)
                entity_create((uint64_t)g);
            for (int i = 0; i < 20 && entity_count > target; i++)
                entity_destroy_random();
            /* Frame temporaries, used and then freed at the reset; every tenth frame
             * also stages a 64 KiB upload. */
            scope_begin();
            size_t t = 0;
            for (; t < W10_TEMPS; t++) {
                size_t n = temp_sizes[((size_t)g * 7 + t) & 4095];
                temps[t] = xmalloc(n);
                memset(temps[t], (int)t, n);
            }
            if (g % 10 == 0) {
                temps[t] = xmalloc(65536);
                memset(temps[t], 1, 65536);
                t++;
            }
            for (size_t i = 0; i < t; i++) {
                acc += *(uint8_t *)temps[i];
                free(temps[i]);
            }
            scope_end();
            frame_end();
        }
        busy += now_ns() - t0;
        if (log)
            fprintf(log, "%ld,%ld,%zu\n", f + W10_SAMPLE_EVERY, status_kib("VmRSS:"), entity_bytes / 1024);
    }
    long peak = status_kib("VmHWM:");
    long final = status_kib("VmRSS:");
    if (log)
        fclose(log);
    while (entity_count)
        entity_destroy_random();
    sink += acc;
    result(b->workload, "time", "us/frame", busy / 1e3 / (double)frames, busy / 1e3 / (double)frames, frames);
    result(b->workload, "peak_rss", "MiB", peak / 1024.0, peak / 1024.0, 1);
    result(b->workload, "final_rss", "MiB", final / 1024.0, final / 1024.0, 1);
}

/* ---- whole-program cases ------------------------------------------------------- */

/* Large-buffer replacement: 4 live zero-initialised buffers of 5-25 MiB; each
 * operation frees the oldest and makes a new one (calloc, or malloc+memset on every
 * other operation), then writes one byte per page as a program filling it would.
 * An allocator that returns such blocks to the OS faults and zeroes them again. */
#define BIG_LIVE 4
#define BIG_TABLE 64
static char *big_live[BIG_LIVE];
static size_t big_sizes[BIG_TABLE];
static size_t big_op;

static void round_bigbuf(void)
{
    size_t k = big_op % BIG_LIVE;
    free(big_live[k]);
    size_t n = big_sizes[big_op % BIG_TABLE];
    char *p;
    if (big_op & 1) {
        p = xmalloc(n);
        memset(p, 0, n);
    } else {
        p = xcalloc(1, n);
    }
    uint64_t acc = 0;
    for (size_t i = 0; i < n; i += 4096) {
        acc += (unsigned char)p[i];
        p[i] = (char)i;
    }
    big_live[k] = p;
    big_op++;
    sink += acc;
}

static void run_bigbuf(bench_t *b)
{
    rng_seed(0xb16);
    for (int i = 0; i < BIG_TABLE; i++)
        big_sizes[i] = rng_range(5 << 20, 25 << 20);
    b->round = round_bigbuf;
    b->ops = 1;
    b->unit = "us/op";
    b->scale = US;
    measure(b, 60, 4);
    for (int i = 0; i < BIG_LIVE; i++)
        free(big_live[i]);
}

/* Thread churn with handoffs (as mimalloc-bench's mstress): each round creates 4
 * threads and joins them. Each thread makes 2000 objects of 16 B-1 KiB (one in 50 of
 * 1-64 KiB), keeps the last 64 (freed when it ends) and swaps every object into a
 * shared table of 512 slots, freeing what it takes out: objects made by other threads,
 * often threads that have exited. The table stays full across rounds. */
#define TCHURN_THREADS 4
#define TCHURN_OPS 2000
#define TCHURN_SLOTS 512
#define TCHURN_KEEP 64
static _Atomic(uint64_t *) tchurn_slots[TCHURN_SLOTS];
static _Atomic uint64_t tchurn_seed;

static void *tchurn_thread(void *arg)
{
    (void)arg;
    uint64_t *keep[TCHURN_KEEP] = {0};
    uint64_t state = atomic_fetch_add_explicit(&tchurn_seed, 0x9e3779b97f4a7c15ULL, memory_order_relaxed);
    uint64_t acc = 0;
    for (int i = 0; i < TCHURN_OPS; i++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t r = state >> 33;
        size_t n = r % 50 == 0 ? 1024 + r % (63 << 10) : 16 + r % 1009;
        uint64_t *p = xmalloc(n);
        p[0] = r;
        p[1] = n;
        if (i % 4 == 0) {
            free(keep[i / 4 % TCHURN_KEEP]);
            keep[i / 4 % TCHURN_KEEP] = p;
            continue;
        }
        uint64_t *old = atomic_exchange_explicit(&tchurn_slots[r % TCHURN_SLOTS], p, memory_order_acq_rel);
        if (old) {
            acc += old[0] + old[1];
            free(old);
        }
    }
    for (int i = 0; i < TCHURN_KEEP; i++)
        free(keep[i]);
    sink += acc;
    return NULL;
}

static void round_tchurn(void)
{
    pthread_t tid[TCHURN_THREADS];
    for (int t = 0; t < TCHURN_THREADS; t++)
        if (pthread_create(&tid[t], NULL, tchurn_thread, NULL))
            die("pthread_create failed");
    for (int t = 0; t < TCHURN_THREADS; t++)
        pthread_join(tid[t], NULL);
}

static void run_tchurn(bench_t *b)
{
    atomic_store(&tchurn_seed, 0x7c4);
    b->round = round_tchurn;
    b->ops = 1;
    b->unit = "us/round";
    b->scale = US;
    measure(b, 300, 10);
    for (int i = 0; i < TCHURN_SLOTS; i++)
        free(atomic_load(&tchurn_slots[i]));
}

/* A small program: a few thousand small allocations (a 2000-node list of 16-256 B
 * nodes with 8-64 B strings, half of it rebuilt), run once. scripts/bench reports the
 * process's peak RSS: the fixed cost an allocator adds to a small program. */
typedef struct tiny_node {
    struct tiny_node *next;
    char *name;
} tiny_node_t;

static tiny_node_t *tiny_make(size_t i)
{
    tiny_node_t *n = xmalloc(rng_range(sizeof(tiny_node_t), 256));
    size_t len = rng_range(8, 64);
    n->name = xmalloc(len);
    memset(n->name, 'a' + (int)(i % 26), len - 1);
    n->name[len - 1] = 0;
    n->next = NULL;
    return n;
}

static void round_tiny(void)
{
    tiny_node_t *head = NULL;
    for (size_t i = 0; i < 2000; i++) {
        tiny_node_t *n = tiny_make(i);
        n->next = head;
        head = n;
    }
    /* Replace every other node. */
    size_t i = 0;
    for (tiny_node_t *n = head; n && n->next; n = n->next, i++) {
        tiny_node_t *gone = n->next;
        n->next = tiny_make(i);
        n->next->next = gone->next;
        sink += strlen(gone->name);
        free(gone->name);
        free(gone);
        n = n->next;
    }
    while (head) {
        tiny_node_t *next = head->next;
        sink += (unsigned char)head->name[0];
        free(head->name);
        free(head);
        head = next;
    }
}

static void run_tiny(bench_t *b)
{
    rng_seed(0x7);
    b->round = round_tiny;
    b->ops = 1;
    b->unit = "us/run";
    b->scale = US;
    measure(b, 1, 0);
}

/* ---- workload table -------------------------------------------------------------- */

typedef struct {
    const char *name;
    long params[5]; /* default parameters, 0-terminated; none: takes no parameter */
    const char *unit;
    const char *what;
} workload_t;

static const workload_t workloads[] = {
    {"small", {0}, "ns/op", "malloc+free pair, 16-256 B"},
    {"medium", {0}, "ns/op", "malloc+free pair, 1-16 KiB"},
    {"large", {0}, "ns/op", "malloc+free pair, 256 KiB-4 MiB"},
    {"frame", {0}, "ns/op", "malloc+free pair, 16-256 B, 1000 per frame (frame scope with --markers)"},
    {"xthread", {0}, "ns/op", "thread A allocates 16-256 B, thread B frees them, 4096-slot queue"},
    {"churn", {0}, "ns/op", "small-object churn: 20000 live blocks of 8-256 B, random replace, bursts of 1000 (malloc+free pair)"},
    {"w1", {0}, "us/round", "W1 canonical: 1000 objects 32 B-4 KB, allocate all, free all"},
    {"w2", {1000, 5000, 10000}, "us/round", "W2 small: 64 B x N, then free all"},
    {"w3", {1000, 5000, 10000}, "us/round", "W3 medium: 1 KB x N, then free all"},
    {"w4", {100, 500, 1000}, "us/round", "W4 frame simulation: N allocations 16-512 B, then reset"},
    {"w5", {100, 1000, 5000}, "us/round", "W5 draw-packet build: N packets of 5+n allocations (header, item pointers, n=1-8 items, sort keys, filter masks, resource pointers)"},
    {"w6", {170, 850, 1700}, "us/round", "W6 mixed frame: packets, staging 4-64 KB, misc; N allocations"},
    {"w7", {100, 500, 1000, 2000}, "us/round", "W7 sustained: 60 frames x N allocations 16-512 B"},
    {"w8", {0}, "us/round", "W8: W5 with 1000 packets, written and read back"},
    {"w9", {0}, "us/frame", "W9 multithreaded frame: workers (cores-1, 1-4) allocate 2000 x 16-1024 B in frame scopes, main frees half, workers the rest"},
    {"w10", {0}, "us/frame", "W10 long run: 10000 frames; 1000-16000 persistent entities created/destroyed over time, 300 temporaries per frame; peak (VmHWM) and final RSS"},
    {"bigbuf", {0}, "us/op", "large-buffer replacement: 4 live zero-initialised buffers of 5-25 MiB, free the oldest and calloc (or malloc+memset) a new one, one byte written per page; peak RSS of the process"},
    {"tchurn", {0}, "us/round", "thread churn with handoffs: 4 threads created and joined per round, 2000 objects of 16 B-64 KiB each, 3 in 4 swapped through a shared 512-slot table and freed by another thread; peak RSS of the process"},
    {"tiny", {0}, "us/run", "a small program: a 2000-node list of small nodes and strings, half rebuilt, run once; peak RSS of the process"},
};

static void list_workloads(void)
{
    for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++) {
        const workload_t *w = &workloads[i];
        if (!w->params[0])
            printf("%s\t%s\t%s\n", w->name, w->unit, w->what);
        for (int k = 0; k < 5 && w->params[k]; k++)
            printf("%s-%ld\t%s\t%s\n", w->name, w->params[k], w->unit, w->what);
    }
}

static void run(const char *id)
{
    char name[32];
    const char *dash = strchr(id, '-');
    size_t len = dash ? (size_t)(dash - id) : strlen(id);
    if (len >= sizeof name)
        die("unknown workload (see --list)");
    memcpy(name, id, len);
    name[len] = 0;
    long n = 0;
    if (dash) {
        char *end;
        n = strtol(dash + 1, &end, 10);
        if (*end || n <= 0)
            die("bad workload parameter");
    }
    bench_t b = {.workload = id, .n = n};
    size_t count = (size_t)n;

    if (!strcmp(name, "small"))
        run_pairs(&b, 16, 256, 10000, 1000);
    else if (!strcmp(name, "medium"))
        run_pairs(&b, 1024, 16384, 10000, 300);
    else if (!strcmp(name, "large"))
        run_pairs(&b, 256 << 10, 4 << 20, 100, 3000);
    else if (!strcmp(name, "frame"))
        run_frame_pairs(&b);
    else if (!strcmp(name, "xthread"))
        run_xthread(&b);
    else if (!strcmp(name, "churn"))
        run_churn(&b);
    else if (!strcmp(name, "w1"))
        run_alloc_all(&b, count ? count : 1000, 32, 4096, 0x1);
    else if (!strcmp(name, "w2") && count)
        run_alloc_all(&b, count, 64, 64, 0x2);
    else if (!strcmp(name, "w3") && count)
        run_alloc_all(&b, count, 1024, 1024, 0x3);
    else if (!strcmp(name, "w4") && count)
        run_alloc_all(&b, count, 16, 512, 0x4);
    else if (!strcmp(name, "w5") || !strcmp(name, "w8")) {
        packet_touch = !strcmp(name, "w8");
        rng_seed(0x5);
        setup_packets(count ? count : 1000);
        b.round = round_packets;
        b.ops = 1;
        b.unit = "us/round";
        b.scale = US;
        long reps = reps_for((double)packet_count * 9.5, 4e6, 50, 100000);
        measure(&b, reps, reps / 10 + 1);
    } else if (!strcmp(name, "w6") && count) {
        rng_seed(0x6);
        setup_mixed(count);
        b.round = round_mixed;
        b.ops = 1;
        b.unit = "us/round";
        b.scale = US;
        long reps = reps_for((double)count, 3e6, 50, 100000);
        measure(&b, reps, reps / 10 + 1);
    } else if (!strcmp(name, "w7") && count) {
        rng_seed(0x7);
        w7_per_frame = count;
        sizes = size_table(W7_FRAMES * count, 16, 512);
        ptr_log = xcalloc(count, sizeof *ptr_log);
        b.round = round_sustained;
        b.ops = 1;
        b.unit = "us/round";
        b.scale = US;
        long reps = reps_for((double)W7_FRAMES * (double)count, 4e6, 20, 100000);
        measure(&b, reps, reps / 10 + 1);
    } else if (!strcmp(name, "w9"))
        run_w9(&b);
    else if (!strcmp(name, "w10"))
        run_w10(&b);
    else if (!strcmp(name, "bigbuf"))
        run_bigbuf(&b);
    else if (!strcmp(name, "tchurn"))
        run_tchurn(&b);
    else if (!strcmp(name, "tiny"))
        run_tiny(&b);
    else
        die("unknown workload or missing parameter (see --list)");
}

/* The allocator actually mapped into this process, from /proc/self/maps: lets the
 * driver check that the preload it asked for took effect. */
static const char *detect_allocator(void)
{
    static const char *const libs[][2] = {
        {"libframealloc", "framealloc"},
        {"libjemalloc", "jemalloc"},
        {"libmimalloc", "mimalloc"},
        {"libtcmalloc", "tcmalloc"},
        {"libref_bump", "bump"},
        {"libref_linear", "linear"},
    };
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return "unknown";
    char line[512];
    const char *found = "glibc";
    while (fgets(line, sizeof line, f))
        for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++)
            if (strstr(line, libs[i][0]) && !strcmp(found, "glibc"))
                found = libs[i][1];
    fclose(f);
    return found;
}

static void usage(void)
{
    fputs("usage: fabench [--markers] [--quick] [--reps N] [--warmup N] [--threads N] [--rss-log FILE] WORKLOAD\n"
          "       fabench --list     (workload ids, units, descriptions)\n"
          "WORKLOAD is an id from --list, or NAME-N for another parameter (w2-20000).\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *id = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--markers"))
            markers = true;
        else if (!strcmp(a, "--quick"))
            quick = true;
        else if (!strcmp(a, "--list")) {
            list_workloads();
            return 0;
        } else if (!strcmp(a, "--reps") && i + 1 < argc)
            opt_reps = atol(argv[++i]);
        else if (!strcmp(a, "--warmup") && i + 1 < argc)
            opt_warmup = atol(argv[++i]);
        else if (!strcmp(a, "--threads") && i + 1 < argc)
            opt_threads = atoi(argv[++i]);
        else if (!strcmp(a, "--rss-log") && i + 1 < argc)
            rss_log = argv[++i];
        else if (a[0] == '-' || id)
            usage();
        else
            id = a;
    }
    if (!id)
        usage();
    if (markers && !fa_active())
        fprintf(stderr, "fabench: --markers given but libframealloc is not loaded; markers do nothing\n");
    run(id);
    /* VmHWM: this process's peak RSS since exec (scripts/bench reports it for the
     * whole-program cases). */
    printf("info allocator=%s markers=%d vmhwm_kib=%ld\n", detect_allocator(), markers ? 1 : 0,
           status_kib("VmHWM:"));
    /* With markers, say whether the frame arenas were used and whether anything
     * escaped its frame (this workload frees everything before each frame end). */
    fa_stats st;
    if (markers && fa_stats_get(&st) == 0)
        printf("info frame_allocs=%llu frame_escapes=%llu\n", (unsigned long long)st.frame_allocs,
               (unsigned long long)st.frame_escapes);
    return 0;
}
