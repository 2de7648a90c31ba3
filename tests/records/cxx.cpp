// C++ under records: std::vector and std::string growth in a frame scope, a leak
// through new, and an exception thrown and caught while recording (libunwind is
// loaded RTLD_LOCAL and must not replace the C++ runtime's unwinder).
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include <framealloc.h>

namespace game {

struct Widget {
    char name[48];
    int hp;
};

enum { WIDGETS = 50, FRAMES = 20 };
static Widget *widgets[WIDGETS];

__attribute__((noinline)) Widget *spawn_widget(int i)
{
    Widget *w = new Widget(); // @site:leak
    std::snprintf(w->name, sizeof w->name, "widget %d", i);
    w->hp = i;
    return w;
}

__attribute__((noinline)) size_t build_hud(int frame)
{
    fa::frame_scope scope;
    std::vector<int> items;
    std::string text;
    for (int i = 0; i < 200 + frame; i++) {
        items.push_back(i * frame);
        text += "hud line ";
    }
    return items.size() + text.size();
}

__attribute__((noinline)) int throw_and_catch(int i)
{
    try {
        if (i >= 0)
            throw std::runtime_error("expected");
    } catch (const std::runtime_error &e) {
        return 1;
    }
    return 0;
}

} // namespace game

int main()
{
    size_t total = 0;
    int caught = 0;
    for (int i = 0; i < game::WIDGETS; i++)
        game::widgets[i] = game::spawn_widget(i);
    for (int f = 0; f < game::FRAMES; f++) {
        total += game::build_hud(f);
        caught += game::throw_and_catch(f);
        fa_frame_end();
    }
    std::printf("hud total %zu, exceptions caught %d of %d\n", total, caught, (int)game::FRAMES);
    return caught == game::FRAMES ? 0 : 1;
}
