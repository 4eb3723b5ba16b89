/*  libFuzzer target for the reporting consumer's event planning
 *  (services/reporting/plan.c), which reads events off the bus: any payload
 *  under any topic of any producer must be planned or rejected without a
 *  crash, and what it plans to send must be safe as it is: every parameter
 *  set, and the array literals it builds (staff.changed) made only of
 *  characters that need no quoting in a PostgreSQL array.
 *
 *  Input: the first byte picks the producer and the topic, the rest is the
 *  payload. `make fuzz` builds and runs it with the others. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../services/reporting/plan.c"

static const char *const s_topics[] = {
    "client.enrolled",   "client.discharged",   "assessment.completed", "client.assigned",
    "encounter.completed", "appointment.noshow", "note.signed",          "note.overdue",
    "referral.created",  "referral.closed",     "staff.changed",        "other.topic",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int p = data[0] % RP_NPRODUCERS;
    Beacon__Event ev = BEACON__EVENT__INIT;
    ev.producer = "fuzz";
    ev.seq = 1;
    ev.topic = (char *)s_topics[(data[0] / RP_NPRODUCERS) % (sizeof s_topics / sizeof *s_topics)];
    ev.occurred_at = "2026-03-02T15:00:00.000000Z";
    ev.schema_version = BC_EVENT_SCHEMA_VERSION;
    ev.payload.data = (uint8_t *)data + 1;
    ev.payload.len = size - 1;
    ProtobufCMessage *m;
    rp_plan_t plan;
    rp_plan(p, &ev, &m, &plan);
    if (!plan.reject && plan.sql) {
        if (plan.n < 1 || plan.n > 8)
            abort();
        for (int i = 0; i < plan.n; i++)
            if (!plan.params[i])
                abort();
    }
    for (size_t i = 0; i < sizeof plan.owned / sizeof *plan.owned; i++)
        if (plan.owned[i] &&
            strspn(plan.owned[i], "{},-0123456789abcdefghijklmnopqrstuvwxyzABCDEFNUL_") !=
                strlen(plan.owned[i]))
            abort();
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    rp_plan_free(&plan);
    return 0;
}
