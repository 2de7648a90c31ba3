// The demo game's systems. The rule the code follows: per-frame temporaries are
// made inside a frame scope (demo::frame_scope, scopes.h), and anything that must outlive the
// frame is made or grown inside a demo::scope(FA_DEFAULT) nested in it. A persistent
// container grown inside a frame scope would get frame memory and escape its frame.
#include "world.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <queue>
#include <unordered_set>

namespace {

constexpr size_t kMaxUnits = 2400;
constexpr int kStartUnits = 1800;
constexpr float kDt = 1.0f / 60.0f;
constexpr int kLoadEvery = 300;       // a loading spike every this many frames
constexpr int kAssetsPerChunk = 6000;
constexpr size_t kMaxSeekersPerFrame = 24;
constexpr int kMaxExpansions = 700;  // A* gives up (best partial path) after this

const char *const kKindNames[] = {
    "footman-veteran", "archer-captain", "siege-engineer", "cavalry-lancer",
    "forest-ranger",   "battle-priest",  "merchant-caravan", "scout-outrider",
};
constexpr int kKinds = sizeof kKindNames / sizeof kKindNames[0];

int cell_of(Vec2 p)
{
    int x = std::clamp((int)p.x, 0, Grid::W - 1);
    int y = std::clamp((int)p.y, 0, Grid::H - 1);
    return y * Grid::W + x;
}

Vec2 center(int cell) { return {(float)(cell % Grid::W) + 0.5f, (float)(cell / Grid::W) + 0.5f}; }

float heuristic(int a, int b)
{
    int dx = std::abs(a % Grid::W - b % Grid::W), dy = std::abs(a / Grid::W - b / Grid::W);
    return (float)std::max(dx, dy) + 0.41421356f * (float)std::min(dx, dy);
}

// A* on the 8-connected grid. Scratch (cost and parent arrays, the open heap, the
// closed set's nodes) is this thread's frame memory. Returns the cells from the
// start's successor to the goal (or to the closest cell reached), the next one last.
std::vector<int32_t> find_path(const Grid &grid, int start, int goal)
{
    struct Node {
        float f;
        uint32_t order;  // tie-break, so the search is the same under every allocator
        int32_t cell;
    };
    auto worse = [](const Node &a, const Node &b) { return a.f > b.f || (a.f == b.f && a.order > b.order); };
    std::priority_queue<Node, std::vector<Node>, decltype(worse)> open(worse);
    std::vector<float> cost(Grid::W * Grid::H, INFINITY);
    std::vector<int32_t> parent(Grid::W * Grid::H, -1);
    std::unordered_set<int32_t> closed;

    cost[start] = 0;
    open.push({heuristic(start, goal), 0, start});
    uint32_t order = 1;
    int best = start;
    float best_h = heuristic(start, goal);
    for (int expanded = 0; !open.empty() && expanded < kMaxExpansions;) {
        Node n = open.top();
        open.pop();
        if (!closed.insert(n.cell).second)
            continue;
        expanded++;
        float h = heuristic(n.cell, goal);
        if (h < best_h) {
            best_h = h;
            best = n.cell;
        }
        if (n.cell == goal)
            break;
        int x = n.cell % Grid::W, y = n.cell / Grid::W;
        for (int dy = -1; dy <= 1; dy++) {
            for (int dx = -1; dx <= 1; dx++) {
                if ((!dx && !dy) || !grid.free_cell(x + dx, y + dy))
                    continue;
                if (dx && dy && (!grid.free_cell(x + dx, y) || !grid.free_cell(x, y + dy)))
                    continue;  // no corner cutting
                int next = (y + dy) * Grid::W + x + dx;
                float c = cost[n.cell] + (dx && dy ? 1.41421356f : 1.0f);
                if (c < cost[next]) {
                    cost[next] = c;
                    parent[next] = n.cell;
                    open.push({c + heuristic(next, goal), order++, next});
                }
            }
        }
    }
    std::vector<int32_t> path;
    for (int c = best; c != start && c >= 0; c = parent[c])
        path.push_back(c);
    return path;
}

uint64_t string_hash(const std::string &s) { return std::hash<std::string>{}(s); }

}  // namespace

World::World(uint64_t seed, int workers) : rng_(seed), seed_(seed), pool_(workers)
{
    // Walls: random horizontal and vertical segments.
    grid_.blocked.assign(Grid::W * Grid::H, 0);
    for (int i = 0; i < 70; i++) {
        int x = rng_.range(2, Grid::W - 3), y = rng_.range(2, Grid::H - 3), len = rng_.range(3, 14);
        bool across = rng_.next() & 1;
        for (int k = 0; k < len; k++) {
            int cx = across ? x + k : x, cy = across ? y : y + k;
            if (cx < Grid::W - 1 && cy < Grid::H - 1)
                grid_.blocked[cy * Grid::W + cx] = 1;
        }
    }
    for (int i = 0; i < kStartUnits; i++)
        spawn_unit();
    load_level_chunk();
}

int World::random_free_cell(Rng &rng) const
{
    for (;;) {
        int c = rng.range(0, Grid::W * Grid::H - 1);
        if (!grid_.blocked[c])
            return c;
    }
}

void World::spawn_unit()
{
    auto u = std::make_unique<Unit>();
    u->id = next_id_++;
    u->kind = rng_.range(0, kKinds - 1);
    u->pos = center(random_free_cell(rng_));
    u->vel = {0, 0};
    u->radius = 0.2f + 0.05f * (float)(u->kind % 4);
    u->hp = rng_.range(50, 100);
    u->dies = frame_ + rng_.range(120, 900);
    u->goal = random_free_cell(rng_);
    u->needs_goal = false;
    u->name = "unit-" + std::to_string(u->id) + "-" + kKindNames[u->kind];
    u->inventory.resize((size_t)rng_.range(0, 12));
    for (auto &item : u->inventory)
        item = (uint16_t)rng_.range(0, 999);
    by_id_[u->id] = u.get();
    units_.push_back(std::move(u));
}

// Persistent work, outside any frame scope: units die and are born, goals change.
void World::spawn_and_despawn()
{
    auto gone = [this](const std::unique_ptr<Unit> &u) { return u->hp <= 0 || u->dies <= frame_; };
    for (auto &u : units_)
        if (gone(u))
            by_id_.erase(u->id);
    units_.erase(std::remove_if(units_.begin(), units_.end(), gone), units_.end());
    for (int n = rng_.range(1, 7); n > 0 && units_.size() < kMaxUnits; n--)
        spawn_unit();
    for (auto &u : units_) {
        if (u->needs_goal) {
            u->goal = random_free_cell(rng_);
            u->needs_goal = false;
            u->path.clear();
        }
    }
}

// A loading spike: the next level chunk's assets (thousands of persistent objects)
// replace the previous chunk's, through a large temporary buffer and index.
void World::load_level_chunk()
{
    int chunk = frame_ / kLoadEvery;
    std::vector<std::unique_ptr<Asset>> fresh;
    Hash h;
    {
        demo::frame_scope temporary;
        std::vector<uint8_t> blob((size_t)4 << 20);  // "compressed data"; above FRAME_MAX, so the heap serves it
        for (size_t i = 0; i < blob.size(); i += 8) {
            uint64_t v = rng_.next();
            std::memcpy(&blob[i], &v, 8);
        }
        std::unordered_map<std::string, uint32_t> index;
        for (int a = 0; a < kAssetsPerChunk; a++) {
            std::string name = "level" + std::to_string(chunk) + "/meshes/prop_" + std::to_string(a) + ".mesh";
            index.emplace(name, (uint32_t)a);
            demo::scope keep(FA_DEFAULT);  // the asset outlives the frame
            auto asset = std::make_unique<Asset>();
            asset->name = name;
            size_t at = (size_t)a * 613 % (blob.size() - 2048);
            asset->data.resize(16 + blob[at] % 480u);
            for (size_t k = 0; k < asset->data.size(); k++)
                asset->data[k] = (float)blob[at + k] / 255.0f;
            for (int t = blob[at + 1] % 3; t >= 0; t--)
                asset->tags.push_back("tag/" + std::string(kKindNames[(a + t) % kKinds]));
            fresh.push_back(std::move(asset));
        }
        for (int a = 0; a < kAssetsPerChunk; a += 7)
            h.add(index.at(fresh[(size_t)a]->name));
    }
    history_.add(h.h);
    assets_.swap(fresh);  // the previous chunk is freed with `fresh`
}

void World::frame(int number)
{
    frame_ = number;
    spawn_and_despawn();
    if (number % kLoadEvery == kLoadEvery - 1)
        load_level_chunk();

    demo::frame_scope scope;  // everything below is this frame's temporary work
    std::vector<Vec2> snapshot;
    std::vector<size_t> seekers;
    std::vector<Vec2> emitters;
    for (size_t i = 0; i < units_.size(); i++) {
        const Unit &u = *units_[i];
        snapshot.push_back(u.pos);
        if ((u.path.empty() || (u.id + (uint32_t)number) % 64 == 0) && seekers.size() < kMaxSeekersPerFrame)
            seekers.push_back(i);
        if (u.id % 48 == 0)
            emitters.push_back(u.pos);
    }

    // AI path searches and the particles run on the workers while this thread does
    // the physics. The jobs only read the snapshot and write their own outputs.
    std::vector<std::vector<int32_t>> paths(seekers.size());
    std::vector<JobPool::Job> jobs;
    for (size_t first = 0; first < 2; first++) {
        jobs.push_back([this, first, &seekers, &snapshot, &paths] {
            for (size_t k = first; k < seekers.size(); k += 2)
                paths[k] = find_path(grid_, cell_of(snapshot[seekers[k]]), units_[seekers[k]]->goal);
        });
    }
    jobs.push_back([this, &emitters] { particle_job(emitters); });
    pool_.start(&jobs);
    physics(snapshot);
    pool_.wait();

    {
        demo::scope keep(FA_DEFAULT);  // a unit's path is persistent
        for (size_t k = 0; k < seekers.size(); k++) {
            units_[seekers[k]]->path.assign(paths[k].begin(), paths[k].end());
            history_.add(paths[k].size());
        }
    }
    draw();
    ui();
}

void World::physics(const std::vector<Vec2> &snapshot)
{
    // Steer along the path and move; walls stop a unit.
    const float cell = 2.0f;
    std::unordered_map<uint32_t, std::vector<uint32_t>> buckets;  // broad phase
    for (size_t i = 0; i < units_.size(); i++) {
        Unit &u = *units_[i];
        Vec2 target = center(u.goal);
        if (!u.path.empty()) {
            target = center(u.path.back());
            if (std::fabs(target.x - u.pos.x) + std::fabs(target.y - u.pos.y) < 0.2f)
                u.path.pop_back();
        } else if (cell_of(u.pos) == u.goal) {
            u.needs_goal = true;
        }
        float dx = target.x - u.pos.x, dy = target.y - u.pos.y;
        float len = std::sqrt(dx * dx + dy * dy);
        float speed = 2.0f + 0.25f * (float)u.kind;
        u.vel = len > 1e-4f ? Vec2{dx / len * speed, dy / len * speed} : Vec2{0, 0};
        Vec2 next = {u.pos.x + u.vel.x * kDt, u.pos.y + u.vel.y * kDt};
        if (!grid_.blocked[cell_of(next)] || grid_.blocked[cell_of(u.pos)])
            u.pos = next;
        u.pos.x = std::clamp(u.pos.x, 0.0f, (float)Grid::W - 0.01f);
        u.pos.y = std::clamp(u.pos.y, 0.0f, (float)Grid::H - 0.01f);
        uint32_t key = (uint32_t)(snapshot[i].x / cell) << 16 | (uint32_t)(snapshot[i].y / cell);
        buckets[key].push_back((uint32_t)i);
    }

    // Narrow phase against the neighbouring buckets: the frame's contact list.
    struct Contact {
        uint32_t a, b;
        float depth, nx, ny;
    };
    std::vector<Contact> contacts;
    for (size_t i = 0; i < units_.size(); i++) {
        int bx = (int)(snapshot[i].x / cell), by = (int)(snapshot[i].y / cell);
        for (int oy = -1; oy <= 1; oy++) {
            for (int ox = -1; ox <= 1; ox++) {
                if (bx + ox < 0 || by + oy < 0)
                    continue;
                auto it = buckets.find((uint32_t)(bx + ox) << 16 | (uint32_t)(by + oy));
                if (it == buckets.end())
                    continue;
                for (uint32_t j : it->second) {
                    if (j <= i)
                        continue;
                    const Unit &a = *units_[i], &b = *units_[j];
                    float dx = b.pos.x - a.pos.x, dy = b.pos.y - a.pos.y;
                    float d = std::sqrt(dx * dx + dy * dy), r = a.radius + b.radius;
                    if (d < r && d > 1e-5f)
                        contacts.push_back({(uint32_t)i, j, r - d, dx / d, dy / d});
                }
            }
        }
    }
    for (const Contact &c : contacts) {
        Unit &a = *units_[c.a], &b = *units_[c.b];
        a.pos.x -= c.nx * c.depth * 0.5f;
        a.pos.y -= c.ny * c.depth * 0.5f;
        b.pos.x += c.nx * c.depth * 0.5f;
        b.pos.y += c.ny * c.depth * 0.5f;
        if (a.kind != b.kind) {  // different factions fight
            a.hp -= 1;
            b.hp -= 1;
        }
    }
    history_.add(contacts.size());
}

// On a worker: move and age the particles, emit new ones, and sort them by depth
// for drawing. The particle store is persistent, so it grows outside the frame arena.
void World::particle_job(const std::vector<Vec2> &emitters)
{
    size_t live = 0;
    for (Particle &p : particles_) {
        p.life -= kDt;
        if (p.life <= 0)
            continue;
        p.vel.y -= 0.8f * kDt;
        p.pos.x += p.vel.x * kDt;
        p.pos.y += p.vel.y * kDt;
        particles_[live++] = p;
    }
    particles_.resize(live);
    {
        demo::scope keep(FA_DEFAULT);
        Rng rng(seed_ ^ ((uint64_t)frame_ << 32));
        for (const Vec2 &at : emitters) {
            for (int k = 0; k < 4; k++) {
                Vec2 vel = {rng.unit() * 2 - 1, rng.unit() * 2};
                particles_.push_back({at, vel, 0.5f + rng.unit(), (uint32_t)rng.next()});
            }
        }
    }
    std::vector<std::pair<float, uint32_t>> order;  // depth sort (temporary)
    for (size_t i = 0; i < particles_.size(); i++)
        order.push_back({particles_[i].pos.y, (uint32_t)i});
    std::sort(order.begin(), order.end());
    Hash h;
    for (size_t i = 0; i < order.size(); i += 16)
        h.add(order[i].second);
    particle_draw_hash_ = h.h;
}

// Draw packets for units and particle batches, sorted into submission order, then
// turned into a command stream.
void World::draw()
{
    struct Packet {
        uint64_t key;
        uint32_t id;
        std::string material;
        Vec2 at;
    };
    std::vector<Packet> packets;
    for (const auto &u : units_) {
        int lod = (int)(u->pos.y / 20.0f);
        uint32_t depth = (uint32_t)(u->pos.y * 1000.0f);
        packets.push_back({(uint64_t)1 << 56 | (uint64_t)u->kind << 40 | depth, u->id,
                           std::string("materials/units/") + kKindNames[u->kind] + "/lod" + std::to_string(lod),
                           u->pos});
    }
    for (size_t i = 0; i < particles_.size(); i += 64) {
        uint32_t depth = (uint32_t)(std::max(particles_[i].pos.y, 0.0f) * 1000.0f);
        packets.push_back({(uint64_t)2 << 56 | depth, (uint32_t)i, "materials/fx/spark_additive_soft", particles_[i].pos});
    }
    std::sort(packets.begin(), packets.end(), [](const Packet &a, const Packet &b) {
        return a.key != b.key ? a.key < b.key : a.id < b.id;
    });
    std::vector<uint32_t> commands;
    std::string bound;
    for (const Packet &p : packets) {
        if (p.material != bound) {
            bound = p.material;
            commands.push_back(0xB1000000u ^ (uint32_t)string_hash(bound));
        }
        commands.push_back(p.id);
        commands.push_back((uint32_t)(p.at.x * 64.0f) << 16 | (uint32_t)(p.at.y * 64.0f));
    }
    Hash h;
    for (uint32_t c : commands)
        h.add(c);
    history_.add(h.h);
    history_.add(particle_draw_hash_);
}

// The HUD: labels for the first units and a panel of counts, as std::string text.
void World::ui()
{
    std::vector<std::string> lines;
    for (size_t i = 0; i < units_.size() && i < 120; i++) {
        const Unit &u = *units_[i];
        char at[48];
        std::snprintf(at, sizeof at, "(%.1f, %.1f)", (double)u.pos.x, (double)u.pos.y);
        lines.push_back("unit " + u.name + " hp " + std::to_string(u.hp) + " at " + at + " path " +
                        std::to_string(u.path.size()) + " items " + std::to_string(u.inventory.size()));
    }
    std::map<std::string, int> kinds;
    for (const auto &u : units_)
        kinds[std::string("kind/") + kKindNames[u->kind]]++;
    for (const auto &k : kinds)
        lines.push_back(k.first + ": " + std::to_string(k.second));
    lines.push_back("frame " + std::to_string(frame_) + " units " + std::to_string(units_.size()) + " particles " +
                    std::to_string(particles_.size()) + " assets " + std::to_string(assets_.size()));
    std::string text;
    for (const auto &line : lines) {
        text += line;
        text += '\n';
    }
    history_.add(string_hash(text));
}

uint64_t World::checksum() const
{
    Hash h = history_;
    for (const auto &u : units_) {
        h.add(u->id);
        h.add_float(u->pos.x);
        h.add_float(u->pos.y);
        h.add((uint64_t)(int64_t)u->hp);
        h.add(u->path.size());
        h.add(string_hash(u->name));
        for (uint16_t item : u->inventory)
            h.add(item);
    }
    for (const Particle &p : particles_) {
        h.add_float(p.pos.x);
        h.add_float(p.life);
    }
    for (const auto &a : assets_) {
        h.add(string_hash(a->name));
        float sum = 0;
        for (float v : a->data)
            sum += v;
        h.add_float(sum);
        h.add(a->tags.size());
    }
    return h.h;
}
