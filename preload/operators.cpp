// The twenty C++ operator new/delete forms. The throwing forms run the
// new_handler loop and throw std::bad_alloc as the standard requires; the nothrow
// forms return nullptr instead.
#include <cstddef>
#include <new>

extern "C" {
#include "alloc.h"
}

namespace {

// Returns nullptr only when there is no new_handler (or it threw and nothrow is set).
template <bool Nothrow>
void *allocate(std::size_t size, std::size_t alignment)
{
    for (;;) {
        void *p = alignment ? fa_malloc_aligned(alignment, size) : fa_malloc(size);
        if (p)
            return p;
        std::new_handler handler = std::get_new_handler();
        if (!handler) {
            if (Nothrow)
                return nullptr;
            throw std::bad_alloc();
        }
        if (Nothrow) {
            try {
                handler();
            } catch (...) {
                return nullptr;
            }
        } else {
            handler();
        }
    }
}

} // namespace

#define FA_CXX_EXPORT __attribute__((visibility("default")))

FA_CXX_EXPORT void *operator new(std::size_t n) { return allocate<false>(n, 0); }
FA_CXX_EXPORT void *operator new[](std::size_t n) { return allocate<false>(n, 0); }
FA_CXX_EXPORT void *operator new(std::size_t n, const std::nothrow_t &) noexcept { return allocate<true>(n, 0); }
FA_CXX_EXPORT void *operator new[](std::size_t n, const std::nothrow_t &) noexcept { return allocate<true>(n, 0); }
FA_CXX_EXPORT void *operator new(std::size_t n, std::align_val_t a) { return allocate<false>(n, static_cast<std::size_t>(a)); }
FA_CXX_EXPORT void *operator new[](std::size_t n, std::align_val_t a) { return allocate<false>(n, static_cast<std::size_t>(a)); }
FA_CXX_EXPORT void *operator new(std::size_t n, std::align_val_t a, const std::nothrow_t &) noexcept
{
    return allocate<true>(n, static_cast<std::size_t>(a));
}
FA_CXX_EXPORT void *operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t &) noexcept
{
    return allocate<true>(n, static_cast<std::size_t>(a));
}

FA_CXX_EXPORT void operator delete(void *p) noexcept { fa_free(p); }
FA_CXX_EXPORT void operator delete[](void *p) noexcept { fa_free(p); }
FA_CXX_EXPORT void operator delete(void *p, const std::nothrow_t &) noexcept { fa_free(p); }
FA_CXX_EXPORT void operator delete[](void *p, const std::nothrow_t &) noexcept { fa_free(p); }
FA_CXX_EXPORT void operator delete(void *p, std::size_t) noexcept { fa_free(p); }
FA_CXX_EXPORT void operator delete[](void *p, std::size_t) noexcept { fa_free(p); }
FA_CXX_EXPORT void operator delete(void *p, std::align_val_t) noexcept { fa_free(p); }
FA_CXX_EXPORT void operator delete[](void *p, std::align_val_t) noexcept { fa_free(p); }
FA_CXX_EXPORT void operator delete(void *p, std::align_val_t, const std::nothrow_t &) noexcept { fa_free(p); }
FA_CXX_EXPORT void operator delete[](void *p, std::align_val_t, const std::nothrow_t &) noexcept { fa_free(p); }
FA_CXX_EXPORT void operator delete(void *p, std::size_t, std::align_val_t) noexcept { fa_free(p); }
FA_CXX_EXPORT void operator delete[](void *p, std::size_t, std::align_val_t) noexcept { fa_free(p); }
