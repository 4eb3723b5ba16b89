"""The HTTPS API as a client sees it: health, the clients slice, and every kind
of bad input (each must get a clear status and an RFC 9457 problem body while
the gateway keeps serving)."""

import datetime
import http.client
import json
import threading
import uuid

from harness import (PROBLEM, SCALE, SERVICES, UUID_RE, StackTestCase, new_client)

MAX_BODY = 32768  # small enough to test cheaply, big enough for 10,000-deep JSON


class ApiTests(StackTestCase):
    sign_in = "peer_specialist"
    settings = {"max_body_bytes": MAX_BODY}

    # -- health -------------------------------------------------------------

    def test_healthz_reports_all_five_services_ok(self):
        resp = self.req("GET", "/healthz")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.content_type, "application/json", resp)
        self.assertRequestId(resp)
        body = resp.json()
        self.assertEqual(body.get("status"), "ok", body)
        self.assertIsInstance(body.get("services"), dict, body)
        self.assertEqual(sorted(body["services"]), sorted(SERVICES), body)
        for name in SERVICES:
            self.assertEqual(body["services"][name].get("status"), "ok", (name, body))

    # -- clients ------------------------------------------------------------

    def test_create_client_then_get_it_back(self):
        sent = new_client(given_name="Zoë", family_name="Nguyễn-" + uuid.uuid4().hex[:6],
                          preferred_name="Zo", pronouns="she/her",
                          preferred_language="vi", date_of_birth="1991-02-28")
        resp = self.req("POST", "/api/v1/clients", sent)
        self.assertEqual(resp.status, 201, resp)
        self.assertEqual(resp.content_type, "application/json", resp)
        self.assertRequestId(resp)
        created = resp.json()
        for key, value in sent.items():
            self.assertEqual(created.get(key), value, (key, created))
        self.assertRegex(created.get("id", ""), UUID_RE)
        self.assertIn(created.get("status"), ("active", "inactive", "discharged"), created)
        created_at = created.get("created_at", "")
        self.assertTrue(created_at, created)
        stamp = datetime.datetime.fromisoformat(created_at.replace("Z", "+00:00"))
        self.assertIsNotNone(stamp.tzinfo, created_at)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLess(abs((now - stamp).total_seconds()), 300, created_at)

        got = self.req("GET", "/api/v1/clients/" + created["id"])
        self.assertEqual(got.status, 200, got)
        self.assertEqual(got.content_type, "application/json", got)
        self.assertEqual(got.json(), created)

    def test_create_with_only_required_fields(self):
        _, created = self.create_client()
        got = self.req("GET", "/api/v1/clients/" + created["id"])
        self.assertEqual(got.status, 200, got)
        self.assertEqual(got.json(), created)

    def test_json_with_charset_parameter_is_accepted(self):
        resp = self.req("POST", "/api/v1/clients", json.dumps(new_client()),
                        headers={"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(resp.status, 201, resp)

    def test_two_clients_get_different_ids(self):
        _, a = self.create_client()
        _, b = self.create_client()
        self.assertNotEqual(a["id"], b["id"])

    def test_get_unknown_client_is_404(self):
        resp = self.req("GET", "/api/v1/clients/" + str(uuid.uuid4()))
        self.assertProblem(resp, 404)

    def test_get_malformed_id_is_400(self):
        for bad in ("not-a-uuid", "12345", "0000000g-0000-0000-0000-000000000000",
                    "%27%20OR%201%3D1--"):
            with self.subTest(id=bad):
                self.assertProblem(self.req("GET", "/api/v1/clients/" + bad), 400)

    # -- bad bodies -----------------------------------------------------------

    def test_malformed_json_is_400(self):
        for body in ('{"given_name": ', "{'given_name': 'x'}", "", "{} trailing",
                     '{"given_name":"a",}', "\xff\xfe"):
            with self.subTest(body=body):
                resp = self.req("POST", "/api/v1/clients", body.encode("latin-1"),
                                headers={"Content-Type": "application/json"})
                self.assertProblem(resp, 400)
        self.assertHealthy()

    def test_non_object_json_is_400(self):
        for body in ("[]", "42", '"text"', "null"):
            with self.subTest(body=body):
                resp = self.req("POST", "/api/v1/clients", body,
                                headers={"Content-Type": "application/json"})
                self.assertProblem(resp, 400)

    def test_unknown_field_is_400_naming_it(self):
        body = new_client(favourite_colour="blue")
        self.assertProblem(self.req("POST", "/api/v1/clients", body), 400,
                           field="favourite_colour")

    def test_wrong_type_is_400_naming_the_field(self):
        for field, value in (("given_name", 42), ("family_name", ["a"]),
                             ("date_of_birth", {"y": 1990}), ("pronouns", True)):
            with self.subTest(field=field):
                body = new_client(**{field: value})
                self.assertProblem(self.req("POST", "/api/v1/clients", body), 400,
                                   field=field)

    def test_missing_required_field_is_400_naming_it(self):
        for field in ("given_name", "family_name", "date_of_birth"):
            with self.subTest(field=field):
                body = new_client()
                del body[field]
                problem = self.assertProblem(self.req("POST", "/api/v1/clients", body), 400)
                fields = [e.get("field") for e in problem.get("errors", [])]
                self.assertIn(field, fields, problem)

    def test_invalid_date_of_birth_is_400(self):
        for value in ("1990-13-45", "yesterday", "15/06/1984"):
            with self.subTest(value=value):
                body = new_client(date_of_birth=value)
                self.assertProblem(self.req("POST", "/api/v1/clients", body), 400)

    def test_body_over_limit_is_413(self):
        for size in (MAX_BODY + 1, 2 * MAX_BODY):
            with self.subTest(size=size):
                head = b'{"given_name":"'
                tail = b'","family_name":"X","date_of_birth":"1990-01-01"}'
                body = head + b"a" * (size - len(head) - len(tail)) + tail
                self.assertEqual(len(body), size)
                resp = self.req("POST", "/api/v1/clients", body,
                                headers={"Content-Type": "application/json"})
                self.assertProblem(resp, 413)
        self.assertHealthy()

    def test_chunked_body_over_limit_is_413(self):
        def chunks():
            yield b'{"given_name":"'
            for _ in range(2 * MAX_BODY // 1024):
                yield b"a" * 1024
            yield b'","family_name":"X","date_of_birth":"1990-01-01"}'
        conn = self.stack.connect(timeout=15 * SCALE)
        try:
            conn.request("POST", "/api/v1/clients", body=chunks(), encode_chunked=True,
                         headers={"Content-Type": "application/json",
                                  "Transfer-Encoding": "chunked"})
            raw = conn.getresponse()
            from launch import Response
            resp = Response(raw.status, raw.reason, raw.headers, raw.read(), 0)
        finally:
            conn.close()
        self.assertProblem(resp, 413)
        self.assertHealthy()

    def test_body_at_limit_is_accepted(self):
        body = json.dumps(new_client()).encode()
        body += b" " * (MAX_BODY - len(body))  # JSON allows trailing white space
        self.assertEqual(len(body), MAX_BODY)
        resp = self.req("POST", "/api/v1/clients", body,
                        headers={"Content-Type": "application/json"})
        self.assertEqual(resp.status, 201, resp)

    def test_deeply_nested_json_is_400_and_gateway_survives(self):
        depth = 10000
        for body in (b"[" * depth + b"]" * depth,
                     b'{"given_name":' + b"[" * depth + b"]" * depth + b"}"):
            with self.subTest(size=len(body)):
                self.assertLess(len(body), MAX_BODY)
                resp = self.req("POST", "/api/v1/clients", body,
                                headers={"Content-Type": "application/json"})
                self.assertProblem(resp, 400)
        self.assertHealthy()
        self.create_client()

    def test_wrong_content_type_is_415(self):
        body = json.dumps(new_client())
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
            with self.subTest(content_type=ctype):
                resp = self.req("POST", "/api/v1/clients", body,
                                headers={"Content-Type": ctype})
                self.assertProblem(resp, 415)

    # -- routing --------------------------------------------------------------

    def test_unknown_route_is_404(self):
        for method, path in (("GET", "/api/v1/no-such-thing"), ("GET", "/nope"),
                             ("POST", "/api/v2/clients"), ("GET", "/api/v1/clients/a/b")):
            with self.subTest(path=path):
                body = new_client() if method == "POST" else None
                self.assertProblem(self.req(method, path, body), 404)

    def test_wrong_method_is_405_with_allow(self):
        cid = str(uuid.uuid4())
        for method, path, allowed in (("DELETE", "/api/v1/clients", "POST"),
                                      ("PUT", "/api/v1/clients", "POST"),
                                      ("POST", "/api/v1/clients/" + cid, "GET"),
                                      ("DELETE", "/healthz", "GET")):
            with self.subTest(method=method, path=path):
                resp = self.req(method, path)
                self.assertProblem(resp, 405)
                allow = [m.strip().upper() for m in (resp.header("Allow") or "").split(",")]
                self.assertIn(allowed, allow, resp.headers)
                self.assertNotIn(method, allow, resp.headers)

    # -- connections and ids ------------------------------------------------------

    def test_many_requests_on_one_keep_alive_connection(self):
        conn = self.stack.connect(timeout=15 * SCALE)
        try:
            conn.connect()
            sock = conn.sock
            ids = []
            for i in range(60):
                if i % 3 == 0:
                    resp = self.req("GET", "/healthz", conn=conn)
                    self.assertEqual(resp.status, 200, resp)
                elif i % 3 == 1:
                    resp = self.req("POST", "/api/v1/clients", new_client(), conn=conn)
                    self.assertEqual(resp.status, 201, resp)
                    ids.append(resp.json()["id"])
                else:
                    resp = self.req("GET", "/api/v1/clients/" + ids[-1], conn=conn)
                    self.assertEqual(resp.status, 200, resp)
                # Error answers must not close the connection either.
                if i % 10 == 5:
                    self.assertProblem(self.req("GET", "/api/v1/nope", conn=conn), 404)
                    self.assertProblem(self.req("POST", "/api/v1/clients", "{",
                                                headers={"Content-Type": "application/json"},
                                                conn=conn), 400)
                self.assertIs(conn.sock, sock,
                              "connection was not kept alive after request %d (%d, "
                              "Connection: %s, Content-Length: %s)"
                              % (i, resp.status, resp.header("Connection"),
                                 resp.header("Content-Length")))
        finally:
            conn.close()

    def test_every_response_has_a_unique_request_id(self):
        seen = set()
        for method, path, body in (("GET", "/healthz", None),
                                   ("POST", "/api/v1/clients", new_client()),
                                   ("GET", "/api/v1/clients/" + str(uuid.uuid4()), None),
                                   ("GET", "/nope", None),
                                   ("POST", "/api/v1/clients", {"x": 1})):
            resp = self.req(method, path, body)
            rid = self.assertRequestId(resp)
            self.assertNotIn(rid, seen)
            seen.add(rid)
            if resp.content_type == PROBLEM:
                self.assertEqual(resp.json().get("request_id"), rid)

    def test_concurrent_requests_from_several_threads(self):
        threads, per_thread = 6, 15
        failures = []
        lock = threading.Lock()

        def worker(n):
            conn = self.stack.connect(timeout=20 * SCALE)
            try:
                for i in range(per_thread):
                    sent = new_client(given_name="T%d-%d" % (n, i))
                    made = self.req("POST", "/api/v1/clients", sent, conn=conn)
                    if made.status != 201:
                        raise AssertionError("POST: %r" % made)
                    created = made.json()
                    got = self.req("GET", "/api/v1/clients/" + created["id"], conn=conn)
                    if got.status != 200 or got.json() != created:
                        raise AssertionError("GET: %r vs %r" % (got, created))
            except Exception as e:  # reported below, on the main thread
                with lock:
                    failures.append("thread %d: %r" % (n, e))
            finally:
                conn.close()

        pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(120 * SCALE)
        self.assertFalse([t for t in pool if t.is_alive()], "threads still running")
        self.assertEqual(failures, [])
        self.assertHealthy()

    def test_http_1_0_request_is_answered(self):
        conn = self.stack.connect()
        try:
            conn._http_vsn, conn._http_vsn_str = 10, "HTTP/1.0"
            resp = self.req("GET", "/healthz", conn=conn)
            self.assertEqual(resp.status, 200, resp)
        finally:
            conn.close()

    def test_head_request_does_not_break_the_connection(self):
        conn = self.stack.connect()
        try:
            conn.request("HEAD", "/healthz")
            raw = conn.getresponse()
            raw.read()
            self.assertIn(raw.status, (200, 405), raw.status)
            resp = self.req("GET", "/healthz", conn=conn)
            self.assertEqual(resp.status, 200, resp)
        except (http.client.HTTPException, OSError) as e:
            self.fail("HEAD broke the connection: %r" % e)
        finally:
            conn.close()
