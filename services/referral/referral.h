/*  The referral service's definition (service.c) and handlers: the resource
 *  directory (directory.c). */
#ifndef REFERRAL_H
#define REFERRAL_H

#include "bc_service.h"
#include "referral.pb-c.h"

extern const bc_service_def_t referral_service;

/* GET /api/v1/directory/services: the agency's directory filtered by keyword, taxonomy
 * term, distance, age and language, nearest first when a point is given; not audited
 * (no PHI). */
bc_code_t directory_search(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out);

#endif
