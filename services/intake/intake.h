/*  intake: handlers of the intake service, one file per resource. */
#ifndef INTAKE_H
#define INTAKE_H

#include "bc_service.h"
#include "intake.pb-c.h"

extern const bc_service_def_t intake_service;

/* clients.c */
bc_code_t clients_create(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t clients_get(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

/* break_glass.c */
bc_code_t break_glass_open(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);
bc_code_t break_glass_list(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

#endif
