/*  bc_route: matching "METHOD /path" against a table of path patterns with
 *  {name} segments (the gateway's route table; also feeds the OpenAPI list).
 *  Pure logic, no I/O.
 */
#ifndef BC_ROUTE_H
#define BC_ROUTE_H

#include <stddef.h>

#define BC_ROUTE_MAX_PARAMS 8

typedef struct {
    const char *name; /* points into the pattern; name_len bytes */
    size_t name_len;
    const char *value; /* points into the path; value_len bytes */
    size_t value_len;
} bc_route_param_t;

typedef struct {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/api/v1/clients/{id}" */
} bc_route_key_t;

/* Finds the route whose method and pattern match. keys is an array of n
 * entries spaced stride bytes apart (so callers can embed bc_route_key_t at
 * the start of their own route struct). Returns the index, or -1. When no
 * route matches but some pattern matches the path, *path_known is set to 1
 * and allow receives the comma-separated methods of those routes. params
 * receives up to BC_ROUTE_MAX_PARAMS path parameters. An empty segment never
 * matches a parameter. */
int bc_route_match(const void *keys, size_t n, size_t stride, const char *method,
                   size_t method_len, const char *path, size_t path_len, bc_route_param_t *params,
                   int *nparams, int *path_known, char *allow, size_t allow_len);

#endif
