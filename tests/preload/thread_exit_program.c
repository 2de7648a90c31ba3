/* Thread exit with pthread key destructors around framealloc's own teardown (also
 * a key destructor). Each worker allocates in a frame scope and sets two keys:
 * - libearly's key, created before framealloc's when libearly's constructor runs
 *   first (meson passes --early-key-first then). glibc runs destructors in key
 *   order, so its hook runs before framealloc's teardown; it frees one frame
 *   block, re-arms itself, and in glibc's second round (after the teardown) frees
 *   another and allocates again.
 * - a key this program creates, after framealloc's: its hook runs after the
 *   teardown, frees the rest and allocates again.
 * Nothing may crash and every block must still hold what the worker wrote. */
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "early_library.h"
#include "preload_test.h"

enum { WORKERS = 64, AFTER_TEARDOWN_SIZE = 500 };

struct worker {
    struct early_exit_hook early_hook; /* libearly's key */
    struct early_exit_hook late_hook;  /* this program's key */
    int index;
    unsigned char *frame_a, *frame_b, *frame_c, *pool_d;
    int early_rounds;
    uint64_t early_first_round_frame_allocs; /* 1: framealloc was not torn down yet */
    int early_ok, late_ok;
    unsigned char *after_teardown; /* allocated by the second early round, freed by main */
};

static struct early_state *early;
static pthread_key_t late_key;

static uint64_t frame_allocs(void)
{
    fa_stats s;
    fa_stats_get(&s);
    return s.frame_allocs;
}

/* Allocates through several entry points and scopes, checks and frees. */
static int allocate_again(void)
{
    int ok = 1;
    for (int intent = FA_DEFAULT; intent <= FA_HEAP; intent++) {
        fa_scope_push((fa_intent)intent);
        unsigned char *p = malloc(100);
        unsigned char *z = calloc(30, 10);
        ok &= p && z && all_bytes_are(z, 300, 0);
        memset(p, 0x3c, 100);
        p = realloc(p, 70000);
        ok &= p && all_bytes_are(p, 100, 0x3c);
        free(p);
        free(z);
        fa_scope_pop();
    }
    return ok;
}

static void early_hook_run(struct early_exit_hook *hook)
{
    struct worker *w = (struct worker *)hook;
    w->early_rounds++;
    if (w->early_rounds == 1) {
        w->early_ok = all_bytes_are(w->frame_a, 100, 'A');
        free(w->frame_a);
        /* Counted by the frame arena only while framealloc still runs this thread. */
        fa_scope_push(FA_FRAME);
        uint64_t before = frame_allocs();
        void *probe = malloc(48);
        w->early_first_round_frame_allocs = frame_allocs() - before;
        fa_scope_pop();
        free(probe);
        pthread_setspecific(early->key, hook); /* run again in glibc's next round */
    } else if (w->early_rounds == 2) {
        w->early_ok &= all_bytes_are(w->frame_b, 3000, 'B');
        free(w->frame_b);
        w->early_ok &= allocate_again();
        w->after_teardown = malloc(AFTER_TEARDOWN_SIZE);
        if (w->after_teardown)
            memset(w->after_teardown, 'Z', AFTER_TEARDOWN_SIZE);
    }
}

static void late_hook_run(struct early_exit_hook *hook)
{
    struct worker *w = (struct worker *)((char *)hook - offsetof(struct worker, late_hook));
    w->late_ok = all_bytes_are(w->frame_c, 50, 'C') && all_bytes_are(w->pool_d, 40, 'D');
    free(w->frame_c);
    free(w->pool_d);
    w->late_ok &= allocate_again();
}

static void run_late_hook(void *value) { late_hook_run(value); }

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    fa_scope_push(FA_FRAME);
    w->frame_a = memset(malloc(100), 'A', 100);
    w->frame_b = memset(malloc(3000), 'B', 3000);
    w->frame_c = memset(malloc(50), 'C', 50);
    fa_scope_pop();
    w->pool_d = memset(malloc(40), 'D', 40);
    w->early_hook.run = early_hook_run;
    w->late_hook.run = late_hook_run;
    pthread_setspecific(early->key, &w->early_hook);
    pthread_setspecific(late_key, &w->late_hook);
    if (w->index % 2)
        fa_scope_push(FA_FRAME); /* some threads exit inside a frame scope */
    return NULL;
}

static int early_key_comes_first(void)
{
    return preload_argc > 0 && strcmp(preload_argv[0], "--early-key-first") == 0;
}

START_TEST(key_destructors_free_and_allocate_around_teardown)
{
    early = dlsym(RTLD_DEFAULT, "early_state");
    ck_assert_msg(early && early->key_created, "libearly.so is not preloaded");
    ck_assert_int_eq(pthread_key_create(&late_key, run_late_hook), 0);
    /* One worker at a time: the frame-allocation counter is process-wide, so the
     * first round's probe can only be measured exactly with no other thread busy. */
    static struct worker workers[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        pthread_t thread;
        workers[i].index = i;
        ck_assert_int_eq(pthread_create(&thread, NULL, worker_main, &workers[i]), 0);
        ck_assert_int_eq(pthread_join(thread, NULL), 0);
    }
    for (int i = 0; i < WORKERS; i++) {
        struct worker *w = &workers[i];
        ck_assert_msg(w->early_rounds == 2, "worker %d: libearly's hook ran %d times, want 2", i, w->early_rounds);
        ck_assert_msg(w->early_ok, "worker %d: libearly's hook found damaged memory or failed to allocate", i);
        ck_assert_msg(w->late_ok, "worker %d: the late hook found damaged memory or failed to allocate", i);
        ck_assert_ptr_nonnull(w->after_teardown);
        ck_assert(all_bytes_are(w->after_teardown, AFTER_TEARDOWN_SIZE, 'Z'));
        free(w->after_teardown);
        if (early_key_comes_first())
            ck_assert_msg(w->early_first_round_frame_allocs == 1,
                          "worker %d: libearly's key destructor did not run before framealloc's teardown "
                          "(frame allocations counted: %lld, want 1)",
                          i, (long long)w->early_first_round_frame_allocs);
    }
}
END_TEST

Suite *preload_suite(void)
{
    Suite *s = suite_create("thread exit");
    TCase *tc = tcase_create("key destructors");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, key_destructors_free_and_allocate_around_teardown);
    suite_add_tcase(s, tc);
    return s;
}
