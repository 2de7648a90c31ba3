// An optimized C++ program (-O2 -g): its allocations come through std::vector,
// std::string, std::map and new, all inlined into main. The report must still name
// this file and the lines below (@site markers), through the inlined STL frames,
// and show the long demangled std::map names whole.
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace game {

struct Enemy {
    int hp;
    float x, y;
};

using Registry = std::map<std::string, std::vector<std::pair<std::string, std::vector<std::string>>>>;

static std::vector<Enemy *> enemies;
static std::vector<int> scores;
static std::string log_text;
static Registry registry;

static inline void spawn(int i)
{
    Enemy *e = new Enemy{i, 0, 0}; // @site:new
    enemies.push_back(e);
}

static inline void score(int i)
{
    scores.push_back(i * 3); // @site:vector
}

static inline void log_line(int i)
{
    log_text += i % 2 ? "enemy spawned; " : "score added; "; // @site:string
}

static inline void index(int i)
{
    registry[std::to_string(i % 7)].emplace_back(std::to_string(i), std::vector<std::string>()); // @site:registry
}

} // namespace game

int main()
{
    for (int i = 0; i < 2000; i++) {
        game::spawn(i);
        game::score(i);
        game::log_line(i);
        game::index(i);
    }
    std::printf("enemies %zu scores %zu log %zu registry %zu\n", game::enemies.size(), game::scores.size(),
                game::log_text.size(), game::registry.size());
    return 0;
}
