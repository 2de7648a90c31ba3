/* Recording while another thread loads and unloads libraries: a loader thread
 * dlopens and dlcloses a small plugin (which allocates in its constructor, in its
 * function and in its destructor) and libm.so.6 over and over, two threads allocate
 * from ever-changing stacks, and the main thread writes reports meanwhile.
 * Must finish (the checker runs it under a timeout).
 * Usage: dlopen PLUGIN DIR LOADS */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <framealloc.h>

static const char *plugin_path;
static int loads;
static atomic_int done;
static atomic_int failures;

static void *loader_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < loads; i++) {
        void *plugin = dlopen(plugin_path, RTLD_NOW | RTLD_LOCAL);
        void *m = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
        if (!plugin || !m) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            atomic_fetch_add(&failures, 1);
            break;
        }
        void *(*work)(int) = (void *(*)(int))dlsym(plugin, "plugin_work");
        void *block = work ? work(i) : NULL;
        dlclose(m);
        dlclose(plugin);
        free(block); /* made in the plugin, freed after it is gone */
    }
    atomic_store(&done, 1);
    return NULL;
}

/* Recursion depth varies, so stacks (call sites) keep changing. */
__attribute__((noinline)) static void *worker_site(int depth, size_t n)
{
    if (depth > 0) {
        void *p = worker_site(depth - 1, n + 8);
        __asm__ volatile("" ::: "memory"); /* no tail call */
        return p;
    }
    return malloc(n); /* @site:worker */
}

static void *worker_thread(void *arg)
{
    unsigned i = (unsigned)(size_t)arg;
    while (!atomic_load(&done)) {
        void *p = worker_site((int)(i % 12), 32 + i % 200);
        free(p);
        i++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: dlopen PLUGIN DIR LOADS\n");
        return 2;
    }
    plugin_path = argv[1];
    loads = atoi(argv[3]);
    /* libm stays loaded, so the loader thread's dlopen and dlclose of it only count
     * references (as when libframealloc.so itself linked libm): really unmapping it
     * each time makes every report decompress its separate debug information
     * (libc6-dbg) for the new address, minutes for 3000 loads. The plugin is the
     * library that really comes and goes. */
    void *libm_held = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
    pthread_t loader, workers[2];
    pthread_create(&loader, NULL, loader_thread, NULL);
    for (int i = 0; i < 2; i++)
        pthread_create(&workers[i], NULL, worker_thread, (void *)(size_t)(i * 7));
    int reports = 0;
    while (!atomic_load(&done) || reports == 0) {
        usleep(10000);
        if (fa_report(argv[2]) != 0) {
            fprintf(stderr, "dlopen: fa_report during loads failed\n");
            atomic_fetch_add(&failures, 1);
        }
        reports++;
    }
    pthread_join(loader, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(workers[i], NULL);
    printf("loads %d, reports during loads %d\n", loads, reports);
    if (libm_held)
        dlclose(libm_held);
    return atomic_load(&failures) ? 1 : 0;
}
