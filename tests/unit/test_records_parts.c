/* The parts of allocation records that stand alone: the map of recorded blocks
 * (many colliding entries, removal in any order, escapes), the tag table (equal
 * names, live and peak bytes, budgets) and sampling (its countdown and weights). */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "framealloc.h"
#include "record_map.h"
#include "sampling.h"
#include "tags.h"
#include "thread.h"

static fa_record_t record(uintptr_t ptr, uint64_t size)
{
    return (fa_record_t){.ptr = ptr, .size = size, .weight = size, .intent = FA_FRAME, .frame = 7};
}

START_TEST(map_finds_every_record_until_removed)
{
    fa_record_map_start();
    ck_assert(fa_record_map_empty());
    /* Enough records to grow shards several times; 16-byte steps as blocks have. */
    enum { N = 20000 };
    for (uintptr_t i = 1; i <= N; i++) {
        fa_record_t r = record(i * 16, i);
        fa_record_map_insert(&r);
    }
    ck_assert(!fa_record_map_empty());
    /* Remove every third, then check that every other one is still found. */
    for (uintptr_t i = 3; i <= N; i += 3) {
        fa_record_t out;
        ck_assert(fa_record_map_remove(i * 16, &out));
        ck_assert_uint_eq(out.size, i);
        ck_assert(!fa_record_map_remove(i * 16, &out));
    }
    for (uintptr_t i = 1; i <= N; i++) {
        uint64_t size;
        ck_assert_msg(fa_record_map_size(i * 16, &size) == (i % 3 != 0), "record %lu", (unsigned long)i);
        if (i % 3)
            ck_assert_uint_eq(size, i);
    }
    for (uintptr_t i = 1; i <= N; i++) {
        fa_record_t out;
        if (i % 3)
            ck_assert(fa_record_map_remove(i * 16, &out));
    }
    ck_assert(fa_record_map_empty());
}
END_TEST

START_TEST(map_marks_an_escape_once)
{
    fa_record_map_start();
    fa_record_t r = record(4096, 32), out;
    fa_record_map_insert(&r);
    ck_assert(!fa_record_map_mark_escaped(4096, 8, &out)); /* another frame's block */
    ck_assert(fa_record_map_mark_escaped(4096, 7, &out));
    ck_assert(out.escaped && out.ptr == 4096);
    ck_assert(!fa_record_map_mark_escaped(4096, 7, &out)); /* counted once */
    fa_record_t heap = record(8192, 32);
    heap.intent = FA_HEAP;
    fa_record_map_insert(&heap);
    ck_assert(!fa_record_map_mark_escaped(8192, 7, &out)); /* only frame blocks escape */
}
END_TEST

typedef struct {
    int seen;
    fa_tag_totals_t ui;
} tag_list_t;

static void collect_tag(const fa_tag_totals_t *t, void *arg)
{
    tag_list_t *list = arg;
    list->seen++;
    if (strcmp(t->name, "ui") == 0)
        list->ui = *t;
}

START_TEST(tags_count_live_peak_and_allocated_bytes)
{
    char name[] = "ui";
    uint16_t id = fa_tags_intern("ui");
    ck_assert_uint_ne(id, 0);
    ck_assert_uint_eq(fa_tags_intern(name), id); /* equal strings, another pointer */
    ck_assert_uint_ne(fa_tags_intern("audio"), id);
    ck_assert_uint_eq(fa_tags_intern(NULL), 0);
    ck_assert_str_eq(fa_tags_name(id), "ui");
    fa_tags_account(id, 100);
    fa_tags_account(id, 50);
    fa_tags_account(id, -120);
    fa_tags_account(id, 10);
    fa_tags_set_budget("ui", 1000);
    tag_list_t list = {0};
    fa_tags_for_each(collect_tag, &list);
    ck_assert_int_eq(list.seen, 2);
    ck_assert_uint_eq(list.ui.live_bytes, 40);
    ck_assert_uint_eq(list.ui.peak_bytes, 150);
    ck_assert_uint_eq(list.ui.alloc_bytes, 160);
    ck_assert_uint_eq(list.ui.budget, 1000);
}
END_TEST

START_TEST(sampling_off_never_samples)
{
    fa_thread_t t = {0};
    fa_sampling_rearm(&t, 100);
    ck_assert_uint_eq(t.sample_left, FA_SAMPLE_NEVER);
    ck_assert_uint_eq(fa_sampling_rate(), 0);
}
END_TEST

START_TEST(sampling_distances_average_the_rate)
{
    const uint64_t rate = 64 * 1024;
    fa_sampling_start(rate);
    ck_assert_uint_eq(fa_sampling_rate(), rate);
    fa_thread_t t = {0};
    uint64_t total = 0;
    enum { DRAWS = 20000 };
    for (int i = 0; i < DRAWS; i++) {
        t.sample_left = 16;
        fa_sampling_rearm(&t, 16); /* used up exactly: the next distance is a fresh draw */
        ck_assert(t.sample_left >= 1);
        total += t.sample_left;
    }
    /* The mean of 20000 exponential draws is within 5 % of the rate (about 7 standard errors). */
    double mean = (double)total / DRAWS;
    ck_assert_msg(mean > rate * 0.95 && mean < rate * 1.05, "mean distance %.0f, rate %llu", mean,
                  (unsigned long long)rate);
    /* A left-over budget is kept: allocations made while recording re-armed it. */
    t.sample_left = 1000;
    fa_sampling_rearm(&t, 10);
    ck_assert_uint_eq(t.sample_left, 1000);
    /* A small block stands for about rate bytes, a huge one for itself. */
    uint64_t small = fa_sampling_weight(16), huge = fa_sampling_weight(rate * 100);
    ck_assert(small > rate * 99 / 100 && small < rate * 101 / 100);
    ck_assert_uint_eq(huge, rate * 100);
}
END_TEST

Suite *fa_test_suite(void)
{
    Suite *s = suite_create("records_parts");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, map_finds_every_record_until_removed);
    tcase_add_test(tc, map_marks_an_escape_once);
    tcase_add_test(tc, tags_count_live_peak_and_allocated_bytes);
    tcase_add_test(tc, sampling_off_never_samples);
    tcase_add_test(tc, sampling_distances_average_the_rate);
    suite_add_tcase(s, tc);
    return s;
}
