"""TLS and the wire: only TLS 1.2/1.3 with AEAD ciphers, and bytes that are not
TLS at all get an answer or a clean close while the gateway keeps serving."""

import os
import socket
import ssl
import struct
import warnings

from harness import SCALE, StackTestCase

AEAD_TLS13 = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
              "TLS_CHACHA20_POLY1305_SHA256"}


def tls_client_hello(version, ciphers):
    """A minimal ClientHello record offering only `version` (no
    supported_versions extension, so a server cannot pick a newer one)."""
    cs = b"".join(struct.pack(">H", c) for c in ciphers)
    host = b"localhost"
    sni = struct.pack(">BH", 0, len(host)) + host
    sni = struct.pack(">H", len(sni)) + sni
    groups = struct.pack(">HH", 23, 29)                        # secp256r1, x25519
    groups = struct.pack(">H", len(groups)) + groups
    sigalgs = struct.pack(">HHH", 0x0403, 0x0804, 0x0401)
    sigalgs = struct.pack(">H", len(sigalgs)) + sigalgs
    ext = (struct.pack(">HH", 0, len(sni)) + sni
           + struct.pack(">HH", 10, len(groups)) + groups
           + struct.pack(">HHBB", 11, 2, 1, 0)                 # ec_point_formats
           + struct.pack(">HH", 13, len(sigalgs)) + sigalgs)
    body = (struct.pack(">H", version) + os.urandom(32) + b"\x00"
            + struct.pack(">H", len(cs)) + cs + b"\x01\x00"
            + struct.pack(">H", len(ext)) + ext)
    handshake = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack(">H", len(handshake)) + handshake


def read_some(sock, limit=4096, timeout=5.0):
    """Reads until EOF, `limit` bytes or timeout. Returns (data, how it ended):
    'eof', 'reset', 'limit' or 'timeout'."""
    sock.settimeout(timeout)
    data = b""
    try:
        while len(data) < limit:
            chunk = sock.recv(limit - len(data))
            if not chunk:
                return data, "eof"
            data += chunk
        return data, "limit"
    except socket.timeout:
        return data, "timeout"
    except ConnectionResetError:
        return data, "reset"


class TransportTests(StackTestCase):

    def _handshake(self, **ctx_args):
        ctx = self.stack.ssl_context(**ctx_args)
        raw = socket.create_connection((self.stack.host, self.stack.port), timeout=10 * SCALE)
        try:
            tls = ctx.wrap_socket(raw, server_hostname="localhost")
        except BaseException:
            raw.close()
            raise
        return tls

    def _get_healthz_over(self, tls):
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data, _ = read_some(tls, limit=1 << 20, timeout=10 * SCALE)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:200])

    def test_tls13_works_with_an_aead_cipher(self):
        tls = self._handshake(minimum=ssl.TLSVersion.TLSv1_3, maximum=ssl.TLSVersion.TLSv1_3)
        try:
            self.assertEqual(tls.version(), "TLSv1.3")
            self.assertIn(tls.cipher()[0], AEAD_TLS13)
            self._get_healthz_over(tls)
        finally:
            tls.close()

    def test_tls12_works_with_an_aead_cipher(self):
        # Offer everything OpenSSL has, CBC included: the server must pick AEAD.
        tls = self._handshake(minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_2,
                              ciphers="ALL:@SECLEVEL=0")
        try:
            self.assertEqual(tls.version(), "TLSv1.2")
            name = tls.cipher()[0]
            self.assertTrue("GCM" in name or "CHACHA20" in name, name)
            self.assertTrue(name.startswith("ECDHE-") or name.startswith("DHE-"),
                            "no forward secrecy: " + name)
            self._get_healthz_over(tls)
        finally:
            tls.close()

    def test_tls12_with_only_cbc_ciphers_is_refused(self):
        cbc = ("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256:"
               "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:"
               "AES128-SHA:AES256-SHA:AES128-SHA256")
        with self.assertRaises(ssl.SSLError):
            tls = self._handshake(minimum=ssl.TLSVersion.TLSv1_2,
                                  maximum=ssl.TLSVersion.TLSv1_2, ciphers=cbc)
            tls.close()
        self.assertHealthy()

    def test_tls11_client_is_refused(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                tls = self._handshake(minimum=ssl.TLSVersion.TLSv1,
                                      maximum=ssl.TLSVersion.TLSv1_1,
                                      ciphers="DEFAULT:@SECLEVEL=0")
            except ssl.SSLError as e:
                if e.reason in ("NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE"):
                    self.skipTest("this Python/OpenSSL cannot offer TLS 1.1 (%s); "
                                  "test_tls11_hello_bytes_are_refused covers it" % e.reason)
                return  # refused by the server: what we want
            except (ConnectionResetError, BrokenPipeError):
                return
            version = tls.version()
            tls.close()
            self.fail("TLS 1.1 handshake succeeded (%s)" % version)

    def test_tls11_hello_bytes_are_refused(self):
        # Independent of the local OpenSSL: a hand-made TLS 1.1 ClientHello.
        hello = tls_client_hello(0x0302, [0xC009, 0xC00A, 0xC013, 0xC014, 0x002F, 0x0035])
        with socket.create_connection((self.stack.host, self.stack.port),
                                      timeout=10 * SCALE) as s:
            s.sendall(hello)
            data, how = read_some(s, timeout=5 * SCALE)
        self.assertNotEqual(how, "timeout", "no answer to a TLS 1.1 hello: %r" % data[:50])
        if data:
            self.assertEqual(data[0], 0x15, "expected a TLS alert, got %r" % data[:50])
            self.assertGreaterEqual(len(data), 7, data)
            self.assertEqual(data[5], 2, "alert not fatal: %r" % data[:7])
            self.assertIn(data[6], (70, 40), "alert %d (70 = protocol_version)" % data[6])
        self.assertHealthy()

    def test_plain_http_on_the_tls_port(self):
        with socket.create_connection((self.stack.host, self.stack.port),
                                      timeout=10 * SCALE) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            data, how = read_some(s, timeout=5 * SCALE)
        # A clear answer: an HTTP 400, a TLS alert, or a plain close; never a
        # hang and never a served page.
        self.assertNotEqual(how, "timeout", "connection left hanging: %r" % data[:80])
        if data.startswith(b"HTTP/"):
            self.assertRegex(data.split(b"\r\n", 1)[0], rb"^HTTP/1\.[01] 400 ")
        elif data:
            self.assertEqual(data[0], 0x15, "neither HTTP 400 nor a TLS alert: %r" % data[:80])
        self.assertHealthy()

    def test_garbage_and_early_close_do_not_hurt(self):
        for payload in (b"\x00" * 64, os.urandom(2048), b"\x16\x03\x01\xff\xff", b""):
            with socket.create_connection((self.stack.host, self.stack.port),
                                          timeout=10 * SCALE) as s:
                if payload:
                    s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                _, how = read_some(s, timeout=5 * SCALE)
                self.assertNotEqual(how, "timeout", payload[:8])
        # Half a handshake, then silence from a second client: others are served.
        idle = socket.create_connection((self.stack.host, self.stack.port), timeout=10 * SCALE)
        try:
            idle.sendall(tls_client_hello(0x0303, [0xC02B, 0xC02F])[:20])
            self.assertHealthy()
        finally:
            idle.close()
        self.assertHealthy()

    def test_certificate_is_checked_against_the_host_name(self):
        ctx = self.stack.ssl_context()
        with socket.create_connection((self.stack.host, self.stack.port),
                                      timeout=10 * SCALE) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                self.assertIn(tls.version(), ("TLSv1.2", "TLSv1.3"))
        with socket.create_connection((self.stack.host, self.stack.port),
                                      timeout=10 * SCALE) as raw:
            with self.assertRaises(ssl.SSLCertVerificationError):
                ctx.wrap_socket(raw, server_hostname="not-localhost.example").close()
