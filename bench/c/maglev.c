/*
 * The C baseline of the Maglev benchmark: the same algorithm as
 * domains/maglev/src/table.rs, written the way a C programmer would.
 *
 * - Lookup table: each backend's permutation offset + j * skip (mod M) for
 *   a prime M; backends take turns claiming their next free slot.
 * - Flow cache: keyed by FNV-1a of the 5-tuple, open addressing over a
 *   power-of-two array, a probe of 8 slots, the least recently used slot
 *   of the probe evicted when it is full; an entry records the table
 *   generation at which its backend was last known to be present.
 * - Per frame: parse Ethernet + IPv4 + the TCP/UDP ports, find the
 *   backend, rewrite the destination MAC (the backend's id) and the source
 *   MAC (ours).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EMPTY 0xffff
#define PROBE 8
#define FNV_BASIS 0xcbf29ce484222325ULL
#define SKIP_BASIS 0x84222325cbf29ce4ULL
#define FNV_PRIME 0x00000100000001b3ULL

struct mg_backend {
    uint64_t id;
    uint64_t offset;
    uint64_t skip;
};

struct mg_flow {
    uint8_t src[4];
    uint8_t dst[4];
    uint16_t src_port;
    uint16_t dst_port;
    uint8_t protocol;
};

struct mg_entry {
    int valid;
    struct mg_flow flow;
    uint64_t backend;
    uint64_t generation;
    uint64_t used;
};

struct mg {
    uint64_t size;
    uint64_t nbackends;
    struct mg_backend backends[4096];
    uint16_t *entries;
    uint64_t generation;
    struct mg_entry *cache;
    uint64_t cache_mask;
    uint64_t clock;
    uint64_t hits, misses;
};

static uint64_t fnv1a(const uint8_t *bytes, size_t n, uint64_t hash)
{
    for (size_t i = 0; i < n; i++) {
        hash ^= bytes[i];
        hash *= FNV_PRIME;
    }
    return hash;
}

static void populate(struct mg *m)
{
    m->generation++;
    for (uint64_t i = 0; i < m->size; i++)
        m->entries[i] = EMPTY;
    uint64_t n = m->nbackends;
    if (n == 0)
        return;
    uint64_t *next = calloc(n, sizeof(uint64_t));
    uint64_t filled = 0;
    for (;;) {
        for (uint64_t i = 0; i < n; i++) {
            struct mg_backend *b = &m->backends[i];
            uint64_t slot = (b->offset + next[i] * b->skip) % m->size;
            while (m->entries[slot] != EMPTY) {
                next[i]++;
                slot = (b->offset + next[i] * b->skip) % m->size;
            }
            m->entries[slot] = (uint16_t)i;
            next[i]++;
            if (++filled == m->size) {
                free(next);
                return;
            }
        }
    }
}

struct mg *mg_new(uint64_t size, uint64_t cache_capacity)
{
    struct mg *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->size = size;
    m->entries = malloc(size * sizeof(uint16_t));
    uint64_t slots = PROBE;
    while (slots < cache_capacity)
        slots <<= 1;
    m->cache = calloc(slots, sizeof(struct mg_entry));
    m->cache_mask = slots - 1;
    if (!m->entries || !m->cache) {
        free(m->entries);
        free(m->cache);
        free(m);
        return NULL;
    }
    for (uint64_t i = 0; i < size; i++)
        m->entries[i] = EMPTY;
    return m;
}

void mg_free(struct mg *m)
{
    free(m->entries);
    free(m->cache);
    free(m);
}

/* 0 added; -1 a duplicate or no room. */
int mg_add(struct mg *m, uint64_t id)
{
    for (uint64_t i = 0; i < m->nbackends; i++)
        if (m->backends[i].id == id)
            return -1;
    if (m->nbackends >= 4096 || m->nbackends >= m->size)
        return -1;
    uint8_t name[8];
    for (int i = 0; i < 8; i++)
        name[i] = (uint8_t)(id >> (8 * i));
    struct mg_backend *b = &m->backends[m->nbackends++];
    b->id = id;
    b->offset = fnv1a(name, 8, FNV_BASIS) % m->size;
    b->skip = fnv1a(name, 8, SKIP_BASIS) % (m->size - 1) + 1;
    populate(m);
    return 0;
}

static int same_flow(const struct mg_flow *a, const struct mg_flow *b)
{
    return memcmp(a->src, b->src, 4) == 0 && memcmp(a->dst, b->dst, 4) == 0 &&
           a->src_port == b->src_port && a->dst_port == b->dst_port &&
           a->protocol == b->protocol;
}

static int present(const struct mg *m, uint64_t id)
{
    for (uint64_t i = 0; i < m->nbackends; i++)
        if (m->backends[i].id == id)
            return 1;
    return 0;
}

/* The backend of `flow`; 0 with no backend at all (ids are nonzero MACs). */
static uint64_t backend_of(struct mg *m, const struct mg_flow *flow)
{
    uint8_t bytes[13];
    memcpy(bytes, flow->src, 4);
    memcpy(bytes + 4, flow->dst, 4);
    bytes[8] = (uint8_t)(flow->src_port >> 8);
    bytes[9] = (uint8_t)flow->src_port;
    bytes[10] = (uint8_t)(flow->dst_port >> 8);
    bytes[11] = (uint8_t)flow->dst_port;
    bytes[12] = flow->protocol;
    uint64_t hash = fnv1a(bytes, 13, FNV_BASIS);
    m->clock++;
    uint64_t start = hash & m->cache_mask;
    uint64_t victim = start, oldest = UINT64_MAX;
    for (uint64_t i = 0; i < PROBE; i++) {
        uint64_t slot = (start + i) & m->cache_mask;
        struct mg_entry *e = &m->cache[slot];
        if (!e->valid) {
            victim = slot;
            break;
        }
        if (same_flow(&e->flow, flow)) {
            if (e->generation == m->generation || present(m, e->backend)) {
                e->generation = m->generation;
                e->used = m->clock;
                m->hits++;
                return e->backend;
            }
            victim = slot;
            break;
        }
        if (e->used < oldest) {
            oldest = e->used;
            victim = slot;
        }
    }
    m->misses++;
    uint16_t index = m->entries[hash % m->size];
    if (index == EMPTY)
        return 0;
    uint64_t backend = m->backends[index].id;
    struct mg_entry *e = &m->cache[victim];
    e->valid = 1;
    e->flow = *flow;
    e->backend = backend;
    e->generation = m->generation;
    e->used = m->clock;
    return backend;
}

/* Steers one frame in place: whether it is forwarded. */
static int steer(struct mg *m, uint8_t *frame, size_t len, const uint8_t mac[6], uint64_t *chosen)
{
    if (len < 14 + 20 || frame[12] != 0x08 || frame[13] != 0x00)
        return 0;
    const uint8_t *ip = frame + 14;
    size_t header = (size_t)(ip[0] & 0x0f) * 4;
    if ((ip[0] >> 4) != 4 || header < 20 || len - 14 < header + 4)
        return 0;
    uint8_t protocol = ip[9];
    if (protocol != 6 && protocol != 17)
        return 0;
    if ((((uint16_t)ip[6] << 8 | ip[7]) & 0x1fff) != 0)
        return 0;
    struct mg_flow flow;
    memcpy(flow.src, ip + 12, 4);
    memcpy(flow.dst, ip + 16, 4);
    const uint8_t *ports = ip + header;
    flow.src_port = (uint16_t)(ports[0] << 8 | ports[1]);
    flow.dst_port = (uint16_t)(ports[2] << 8 | ports[3]);
    flow.protocol = protocol;
    uint64_t backend = backend_of(m, &flow);
    if (backend == 0)
        return 0;
    for (int i = 0; i < 6; i++)
        frame[i] = (uint8_t)(backend >> (8 * (5 - i)));
    memcpy(frame + 6, mac, 6);
    *chosen = backend;
    return 1;
}

/*
 * Steers `n` frames of `len` bytes laid out `stride` apart, in batches of
 * 32 as the domain does; returns the sum of the chosen backends' ids (a
 * checksum compared with the Rust's).
 */
uint64_t mg_steer_all(struct mg *m, uint8_t *frames, uint64_t n, uint64_t stride, uint64_t len,
                      const uint8_t mac[6])
{
    uint64_t sum = 0;
    for (uint64_t batch = 0; batch < n; batch += 32) {
        uint64_t end = batch + 32 < n ? batch + 32 : n;
        for (uint64_t i = batch; i < end; i++) {
            uint64_t chosen = 0;
            if (steer(m, frames + i * stride, len, mac, &chosen))
                sum += chosen;
        }
    }
    return sum;
}
