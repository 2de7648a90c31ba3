// A program linked against Debian's libjemalloc.so (which defines malloc and the
// C++ operators itself), run under the preload: every allocation name must still
// resolve to libframealloc.so, allocations from C and C++ mix freely, and
// jemalloc's own extended API keeps working on jemalloc's own memory.
#include <dlfcn.h>
#include <jemalloc/jemalloc.h>
#include <malloc.h>
#include <pthread.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "preload_test.h"

namespace {

bool address_in_framealloc(void *address)
{
    Dl_info info;
    return dladdr(address, &info) && info.dli_fname && std::strstr(info.dli_fname, "libframealloc");
}

} // namespace

START_TEST(libjemalloc_is_linked_and_loaded)
{
    // Without this the test would prove nothing: jemalloc must be in the process.
    void *handle = dlopen("libjemalloc.so.2", RTLD_NOW | RTLD_NOLOAD);
    ck_assert_msg(handle != nullptr, "libjemalloc.so.2 is not loaded");
    dlclose(handle);
    const char *version = nullptr;
    std::size_t len = sizeof version;
    ck_assert_int_eq(mallctl("version", &version, &len, nullptr, 0), 0);
    ck_assert_ptr_nonnull(version);
}
END_TEST

START_TEST(allocation_names_resolve_to_framealloc_not_jemalloc)
{
    static const char *const names[] = {
        "malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign", "valloc",
        "malloc_usable_size", "_Znwm", "_Znam", "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZnwmSt11align_val_t",
        "_ZdlPvSt11align_val_t", "_ZnwmRKSt9nothrow_t",
    };
    for (const char *name : names)
        ck_assert_msg(defined_by_framealloc(name), "%s resolves to '%s'", name, object_defining(name));
    // The references this executable was linked with (against libjemalloc).
    ck_assert(address_in_framealloc(reinterpret_cast<void *>(&malloc)));
    ck_assert(address_in_framealloc(reinterpret_cast<void *>(&free)));
    ck_assert(address_in_framealloc(reinterpret_cast<void *>(&realloc)));
    void *(*plain_new)(std::size_t) = &::operator new;
    void (*plain_delete)(void *) noexcept = &::operator delete;
    ck_assert(address_in_framealloc(reinterpret_cast<void *>(plain_new)));
    ck_assert(address_in_framealloc(reinterpret_cast<void *>(plain_delete)));
}
END_TEST

START_TEST(calls_reach_framealloc)
{
    // Only framealloc has frame arenas: the counter proves who served the calls.
    fa::frame_scope scope;
    uint64_t before = frame_allocs_now();
    void *a = std::malloc(100);
    int *b = new int[25];
    std::string *c = new std::string(40, 'x');
    uint64_t served = frame_allocs_now() - before;
    ck_assert_uint_ge(served, 3);
    std::free(a);
    delete[] b;
    delete c;
}
END_TEST

static void *free_in_other_thread(void *arg)
{
    auto *blocks = static_cast<std::vector<void *> *>(arg);
    for (void *p : *blocks)
        std::free(p);
    return nullptr;
}

START_TEST(mixed_allocations_and_frees_work)
{
    std::vector<void *> handed_over;
    for (int round = 0; round < 4; round++) {
        fa_scope_push(round % 2 ? FA_FRAME : FA_DEFAULT);
        char *s = strdup("made by libc");
        char *grown = static_cast<char *>(std::malloc(8));
        std::strcpy(grown, "seven!!");
        for (std::size_t n = 16; n <= (1 << 20); n *= 4) {
            grown = static_cast<char *>(std::realloc(grown, n));
            ck_assert_str_eq(grown, "seven!!");
        }
        auto *numbers = new std::vector<int>();
        for (int i = 0; i < 10000; i++)
            numbers->push_back(i);
        void *aligned = nullptr;
        ck_assert_int_eq(posix_memalign(&aligned, 256, 300), 0);
        for (int i = 0; i < 100; i++)
            handed_over.push_back(std::calloc(1, 24 + i * 40));
        fa_scope_pop();

        ck_assert_int_eq((*numbers)[9999], 9999);
        ck_assert_str_eq(s, "made by libc");
        std::free(s);
        std::free(grown);
        delete numbers;
        std::free(aligned);
    }
    // Freed by another thread than the one that allocated them.
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, nullptr, free_in_other_thread, &handed_over), 0);
    ck_assert_int_eq(pthread_join(thread, nullptr), 0);
    fa_frame_end();
}
END_TEST

START_TEST(jemalloc_extended_api_works_on_its_own_memory)
{
    // The program may still use jemalloc's non-standard API: that memory belongs to
    // the real libjemalloc and goes back to it.
    void *p = mallocx(1000, MALLOCX_ALIGN(64));
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(reinterpret_cast<std::uintptr_t>(p) % 64, 0);
    ck_assert_uint_ge(sallocx(p, 0), 1000);
    std::memset(p, 1, 1000);
    dallocx(p, 0);
    void *q = std::malloc(1000); // and the standard names still go to framealloc
    ck_assert(!std::strstr(object_defining("malloc"), "jemalloc"));
    std::free(q);
}
END_TEST

Suite *preload_suite(void)
{
    Suite *s = suite_create("program linked with libjemalloc");
    TCase *tc = tcase_create("jemalloc");
    tcase_add_test(tc, libjemalloc_is_linked_and_loaded);
    tcase_add_test(tc, allocation_names_resolve_to_framealloc_not_jemalloc);
    tcase_add_test(tc, calls_reach_framealloc);
    tcase_add_test(tc, mixed_allocations_and_frees_work);
    tcase_add_test(tc, jemalloc_extended_api_works_on_its_own_memory);
    suite_add_tcase(s, tc);
    return s;
}
