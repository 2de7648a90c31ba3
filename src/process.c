/* The order of the library's life: process start-up (settings, region, heap,
 * arenas, then the observers), a thread's attach and exit, fork, and process exit.
 * The one place that calls every subsystem's start, exit and fork hooks; the
 * preload's constructor and destructor call it. */
#include "process.h"

#include <pthread.h>
#include <sched.h>

#include "chunk_cache.h"
#include "frame.h"
#include "heap.h"
#include "learn.h"
#include "log.h"
#include "options.h"
#include "os.h"
#include "pool.h"
#include "protect.h"
#include "records.h"
#include "region.h"
#include "report.h"
#include "stats.h"
#include "thread.h"

static FA_EVERY_PROCESS_DATA pthread_key_t exit_key;

enum { INIT_NONE, INIT_RUNNING, INIT_DONE };
static FA_EVERY_PROCESS_DATA _Atomic int init_state;
static FA_EVERY_PROCESS_DATA bool options_without_env; /* init ran before libc set environ */

extern char **environ;

static void fork_prepare(void)
{
    fa_heap_fork_prepare();
    fa_thread_fork_prepare();
    fa_records_fork_prepare();
    fa_pool_fork_prepare();
    fa_chunk_fork_prepare();
    fa_region_fork_prepare();
    fa_heap_fine_fork_prepare();
}

static void fork_parent(void)
{
    fa_heap_fine_fork_parent();
    fa_region_fork_parent();
    fa_chunk_fork_parent();
    fa_pool_fork_parent();
    fa_records_fork_parent();
    fa_thread_fork_parent();
    fa_heap_fork_parent();
}

/* Only the forking thread exists in the child: its registry is just that thread.
 * The vanished threads may have been in the middle of a lock-free update, so their
 * state is left alone: their chunks keep owner ids no thread will have again, and
 * frees of their blocks take the remote path, which is always correct. */
static void fork_child(void)
{
    fa_heap_fine_fork_child();
    fa_region_fork_child();
    fa_chunk_fork_child();
    fa_pool_fork_child();
    fa_records_fork_child();
    fa_thread_fork_child();
    fa_heap_fork_child();
}

static FA_EVERY_PROCESS void thread_exit(void *arg)
{
    fa_thread_t *t = arg;
    /* Out of the registry first: statistics and other threads' frame ends stop
     * looking at this thread's state before it is torn down. */
    fa_thread_unregister(t);
    fa_frame_thread_exit(t);
    fa_pool_thread_exit(t);
    fa_heap_thread_exit();
    /* Allocations made after this (later destructors, libc's own late frees) miss
     * into the slow paths, which see DEAD and use the heap. */
    t->state = FA_THREAD_DEAD;
    t->intent = 0;
    t->depth = 0;
}

/* The settings (printed when FRAMEALLOC_HELP asks). */
static void read_settings(void)
{
    fa_options_load();
    if (fa_settings.help)
        fa_options_print(2);
}

/* What the arenas and learning derive from the settings (the frame arena's bound
 * needs the region). */
static void configure_arenas(void)
{
    fa_frame_configure();
    fa_pool_configure();
    fa_learn_configure();
}

FA_EVERY_PROCESS void fa_init(void)
{
    if (__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) == INIT_DONE)
        return;
    int expected = INIT_NONE;
    if (!__atomic_compare_exchange_n(&init_state, &expected, INIT_RUNNING, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        /* Another thread is initialising; this thread waits unless it is that thread. */
        while (!fa_thread()->in_init && __atomic_load_n(&init_state, __ATOMIC_ACQUIRE) != INIT_DONE)
            sched_yield();
        return;
    }
    fa_thread_t *self = fa_thread();
    self->in_init = 1;
    /* Before anything can start jemalloc: thread exit must run before jemalloc's own
     * exit step, which needs framealloc's key created first (fa_heap_thread_exit). */
    pthread_key_create(&exit_key, thread_exit);
    options_without_env = environ == NULL;
    fa_heap_configure();
    read_settings();
    if (!fa_region_init(fa_settings.region_bytes))
        fa_log("could not reserve address space for frame and pool memory; using the heap for everything");
    /* jemalloc otherwise starts at its first call; under an address-space limit that
     * may come when the limit leaves it no room (heap.h). */
    if (fa_os_address_limit() != SIZE_MAX)
        fa_heap_start();
    configure_arenas();
    fa_os_at_fork(fork_prepare, fork_parent, fork_child);
    self->in_init = 0;
    __atomic_store_n(&init_state, INIT_DONE, __ATOMIC_RELEASE);
}

FA_EVERY_PROCESS void fa_init_late(void)
{
    if (!options_without_env || !environ)
        return;
    options_without_env = false;
    read_settings();
    configure_arenas();
}

int fa_initialized(void) { return __atomic_load_n(&init_state, __ATOMIC_ACQUIRE) == INIT_DONE; }

void fa_process_release_cached(fa_thread_t *t)
{
    fa_pool_release_cached(t);
    fa_frame_release_spares(t);
}

FA_EVERY_PROCESS bool fa_thread_attach(fa_thread_t *t)
{
    if (t->state == FA_THREAD_LIVE)
        return true;
    if (t->state == FA_THREAD_DEAD || t->in_init)
        return false;
    fa_init();
    if (!fa_initialized())
        return false;
    fa_thread_register(t);
    pthread_setspecific(exit_key, t);
    /* The process's second thread gives the heap's arena (the only one) its extent
     * hooks, so that zeroed blocks it recycles, each new thread's jemalloc cache
     * among them, are cleared with memset instead of being given back to the
     * kernel and faulted in again. Not at start: that mallctl call costs a
     * single-threaded program about 250 KiB resident (jemalloc's control data);
     * and only once jemalloc runs (heap.h). */
    if (t->id == 2)
        fa_heap_second_thread();
    t->intent |= fa_records_intent_flag();
    if (fa_thread_intent(t) == 0 && t->depth == 0) /* FA_DEFAULT, outside every scope */
        t->intent |= fa_learn_thread_intent();
    t->state = FA_THREAD_LIVE;
    return true;
}

FA_EVERY_PROCESS void fa_process_start_observers(void)
{
    fa_records_start();
    fa_learn_start();
    fa_protect_start();
    fa_report_start();
}

FA_EVERY_PROCESS void fa_process_stop(void)
{
    if (fa_settings.stats)
        fa_stats_print(2);
    /* The records report's symbolizer (libdw) allocates: not the program's sites. */
    fa_learn_pause();
    fa_report_at_exit();
    fa_learn_finish();
}
