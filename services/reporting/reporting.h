/*  reporting: the reporting service's internal interface (README
 *  "Reporting"): the event consumer (consumer.c, with plan.c deciding what
 *  each event means) keeps the rollups of migration 003 and the tables of
 *  later ones; the dashboards (dashboard.c, served.c, staff_tables.c) read
 *  them; suppress.h hides small cells of de-identified views; regions.c
 *  lets agency admins define regions. */
#ifndef REPORTING_H
#define REPORTING_H

#include "bc_service.h"
#include "reporting.pb-c.h"

/* The producers whose events reporting applies, in a fixed order. */
#define RP_NPRODUCERS 5
extern const char *const rp_producers[RP_NPRODUCERS];
/* Index of a producer in rp_producers, or -1. */
int rp_producer_index(const char *name);

typedef struct rp_consumer rp_consumer_t;
/* Starts the consumer thread (see consumer.c). NULL with err when an
 * endpoint is unusable; the database may be down (it retries). */
rp_consumer_t *rp_consumer_start(const bc_config_t *config, bc_error_t *err);
/* Stops the thread and frees everything; NULL allowed. */
void rp_consumer_stop(rp_consumer_t **self);

extern const bc_service_def_t reporting_service;

bc_code_t dashboard_site(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t dashboard_agency(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t dashboard_region(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t dashboard_export(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

/* regions.c: regions through the API (agency admins). */
bc_code_t regions_create(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t regions_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t regions_set_agencies(bc_call_t *call, const ProtobufCMessage *in,
                               ProtobufCMessage **out);

#endif
