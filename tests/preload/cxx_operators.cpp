// The twenty C++ operator new/delete forms under the preload: they resolve to
// libframealloc.so, return usable and correctly aligned memory on every route,
// throw std::bad_alloc or return nullptr as their form says, run the new_handler
// loop, and keep doing so when memory really runs out.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <sys/resource.h>
#include <vector>

#include "preload_test.h"

namespace {

// The alignment plain operator new guarantees (16 on x86_64), and framealloc's minimum.
constexpr std::size_t default_new_align = __STDCPP_DEFAULT_NEW_ALIGNMENT__;

const char *const operator_names[] = {
    "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
    "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t",
    "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
    "_ZdlPv", "_ZdaPv", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t", "_ZdlPvm", "_ZdaPvm",
    "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t",
    "_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
    "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",
};

// One way to allocate and the matching way to release. Together the entries call
// all 8 new forms and all 12 delete forms.
struct Form {
    const char *name;
    bool aligned;
    bool nothrow;
    void *(*allocate)(std::size_t n, std::align_val_t a);
    void (*release)(void *p, std::size_t n, std::align_val_t a);
};

const Form forms[] = {
    {"new / delete", false, false, [](std::size_t n, std::align_val_t) { return ::operator new(n); },
     [](void *p, std::size_t, std::align_val_t) { ::operator delete(p); }},
    {"new / sized delete", false, false, [](std::size_t n, std::align_val_t) { return ::operator new(n); },
     [](void *p, std::size_t n, std::align_val_t) { ::operator delete(p, n); }},
    {"new[] / delete[]", false, false, [](std::size_t n, std::align_val_t) { return ::operator new[](n); },
     [](void *p, std::size_t, std::align_val_t) { ::operator delete[](p); }},
    {"new[] / sized delete[]", false, false, [](std::size_t n, std::align_val_t) { return ::operator new[](n); },
     [](void *p, std::size_t n, std::align_val_t) { ::operator delete[](p, n); }},
    {"nothrow new / nothrow delete", false, true,
     [](std::size_t n, std::align_val_t) { return ::operator new(n, std::nothrow); },
     [](void *p, std::size_t, std::align_val_t) { ::operator delete(p, std::nothrow); }},
    {"nothrow new[] / nothrow delete[]", false, true,
     [](std::size_t n, std::align_val_t) { return ::operator new[](n, std::nothrow); },
     [](void *p, std::size_t, std::align_val_t) { ::operator delete[](p, std::nothrow); }},
    {"aligned new / aligned delete", true, false,
     [](std::size_t n, std::align_val_t a) { return ::operator new(n, a); },
     [](void *p, std::size_t, std::align_val_t a) { ::operator delete(p, a); }},
    {"aligned new / sized aligned delete", true, false,
     [](std::size_t n, std::align_val_t a) { return ::operator new(n, a); },
     [](void *p, std::size_t n, std::align_val_t a) { ::operator delete(p, n, a); }},
    {"aligned new[] / aligned delete[]", true, false,
     [](std::size_t n, std::align_val_t a) { return ::operator new[](n, a); },
     [](void *p, std::size_t, std::align_val_t a) { ::operator delete[](p, a); }},
    {"aligned new[] / sized aligned delete[]", true, false,
     [](std::size_t n, std::align_val_t a) { return ::operator new[](n, a); },
     [](void *p, std::size_t n, std::align_val_t a) { ::operator delete[](p, n, a); }},
    {"aligned nothrow new / aligned nothrow delete", true, true,
     [](std::size_t n, std::align_val_t a) { return ::operator new(n, a, std::nothrow); },
     [](void *p, std::size_t, std::align_val_t a) { ::operator delete(p, a, std::nothrow); }},
    {"aligned nothrow new[] / aligned nothrow delete[]", true, true,
     [](std::size_t n, std::align_val_t a) { return ::operator new[](n, a, std::nothrow); },
     [](void *p, std::size_t, std::align_val_t a) { ::operator delete[](p, a, std::nothrow); }},
};

// Calls the form; nullptr when it threw std::bad_alloc.
void *try_allocate(const Form &form, std::size_t n, std::size_t align)
{
    try {
        return form.allocate(n, std::align_val_t(align));
    } catch (const std::bad_alloc &) {
        return nullptr;
    }
}

const std::size_t sizes[] = {0, 1, 7, 8, 15, 16, 17, 100, 1000, 4096, 65535, 65536, 70000, 1 << 20};

void enter_heap_scope() { fa_scope_push(FA_HEAP); }
void enter_pool_scope() { fa_scope_push(FA_POOL); }
void enter_frame_scope() { fa_scope_push(FA_FRAME); }
void leave_scope() { fa_scope_pop(); }

} // namespace

START_TEST(every_operator_resolves_to_framealloc)
{
    for (const char *name : operator_names)
        ck_assert_msg(defined_by_framealloc(name), "%s resolves to '%s', not libframealloc.so", name,
                      object_defining(name));
}
END_TEST

START_TEST(every_form_returns_usable_aligned_memory)
{
    enum { BATCH = 8 };
    for (const Form &form : forms) {
        for (std::size_t align = 1; align <= (form.aligned ? 65536u : 1u); align *= 2) {
            // Plain forms: the default new alignment; aligned forms: what was asked.
            std::size_t want = form.aligned ? align : default_new_align;
            for (std::size_t n : sizes) {
                void *batch[BATCH];
                for (void *&p : batch) {
                    p = form.allocate(n, std::align_val_t(align));
                    ck_assert_msg(p != nullptr, "%s(size %zu), alignment %zu: returned nullptr", form.name, n, want);
                    ck_assert_msg(reinterpret_cast<std::uintptr_t>(p) % want == 0,
                                  "%s(size %zu), alignment %zu: returned %p", form.name, n, want, p);
                    std::memset(p, 0x6b, n);
                }
                for (void *p : batch)
                    ck_assert(n == 0 || all_bytes_are(p, n, 0x6b)); // no two blocks overlap
                for (void *p : batch)
                    form.release(p, n, std::align_val_t(align));
            }
        }
    }
}
END_TEST

START_TEST(throwing_forms_raise_bad_alloc_for_impossible_sizes)
{
    std::set_new_handler(nullptr);
    for (const Form &form : forms) {
        if (form.nothrow)
            continue;
        for (std::size_t n : {SIZE_MAX, SIZE_MAX - 4095, static_cast<std::size_t>(PTRDIFF_MAX) + 1}) {
            bool threw = false;
            try {
                form.allocate(n, std::align_val_t(64));
            } catch (const std::bad_alloc &) {
                threw = true;
            }
            ck_assert_msg(threw, "%s(%zu) did not throw std::bad_alloc", form.name, n);
        }
    }
}
END_TEST

START_TEST(nothrow_forms_return_nullptr_for_impossible_sizes)
{
    std::set_new_handler(nullptr);
    for (const Form &form : forms) {
        if (!form.nothrow)
            continue;
        for (std::size_t n : {SIZE_MAX, SIZE_MAX - 4095, static_cast<std::size_t>(PTRDIFF_MAX) + 1})
            ck_assert_msg(form.allocate(n, std::align_val_t(64)) == nullptr, "%s(%zu) did not return nullptr",
                          form.name, n);
    }
}
END_TEST

static int handler_calls;

static void handler_that_throws()
{
    handler_calls++;
    throw std::bad_alloc();
}

START_TEST(new_handler_that_throws_ends_the_allocation)
{
    std::set_new_handler(handler_that_throws);
    for (const Form &form : forms) {
        handler_calls = 0;
        void *p = (void *)1;
        bool threw = false;
        try {
            p = form.allocate(SIZE_MAX, std::align_val_t(64));
        } catch (const std::bad_alloc &) {
            threw = true;
        }
        ck_assert_msg(handler_calls == 1, "%s: new_handler called %d times, want 1", form.name, handler_calls);
        if (form.nothrow)
            ck_assert_msg(!threw && p == nullptr, "%s: want nullptr after the handler threw", form.name);
        else
            ck_assert_msg(threw, "%s: the handler's std::bad_alloc did not propagate", form.name);
    }
    std::set_new_handler(nullptr);
}
END_TEST

// A handler may throw anything (not only std::bad_alloc): the nothrow forms still
// return nullptr, and the exception they swallowed is finished with (no exception
// left in flight or current), as a catch (...) would leave it; the throwing forms
// pass it on unchanged.
static void handler_that_throws_an_int()
{
    handler_calls++;
    throw 42;
}

START_TEST(new_handler_throwing_anything_is_caught_by_nothrow_forms)
{
    std::set_new_handler(handler_that_throws_an_int);
    for (const Form &form : forms) {
        handler_calls = 0;
        void *p = (void *)1;
        int thrown = 0;
        try {
            p = form.allocate(SIZE_MAX, std::align_val_t(64));
        } catch (int value) {
            thrown = value;
        }
        ck_assert_msg(handler_calls == 1, "%s: new_handler called %d times, want 1", form.name, handler_calls);
        if (form.nothrow) {
            ck_assert_msg(thrown == 0 && p == nullptr, "%s: want nullptr after the handler threw", form.name);
            ck_assert_msg(std::uncaught_exceptions() == 0, "%s: %d exceptions left in flight", form.name,
                          std::uncaught_exceptions());
            ck_assert_msg(!std::current_exception(), "%s: the swallowed exception is still current", form.name);
        } else {
            ck_assert_msg(thrown == 42, "%s: the handler's exception did not propagate", form.name);
        }
    }
    std::set_new_handler(nullptr);
}
END_TEST

// Gives up on its third call by removing itself: the next failure then throws.
static void handler_that_gives_up()
{
    if (++handler_calls == 3)
        std::set_new_handler(nullptr);
}

START_TEST(new_handler_is_called_until_it_gives_up)
{
    for (const Form &form : forms) {
        handler_calls = 0;
        std::set_new_handler(handler_that_gives_up);
        void *p = try_allocate(form, SIZE_MAX, 64);
        ck_assert_ptr_null(p);
        ck_assert_msg(handler_calls == 3, "%s: new_handler called %d times, want 3", form.name, handler_calls);
    }
}
END_TEST

// Makes memory available the way a real handler would: here by lifting the
// address-space limit the test set.
static rlim_t original_limit;

static void handler_that_frees_memory()
{
    handler_calls++;
    struct rlimit limit;
    getrlimit(RLIMIT_AS, &limit);
    limit.rlim_cur = original_limit;
    setrlimit(RLIMIT_AS, &limit);
}

// One form per forked child (a loop test): the heap keeps the address space of a
// freed block, and the next big request would then fit without the handler.
START_TEST(new_handler_can_make_the_allocation_succeed)
{
    const Form &form = forms[_i];
    const std::size_t big = std::size_t(512) << 20;
    struct rlimit limit;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &limit), 0);
    original_limit = limit.rlim_cur;
    // Under a limit the allocator gives back what it reserved and never used the
    // first time the heap runs short: let that happen first, then set the limit
    // that the big request cannot meet.
    limit_address_space(32 << 20);
    ck_assert_ptr_null(malloc(std::size_t(1) << 40));
    limit_address_space(32 << 20);
    std::set_new_handler(handler_that_frees_memory);
    handler_calls = 0;
    char *p = static_cast<char *>(try_allocate(form, big, 4096));
    ck_assert_msg(p != nullptr, "%s: no memory after the handler lifted the limit", form.name);
    ck_assert_msg(handler_calls == 1, "%s: new_handler called %d times, want 1", form.name, handler_calls);
    p[0] = 1;
    p[big - 1] = 2;
    form.release(p, big, std::align_val_t(4096));
    std::set_new_handler(nullptr);
}
END_TEST

// Real exhaustion: allocate until the form fails, for small, 1 MiB and 64 MiB
// requests, one (form, size) pair per forked child so that what the heap keeps
// after one exhaustion cannot starve the next. Blocks are chained through their
// first word so holding them needs no other memory.
const struct {
    std::size_t size, headroom;
} exhaustion_cases[] = {{64, 4 << 20}, {1 << 20, 32 << 20}, {std::size_t(64) << 20, std::size_t(100) << 20}};
const int exhaustion_case_count = sizeof exhaustion_cases / sizeof exhaustion_cases[0];

START_TEST(forms_fail_cleanly_when_memory_runs_out)
{
    const Form &form = forms[_i / exhaustion_case_count];
    std::size_t n = exhaustion_cases[_i % exhaustion_case_count].size;
    std::set_new_handler(nullptr);
    struct rlimit saved;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &saved), 0);
    limit_address_space(exhaustion_cases[_i % exhaustion_case_count].headroom);
    void *chain = nullptr;
    std::size_t count = 0;
    for (;;) {
        void *p = try_allocate(form, n, 64); // nullptr: threw bad_alloc or returned nullptr
        if (!p)
            break;
        *static_cast<void **>(p) = chain;
        chain = p;
        count++;
    }
    while (chain) {
        void *next = *static_cast<void **>(chain);
        form.release(chain, n, std::align_val_t(64));
        chain = next;
    }
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &saved), 0);
    ck_assert_msg(count > 0, "%s(%zu): not even one allocation fitted", form.name, n);
    void *again = try_allocate(form, n, 64);
    ck_assert_msg(again != nullptr, "%s(%zu): no memory after freeing everything", form.name, n);
    form.release(again, n, std::align_val_t(64));
}
END_TEST

START_TEST(frame_scope_serves_every_new_form)
{
    for (const Form &form : forms) {
        uint64_t before = frame_allocs_now();
        void *p = form.allocate(200, std::align_val_t(64));
        uint64_t served = frame_allocs_now() - before;
        ck_assert_msg(served == 1, "%s: %llu frame allocations, want 1", form.name, (unsigned long long)served);
        form.release(p, 200, std::align_val_t(64));
    }
    // Library code that allocates through new: vector and string growth.
    std::vector<std::string> words;
    for (int i = 0; i < 1000; i++)
        words.push_back("frame-temporary string number " + std::to_string(i));
    ck_assert_str_eq(words[999].c_str(), "frame-temporary string number 999");
}
END_TEST

static void add_route(Suite *s, const char *name, void (*enter)())
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 30);
    if (enter)
        tcase_add_checked_fixture(tc, enter, leave_scope);
    tcase_add_test(tc, every_form_returns_usable_aligned_memory);
    tcase_add_test(tc, throwing_forms_raise_bad_alloc_for_impossible_sizes);
    tcase_add_test(tc, nothrow_forms_return_nullptr_for_impossible_sizes);
    tcase_add_test(tc, new_handler_that_throws_ends_the_allocation);
    tcase_add_test(tc, new_handler_throwing_anything_is_caught_by_nothrow_forms);
    tcase_add_test(tc, new_handler_is_called_until_it_gives_up);
    tcase_add_loop_test(tc, new_handler_can_make_the_allocation_succeed, 0, int(sizeof forms / sizeof forms[0]));
    if (enter == enter_frame_scope)
        tcase_add_test(tc, frame_scope_serves_every_new_form);
    suite_add_tcase(s, tc);
}

Suite *preload_suite(void)
{
    Suite *s = suite_create("C++ operators");
    TCase *names = tcase_create("symbols");
    tcase_add_test(names, every_operator_resolves_to_framealloc);
    suite_add_tcase(s, names);
    add_route(s, "default", nullptr);
    add_route(s, "heap scope", enter_heap_scope);
    add_route(s, "pool scope", enter_pool_scope);
    add_route(s, "frame scope", enter_frame_scope);
    // Runs only under a low `ulimit -v` (see meson.build), where small requests can
    // really run out: the frame and pool region is reserved at start-up.
    TCase *oom = tcase_create("out of memory");
    tcase_set_tags(oom, "oom");
    tcase_set_timeout(oom, 30);
    tcase_add_loop_test(oom, forms_fail_cleanly_when_memory_runs_out, 0,
                        int(sizeof forms / sizeof forms[0]) * exhaustion_case_count);
    suite_add_tcase(s, oom);
    return s;
}
