/*  billing_x12: the X12 837P 005010X222A1 writer.
 *
 *  One interchange (ISA/IEA) holding one functional group (GS/GE, HC) of
 *  transaction sets (ST/SE), a new one every claims_per_transaction claims
 *  (the guide recommends at most 5000 claims per transaction). Each
 *  transaction set: BHT; 1000A submitter (NM1*41, PER); 1000B receiver
 *  (NM1*40); 2000A billing provider (HL*1**20*1, PRV*BI, 2010AA NM1*85, N3,
 *  N4, REF*EI); then per claim 2000B subscriber (HL*n*1*22*0, SBR*P*18,
 *  2010BA NM1*IL, N3, N4, DMG; 2010BB payer NM1*PR), 2300 claim (CLM, REF*F8
 *  for replacement and void, HI), 2310D supervising provider (NM1*DQ) when
 *  configured, 2400 service line (LX, SV1, DTP*472); SE with the segment
 *  count. Separators: element *, sub-element :, repetition ^, segment ~
 *  followed by a newline (ignored by X12 parsers, readable by people).
 *
 *  The writer only formats: callers pass X12-safe text (billing_x12_text)
 *  and checked values. Its output accumulates until taken, so a file of a
 *  million claims streams out in parts with flat memory.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_mem.h"
#include "billing.h"

struct billing_x12 {
    billing_x12_envelope_t env;
    char *buf;
    size_t len, cap;
    bool open_interchange; /* ISA and GS written */
    bool open_set;         /* an ST not yet closed */
    bool finished;
    int set_segments;      /* segments of the open ST, ST included */
    int sets;              /* ST count in the group */
    int hl;                /* last HL id of the open set */
    int set_claims;
    int64_t claims;
};

static void s_put(billing_x12_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends one segment (fmt without the terminator). */
static void s_put(billing_x12_t *self, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = self->cap - self->len;
        int n = vsnprintf(self->buf + self->len, room, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n + 2 < room) {
            self->len += (size_t)n;
            self->buf[self->len++] = '~';
            self->buf[self->len++] = '\n';
            self->buf[self->len] = '\0';
            break;
        }
        self->cap = self->cap * 2 + (size_t)(n > 0 ? n : 0) + 64;
        self->buf = bc_realloc(self->buf, self->cap);
    }
    if (self->open_set)
        self->set_segments++;
}

billing_x12_t *billing_x12_new(const billing_x12_envelope_t *env)
{
    billing_x12_t *self = bc_calloc(1, sizeof *self);
    self->env = *env;
    if (self->env.claims_per_transaction <= 0)
        self->env.claims_per_transaction = 5000;
    self->cap = 64 * 1024;
    self->buf = bc_malloc(self->cap);
    self->buf[0] = '\0';
    return self;
}

void billing_x12_destroy(billing_x12_t **self)
{
    if (!self || !*self)
        return;
    free((*self)->buf);
    free(*self);
    *self = NULL;
}

/* ISA fields are fixed width: ids padded to 15. */
static void s_interchange(billing_x12_t *self)
{
    const billing_x12_envelope_t *e = &self->env;
    s_put(self,
          "ISA*00*          *00*          *ZZ*%-15.15s*ZZ*%-15.15s*%.6s*%.4s*^*00501*%09lld*0*%c*:",
          e->submitter_id, e->receiver_id, e->date8 + 2, e->time4, (long long)e->control_number,
          e->test ? 'T' : 'P');
    s_put(self, "GS*HC*%s*%s*%s*%s*%lld*X*005010X222A1", e->submitter_id, e->receiver_id,
          e->date8, e->time4, (long long)e->control_number);
    self->open_interchange = true;
}

static void s_open_set(billing_x12_t *self)
{
    const billing_x12_envelope_t *e = &self->env;
    self->sets++;
    self->open_set = true;
    self->set_segments = 0;
    self->set_claims = 0;
    s_put(self, "ST*837*%04d*005010X222A1", self->sets);
    s_put(self, "BHT*0019*00*%.30s%d*%s*%s*CH", e->reference, self->sets, e->date8, e->time4);
    s_put(self, "NM1*41*2*%s*****46*%s", e->submitter_name, e->submitter_id);
    s_put(self, "PER*IC*%s*TE*%s", e->contact_name, e->contact_phone);
    s_put(self, "NM1*40*2*%s*****46*%s", e->receiver_name, e->receiver_id);
    s_put(self, "HL*1**20*1");
    s_put(self, "PRV*BI*PXC*%s", e->provider_taxonomy);
    s_put(self, "NM1*85*2*%s*****XX*%s", e->provider_name, e->provider_npi);
    if (e->provider_line2 && *e->provider_line2)
        s_put(self, "N3*%s*%s", e->provider_line1, e->provider_line2);
    else
        s_put(self, "N3*%s", e->provider_line1);
    s_put(self, "N4*%s*%s*%s", e->provider_city, e->provider_state, e->provider_postal);
    s_put(self, "REF*EI*%s", e->provider_tax_id);
    self->hl = 1;
}

static void s_close_set(billing_x12_t *self)
{
    if (!self->open_set)
        return;
    int count = self->set_segments + 1; /* SE counts itself */
    self->open_set = false;
    s_put(self, "SE*%d*%04d", count, self->sets);
}

void billing_x12_claim(billing_x12_t *self, const billing_x12_claim_t *c)
{
    const billing_x12_envelope_t *e = &self->env;
    if (!self->open_interchange)
        s_interchange(self);
    if (self->open_set && self->set_claims >= e->claims_per_transaction)
        s_close_set(self);
    if (!self->open_set)
        s_open_set(self);
    char amount[32];
    billing_amount(c->charge_cents, amount);
    self->hl++;
    s_put(self, "HL*%d*1*22*0", self->hl);
    s_put(self, "SBR*P*18*******MC");
    s_put(self, "NM1*IL*1*%s*%s****MI*%s", c->last, c->first, c->medicaid_id);
    s_put(self, "N3*%s", c->address);
    s_put(self, "N4*%s*%s*%s", c->city, c->state, c->postal);
    s_put(self, "DMG*D8*%s*%s", c->dob, c->sex);
    s_put(self, "NM1*PR*2*%s*****PI*%s", e->payer_name, e->payer_id);
    s_put(self, "CLM*%s*%s***%s:B:%s*Y*A*Y*Y", c->claim_id, amount, c->place_of_service,
          c->frequency);
    if (strcmp(c->frequency, "1") != 0 && c->original_ref && *c->original_ref)
        s_put(self, "REF*F8*%s", c->original_ref);
    char hi[12 * 16 + 8];
    size_t n = (size_t)snprintf(hi, sizeof hi, "HI");
    for (int i = 0; i < c->n_diagnoses && i < 12; i++)
        n += (size_t)snprintf(hi + n, sizeof hi - n, "*%s:%s", i ? "ABF" : "ABK",
                              c->diagnoses[i]);
    s_put(self, "%s", hi);
    if (e->supervising_last && *e->supervising_last)
        s_put(self, "NM1*DQ*1*%s*%s****XX*%s", e->supervising_last, e->supervising_first,
              e->supervising_npi);
    char proc[64];
    n = (size_t)snprintf(proc, sizeof proc, "HC:%s", c->procedure);
    for (int i = 0; i < c->n_modifiers && i < 4; i++)
        n += (size_t)snprintf(proc + n, sizeof proc - n, ":%s", c->modifiers[i]);
    s_put(self, "LX*1");
    s_put(self, "SV1*%s*%s*UN*%d***1", proc, amount, c->units);
    s_put(self, "DTP*472*D8*%s", c->service_date);
    self->set_claims++;
    self->claims++;
}

void billing_x12_finish(billing_x12_t *self)
{
    if (self->finished || !self->open_interchange)
        return;
    s_close_set(self);
    s_put(self, "GE*%d*%lld", self->sets, (long long)self->env.control_number);
    s_put(self, "IEA*1*%09lld", (long long)self->env.control_number);
    self->finished = true;
}

const char *billing_x12_pending(const billing_x12_t *self, size_t *len)
{
    *len = self->len;
    return self->buf;
}

void billing_x12_take(billing_x12_t *self)
{
    self->len = 0;
    self->buf[0] = '\0';
}

int64_t billing_x12_claims(const billing_x12_t *self)
{
    return self->claims;
}
