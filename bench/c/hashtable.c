/* The C baseline of the hashtable experiment (RedLeaf, OSDI 2020, after
 * the paper's description): open addressing with linear probing, FNV-1a
 * over the key's 8 bytes, 8-byte keys and values in one array of pairs,
 * key 0 marking a free slot. Built by bench/build.rs with the system's
 * `cc -O2`; bench/src/hashtable.rs has the two Rust versions. */
#include <stdint.h>
#include <stdlib.h>

struct entry {
    uint64_t key;
    uint64_t value;
};

struct table {
    struct entry *entries;
    uint64_t mask;
};

static inline uint64_t fnv1a(uint64_t key)
{
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (int i = 0; i < 8; i++) {
        hash ^= (key >> (8 * i)) & 0xff;
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

struct table *c_table_new(uint64_t slots)
{
    struct table *t = malloc(sizeof *t);
    if (!t)
        return NULL;
    t->entries = calloc(slots, sizeof(struct entry));
    if (!t->entries) {
        free(t);
        return NULL;
    }
    t->mask = slots - 1;
    return t;
}

void c_table_free(struct table *t)
{
    free(t->entries);
    free(t);
}

void c_table_insert(struct table *t, uint64_t key, uint64_t value)
{
    uint64_t i = fnv1a(key) & t->mask;
    while (t->entries[i].key != 0 && t->entries[i].key != key)
        i = (i + 1) & t->mask;
    t->entries[i].key = key;
    t->entries[i].value = value;
}

/* The sum of the values of `n` keys (0 for a missing one). */
uint64_t c_table_lookups(const struct table *t, const uint64_t *keys, uint64_t n)
{
    uint64_t sum = 0;
    for (uint64_t k = 0; k < n; k++) {
        uint64_t key = keys[k];
        uint64_t i = fnv1a(key) & t->mask;
        for (;;) {
            uint64_t here = t->entries[i].key;
            if (here == key) {
                sum += t->entries[i].value;
                break;
            }
            if (here == 0)
                break;
            i = (i + 1) & t->mask;
        }
    }
    return sum;
}
