/*  bc_mem: allocation wrappers and per-request arenas.
 *
 *  bc_malloc and friends abort on out-of-memory (Redis zmalloc, Tor
 *  tor_malloc), so call sites never check for NULL. An arena hands out memory
 *  for one request and frees it all at once (PostgreSQL memory contexts, h2o
 *  pools); bc_arena_allocator() lets protobuf-c unpack into it.
 */
#ifndef BC_MEM_H
#define BC_MEM_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

void *bc_malloc(size_t size);
void *bc_calloc(size_t n, size_t size);
void *bc_realloc(void *ptr, size_t size);
char *bc_strdup(const char *s);
char *bc_strndup(const char *s, size_t n);
/* Frees *p (NULL allowed) and sets it to NULL. */
#define bc_free(p) do { free(*(p)); *(p) = NULL; } while (0)

typedef struct bc_arena bc_arena_t;

/* A new arena whose blocks are at least block_size bytes. */
bc_arena_t *bc_arena_new(size_t block_size);
/* Frees every block; *self is set to NULL. NULL allowed. */
void bc_arena_destroy(bc_arena_t **self);
/* Forgets every allocation but keeps the first block for reuse. */
void bc_arena_reset(bc_arena_t *self);
/* Memory aligned for any type, valid until reset/destroy. Never NULL. */
void *bc_arena_alloc(bc_arena_t *self, size_t size);
void *bc_arena_calloc(bc_arena_t *self, size_t size);
char *bc_arena_strdup(bc_arena_t *self, const char *s);
char *bc_arena_strndup(bc_arena_t *self, const char *s, size_t n);
char *bc_arena_printf(bc_arena_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A protobuf-c allocator drawing from this arena (free is a no-op). The
 * returned struct lives inside the arena object. */
ProtobufCAllocator *bc_arena_allocator(bc_arena_t *self);
/* Bytes handed out since the last reset (for limits and tests). */
size_t bc_arena_used(const bc_arena_t *self);

#endif
