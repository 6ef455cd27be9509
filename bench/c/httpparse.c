/*
 * The C baseline of the HTTP request-parsing benchmark: a request-line
 * and header parser written for this benchmark, as strict as the Rust
 * side's parser (httparse): the method a token, the target visible
 * ASCII or bytes >= 0x80, HTTP/1.0 or HTTP/1.1, CRLF or bare LF line
 * ends, header names tokens immediately followed by ':', values without
 * control characters (tabs allowed), trailing whitespace trimmed, at most
 * HP_MAX_HEADERS headers. Nothing is copied: the result points into the
 * buffer.
 */
#include <stddef.h>
#include <stdint.h>

#define HP_MAX_HEADERS 32

struct hp_header {
    const uint8_t *name;
    size_t name_len;
    const uint8_t *value;
    size_t value_len;
};

struct hp_request {
    const uint8_t *method;
    size_t method_len;
    const uint8_t *path;
    size_t path_len;
    int minor;
    size_t headers;
    struct hp_header header[HP_MAX_HEADERS];
};

/* Byte classes, one lookup each (filled on first use). */
enum { TOKEN = 1, TARGET = 2, VALUE = 4 };
static uint8_t classes[256];

static void fill_classes(void)
{
    static const char tchars[] = "!#$%&'*+-.^_`|~";
    for (int c = 0; c < 256; c++) {
        uint8_t k = 0;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            k |= TOKEN;
        for (const char *t = tchars; *t; t++)
            if ((uint8_t)*t == c)
                k |= TOKEN;
        if ((c > 0x20 && c < 0x7f) || c >= 0x80)
            k |= TARGET;
        if (c == '\t' || (c >= 0x20 && c != 0x7f))
            k |= VALUE;
        classes[c] = k;
    }
}

#define is_token(c) (classes[(uint8_t)(c)] & TOKEN)
#define is_target(c) (classes[(uint8_t)(c)] & TARGET)
#define is_value(c) (classes[(uint8_t)(c)] & VALUE)

/* A line end at buf[*at]: CRLF or LF. 1 taken, 0 need more, -1 not one. */
static int line_end(const uint8_t *buf, size_t len, size_t *at)
{
    if (*at >= len)
        return 0;
    if (buf[*at] == '\n') {
        *at += 1;
        return 1;
    }
    if (buf[*at] != '\r')
        return -1;
    if (*at + 1 >= len)
        return 0;
    if (buf[*at + 1] != '\n')
        return -1;
    *at += 2;
    return 1;
}

/* Bytes taken by a whole request head; 0: incomplete; -1: malformed. */
long hp_parse(const uint8_t *buf, size_t len, struct hp_request *r)
{
    size_t at = 0;
    if (!classes['a'])
        fill_classes();
    r->headers = 0;
    r->method = buf;
    while (at < len && is_token(buf[at]))
        at++;
    if (at == len)
        return 0;
    if (at == 0 || buf[at] != ' ')
        return -1;
    r->method_len = at;
    at++;
    r->path = buf + at;
    size_t start = at;
    while (at < len && is_target(buf[at]))
        at++;
    if (at == len)
        return 0;
    if (at == start || buf[at] != ' ')
        return -1;
    r->path_len = at - start;
    at++;
    static const char version[] = "HTTP/1.";
    for (size_t i = 0; i < 7; i++, at++) {
        if (at == len)
            return 0;
        if (buf[at] != (uint8_t)version[i])
            return -1;
    }
    if (at == len)
        return 0;
    if (buf[at] != '0' && buf[at] != '1')
        return -1;
    r->minor = buf[at] - '0';
    at++;
    int end = line_end(buf, len, &at);
    if (end <= 0)
        return end;
    for (;;) {
        if (at == len)
            return 0;
        if (buf[at] == '\r' || buf[at] == '\n') {
            end = line_end(buf, len, &at);
            return end <= 0 ? end : (long)at;
        }
        if (r->headers == HP_MAX_HEADERS)
            return -1;
        struct hp_header *h = &r->header[r->headers];
        h->name = buf + at;
        start = at;
        while (at < len && is_token(buf[at]))
            at++;
        if (at == len)
            return 0;
        if (at == start || buf[at] != ':')
            return -1;
        h->name_len = at - start;
        at++;
        while (at < len && (buf[at] == ' ' || buf[at] == '\t'))
            at++;
        start = at;
        while (at < len && is_value(buf[at]))
            at++;
        if (at == len)
            return 0;
        size_t stop = at;
        while (stop > start && (buf[stop - 1] == ' ' || buf[stop - 1] == '\t'))
            stop--;
        h->value = buf + start;
        h->value_len = stop - start;
        end = line_end(buf, len, &at);
        if (end <= 0)
            return end;
        r->headers++;
    }
}

/*
 * The benchmark's loop: parses each of `n` requests (`bufs[i]`, `lens[i]`
 * bytes) `rounds` times; returns a checksum over what was found (bytes
 * taken, method, path and header lengths) compared with the Rust's.
 */
uint64_t hp_parse_all(const uint8_t *const *bufs, const size_t *lens, uint64_t n, uint64_t rounds)
{
    struct hp_request r;
    uint64_t sum = 0;
    for (uint64_t round = 0; round < rounds; round++) {
        for (uint64_t i = 0; i < n; i++) {
            long taken = hp_parse(bufs[i], lens[i], &r);
            if (taken <= 0) {
                sum += 1000000;
                continue;
            }
            sum += (uint64_t)taken + r.method_len + r.path_len + r.headers;
            for (size_t h = 0; h < r.headers; h++)
                sum += r.header[h].name_len + r.header[h].value_len;
        }
    }
    return sum;
}
