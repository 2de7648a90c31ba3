/* The intrusive list every chunk list and the thread registry use (src/chunk_list.h):
 * order after each operation, and the validator rejecting each broken invariant. */
#include <check.h>

#include "chunk_list.h"

typedef struct {
    int value;
    fa_list_link_t link;
} item_t;

static int value_at(const fa_list_link_t *l) { return FA_LIST_ENTRY(l, item_t, link)->value; }

/* Checks that l holds exactly the values in want, in order, and is valid. */
static void expect_values(const fa_list_t *l, const int *want, uint32_t n)
{
    ck_assert(fa_list_valid(l));
    ck_assert_uint_eq(l->count, n);
    const fa_list_link_t *e = l->head;
    for (uint32_t i = 0; i < n; i++, e = e->next) {
        ck_assert_ptr_nonnull(e);
        ck_assert_int_eq(value_at(e), want[i]);
    }
    ck_assert_ptr_null(e);
}

START_TEST(pushes_pops_and_removes_keep_order)
{
    item_t items[5];
    fa_list_t l = {0};
    for (int i = 0; i < 5; i++)
        items[i].value = i;
    fa_list_push_back(&l, &items[2].link);
    fa_list_push_front(&l, &items[1].link);
    fa_list_push_back(&l, &items[3].link);
    fa_list_push_front(&l, &items[0].link);
    fa_list_push_back(&l, &items[4].link);
    expect_values(&l, (int[]){0, 1, 2, 3, 4}, 5);
    fa_list_remove(&l, &items[2].link); /* middle */
    expect_values(&l, (int[]){0, 1, 3, 4}, 4);
    ck_assert_int_eq(value_at(fa_list_pop_front(&l)), 0);
    fa_list_remove(&l, &items[4].link); /* the tail */
    expect_values(&l, (int[]){1, 3}, 2);
    fa_list_remove(&l, &items[3].link); /* the tail */
    fa_list_remove(&l, &items[1].link); /* the last one */
    expect_values(&l, NULL, 0);
    ck_assert_ptr_null(l.tail);
    ck_assert_ptr_null(fa_list_pop_front(&l));
}
END_TEST

START_TEST(splice_moves_a_whole_list_to_the_front)
{
    item_t items[5];
    fa_list_t to = {0}, from = {0};
    for (int i = 0; i < 5; i++)
        items[i].value = i;
    fa_list_splice_front(&to, &from); /* both empty */
    expect_values(&to, NULL, 0);
    fa_list_push_back(&from, &items[0].link);
    fa_list_push_back(&from, &items[1].link);
    fa_list_splice_front(&to, &from); /* into an empty list */
    expect_values(&to, (int[]){0, 1}, 2);
    expect_values(&from, NULL, 0);
    fa_list_push_back(&from, &items[2].link);
    fa_list_push_back(&from, &items[3].link);
    fa_list_splice_front(&to, &from);
    expect_values(&to, (int[]){2, 3, 0, 1}, 4);
    fa_list_push_back(&to, &items[4].link); /* the tail moved along */
    expect_values(&to, (int[]){2, 3, 0, 1, 4}, 5);
}
END_TEST

START_TEST(validator_rejects_each_broken_invariant)
{
    item_t items[3];
    fa_list_t l = {0};
    for (int i = 0; i < 3; i++)
        fa_list_push_back(&l, &items[i].link);
    ck_assert(fa_list_valid(&l));

    l.count = 2; /* count short */
    ck_assert(!fa_list_valid(&l));
    l.count = 4; /* count long */
    ck_assert(!fa_list_valid(&l));
    l.count = 3;

    l.tail = &items[1].link; /* tail not the last element */
    ck_assert(!fa_list_valid(&l));
    l.tail = &items[2].link;

    items[2].link.prev = &items[0].link; /* a back link skips one */
    ck_assert(!fa_list_valid(&l));
    items[2].link.prev = &items[1].link;

    items[2].link.next = &items[0].link; /* a cycle: bounded by count, still rejected */
    ck_assert(!fa_list_valid(&l));
    items[2].link.next = NULL;
    ck_assert(fa_list_valid(&l));
}
END_TEST

Suite *fa_test_suite(void)
{
    Suite *s = suite_create("chunk_list");
    TCase *tc = tcase_create("list");
    tcase_add_test(tc, pushes_pops_and_removes_keep_order);
    tcase_add_test(tc, splice_moves_a_whole_list_to_the_front);
    tcase_add_test(tc, validator_rejects_each_broken_invariant);
    suite_add_tcase(s, tc);
    return s;
}
