/*  bc_mem: allocation wrappers that abort on out-of-memory, and arenas. */
#include "bc_mem.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_oom(size_t size)
{
    fprintf(stderr, "{\"level\":\"error\",\"msg\":\"out of memory allocating %zu bytes\"}\n", size);
    abort();
}

void *bc_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        s_oom(size);
    return p;
}

void *bc_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        s_oom(n * size);
    return p;
}

void *bc_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (!p)
        s_oom(size);
    return p;
}

char *bc_strdup(const char *s)
{
    return bc_strndup(s, strlen(s));
}

char *bc_strndup(const char *s, size_t n)
{
    char *p = bc_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

typedef struct s_block {
    struct s_block *next;
    size_t size, used;
    max_align_t data[];
} s_block_t;

struct bc_arena {
    s_block_t *head; /* current block; older blocks follow */
    size_t block_size;
    size_t total;
    ProtobufCAllocator allocator;
};

static void *s_pb_alloc(void *data, size_t size)
{
    return bc_arena_alloc(data, size);
}

static void s_pb_free(void *data, void *ptr)
{
    (void)data;
    (void)ptr;
}

static s_block_t *s_block_new(size_t size)
{
    s_block_t *b = bc_malloc(sizeof *b + size);
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

bc_arena_t *bc_arena_new(size_t block_size)
{
    bc_arena_t *self = bc_calloc(1, sizeof *self);
    self->block_size = block_size < 256 ? 256 : block_size;
    self->head = s_block_new(self->block_size);
    self->allocator.alloc = s_pb_alloc;
    self->allocator.free = s_pb_free;
    self->allocator.allocator_data = self;
    return self;
}

void bc_arena_destroy(bc_arena_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_block_t *b = (*self_p)->head;
    while (b) {
        s_block_t *next = b->next;
        free(b);
        b = next;
    }
    free(*self_p);
    *self_p = NULL;
}

/* The largest block a reset keeps: a worker that built one big reply reuses
 * its memory for the next instead of growing the heap (and faulting its
 * pages in) again, without holding more than this for good. */
#define S_KEEP_MAX ((size_t)8 << 20)
/* New blocks grow with the arena (a quarter of what it holds, capped), so a
 * reply of a megabyte takes a handful of blocks, not a hundred. */
#define S_GROW_MAX ((size_t)1 << 20)

void bc_arena_reset(bc_arena_t *self)
{
    /* Keep the largest block no bigger than S_KEEP_MAX (the first, standard
     * size one if none is); free the rest. */
    s_block_t *keep = NULL, *oldest = self->head;
    for (s_block_t *b = self->head; b; b = b->next) {
        if (b->size <= S_KEEP_MAX && (!keep || b->size > keep->size))
            keep = b;
        oldest = b;
    }
    if (!keep) /* an arena made with blocks over S_KEEP_MAX */
        keep = oldest;
    s_block_t *b = self->head;
    while (b) {
        s_block_t *next = b->next;
        if (b != keep)
            free(b);
        b = next;
    }
    keep->next = NULL;
    keep->used = 0;
    self->head = keep;
    self->total = 0;
}

void *bc_arena_alloc(bc_arena_t *self, size_t size)
{
    const size_t align = _Alignof(max_align_t);
    size = (size + align - 1) / align * align;
    if (size == 0)
        size = align;
    s_block_t *b = self->head;
    if (b->size - b->used < size) {
        size_t grow = self->total / 4 < S_GROW_MAX ? self->total / 4 : S_GROW_MAX;
        size_t want = self->block_size > grow ? self->block_size : grow;
        if (size > want)
            want = size;
        s_block_t *nb = s_block_new(want);
        /* Big one-off blocks go behind the current one so its free space is
         * not wasted; ordinary new blocks become current. */
        if (size > want / 2 && b->size - b->used > align * 4) {
            nb->next = b->next;
            b->next = nb;
            nb->used = size;
            self->total += size;
            return nb->data;
        }
        nb->next = b;
        self->head = b = nb;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    self->total += size;
    return p;
}

void *bc_arena_calloc(bc_arena_t *self, size_t size)
{
    void *p = bc_arena_alloc(self, size);
    memset(p, 0, size);
    return p;
}

char *bc_arena_strndup(bc_arena_t *self, const char *s, size_t n)
{
    char *p = bc_arena_alloc(self, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *bc_arena_strdup(bc_arena_t *self, const char *s)
{
    return bc_arena_strndup(self, s, strlen(s));
}

char *bc_arena_printf(bc_arena_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *p = bc_arena_alloc(self, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

ProtobufCAllocator *bc_arena_allocator(bc_arena_t *self)
{
    return &self->allocator;
}

size_t bc_arena_used(const bc_arena_t *self)
{
    return self->total;
}
