// framealloc.h in a C++ program: RAII guards, STL growth inside a frame scope, and
// the same binary with and without the library.
#include <framealloc.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

static int failures;

static void check(bool ok, const char *what)
{
    if (!ok) {
        std::fprintf(stderr, "header_cpp: FAILED: %s\n", what);
        failures++;
    }
}

int main(int argc, char **argv)
{
    bool expect_active = argc > 1 && std::strcmp(argv[1], "--expect-active=1") == 0;
    check(fa_active() == (expect_active ? 1 : 0), "fa_active() reports whether the library is loaded");

    fa_stats before;
    fa_stats_get(&before);
    std::size_t total = 0;
    for (int frame = 0; frame < 20; frame++) {
        {
            fa::frame_scope scope;
            fa::tag_scope tag("ui");
            std::vector<std::string> lines;
            for (int i = 0; i < 50; i++)
                lines.push_back("line " + std::to_string(i) + std::string(40, 'x'));
            for (const std::string &line : lines)
                total += line.size();
        } // vector and strings freed before the frame ends: no escapes
        {
            fa::scope heap(FA_HEAP);
            std::string persistent(100, 'p');
            total += persistent.size();
        }
        fa_frame_end();
    }
    // "line N" + 40 x: 45 characters plus the digits (10 one-digit, 40 two-digit), plus 100.
    check(total == 20 * (50 * 45 + 10 * 1 + 40 * 2 + 100), "strings have their contents");

    // C++17: FA_FRAME_SCOPE is an if statement, so break and continue act on the
    // enclosing loop, and the intent is popped however the block is left.
    int reached = -1;
    for (int i = 0; i < 5; i++) {
        FA_FRAME_SCOPE {
            reached = i;
            if (i == 0)
                continue;
            if (i == 2)
                break;
            reached = 100;
        }
    }
    check(reached == 2, "break and continue inside FA_FRAME_SCOPE act on the enclosing loop");
    fa_stats before_plain, after_plain;
    fa_stats_get(&before_plain);
    delete new int(1);
    fa_stats_get(&after_plain);
    check(after_plain.frame_allocs == before_plain.frame_allocs, "the scopes left by break and continue were popped");

    fa_stats after;
    int rc = fa_stats_get(&after);
    if (expect_active) {
        check(rc == 0, "fa_stats_get succeeds");
        check(after.frame == 20, "twenty frames ended");
        check(after.frame_allocs > before.frame_allocs + 20 * 50, "vector and string growth went to the frame arena");
        check(after.frame_escapes == 0, "nothing escaped its frame");
    } else {
        check(rc == -1 && after.frame_allocs == 0, "no library: stats -1 and zeroed");
    }
    std::printf("header_cpp: active=%d frame_allocs=%llu escapes=%llu\n", fa_active(),
                (unsigned long long)after.frame_allocs, (unsigned long long)after.frame_escapes);
    return failures ? 1 : 0;
}
