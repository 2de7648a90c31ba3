/* The region's layout under an address-space limit (region.h): a frame part that
 * never held a chunk goes back to the kernel, base moves up to the pool part, and
 * every pointer still says where it lives. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "alloc.h"
#include "api.h"
#include "region.h"

#include "framealloc.h"

/* Sets a soft address-space limit 1 GiB above what the process maps now (under
 * ASan and TSan that is terabytes of shadow memory, and their own mappings must
 * still fit): the region is reserved already, so only trims and later mappings see
 * it. */
static void limit_address_space(void)
{
    FILE *status = fopen("/proc/self/status", "r");
    ck_assert_ptr_nonnull(status);
    char line[256];
    unsigned long long kib = 0;
    while (fgets(line, sizeof line, status))
        if (sscanf(line, "VmSize: %llu kB", &kib) == 1)
            break;
    fclose(status);
    ck_assert_uint_gt(kib, 0);
    struct rlimit limit;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &limit), 0);
    limit.rlim_cur = (rlim_t)(kib << 10) + ((rlim_t)1 << 30);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &limit), 0);
}

START_TEST(an_unused_frame_part_goes_back_under_a_limit)
{
    void *pool_block = fa_malloc(48);
    ck_assert_ptr_nonnull(pool_block);
    ck_assert_int_eq(fa_region_place(pool_block), FA_PLACE_POOL);
    uintptr_t old_base = fa_region.base;
    size_t old_frame_size = fa_region.frame_size;
    ck_assert_uint_gt(old_frame_size, 0);

    limit_address_space();
    ck_assert(fa_region_trim());
    ck_assert_uint_eq(fa_region.frame_size, 0);
    ck_assert_uint_eq(fa_region.frame_checked, 0);
    ck_assert_uint_eq(fa_region.base, old_base + old_frame_size);
    ck_assert_uint_eq(fa_region_layout_seq, 2);
    ck_assert_int_eq(fa_region_place(pool_block), FA_PLACE_POOL);

    /* The frame part's range is the kernel's again: a mapping fits there, and it is
     * the heap's as far as free can tell. */
    void *where = (void *)(old_base + old_frame_size / 2);
    void *mapped = mmap(where, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    ck_assert_ptr_eq(mapped, where);
    ck_assert_int_eq(fa_region_place(mapped), FA_PLACE_HEAP);
    ck_assert(!fa_region_owns(mapped));
    munmap(mapped, 4096);

    /* Pool blocks free and come back as before. */
    fa_free(pool_block);
    void *again = fa_malloc(48);
    ck_assert_int_eq(fa_region_place(again), FA_PLACE_POOL);
    fa_free(again);
}
END_TEST

/* After that, a frame scope's small blocks come from the pools (here from the chunk
 * an earlier block of the class left: the trim gave the pool part's fresh chunks
 * back too). */
START_TEST(frame_requests_take_pool_blocks_once_the_frame_part_is_gone)
{
    fa_free(fa_malloc(100));
    limit_address_space();
    ck_assert(fa_region_trim());
    fa_scope_push(FA_FRAME);
    char *p = fa_malloc(100);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(fa_region_place(p), FA_PLACE_POOL);
    p[99] = 1;
    fa_free(p);
    fa_scope_pop();
}
END_TEST

/* A frame part that held a chunk keeps its bounds (frame pointers may be alive),
 * and gives back only the chunks it never handed out; the heap then maps nothing
 * into the region's range, where offsets would call its blocks frame blocks. */
START_TEST(a_used_frame_part_gives_back_only_its_unused_chunks)
{
    fa_scope_push(FA_FRAME);
    void *frame_block = fa_malloc(100);
    fa_scope_pop();
    ck_assert_int_eq(fa_region_place(frame_block), FA_PLACE_FRAME);
    size_t frame_size = fa_region.frame_size;
    uintptr_t base = fa_region.base;
    limit_address_space();
    ck_assert(fa_region_trim());
    ck_assert_uint_eq(fa_region.frame_size, frame_size);
    ck_assert_uint_eq(fa_region.base, base);
    ck_assert_int_eq(fa_region_place(frame_block), FA_PLACE_FRAME);
    ck_assert(fa_region_frame_chunk_mapped(frame_block));

    void *top = (void *)(base + frame_size - 4096);
    ck_assert(!fa_region_frame_chunk_mapped(top));
    void *mapped = mmap(top, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    ck_assert_ptr_eq(mapped, top);
    munmap(mapped, 4096);

    /* Directly mapped blocks first, then (past 16 MiB of them freed) jemalloc's. */
    for (int i = 0; i < 40; i++) {
        void *heap_block = fa_malloc((size_t)1 << 20);
        ck_assert_ptr_nonnull(heap_block);
        uintptr_t a = (uintptr_t)heap_block;
        ck_assert(a + ((size_t)1 << 20) <= fa_region.origin || a >= fa_region.origin + fa_region.reserved);
        fa_free(heap_block);
    }
    fa_free(frame_block);
}
END_TEST

Suite *fa_test_suite(void)
{
    Suite *s = suite_create("region");
    TCase *tc = tcase_create("address-space limit");
    tcase_add_test(tc, an_unused_frame_part_goes_back_under_a_limit);
    tcase_add_test(tc, frame_requests_take_pool_blocks_once_the_frame_part_is_gone);
    tcase_add_test(tc, a_used_frame_part_gives_back_only_its_unused_chunks);
    suite_add_tcase(s, tc);
    return s;
}
