/*  plan: what one event means for the rollups (services/reporting/consumer.c
 *  applies it): additive measures for the batched reporting.bump_many, a
 *  statement that needs state, or a reason to reject the event. Payloads
 *  are checked here, so that nothing PostgreSQL would refuse or misread is
 *  sent. */
#ifndef RP_PLAN_H
#define RP_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "beacon.pb-c.h"
#include "types.pb-c.h"

/* The additive measures an event may carry, in reporting.bump_many's order. */
enum {
    RP_ENCOUNTERS, RP_MINUTES, RP_UNITS, RP_GROUP_ATTENDANCE, RP_NOSHOWS, RP_ENROLLMENTS,
    RP_DISCHARGES, RP_ACTIVE_DELTA, RP_NOTES_SIGNED, RP_NOTES_LATE, RP_NOTES_OVERDUE,
    RP_REFERRALS_MADE, RP_NMEASURES
};
#define RP_NCOLS (5 + RP_NMEASURES + 1) /* agency, site, staff, at, day, measures, client */
#define RP_COL_CLIENT (RP_NCOLS - 1)

/* What applying one event means: additive measures for the batch (add), a
 * statement that needs state (sql, run at once), both, neither (a topic
 * reporting does not count), or a reason to reject it. */
typedef struct {
    const char *reject;
    bool add;
    const char *agency, *site, *staff, *at, *day; /* staff, at or day may be NULL */
    const char *client; /* a client seen at `at` (people served), or NULL */
    int64_t m[RP_NMEASURES];
    const char *sql;
    const char *params[8];
    int n;
    char text[3][24];
    char *owned[4]; /* malloc'd parameters (array literals); rp_plan_free */
} rp_plan_t;

/* Decides what ev means for the rollups (p: its producer's index in
 * rp_producers). *m is the decoded payload the plan's strings point into:
 * the caller frees it (protobuf_c_message_free_unpacked) and then the plan
 * (rp_plan_free). */
void rp_plan(int p, const Beacon__Event *ev, ProtobufCMessage **m, rp_plan_t *plan);
/* Frees what the plan owns (not the plan itself). */
void rp_plan_free(rp_plan_t *plan);

#endif
