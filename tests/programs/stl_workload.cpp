// A deterministic STL-heavy program: maps, hash maps, vector growth, string
// concatenation, shared_ptr graphs, sorting and iostream output, with a checksum.
//
//   stl_workload [--frames] [iterations]
//
// With --frames each iteration is a "frame": its temporaries are made inside an
// fa::frame_scope and the loop calls fa_frame_end(). Some values made in the scope are
// kept in long-lived containers (frame escapes), which safe mode must preserve. The
// output is the same in both modes and with or without libframealloc.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <list>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "framealloc.h"

namespace {

// Own PRNG so the sequence does not depend on the standard library.
struct Rng {
    uint64_t s;
    uint64_t next()
    {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545F4914F6CDD1DULL;
    }
    uint64_t below(uint64_t n) { return next() % n; }
};

// FNV-1a over everything the program computes.
struct Checksum {
    uint64_t h = 1469598103934665603ULL;
    void add(const void *data, size_t n)
    {
        const unsigned char *p = static_cast<const unsigned char *>(data);
        for (size_t i = 0; i < n; i++)
            h = (h ^ p[i]) * 1099511628211ULL;
    }
    void add(const std::string &s) { add(s.data(), s.size()); }
    void add(uint64_t v) { add(&v, sizeof v); }
};

std::string make_word(Rng &rng)
{
    std::string w;
    size_t n = 1 + rng.below(14);
    for (size_t i = 0; i < n; i++)
        w += static_cast<char>('a' + rng.below(26));
    return w;
}

struct Node {
    uint64_t value;
    std::string label;
    std::vector<std::shared_ptr<Node>> children;
};

// Builds a random tree of shared nodes, some shared between parents.
std::shared_ptr<Node> build_tree(Rng &rng, int depth, std::vector<std::shared_ptr<Node>> &pool)
{
    auto node = std::make_shared<Node>();
    node->value = rng.below(1000);
    node->label = make_word(rng) + "#" + std::to_string(node->value);
    if (depth > 0) {
        size_t kids = depth > 3 ? 1 + rng.below(3) : rng.below(4);
        for (size_t i = 0; i < kids; i++) {
            if (!pool.empty() && rng.below(4) == 0)
                node->children.push_back(pool[rng.below(pool.size())]);
            else
                node->children.push_back(build_tree(rng, depth - 1, pool));
        }
    }
    pool.push_back(node);
    return node;
}

uint64_t sum_tree(const Node &n, int depth)
{
    uint64_t s = n.value + n.label.size();
    if (depth < 8)
        for (const auto &c : n.children)
            s += sum_tree(*c, depth + 1);
    return s;
}

// Long-lived state, kept across iterations (made outside or inside frame scopes).
struct World {
    std::map<std::string, uint64_t> counts;
    std::unordered_map<uint64_t, std::string> names;
    std::list<std::vector<uint32_t>> history;
    std::vector<std::shared_ptr<Node>> roots;
};

// One iteration's work. Temporaries die at the end; some results go into the world.
void iteration(int it, Rng &rng, World &world, Checksum &sum, std::ostream &out)
{
    // Vector growth without reserve, then sort and deduplicate.
    std::vector<uint64_t> numbers;
    size_t n = 2000 + rng.below(6000);
    for (size_t i = 0; i < n; i++)
        numbers.push_back(rng.below(100000));
    std::sort(numbers.begin(), numbers.end());
    numbers.erase(std::unique(numbers.begin(), numbers.end()), numbers.end());
    sum.add(numbers.size());
    sum.add(numbers.empty() ? 0 : numbers[numbers.size() / 2]);

    // String concatenation and a word table.
    std::string text;
    std::vector<std::string> words;
    for (int i = 0; i < 400; i++) {
        words.push_back(make_word(rng));
        text += words.back();
        text += (i % 17 == 0) ? "\n" : " ";
    }
    std::sort(words.begin(), words.end(), [](const std::string &a, const std::string &b) {
        return a.size() != b.size() ? a.size() < b.size() : a < b;
    });
    sum.add(text);
    sum.add(words.front() + "|" + words.back());

    std::unordered_map<std::string, int> local_counts;
    std::istringstream in(text);
    for (std::string w; in >> w;)
        local_counts[w]++;
    // Escapes: keys and values made here are kept in the world's containers.
    for (const auto &kv : local_counts)
        if (kv.first.size() > 9)
            world.counts[kv.first] += static_cast<uint64_t>(kv.second);
    std::vector<std::pair<std::string, int>> ordered(local_counts.begin(), local_counts.end());
    std::sort(ordered.begin(), ordered.end());
    for (const auto &kv : ordered)
        sum.add(kv.first + std::to_string(kv.second));

    // shared_ptr graphs; one root in eight outlives the iteration.
    std::vector<std::shared_ptr<Node>> pool;
    auto root = build_tree(rng, 5, pool);
    sum.add(sum_tree(*root, 0));
    sum.add(pool.size());
    if (it % 8 == 0)
        world.roots.push_back(root);
    if (world.roots.size() > 20)
        world.roots.erase(world.roots.begin());

    world.names[rng.below(5000)] = words[rng.below(words.size())] + "-" + std::to_string(it);
    std::vector<uint32_t> h(numbers.begin(), numbers.begin() + std::min<size_t>(numbers.size(), 64));
    world.history.push_back(std::move(h));
    if (world.history.size() > 50)
        world.history.pop_front();

    if (it % 25 == 0) {
        std::ostringstream line;
        line << "iteration " << std::setw(4) << it << ": unique " << numbers.size() << ", words "
             << local_counts.size() << ", tree nodes " << pool.size() << ", checksum " << std::hex
             << sum.h;
        out << line.str() << '\n';
    }
}

} // namespace

int main(int argc, char **argv)
{
    bool frames = false;
    int iterations = 600;
    for (int i = 1; i < argc; i++) {
        if (!std::strcmp(argv[i], "--frames"))
            frames = true;
        else
            iterations = std::atoi(argv[i]);
    }

    Rng rng{0x9E3779B97F4A7C15ULL};
    Checksum sum;
    World world;
    for (int it = 0; it < iterations; it++) {
        if (frames) {
            fa::frame_scope scope;
            iteration(it, rng, world, sum, std::cout);
        } else {
            iteration(it, rng, world, sum, std::cout);
        }
        if (frames)
            fa_frame_end();
    }

    // The long-lived state, including what escaped the frames.
    for (const auto &kv : world.counts)
        sum.add(kv.first + ":" + std::to_string(kv.second));
    std::vector<std::pair<uint64_t, std::string>> names(world.names.begin(), world.names.end());
    std::sort(names.begin(), names.end());
    for (const auto &kv : names)
        sum.add(std::to_string(kv.first) + kv.second);
    for (const auto &h : world.history)
        for (uint32_t v : h)
            sum.add(v);
    for (const auto &r : world.roots)
        sum.add(sum_tree(*r, 0));
    std::cout << "long-lived: " << world.counts.size() << " counts, " << names.size() << " names, "
              << world.history.size() << " history rows, " << world.roots.size() << " roots\n";
    std::cout << "final checksum " << std::hex << sum.h << std::dec << '\n';

    // Under the library, the frame mode must really have used frame arenas.
    fa_stats st;
    if (frames && fa_stats_get(&st) == 0 && st.frame_allocs == 0) {
        std::cerr << "stl_workload: --frames under libframealloc, but no frame allocations\n";
        return 1;
    }
    return 0;
}
