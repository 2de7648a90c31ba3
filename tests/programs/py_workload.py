"""A deterministic allocation-heavy Python workload (run with PYTHONMALLOC=malloc so
every object goes through malloc): dicts, lists, strings, json, sorting, sets, big
integers, and threads that build and drop objects concurrently. Prints digests and a
few samples; the output depends only on the seed."""
import collections
import hashlib
import json
import random
import re
import sys
import threading

rng = random.Random(20240601)
WORDS = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 12)))
         for _ in range(5000)]
digest = hashlib.sha256()


def emit(label, value):
    text = f"{label}: {value}"
    digest.update(text.encode())
    print(text)


# Records as nested dicts and lists, serialised to JSON and back.
records = []
for i in range(40000):
    records.append({
        "id": i,
        "name": " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5))),
        "score": rng.random() * 1000,
        "tags": sorted({rng.choice(WORDS) for _ in range(rng.randint(0, 6))}),
        "nested": {"x": [rng.randint(-10**6, 10**6) for _ in range(rng.randint(0, 8))]},
    })
blob = json.dumps(records, sort_keys=True)
emit("json bytes", len(blob))
back = json.loads(blob)
emit("json round trip equal", back == records)
emit("json sha256", hashlib.sha256(blob.encode()).hexdigest())

# Sorting by several keys, and a stable sort of the result.
by_score = sorted(back, key=lambda r: (-round(r["score"], 3), r["name"], r["id"]))
emit("top ids", [r["id"] for r in by_score[:10]])
by_tags = sorted(by_score, key=lambda r: len(r["tags"]))
emit("tag-sorted head", [r["id"] for r in by_tags[:10]])

# Word counts, string building and splitting.
counter = collections.Counter()
index = collections.defaultdict(list)
for r in records:
    for w in r["name"].split():
        counter[w] += 1
        index[w[:2]].append(r["id"])
emit("most common", counter.most_common(8))
emit("index buckets", len(index))
emit("largest bucket", max((len(v), k) for k, v in index.items()))
text = "\n".join(f"{r['id']:06d}|{r['name'].upper()}|{','.join(r['tags'])}" for r in records)
emit("text length", len(text))
emit("regex matches", len(re.findall(r"\|[A-Z]{5,}\b", text)))
pieces = text.replace("|", " ").split()
emit("pieces", len(pieces))
emit("joined reversed sha256", hashlib.sha256("".join(reversed(pieces)).encode()).hexdigest())

# Growing and shrinking containers.
stack = []
for i in range(200000):
    if rng.random() < 0.6:
        stack.append((i, str(i) * (i % 7)))
    elif stack:
        stack.pop(rng.randrange(len(stack)) if len(stack) < 64 else -1)
emit("stack", (len(stack), sum(k for k, _ in stack)))
table = {}
for i in range(150000):
    key = rng.choice(WORDS) + str(i % 1000)
    table[key] = table.get(key, 0) + i
    if i % 3 == 0:
        table.pop(rng.choice(WORDS) + str(rng.randrange(1000)), None)
emit("table", (len(table), sum(table.values()) % 1000003))
emit("set algebra", len(set(WORDS[:3000]) ^ set(w[::-1] for w in WORDS[2000:])))

# Big integers.
fact = 1
for i in range(1, 3000):
    fact *= i
emit("3000! bits", fact.bit_length())
emit("3000! mod p", fact % (2**61 - 1))
emit("pow mod", pow(7, 10**5, 10**9 + 7))
emit("digits of 2**12000", len(str(2**12000)))


# Threads: each builds and drops its own objects; objects made on one thread are freed
# on another through a shared queue. Results are combined in a fixed order.
def worker(n, out, inbox, outbox):
    local = random.Random(n)
    total = 0
    for i in range(20000):
        item = {"k": [local.random() for _ in range(local.randint(0, 6))], "s": str(i) * 3}
        outbox.append(item)
        if inbox:
            try:
                old = inbox.pop()
            except IndexError:
                continue
            total += len(old["s"])
    out[n] = total


boxes = [collections.deque() for _ in range(4)]
results = [None] * 4
threads = [threading.Thread(target=worker, args=(n, results, boxes[n], boxes[(n + 1) % 4]))
           for n in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
# Every item was either taken by the next thread or is still queued: the total of
# their string lengths does not depend on the interleaving.
emit("threads total", sum(results) + sum(len(item["s"]) for b in boxes for item in b))

print("digest", digest.hexdigest())
sys.stdout.flush()
