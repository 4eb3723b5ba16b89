/*  billing_rules: the pure rules of billing, apart from any database or
 *  socket so that tests/unit/test_billing.c can hold them to the letter:
 *  units from minutes, X12-safe text, identifier checks, amounts.
 */
#include <stdio.h>
#include <string.h>

#include "billing.h"

int billing_units(const billing_unit_rule_t *rule, int minutes)
{
    int unit = rule->unit_minutes > 0 ? rule->unit_minutes : 15;
    if (minutes <= 0 || minutes < rule->first_unit_min_minutes)
        return 0;
    int units = minutes / unit, rest = minutes % unit;
    const char *r = rule->rounding ? rule->rounding : "nearest";
    if (rest > 0) {
        if (!strcmp(r, "up"))
            units++;
        else if (!strcmp(r, "nearest") && 2 * rest >= unit)
            units++;
    }
    /* The first unit is earned at first_unit_min_minutes, even when the
     * rounding alone would give none (e.g. 8 minutes, unit 15, nearest). */
    if (units == 0)
        units = 1;
    return units;
}

static bool s_kept(char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ')
        return true;
    return strchr("&'()+,-./;?=#", c) != NULL && c != '\0';
}

size_t billing_x12_text(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    bool space = true; /* drops leading spaces and collapses runs */
    if (cap == 0)
        return 0;
    for (const unsigned char *p = (const unsigned char *)in; p && *p && n + 1 < cap; p++) {
        char c = (char)*p;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (*p >= 0x80 || !s_kept(c))
            c = ' ';
        if (c == ' ') {
            if (space)
                continue;
            space = true;
        } else {
            space = false;
        }
        out[n++] = c;
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
    return n;
}

size_t billing_x12_id(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    if (cap == 0)
        return 0;
    for (const char *p = in; p && *p && n + 1 < cap; p++) {
        char c = *p;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            out[n++] = c;
    }
    out[n] = '\0';
    return n;
}

bool billing_npi_valid(const char *npi)
{
    if (!npi || strlen(npi) != 10)
        return false;
    for (int i = 0; i < 10; i++)
        if (npi[i] < '0' || npi[i] > '9')
            return false;
    /* Luhn over "80840" + the first nine digits; the tenth is the check. */
    char full[15];
    memcpy(full, "80840", 5);
    memcpy(full + 5, npi, 9);
    int sum = 0;
    for (int i = 13, dbl = 1; i >= 0; i--, dbl = !dbl) {
        int d = full[i] - '0';
        if (dbl) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    int check = (10 - sum % 10) % 10;
    return check == npi[9] - '0';
}

bool billing_icd10_undot(const char *code, char out[8])
{
    size_t n = 0, len = strlen(code);
    if (len < 3 || len > 8)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = code[i];
        if (c == '.' && i == 3)
            continue;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        bool ok = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!ok || n >= 7)
            return false;
        out[n++] = c;
    }
    out[n] = '\0';
    return n >= 3 && out[0] >= 'A' && out[0] <= 'Z' && out[1] >= '0' && out[1] <= '9';
}

bool billing_dx_matches(const char *code, char *const *prefixes, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        char p[16];
        billing_x12_id(prefixes[i], p, sizeof p);
        if (*p && !strncmp(code, p, strlen(p)))
            return true;
    }
    return false;
}

void billing_amount(int64_t cents, char out[32])
{
    if (cents < 0)
        cents = 0;
    long long whole = (long long)(cents / 100), part = (long long)(cents % 100);
    if (part == 0)
        snprintf(out, 32, "%lld", whole);
    else if (part % 10 == 0)
        snprintf(out, 32, "%lld.%lld", whole, part / 10);
    else
        snprintf(out, 32, "%lld.%02lld", whole, part);
}
