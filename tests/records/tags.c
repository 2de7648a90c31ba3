/* Tags and budgets: allocations under fa_tag_push("ui") (with a nested "audio" tag)
 * and a budget on "ui" that the program goes over, twice. With records on, the
 * report's Tags section shows live and peak bytes and stderr has one budget warning;
 * with records off, fa_budget_set prints one note. Nothing is printed on stdout
 * while a tag is pushed (stdio's buffer would be attributed to it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <framealloc.h>

enum { UI_SIZE = 1000, UI_COUNT = 10, UI_MORE = 3, AUDIO_SIZE = 500, AUDIO_COUNT = 4, UI_BUDGET = 4096 };

static void *ui_blocks[UI_COUNT + UI_MORE];

__attribute__((noinline)) static void *ui_site(void)
{
    void *p = malloc(UI_SIZE); /* @site:ui */
    memset(p, 1, UI_SIZE);
    return p;
}

__attribute__((noinline)) static void audio_site(void)
{
    void *blocks[AUDIO_COUNT];
    for (int i = 0; i < AUDIO_COUNT; i++) {
        blocks[i] = malloc(AUDIO_SIZE); /* @site:audio */
        memset(blocks[i], 2, AUDIO_SIZE);
    }
    for (int i = 0; i < AUDIO_COUNT; i++)
        free(blocks[i]);
}

int main(void)
{
    /* Set twice: with records off the note must still appear once. */
    fa_budget_set("ui", UI_BUDGET);
    fa_budget_set("ui", UI_BUDGET);
    fa_tag_push("ui");
    for (int i = 0; i < UI_COUNT; i++) /* crosses the budget at the 5th block */
        ui_blocks[i] = ui_site();
    fa_tag_push("audio");
    audio_site();
    fa_tag_pop();
    for (int i = 0; i < UI_COUNT / 2; i++) /* live back to 5000 B, still over */
        free(ui_blocks[i]);
    for (int i = 0; i < UI_MORE; i++) /* over again: no second warning */
        ui_blocks[UI_COUNT + i] = ui_site();
    fa_tag_pop();
    /* Untagged: must not count for "ui". */
    void *untagged = ui_site();
    free(untagged);
    printf("expect ui live=%d peak=%d alloc=%d budget=%d\n", (UI_COUNT / 2 + UI_MORE) * UI_SIZE, UI_COUNT * UI_SIZE,
           (UI_COUNT + UI_MORE) * UI_SIZE, UI_BUDGET);
    printf("expect audio live=0 peak=%d alloc=%d budget=0\n", AUDIO_COUNT * AUDIO_SIZE, AUDIO_COUNT * AUDIO_SIZE);
    return 0;
}
