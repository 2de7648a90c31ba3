/* C interface to the C++ allocation operators for the fuzzer (fuzz_cxx.cpp). */
#ifndef FUZZ_CXX_H
#define FUZZ_CXX_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { FZ_DELETE_PLAIN, FZ_DELETE_SIZED, FZ_DELETE_NOTHROW, FZ_DELETE_FORMS };

/* operator new / new[] (array), aligned when align != 0, nothrow forms when nothrow.
 * Returns the block, or NULL with *threw = 1 when std::bad_alloc was thrown. */
void *fz_cxx_new(size_t size, size_t align, int array, int nothrow, int *threw);

/* The matching operator delete / delete[]: plain, sized or nothrow form. */
void fz_cxx_delete(void *p, size_t size, size_t align, int array, int how);

/* operator new(size) with a new_handler installed that removes itself: returns how
 * many times the handler ran (the block, if any, is deleted). */
int fz_cxx_new_handler_calls(size_t size, int *threw);

/* One throw and catch, so the unwinder sets itself up outside frame scopes. */
void fz_cxx_warm_up(void);

#ifdef __cplusplus
}
#endif

#endif
