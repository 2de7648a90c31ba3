/* The C++ allocation operators for the differential fuzzer (fuzz.c), behind a C
 * interface: every replaceable operator new and delete form, called directly (not
 * through new-expressions) so each form is reached, and std::bad_alloc turned into a
 * result the fuzzer can trace. */
#include <cstddef>
#include <new>

#include "fuzz_cxx.h"

namespace {

int handler_calls;

/* Counts its call and removes itself: the next failure in the same operator new
 * then throws std::bad_alloc. */
void counting_handler()
{
    handler_calls++;
    std::set_new_handler(nullptr);
}

void *new_plain(std::size_t size, int array, int nothrow)
{
    if (nothrow)
        return array ? ::operator new[](size, std::nothrow) : ::operator new(size, std::nothrow);
    return array ? ::operator new[](size) : ::operator new(size);
}

void *new_aligned(std::size_t size, std::size_t align, int array, int nothrow)
{
    std::align_val_t al = static_cast<std::align_val_t>(align);
    if (nothrow)
        return array ? ::operator new[](size, al, std::nothrow) : ::operator new(size, al, std::nothrow);
    return array ? ::operator new[](size, al) : ::operator new(size, al);
}

} // namespace

extern "C" void *fz_cxx_new(size_t size, size_t align, int array, int nothrow, int *threw)
{
    *threw = 0;
    try {
        return align ? new_aligned(size, align, array, nothrow) : new_plain(size, array, nothrow);
    } catch (const std::bad_alloc &) {
        *threw = 1;
        return nullptr;
    }
}

extern "C" void fz_cxx_delete(void *p, size_t size, size_t align, int array, int how)
{
    std::align_val_t al = static_cast<std::align_val_t>(align);
    switch (how) {
    case FZ_DELETE_SIZED:
        if (align)
            array ? ::operator delete[](p, size, al) : ::operator delete(p, size, al);
        else
            array ? ::operator delete[](p, size) : ::operator delete(p, size);
        break;
    case FZ_DELETE_NOTHROW:
        if (align)
            array ? ::operator delete[](p, al, std::nothrow) : ::operator delete(p, al, std::nothrow);
        else
            array ? ::operator delete[](p, std::nothrow) : ::operator delete(p, std::nothrow);
        break;
    default:
        if (align)
            array ? ::operator delete[](p, al) : ::operator delete(p, al);
        else
            array ? ::operator delete[](p) : ::operator delete(p);
        break;
    }
}

extern "C" int fz_cxx_new_handler_calls(size_t size, int *threw)
{
    handler_calls = 0;
    std::set_new_handler(counting_handler);
    void *p = fz_cxx_new(size, 0, 0, 0, threw);
    std::set_new_handler(nullptr);
    if (p)
        ::operator delete(p);
    return handler_calls;
}

extern "C" void fz_cxx_warm_up(void)
{
    /* The first throw sets up the unwinder's state; do it before any frame scope. */
    try {
        throw std::bad_alloc();
    } catch (const std::bad_alloc &) {
    }
}
