/* libearly.so: a library preloaded next to libframealloc.so. With
 * LD_PRELOAD="libframealloc.so libearly.so" its constructor runs before
 * framealloc's (ld.so runs the later preload's constructor first); with the
 * reverse order, after. The test programs find its state with dlsym, because
 * they do not link against it. */
#ifndef EARLY_LIBRARY_H
#define EARLY_LIBRARY_H

#include <pthread.h>
#include <stddef.h>

#define EARLY_HEAP_BLOCK_SIZE 1000
#define EARLY_HEAP_BYTE 0xe1
#define EARLY_FRAME_BLOCK_SIZE 200
#define EARLY_FRAME_BYTE 0xe2

/* A thread-exit hook: set it as the value of early_state.key and the key's
 * destructor calls hook->run(hook). */
struct early_exit_hook {
    void (*run)(struct early_exit_hook *self);
};

struct early_state {
    int constructor_ran;
    const char *failure;        /* the first check that failed in the constructor, or NULL */
    unsigned char *heap_block;  /* left allocated: EARLY_HEAP_BLOCK_SIZE bytes of EARLY_HEAP_BYTE */
    unsigned char *frame_block; /* left allocated in a frame scope: EARLY_FRAME_BYTE bytes */
    pthread_key_t key;          /* created in the constructor, destructor runs the hook */
    int key_created;
};

#endif
