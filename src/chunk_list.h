/* One intrusive doubly linked list, used for every list of chunks (both arenas'
 * per-thread lists, the orphans, the spares) and for the registry of live threads.
 * An element embeds an fa_list_link_t and is found from it with FA_LIST_ENTRY; the
 * list keeps its head, its tail and its length, so that pushing or popping at either
 * end, unlinking any element and moving a whole list are O(1).
 *
 * Invariants (fa_list_valid): walking next from head reaches count elements, the
 * last of them is tail, and every element's prev is the one before it (NULL for the
 * head). A link that is on no list has both pointers NULL only where a caller clears
 * it; the list never reads an unlinked element's pointers. Not thread-safe: the
 * owner of a list (a thread, or the holder of a lock) serialises its use. */
#ifndef FA_CHUNK_LIST_H
#define FA_CHUNK_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct fa_list_link {
    struct fa_list_link *next, *prev;
} fa_list_link_t;

typedef struct {
    fa_list_link_t *head, *tail;
    uint32_t count;
} fa_list_t;

/* The element of type `type` whose member `member` is the link l (l not NULL). */
#define FA_LIST_ENTRY(l, type, member) ((type *)(void *)((char *)(l) - offsetof(type, member)))

/* Puts e on l between prev and next, neighbours on l (NULL: that end of l). */
FA_INLINE void fa_list_insert(fa_list_t *l, fa_list_link_t *e, fa_list_link_t *prev, fa_list_link_t *next)
{
    e->prev = prev;
    e->next = next;
    if (prev)
        prev->next = e;
    else
        l->head = e;
    if (next)
        next->prev = e;
    else
        l->tail = e;
    l->count++;
}

FA_INLINE void fa_list_push_front(fa_list_t *l, fa_list_link_t *e) { fa_list_insert(l, e, NULL, l->head); }
FA_INLINE void fa_list_push_back(fa_list_t *l, fa_list_link_t *e) { fa_list_insert(l, e, l->tail, NULL); }

/* Takes e, which is on l, off it. */
FA_INLINE void fa_list_remove(fa_list_t *l, fa_list_link_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->next = e->prev = NULL;
    l->count--;
}

/* The head, taken off the list, or NULL when it is empty. */
FA_INLINE fa_list_link_t *fa_list_pop_front(fa_list_t *l)
{
    fa_list_link_t *e = l->head;
    if (e)
        fa_list_remove(l, e);
    return e;
}

/* Moves all of from's elements in front of to's, leaving from empty. */
FA_INLINE void fa_list_splice_front(fa_list_t *to, fa_list_t *from)
{
    if (!from->head)
        return;
    from->tail->next = to->head;
    if (to->head)
        to->head->prev = from->tail;
    else
        to->tail = from->tail;
    to->head = from->head;
    to->count += from->count;
    *from = (fa_list_t){0};
}

/* The list's invariants (see above); bounded by count, so a cycle fails it too. */
FA_INLINE bool fa_list_valid(const fa_list_t *l)
{
    uint32_t n = 0;
    const fa_list_link_t *prev = NULL;
    for (const fa_list_link_t *e = l->head; e; prev = e, e = e->next, n++)
        if (n == l->count || e->prev != prev)
            return false;
    return n == l->count && prev == l->tail;
}

#endif
