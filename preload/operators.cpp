// The C++ side of operator new (the names themselves are in operators.c): what the
// standard requires when no memory is left. The throwing forms run the new_handler
// loop and throw std::bad_alloc; the nothrow forms return nullptr instead.
#include <cstddef>
#include <new>

extern "C" {
#include "alloc.h"
}

// Called after the fast path and the core's slow path both failed for size bytes.
extern "C" void *fa_cxx_new_failed(std::size_t size, std::size_t alignment, int nothrow)
{
    for (;;) {
        std::new_handler handler = std::get_new_handler();
        if (!handler) {
            if (nothrow)
                return nullptr;
            throw std::bad_alloc();
        }
        if (nothrow) {
            try {
                handler();
            } catch (...) {
                return nullptr;
            }
        } else {
            handler();
        }
        void *p = alignment ? fa_malloc_aligned(alignment, size) : fa_malloc(size);
        if (p)
            return p;
    }
}
