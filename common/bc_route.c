/*  bc_route: segment-by-segment path pattern matching. */
#include "bc_route.h"

#include <stdio.h>
#include <string.h>

/* Matches path against pattern; fills params. Returns 1 on a match. */
static int s_match(const char *pattern, const char *path, size_t path_len,
                   bc_route_param_t *params, int *nparams)
{
    const char *pp = pattern, *sp = path, *send = path + path_len;
    int np = 0;
    for (;;) {
        if (*pp == '\0')
            return sp == send && (*nparams = np, 1);
        if (sp == send)
            return 0;
        if (*pp != '/' || *sp != '/')
            return 0;
        pp++;
        sp++;
        const char *pseg_end = strchr(pp, '/');
        if (!pseg_end)
            pseg_end = pp + strlen(pp);
        const char *sseg_end = memchr(sp, '/', (size_t)(send - sp));
        if (!sseg_end)
            sseg_end = send;
        size_t plen = (size_t)(pseg_end - pp), slen = (size_t)(sseg_end - sp);
        if (plen >= 2 && pp[0] == '{' && pp[plen - 1] == '}') {
            if (slen == 0 || np == BC_ROUTE_MAX_PARAMS)
                return 0;
            params[np].name = pp + 1;
            params[np].name_len = plen - 2;
            params[np].value = sp;
            params[np].value_len = slen;
            np++;
        } else if (plen != slen || memcmp(pp, sp, plen) != 0) {
            return 0;
        }
        pp = pseg_end;
        sp = sseg_end;
    }
}

int bc_route_match(const void *keys, size_t n, size_t stride, const char *method,
                   size_t method_len, const char *path, size_t path_len, bc_route_param_t *params,
                   int *nparams, int *path_known, char *allow, size_t allow_len)
{
    *path_known = 0;
    *nparams = 0;
    if (allow_len)
        allow[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        const bc_route_key_t *k = (const bc_route_key_t *)((const char *)keys + i * stride);
        bc_route_param_t tmp[BC_ROUTE_MAX_PARAMS];
        int ntmp = 0;
        if (!s_match(k->pattern, path, path_len, tmp, &ntmp))
            continue;
        if (strlen(k->method) == method_len && !memcmp(k->method, method, method_len)) {
            memcpy(params, tmp, sizeof(tmp[0]) * (size_t)ntmp);
            *nparams = ntmp;
            return (int)i;
        }
        *path_known = 1;
        if (used < allow_len) {
            int w = snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "", k->method);
            if (w > 0)
                used += (size_t)w;
        }
    }
    return -1;
}
