/* Run with libearly.so preloaded next to libframealloc.so, in both orders: the
 * early library's constructor (which may run before framealloc's) allocated and
 * freed without trouble, and the blocks it left are intact and can be resized and
 * freed by the program. */
#include <dlfcn.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "early_library.h"
#include "preload_test.h"

static struct early_state *early(void)
{
    struct early_state *state = dlsym(RTLD_DEFAULT, "early_state");
    if (!state)
        ck_abort_msg("libearly.so is not preloaded");
    return state;
}

START_TEST(early_constructor_ran_and_its_checks_passed)
{
    struct early_state *state = early();
    ck_assert(state->constructor_ran);
    ck_assert_msg(state->failure == NULL, "libearly's constructor: %s", state->failure);
    ck_assert(state->key_created);
}
END_TEST

START_TEST(blocks_left_by_the_constructor_are_intact)
{
    struct early_state *state = early();
    ck_assert_ptr_nonnull(state->heap_block);
    ck_assert_ptr_nonnull(state->frame_block);
    ck_assert(all_bytes_are(state->heap_block, EARLY_HEAP_BLOCK_SIZE, EARLY_HEAP_BYTE));
    ck_assert(all_bytes_are(state->frame_block, EARLY_FRAME_BLOCK_SIZE, EARLY_FRAME_BYTE));
    ck_assert_uint_ge(malloc_usable_size(state->heap_block), EARLY_HEAP_BLOCK_SIZE);
    ck_assert_uint_ge(malloc_usable_size(state->frame_block), EARLY_FRAME_BLOCK_SIZE);
    /* Grow both (they move or grow in place), then free them. */
    unsigned char *heap = realloc(state->heap_block, 100000);
    unsigned char *frame = realloc(state->frame_block, 100000);
    ck_assert(all_bytes_are(heap, EARLY_HEAP_BLOCK_SIZE, EARLY_HEAP_BYTE));
    ck_assert(all_bytes_are(frame, EARLY_FRAME_BLOCK_SIZE, EARLY_FRAME_BYTE));
    free(heap);
    free(frame);
}
END_TEST

START_TEST(blocks_left_by_the_constructor_can_be_freed_directly)
{
    struct early_state *state = early();
    free(state->heap_block);
    free(state->frame_block);
    /* The arenas are still in order afterwards. */
    FA_FRAME_SCOPE {
        void *p = malloc(64);
        ck_assert_ptr_nonnull(p);
        free(p);
    }
}
END_TEST

Suite *preload_suite(void)
{
    Suite *s = suite_create("early library");
    TCase *tc = tcase_create("constructor order");
    tcase_add_test(tc, early_constructor_ran_and_its_checks_passed);
    tcase_add_test(tc, blocks_left_by_the_constructor_are_intact);
    tcase_add_test(tc, blocks_left_by_the_constructor_can_be_freed_directly);
    suite_add_tcase(s, tc);
    return s;
}
