/* Loads the C++ plugin (plugin.cpp) with dlopen and passes heap memory both ways:
 * strings and objects made by operator new come back here and are returned to the
 * plugin for delete; buffers malloc'ed here are freed by the plugin with free().
 * Half the rounds run inside a frame scope. The plugin is unloaded and loaded again
 * a few times. Output is deterministic.
 *
 *   fa_plugin_host PLUGIN.so [rounds] */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framealloc.h"

struct plugin {
    void *handle;
    char *(*make_string)(const char *word, int repeat);
    void (*free_string)(char *s);
    void *(*record_new)(const char *name, int count);
    long (*record_sum)(const void *r);
    void (*record_free)(void *r);
    unsigned long (*consume_buffer)(unsigned char *buf, size_t size);
    long (*parse_all)(const char *const *words, int n, int *failures);
};

static void *need(void *handle, const char *name)
{
    void *f = dlsym(handle, name);
    if (!f) {
        fprintf(stderr, "plugin_host: %s missing: %s\n", name, dlerror());
        exit(1);
    }
    return f;
}

static struct plugin load(const char *path)
{
    struct plugin p;
    p.handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!p.handle) {
        fprintf(stderr, "plugin_host: dlopen %s: %s\n", path, dlerror());
        exit(1);
    }
    /* Casting void * to function pointers is what dlsym requires (POSIX). */
    *(void **)&p.make_string = need(p.handle, "plugin_make_string");
    *(void **)&p.free_string = need(p.handle, "plugin_free_string");
    *(void **)&p.record_new = need(p.handle, "plugin_record_new");
    *(void **)&p.record_sum = need(p.handle, "plugin_record_sum");
    *(void **)&p.record_free = need(p.handle, "plugin_record_free");
    *(void **)&p.consume_buffer = need(p.handle, "plugin_consume_buffer");
    *(void **)&p.parse_all = need(p.handle, "plugin_parse_all");
    return p;
}

static unsigned long hash_str(unsigned long h, const char *s)
{
    while (*s)
        h = h * 131 + (unsigned char)*s++;
    return h;
}

/* One round: every kind of crossing, several times. */
static unsigned long round_trip(struct plugin *p, int round)
{
    static const char *const words[] = { "12", "-7", "abc", "99999999999999999999", "5x", "1000001", "42", "" };
    unsigned long h = (unsigned long)round;
    char *kept[16];
    for (int i = 0; i < 16; i++) {
        kept[i] = p->make_string(i % 2 ? "frame" : "alloc", 1 + (round + i) % 9);
        h = hash_str(h, kept[i]);
    }
    void *records[8];
    for (int i = 0; i < 8; i++) {
        char name[32];
        snprintf(name, sizeof name, "record-%d-%d", round, i);
        records[i] = p->record_new(name, 10 + 37 * i + round % 13);
    }
    for (int i = 0; i < 8; i++)
        h = h * 31 + (unsigned long)p->record_sum(records[i]);
    for (int i = 7; i >= 0; i--)
        p->record_free(records[i]);
    for (int i = 0; i < 8; i++) {
        size_t size = 1 + (size_t)((round * 7919 + i * 104729) % 5000);
        unsigned char *buf = malloc(size);
        if (!buf) {
            fprintf(stderr, "plugin_host: malloc(%zu) failed\n", size);
            exit(1);
        }
        for (size_t k = 0; k < size; k++)
            buf[k] = (unsigned char)(k * 13 + (size_t)round);
        h = h * 31 + p->consume_buffer(buf, size);
    }
    int failures = 0;
    h = h * 31 + (unsigned long)p->parse_all(words, (int)(sizeof words / sizeof words[0]), &failures);
    h = h * 31 + (unsigned long)failures;
    for (int i = 15; i >= 0; i--)
        p->free_string(kept[i]);
    return h;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PLUGIN.so [rounds]\n", argv[0]);
        return 2;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 400;
    for (int load_count = 0; load_count < 3; load_count++) {
        struct plugin p = load(argv[1]);
        unsigned long total = 0;
        for (int r = 0; r < rounds; r++) {
            unsigned long h;
            if (r % 2) {
                FA_FRAME_SCOPE {
                    h = round_trip(&p, r);
                }
                fa_frame_end();
            } else {
                h = round_trip(&p, r);
            }
            total = total * 1000003 + h;
            if (r % 100 == 0)
                printf("load %d round %d: %lx\n", load_count, r, h);
        }
        char *s = p.make_string("done", 3);
        printf("load %d: %s, total %lx\n", load_count, s, total);
        p.free_string(s);
        if (dlclose(p.handle) != 0) {
            fprintf(stderr, "plugin_host: dlclose: %s\n", dlerror());
            return 1;
        }
    }
    return 0;
}
