/* Every allocation name a program or libc can call resolves to libframealloc.so
 * when it is preloaded, and libc's own internal allocations reach it too. */
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preload_test.h"

static const char *const libc_names[] = {
    "malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc",
    "memalign", "valloc", "pvalloc", "malloc_usable_size", "cfree",
    "__libc_malloc", "__libc_free", "__libc_calloc", "__libc_realloc", "__libc_memalign", "__libc_valloc",
    "__libc_pvalloc", "__posix_memalign",
};

static const char *const api_names[] = {
    "fa_api_v1", "fa_active", "fa_frame_begin", "fa_frame_end", "fa_scope_push",
    "fa_scope_pop", "fa_tag_push", "fa_tag_pop", "fa_stats_get",
};

START_TEST(every_libc_allocation_name_resolves_to_framealloc)
{
    for (size_t i = 0; i < sizeof libc_names / sizeof libc_names[0]; i++)
        ck_assert_msg(defined_by_framealloc(libc_names[i]), "%s resolves to '%s', not libframealloc.so", libc_names[i],
                      object_defining(libc_names[i]));
}
END_TEST

START_TEST(public_api_names_resolve_to_framealloc)
{
    for (size_t i = 0; i < sizeof api_names / sizeof api_names[0]; i++)
        ck_assert_msg(defined_by_framealloc(api_names[i]), "%s resolves to '%s', not libframealloc.so", api_names[i],
                      object_defining(api_names[i]));
}
END_TEST

/* The addresses this executable was linked against (through its GOT) are the same
 * definitions, not glibc's. */
START_TEST(program_references_bind_to_framealloc)
{
    static const struct {
        const char *name;
        void *address;
    } refs[] = {
        {"malloc", (void *)malloc}, {"free", (void *)free}, {"calloc", (void *)calloc},
        {"realloc", (void *)realloc}, {"posix_memalign", (void *)posix_memalign},
        {"aligned_alloc", (void *)aligned_alloc}, {"memalign", (void *)memalign},
        {"malloc_usable_size", (void *)malloc_usable_size},
    };
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        Dl_info info;
        ck_assert(dladdr(refs[i].address, &info));
        ck_assert_msg(strstr(info.dli_fname, "libframealloc") != NULL, "&%s lies in %s", refs[i].name, info.dli_fname);
        ck_assert_ptr_eq(refs[i].address, dlsym(RTLD_DEFAULT, refs[i].name));
    }
}
END_TEST

/* glibc calls malloc through its PLT, so its own allocations are interposed: in a
 * frame scope the frame arena serves them, and our free takes them back. */
START_TEST(libc_internal_allocations_reach_framealloc)
{
    fa_scope_push(FA_FRAME);

    uint64_t before = frame_allocs_now();
    char *copy = strdup("frame-temporary text");
    uint64_t by_strdup = frame_allocs_now() - before;

    before = frame_allocs_now();
    char *printed = NULL;
    int printed_len = asprintf(&printed, "%d-%s", 42, "answer");
    uint64_t by_asprintf = frame_allocs_now() - before;

    before = frame_allocs_now();
    char *buf = NULL;
    size_t buf_size = 0;
    FILE *stream = open_memstream(&buf, &buf_size);
    fputs("written through a memory stream", stream);
    fclose(stream);
    uint64_t by_memstream = frame_allocs_now() - before;

    fa_scope_pop();

    ck_assert_str_eq(copy, "frame-temporary text");
    ck_assert_uint_ge(by_strdup, 1);
    ck_assert_int_eq(printed_len, 9);
    ck_assert_str_eq(printed, "42-answer");
    ck_assert_uint_ge(by_asprintf, 1);
    ck_assert_str_eq(buf, "written through a memory stream");
    ck_assert_uint_ge(by_memstream, 1);
    free(copy);
    free(printed);
    free(buf);
}
END_TEST

Suite *preload_suite(void)
{
    Suite *s = suite_create("libc names");
    TCase *tc = tcase_create("resolution");
    tcase_add_test(tc, every_libc_allocation_name_resolves_to_framealloc);
    tcase_add_test(tc, public_api_names_resolve_to_framealloc);
    tcase_add_test(tc, program_references_bind_to_framealloc);
    tcase_add_test(tc, libc_internal_allocations_reach_framealloc);
    suite_add_tcase(s, tc);
    return s;
}
