/*  libFuzzer target for the bytes a service accepts from the network: the
 *  request envelope and its payload go through the real dispatcher (bounded
 *  unpack, envelope checks, method lookup), and the reply decoder the
 *  gateway uses. Run with `make fuzz`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bc_rpc.h"
#include "bc_service.h"
#include "intake.pb-c.h"

static bc_code_t s_refuse(bc_call_t *call, const ProtobufCMessage *in, ProtobufCMessage **out)
{
    (void)in;
    (void)out;
    return bc_call_fail(call, BC_NOT_FOUND, "id", "fuzz");
}

/* Every method of intake refuses (Health and Metrics are built in): the
 * target is the envelope handling, not the handlers. Built from the descriptor so new
 * methods need no change here. */
static bc_method_t s_methods[64];
static bc_service_def_t s_def = {.name = "intake",
                                 .descriptor = &beacon__intake__intake__descriptor,
                                 .methods = s_methods};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bc_dispatcher_t *d;
    static bc_arena_t *arena;
    if (!d) {
        const ProtobufCServiceDescriptor *sd = &beacon__intake__intake__descriptor;
        size_t n = 0;
        for (unsigned i = 0; i < sd->n_methods && n < 63; i++)
            if (strcmp(sd->methods[i].name, "Health") && strcmp(sd->methods[i].name, "Metrics"))
                s_methods[n++] = (bc_method_t){sd->methods[i].name, s_refuse};
        s_methods[n] = (bc_method_t){NULL, NULL};
        bc_error_t err;
        d = bc_dispatcher_new(&s_def, NULL, NULL, &err);
        if (!d)
            abort(); /* a target that cannot start must not pass silently */
        arena = bc_arena_new(16384);
    }
    uint8_t *reply = NULL;
    bc_dispatch(d, NULL, arena, data, size, 0, &reply);
    free(reply);
    bc_arena_reset(arena);
    bc_error_t err;
    ProtobufCMessage *m = bc_pb_unpack(&beacon__reply__descriptor, NULL, data, size,
                                       BC_PB_MAX_DEPTH, &err);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
