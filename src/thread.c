/* Per-thread state and the registry of live threads (for statistics, frame ends
 * that look at every thread, and fork). The order of a thread's life, attach to
 * exit, is process.c's. */
#include "thread.h"

#include <pthread.h>

__thread fa_thread_t fa_thread_self __attribute__((tls_model("initial-exec")));

static FA_EVERY_PROCESS_DATA pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static FA_EVERY_PROCESS_DATA fa_list_t registry;
static _Atomic uint64_t next_thread_id = 1;

FA_EVERY_PROCESS void fa_thread_register(fa_thread_t *t)
{
    pthread_mutex_lock(&registry_lock);
    fa_list_push_front(&registry, &t->registry_link);
    pthread_mutex_unlock(&registry_lock);
    t->id = __atomic_fetch_add(&next_thread_id, 1, __ATOMIC_RELAXED);
}

FA_EVERY_PROCESS void fa_thread_unregister(fa_thread_t *t)
{
    pthread_mutex_lock(&registry_lock);
    fa_list_remove(&registry, &t->registry_link);
    pthread_mutex_unlock(&registry_lock);
}

void fa_thread_for_each(void (*fn)(fa_thread_t *t, void *arg), void *arg)
{
    pthread_mutex_lock(&registry_lock);
    for (fa_list_link_t *l = registry.head; l; l = l->next)
        fn(FA_LIST_ENTRY(l, fa_thread_t, registry_link), arg);
    pthread_mutex_unlock(&registry_lock);
}

void fa_thread_fork_prepare(void) { pthread_mutex_lock(&registry_lock); }
void fa_thread_fork_parent(void) { pthread_mutex_unlock(&registry_lock); }

void fa_thread_fork_child(void)
{
    pthread_mutex_init(&registry_lock, NULL);
    fa_thread_t *self = fa_thread();
    registry = (fa_list_t){0};
    if (self->state == FA_THREAD_LIVE)
        fa_list_push_front(&registry, &self->registry_link);
}
