/*  libFuzzer target for bc_json: the bytes are parsed with jansson and
 *  converted into each beacon.test message (tests/unit/testmsg.proto), with
 *  and without BC_JSON_STRINGS. Whatever converts must come back out as JSON,
 *  convert again, and give the same JSON and the same protobuf encoding; every
 *  allocation goes through a counting allocator that must balance.
 *
 *  `make fuzz` builds and runs it; by hand (from the repository root, after
 *  `make build/tests/test_json` has generated build/gen/testmsg.pb-c.[ch]):
 *    clang -g -O1 -fsanitize=fuzzer,address,undefined -Icommon -Ibuild/gen \
 *      tests/fuzz/fuzz_json.c common/bc_json.c common/bc_error.c \
 *      build/gen/testmsg.pb-c.c -ljansson -lprotobuf-c -lcrypto -lm -o build/fuzz/fuzz_json
 *    ./build/fuzz/fuzz_json -max_total_time=60 CORPUS_DIR
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bc_json.h"
#include "testmsg.pb-c.h"

static long s_live;

static void *s_alloc(void *data, size_t size)
{
    (void)data;
    s_live++;
    return malloc(size);
}

static void s_free(void *data, void *ptr)
{
    (void)data;
    if (ptr)
        s_live--;
    free(ptr);
}

static ProtobufCAllocator s_allocator = {s_alloc, s_free, NULL};

static void s_check(int ok)
{
    if (!ok)
        abort();
}

/* Packs msg into a new buffer (caller frees). */
static uint8_t *s_pack(const ProtobufCMessage *msg, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(*len ? *len : 1);
    s_check(buf != NULL);
    s_check(protobuf_c_message_pack(msg, buf) == *len);
    return buf;
}

static void s_convert(const json_t *json, const ProtobufCMessageDescriptor *desc, int flags)
{
    bc_error_t err;
    ProtobufCMessage *msg = bc_json_to_pb(json, desc, &s_allocator, flags, &err);
    if (!msg) {
        s_check(err.code == BC_INVALID_ARGUMENT && err.message[0] != '\0');
        s_check(s_live == 0);
        return;
    }
    /* anything accepted is within the depth limit */
    s_check(bc_json_depth(json, BC_JSON_MAX_DEPTH) <= BC_JSON_MAX_DEPTH);

    json_t *out = bc_pb_to_json(msg, 0, &err);
    s_check(out != NULL);
    char *text = json_dumps(out, JSON_COMPACT);
    s_check(text != NULL);
    free(text);

    ProtobufCMessage *again = bc_json_to_pb(out, desc, &s_allocator, 0, &err);
    s_check(again != NULL);
    json_t *out2 = bc_pb_to_json(again, 0, &err);
    s_check(out2 != NULL && json_equal(out, out2));

    size_t len1, len2;
    uint8_t *buf1 = s_pack(msg, &len1), *buf2 = s_pack(again, &len2);
    s_check(len1 == len2 && memcmp(buf1, buf2, len1) == 0);
    free(buf1);
    free(buf2);

    json_t *full = bc_pb_to_json(msg, BC_JSON_EMIT_DEFAULTS, &err);
    s_check(full != NULL);
    ProtobufCMessage *third = bc_json_to_pb(full, desc, &s_allocator, 0, &err);
    s_check(third != NULL);
    uint8_t *buf3 = s_pack(third, &len2);
    buf1 = s_pack(msg, &len1);
    s_check(len1 == len2 && memcmp(buf1, buf3, len1) == 0);
    free(buf1);
    free(buf3);

    json_decref(out);
    json_decref(out2);
    json_decref(full);
    protobuf_c_message_free_unpacked(msg, &s_allocator);
    protobuf_c_message_free_unpacked(again, &s_allocator);
    protobuf_c_message_free_unpacked(third, &s_allocator);
    s_check(s_live == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t error;
    json_t *json = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
    if (!json)
        return 0;
    const ProtobufCMessageDescriptor *descs[] = {
        &beacon__test__person__descriptor,
        &beacon__test__scalars__descriptor,
        &beacon__test__node__descriptor,
        &beacon__test__address__descriptor,
    };
    for (size_t i = 0; i < sizeof descs / sizeof descs[0]; i++) {
        s_convert(json, descs[i], 0);
        s_convert(json, descs[i], BC_JSON_STRINGS);
    }
    bc_json_depth(json, BC_JSON_MAX_DEPTH);
    json_decref(json);
    return 0;
}
