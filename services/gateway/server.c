/*  server: one gateway thread. Its own h2o event loop and listening socket
 *  (SO_REUSEPORT spreads connections across threads), its own ZeroMQ client
 *  per service with the ZMQ_FD watched by the loop, and a check of the first
 *  bytes of each connection so that plain HTTP sent to the TLS port gets a
 *  readable 400 instead of a silent close.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "bc_log.h"
#include "bc_service.h"
#include "bc_util.h"
#include "gateway.h"

volatile sig_atomic_t gw_stop;

bc_rpc_client_t *gw_client(gw_thread_t *t, const char *service)
{
    for (int i = 0; i < GW_NCLIENTS; i++)
        if (!strcmp(bc_rpc_client_service(t->clients[i]), service))
            return t->clients[i];
    return NULL;
}

/* ---- first bytes: TLS or not ------------------------------------------- */

typedef struct {
    h2o_timeout_entry_t timeout; /* first member: the entry points at us */
    h2o_socket_t *sock;
    gw_thread_t *thread;
} s_sniff_t;

static void s_sniff_free(h2o_socket_t *sock)
{
    s_sniff_t *s = sock->data;
    if (s) {
        h2o_timeout_unlink(&s->timeout);
        free(s);
        sock->data = NULL;
    }
}

static void s_on_rejected_written(h2o_socket_t *sock, const char *err)
{
    (void)err;
    h2o_socket_close(sock);
}

static void s_on_sniff_timeout(h2o_timeout_entry_t *entry)
{
    s_sniff_t *s = (s_sniff_t *)entry;
    h2o_socket_t *sock = s->sock;
    s_sniff_free(sock);
    h2o_socket_close(sock);
}

static void s_on_first_bytes(h2o_socket_t *sock, const char *err)
{
    if (err) {
        s_sniff_free(sock);
        h2o_socket_close(sock);
        return;
    }
    if (sock->input->size == 0)
        return;
    s_sniff_t *s = sock->data;
    gw_thread_t *t = s->thread;
    s_sniff_free(sock);
    h2o_socket_read_stop(sock);
    /* A TLS connection starts with a handshake record (content type 22). */
    if ((unsigned char)sock->input->bytes[0] == 0x16) {
        h2o_accept(&t->accept_ctx, sock);
        return;
    }
    size_t len;
    const char *text = gw_plaintext_rejection(&len);
    h2o_iovec_t buf = h2o_iovec_init(text, len);
    bc_info("refused a connection that did not start a TLS handshake");
    gw_metrics_plaintext_refused(t->metrics);
    h2o_socket_write(sock, &buf, 1, s_on_rejected_written);
}

static void s_on_accept(h2o_socket_t *listener, const char *err)
{
    if (err)
        return;
    gw_thread_t *t = listener->data;
    for (int i = 0; i < 64; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (!sock)
            return;
        s_sniff_t *s = calloc(1, sizeof *s);
        if (!s) {
            h2o_socket_close(sock);
            return;
        }
        s->sock = sock;
        s->thread = t;
        s->timeout.cb = s_on_sniff_timeout;
        sock->data = s;
        h2o_timeout_link(t->ctx.loop, &t->sniff_timeout, &s->timeout);
        h2o_socket_read_start(sock, s_on_first_bytes);
    }
}

static int s_listen(gw_thread_t *t)
{
    const char *host = bc_config_str(t->config, "listen_address");
    int port = (int)bc_config_int(t->config, "listen_port");
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        sl = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        sl = sizeof *a6;
    } else {
        bc_err("listen_address '%s' is not an IP address", host);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, SOMAXCONN) < 0) {
        bc_err("cannot listen on %s:%d: %s", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    t->listener = h2o_evloop_socket_create(t->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    t->listener->data = t;
    h2o_socket_read_start(t->listener, s_on_accept);
    return 0;
}

/* ---- ZeroMQ inside the loop ---------------------------------------------- */

/* ZMQ_FD became readable: the socket's state may have changed. Processing
 * (which reads ZMQ_EVENTS) also resets the descriptor. */
static void s_on_zmq(h2o_socket_t *sock, const char *err)
{
    (void)err;
    gw_thread_t *t = sock->data;
    int64_t now = bc_now_ms();
    for (int i = 0; i < GW_NCLIENTS; i++)
        if (t->zsocks[i] == sock)
            bc_rpc_client_process(t->clients[i], now);
}

static int s_connect_services(gw_thread_t *t)
{
    int maxmsg = (int)bc_config_int(t->config, "rpc_max_message_bytes");
    int hb = (int)bc_config_int(t->config, "rpc_heartbeat_ms");
    for (int i = 0; i < GW_NCLIENTS; i++) {
        char key[64];
        const char *name = i < GW_NSERVICES ? bc_service_names[i] : GW_IDENTITY;
        snprintf(key, sizeof key, "endpoint_%s", name);
        const char *endpoint =
            i < GW_NSERVICES ? bc_config_str(t->config, key) : GW_IDENTITY_ENDPOINT;
        bc_error_t err;
        t->clients[i] = bc_rpc_client_new(t->zctx, name, endpoint, maxmsg, hb, &err);
        if (!t->clients[i]) {
            bc_err("%s (%s)", err.message, err.detail);
            return -1;
        }
        /* h2o closes the descriptor it watches; ZeroMQ owns the original. */
        int fd = dup(bc_rpc_client_fd(t->clients[i]));
        t->zsocks[i] = h2o_evloop_socket_create(t->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
        t->zsocks[i]->data = t;
        h2o_socket_read_start(t->zsocks[i], s_on_zmq);
    }
    return 0;
}

/* ---- the thread -------------------------------------------------------- */

void *gw_thread_main(void *arg)
{
    gw_thread_t *t = arg;
    h2o_timeout_init(t->ctx.loop, &t->sniff_timeout, 10000);
    t->reply_arena = bc_arena_new(65536);
    if (s_connect_services(t) < 0 || s_listen(t) < 0) {
        gw_stop = 1;
        return (void *)1;
    }
    int64_t drain_until = 0;
    for (;;) {
        int64_t now = bc_now_ms();
        int64_t wait = 100;
        for (int i = 0; i < GW_NCLIENTS; i++) {
            /* Sends made during the last turn may have consumed the edge on
             * ZMQ_FD: drain before sleeping. A client with nothing pending
             * can have no reply to take; skipping it saves the syscalls a
             * ZeroMQ state check costs. */
            if (bc_rpc_client_pending(t->clients[i]) == 0)
                continue;
            /* A callback run here (outside h2o's loop) queues h2o work, such
             * as a write-completion that re-arms reading a keep-alive
             * connection, that only the next loop turn performs: don't sleep
             * before that turn. */
            if (bc_rpc_client_process(t->clients[i], now) > 0)
                wait = 0;
            int64_t w = bc_rpc_client_next_timeout(t->clients[i], now);
            if (w >= 0 && w < wait)
                wait = w;
        }
        if (gw_stop) {
            if (!drain_until) {
                drain_until = bc_mono_ms() + 5000;
                h2o_socket_read_stop(t->listener); /* no new connections */
            }
            if (t->inflight == 0 || bc_mono_ms() > drain_until)
                break;
        }
        h2o_evloop_run(t->ctx.loop, (int32_t)wait);
    }
    h2o_socket_close(t->listener);
    t->listener = NULL;
    for (int i = 0; i < GW_NCLIENTS; i++) {
        if (t->zsocks[i])
            h2o_socket_close(t->zsocks[i]);
        bc_rpc_client_destroy(&t->clients[i]);
    }
    /* Let h2o finish closing what it was asked to close, then free the loop. */
    h2o_evloop_run(t->ctx.loop, 0);
    h2o_timeout_dispose(t->ctx.loop, &t->sniff_timeout);
    bc_arena_destroy(&t->reply_arena);
    return NULL;
}
