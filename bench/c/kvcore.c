/*
 * The C baseline of the key-value store's core: the same table as
 * domains/kvstore/src/store.rs, written the way a C programmer would.
 * Open addressing over a power-of-two array, FNV-1a of the key, linear
 * probing, tombstones for deletions, grown at 3/4 used; items hold a copy
 * of the key and the value (each malloc'd), flags, an expiry and a CAS
 * unique, within a byte budget.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { SLOT_EMPTY, SLOT_TOMBSTONE, SLOT_FULL };

struct kv_slot {
    uint8_t state;
    uint8_t *key;
    size_t key_len;
    uint8_t *value;
    size_t value_len;
    uint32_t flags;
    uint64_t expires_ns;
    uint64_t cas;
};

struct kv {
    struct kv_slot *slots;
    size_t capacity;
    size_t items;
    size_t used;
    size_t bytes;
    size_t limit;
    uint64_t next_cas;
};

static uint64_t fnv1a(const uint8_t *bytes, size_t n)
{
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        hash ^= bytes[i];
        hash *= 0x00000100000001b3ULL;
    }
    return hash;
}

static size_t item_size(size_t key_len, size_t value_len)
{
    return key_len + value_len + 48;
}

struct kv *kv_new(size_t limit)
{
    struct kv *kv = calloc(1, sizeof(*kv));
    if (!kv)
        return NULL;
    kv->capacity = 64;
    kv->slots = calloc(kv->capacity, sizeof(struct kv_slot));
    if (!kv->slots) {
        free(kv);
        return NULL;
    }
    kv->limit = limit;
    kv->next_cas = 1;
    return kv;
}

void kv_free(struct kv *kv)
{
    for (size_t i = 0; i < kv->capacity; i++) {
        if (kv->slots[i].state == SLOT_FULL) {
            free(kv->slots[i].key);
            free(kv->slots[i].value);
        }
    }
    free(kv->slots);
    free(kv);
}

/* The slot holding `key` (*found = 1), or where it would go. */
static size_t find(const struct kv *kv, const uint8_t *key, size_t key_len, int *found)
{
    size_t mask = kv->capacity - 1;
    size_t index = (size_t)fnv1a(key, key_len) & mask;
    size_t first_free = SIZE_MAX;
    for (;;) {
        const struct kv_slot *s = &kv->slots[index];
        if (s->state == SLOT_EMPTY) {
            *found = 0;
            return first_free != SIZE_MAX ? first_free : index;
        }
        if (s->state == SLOT_TOMBSTONE) {
            if (first_free == SIZE_MAX)
                first_free = index;
        } else if (s->key_len == key_len && memcmp(s->key, key, key_len) == 0) {
            *found = 1;
            return index;
        }
        index = (index + 1) & mask;
    }
}

static int grow_if_needed(struct kv *kv)
{
    if ((kv->used + 1) * 4 <= kv->capacity * 3)
        return 0;
    size_t size = kv->items * 2 >= kv->capacity ? kv->capacity * 2 : kv->capacity;
    struct kv_slot *old = kv->slots;
    size_t old_capacity = kv->capacity;
    struct kv_slot *fresh = calloc(size, sizeof(struct kv_slot));
    if (!fresh)
        return -1;
    kv->slots = fresh;
    kv->capacity = size;
    kv->used = 0;
    for (size_t i = 0; i < old_capacity; i++) {
        if (old[i].state == SLOT_FULL) {
            int found;
            size_t index = find(kv, old[i].key, old[i].key_len, &found);
            kv->slots[index] = old[i];
            kv->used++;
        }
    }
    free(old);
    return 0;
}

static void remove_at(struct kv *kv, size_t index)
{
    struct kv_slot *s = &kv->slots[index];
    if (s->state == SLOT_FULL) {
        kv->bytes -= item_size(s->key_len, s->value_len);
        kv->items--;
        free(s->key);
        free(s->value);
    }
    memset(s, 0, sizeof(*s));
    s->state = SLOT_TOMBSTONE;
}

/* The live item of `key`, or NULL (an expired one is removed). */
static const struct kv_slot *kv_get(struct kv *kv, const uint8_t *key, size_t key_len,
                                    uint64_t now_ns)
{
    int found;
    size_t index = find(kv, key, key_len, &found);
    if (!found)
        return NULL;
    struct kv_slot *s = &kv->slots[index];
    if (s->expires_ns != 0 && now_ns >= s->expires_ns) {
        remove_at(kv, index);
        return NULL;
    }
    return s;
}

/* Stores a copy of `key` and `value`; the CAS unique, or 0 if refused. A
 * replacement keeps the item's key (equal to `key`), as the Rust does. */
static uint64_t kv_set(struct kv *kv, const uint8_t *key, size_t key_len, const uint8_t *value,
                       size_t value_len, uint32_t flags, uint64_t expires_ns)
{
    uint8_t *v = malloc(value_len ? value_len : 1);
    if (!v)
        return 0;
    memcpy(v, value, value_len);
    int found;
    size_t index = find(kv, key, key_len, &found);
    size_t size = item_size(key_len, value_len);
    if (found) {
        struct kv_slot *s = &kv->slots[index];
        size_t old = item_size(s->key_len, s->value_len);
        if (kv->bytes - old + size > kv->limit) {
            free(v);
            return 0;
        }
        free(s->value);
        s->value = v;
        s->value_len = value_len;
        s->flags = flags;
        s->expires_ns = expires_ns;
        s->cas = kv->next_cas++;
        kv->bytes = kv->bytes - old + size;
        return s->cas;
    }
    uint8_t *k = malloc(key_len ? key_len : 1);
    if (!k || kv->bytes + size > kv->limit || grow_if_needed(kv) != 0) {
        free(k);
        free(v);
        return 0;
    }
    memcpy(k, key, key_len);
    uint64_t cas = kv->next_cas++;
    index = find(kv, key, key_len, &found);
    if (kv->slots[index].state == SLOT_EMPTY)
        kv->used++;
    kv->bytes += size;
    kv->items++;
    struct kv_slot *s = &kv->slots[index];
    s->state = SLOT_FULL;
    s->key = k;
    s->key_len = key_len;
    s->value = v;
    s->value_len = value_len;
    s->flags = flags;
    s->expires_ns = expires_ns;
    s->cas = cas;
    return cas;
}

/*
 * The benchmark's loops: `n` operations on keys of `key_len` bytes laid
 * out back to back in `keys`. Sets store `value` (of `value_len` bytes)
 * with its first byte varied; gets return the sum of the found values'
 * lengths and first bytes (a checksum compared with the Rust's).
 */
uint64_t kv_sets(struct kv *kv, const uint8_t *keys, size_t key_len, uint64_t n,
                 uint8_t *value, size_t value_len)
{
    uint64_t stored = 0;
    for (uint64_t i = 0; i < n; i++) {
        value[0] = (uint8_t)i;
        stored += kv_set(kv, keys + i * key_len, key_len, value, value_len, 0, 0) != 0;
    }
    return stored;
}

uint64_t kv_gets(struct kv *kv, const uint8_t *keys, size_t key_len, uint64_t n, uint64_t now_ns)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        const struct kv_slot *s = kv_get(kv, keys + i * key_len, key_len, now_ns);
        if (s)
            sum += s->value_len + s->value[0];
    }
    return sum;
}

size_t kv_len(const struct kv *kv)
{
    return kv->items;
}
