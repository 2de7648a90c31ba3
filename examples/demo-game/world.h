// The demo game's world: a grid map, units that live and die, particles, and the
// level's loaded assets. Everything here is persistent state; per-frame work lives
// in frame scopes inside the systems (world.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "jobs.h"

// Deterministic random numbers (splitmix64): the same seed gives the same game.
struct Rng {
    uint64_t state;
    explicit Rng(uint64_t seed) : state(seed) {}
    uint64_t next()
    {
        uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    int range(int lo, int hi) { return lo + (int)(next() % (uint64_t)(hi - lo + 1)); } // [lo, hi]
    float unit() { return (float)(next() >> 40) / (float)(1u << 24); }               // [0, 1)
};

// Order-dependent 64-bit hash for the checksum.
struct Hash {
    uint64_t h = 0x6a09e667f3bcc909ULL;
    void add(uint64_t v)
    {
        h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
        h *= 0x100000001b3ULL;
    }
    void add_float(float f)
    {
        uint32_t bits;
        static_assert(sizeof bits == sizeof f, "float is 32 bits");
        __builtin_memcpy(&bits, &f, sizeof bits);
        add(bits);
    }
    void add_string(const std::string &s)
    {
        for (unsigned char c : s)
            add(c);
        add(s.size());
    }
};

struct Vec2 {
    float x, y;
};

struct Unit {
    uint32_t id;
    int kind;
    Vec2 pos, vel;
    float radius;
    int hp;
    int dies;  // frame at which it despawns
    int goal;  // grid cell it walks to
    bool needs_goal;
    std::string name;
    std::vector<int32_t> path;  // cells to walk, next one last (written by AI jobs)
    std::vector<uint16_t> inventory;
};

struct Particle {
    Vec2 pos, vel;
    float life;
    uint32_t color;
};

struct Asset {
    std::string name;
    std::vector<float> data;
    std::vector<std::string> tags;
};

struct Grid {
    static constexpr int W = 80, H = 80;
    std::vector<uint8_t> blocked;  // W * H
    bool free_cell(int x, int y) const { return x >= 0 && y >= 0 && x < W && y < H && !blocked[y * W + x]; }
};

class World {
public:
    World(uint64_t seed, int workers);

    void frame(int number);                 // one frame of the game loop
    uint64_t checksum() const;

    size_t units() const { return units_.size(); }
    size_t particles() const { return particles_.size(); }

private:
    void spawn_and_despawn();
    void load_level_chunk();                // the occasional loading spike
    void physics(const std::vector<Vec2> &snapshot);
    void particle_job(const std::vector<Vec2> &emitters);
    void draw();
    void ui();
    void spawn_unit();
    int random_free_cell(Rng &rng) const;

    Rng rng_;
    uint64_t seed_;
    int frame_ = 0;
    uint32_t next_id_ = 1;
    Grid grid_;
    std::vector<std::unique_ptr<Unit>> units_;
    std::unordered_map<uint32_t, Unit *> by_id_;
    std::vector<Particle> particles_;
    std::vector<std::unique_ptr<Asset>> assets_;
    JobPool pool_;
    Hash history_;                // per-frame results (contacts, draw order, UI text)
    uint64_t particle_draw_hash_ = 0;  // written by the particle job
};
