// The demo game's scopes: framealloc.h's RAII scopes, or nothing at all when built
// with -DDEMO_GAME_UNMARKED (demo-game-unmarked: the same game as an unmodified game
// would be, which still ends its frames with fa_frame_end()). Frame arenas then serve
// it only through learned intent (FRAMEALLOC_LEARN=route).
#pragma once

#include <framealloc.h>

namespace demo {
#ifdef DEMO_GAME_UNMARKED
struct scope {
    explicit scope(fa_intent) {}
};
struct frame_scope {
    frame_scope() {}
};
#else
using scope = fa::scope;
using frame_scope = fa::frame_scope;
#endif
}  // namespace demo
