/* ref_malloc.h: the per-thread state of the two reference allocators (bench/ only).
 *
 * Both references bump a per-thread pointer and never reuse memory on free. The naive
 * bump uses bump[0] only; the linear reference also has bump[1], a per-thread frame
 * buffer that its frame scopes allocate from and that is reset when a new frame
 * begins (ref_linear.c). These are measuring sticks for the physical limit of a
 * malloc through the ABI, not allocators to ship. */
#ifndef REF_MALLOC_H
#define REF_MALLOC_H

#include <stddef.h>
#include <stdint.h>

#define REF_EXPORT __attribute__((visibility("default")))

/* Every block is 16-byte aligned and preceded by a 16-byte slot whose last 8 bytes
 * hold the block's usable size (for realloc and malloc_usable_size). */
#define REF_HEADER 16

typedef struct {
    char *cur;   /* next free byte; NULL before the first refill */
    char *end;   /* end of the area; cur <= end */
} ref_bump_t;

typedef struct {
    ref_bump_t bump[2]; /* [0]: never reset; [1]: the linear reference's frame buffer */
    unsigned in_frame;  /* linear only: 1 while the innermost scope is FA_FRAME */
    unsigned depth;     /* linear only: scope nesting depth */
    uint64_t frame_seen; /* linear only: the frame number bump[1] was last reset for */
    char *frame_base;   /* linear only: start of the frame buffer (NULL: not reserved) */
    char *frame_end;    /* linear only: end of the frame buffer */
    unsigned char intents[64]; /* linear only: the scope stack */
} ref_thread_t;

extern __thread ref_thread_t ref_thread __attribute__((tls_model("initial-exec")));

/* Linear only (ref_linear.c): called when the frame buffer is full or the frame
 * changed; returns 1 when bump[1] was reset and can be retried, 0 to fall back to
 * bump[0]. */
int ref_frame_refresh(void);

#endif
