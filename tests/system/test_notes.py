"""Progress notes through the HTTPS API: templates as data, notes for an
encounter, a group meeting's attending clients and free-standing contacts,
the lifecycle (draft with If-Match versions -> signed with an attestation
and a content hash -> signed addenda), late entries, supervision
(co-signature queue, approve / return with comments), overdue documentation
for the specialist and their supervisor, search within scope, Part 2
labels and SUD counseling notes kept apart, role limits, the note.* events,
and every bad input refused with nothing stored: editing a signed note,
signing with required sections empty, a note for an encounter the client did
not attend, tampered ciphertext (reported as damaged, never returned),
oversize text and invalid UTF-8. A planted note text is looked for in a
raw dump of the database and must not be there."""

import hashlib
import itertools
import os
import subprocess
import time
import uuid

from harness import SCALE, StackTestCase, launch, new_client, run_binary

_SLOTS = itertools.count(1)


def past_slot():
    """A one-hour meeting in the past, at a time no other test in the class uses."""
    n = next(_SLOTS)
    day = "2026-%02d-%02d" % (1 + n // 24 // 28, 1 + n // 24 % 28)
    return {"start": "%sT%02d:00:00Z" % (day, n % 24), "end": "%sT%02d:50:00Z" % (day, n % 24)}


def content_hash(note_id, client_id, template_id, sections):
    """The service's content hash (services/notes/note_logic.c), recomputed."""
    h = hashlib.sha256()
    for field in ["beacon-note-v1", note_id, client_id, template_id] + \
            [x for key, text in sections for x in (key, text)]:
        data = field.encode()
        h.update(b"%d:" % len(data) + data)
    return h.hexdigest()


GIRP = {"goal": "Keep stable housing", "intervention": "Shared my own experience of renting",
        "response": "Engaged, asked for the tenants' rights leaflet",
        "plan": "Visit the housing office together next week"}


def sections(d):
    return [{"key": k, "text": v} for k, v in d.items()]


class NoteTests(StackTestCase):
    settings = {"allow_bootstrap": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.org = launch.Org(cls.stack).bootstrap(time_zone="America/New_York")
        cls.site = cls.org.site_id
        cls.peer = cls.org.add_staff(["peer_specialist"])
        cls.peer2 = cls.org.add_staff(["peer_specialist"])
        cls.new_peer = cls.org.add_staff(["peer_specialist"])
        cls.sup = cls.org.add_staff(["supervisor"])
        cls.billing = cls.org.add_staff(["billing"])
        cls.analyst = cls.org.add_staff(["analyst"])
        cls.far_site = cls.org.add_site()
        cls.far_sup = cls.org.add_staff(["supervisor"], site_ids=[cls.far_site])

    # -- helpers ------------------------------------------------------------------

    def client(self, who=None):
        r = self.req("POST", "/api/v1/clients", new_client(allow_duplicate=True),
                     headers=(who or self.peer).auth)
        self.assertEqual(r.status, 201, r.body)
        return r.json()["id"]

    def encounter(self, client_id, who=None):
        who = who or self.peer
        r = self.req("POST", "/api/v1/appointments",
                     dict(past_slot(), client_id=client_id, mode="in_person"), headers=who.auth)
        self.assertEqual(r.status, 201, r.body)
        e = self.req("POST", "/api/v1/appointments/%s/complete" % r.json()["id"], {},
                     headers=who.auth)
        self.assertEqual(e.status, 201, e.body)
        return e.json()

    def note(self, who=None, expect=201, **body):
        body.setdefault("template_id", "girp")
        r = self.req("POST", "/api/v1/notes", body, headers=(who or self.peer).auth)
        self.assertEqual(r.status, expect, r.body)
        return r.json()

    def get(self, note_id, who=None, expect=200):
        r = self.req("GET", "/api/v1/notes/" + note_id, headers=(who or self.peer).auth)
        self.assertEqual(r.status, expect, r.body)
        return r.json()

    def save(self, note, secs, who=None, version=None):
        return self.req("PUT", "/api/v1/notes/%s/draft" % note["id"], {"sections": secs},
                        headers=dict((who or self.peer).auth,
                                     **{"If-Match": '"%d"' % (version or note["version"])}))

    def sign(self, note_id, who=None, **body):
        body.setdefault("attest", True)
        return self.req("POST", "/api/v1/notes/%s/sign" % note_id, body,
                        headers=(who or self.peer).auth)

    def contact_note(self, who=None, client_id=None, text=None, **body):
        who = who or self.peer
        secs = dict(GIRP, goal=text) if text else GIRP
        return self.note(who=who, client_id=client_id or self.client(who),
                         contact_kind="phone_call", sections=sections(secs), **body)

    def admin_psql(self, sql):
        """As the postgres superuser: the only account that passes the notes
        tables' FORCEd row security without a scope (the owner does not)."""
        parts = launch.conninfo_parse(self.stack.database_url)
        return launch.psql(launch.conninfo_format(dict(parts, user="postgres")), sql)

    def outbox(self, topic):
        return int(self.admin_psql("SELECT count(*) FROM events.outbox WHERE producer = 'notes' "
                                   "AND topic = '%s'" % topic).strip())

    # -- templates ----------------------------------------------------------------

    def test_templates_ship_as_data_and_agencies_add_their_own(self):
        r = self.req("GET", "/api/v1/note-templates", headers=self.peer.auth)
        self.assertEqual(r.status, 200, r.body)
        got = {t["id"]: t for t in r.json()["templates"]}
        self.assertTrue({"girp", "dap", "soap"} <= set(got), got.keys())
        self.assertEqual([s["key"] for s in got["girp"]["sections"]],
                         ["goal", "intervention", "response", "plan"])
        self.assertTrue(got["soap"]["shipped"])
        self.assertFalse(next(s for s in got["soap"]["sections"]
                              if s["key"] == "objective").get("required", False))
        tpl = {"id": "crisis-" + uuid.uuid4().hex[:6], "name": "Crisis contact",
               "sections": [{"key": "situation", "label": "Situation", "required": True,
                             "help": "What happened"},
                            {"key": "safety_plan", "label": "Safety plan", "required": True},
                            {"key": "follow_up", "label": "Follow-up"}]}
        self.assertProblem(self.req("POST", "/api/v1/note-templates", tpl,
                                    headers=self.peer.auth), 403)
        r = self.req("POST", "/api/v1/note-templates", tpl, headers=self.sup.auth)
        self.assertEqual(r.status, 201, r.body)
        self.assertFalse(r.json().get("shipped", False))
        self.assertProblem(self.req("POST", "/api/v1/note-templates", tpl,
                                    headers=self.sup.auth), 409, field="id")
        self.assertProblem(self.req("POST", "/api/v1/note-templates", dict(tpl, id="girp"),
                                    headers=self.sup.auth), 409, field="id")
        bad = [(dict(tpl, id="Bad Id"), "id"),
               (dict(tpl, id="x1", sections=[]), "sections"),
               (dict(tpl, id="x2", sections=[{"key": "a", "label": "A", "required": True},
                                             {"key": "a", "label": "B"}]), "sections[1].key"),
               (dict(tpl, id="x3", sections=[{"key": "a", "label": "A"}]), "sections")]
        for body, field in bad:
            with self.subTest(field=field):
                self.assertProblem(self.req("POST", "/api/v1/note-templates", body,
                                            headers=self.sup.auth), 400, field=field)
        listed = self.req("GET", "/api/v1/note-templates", headers=self.peer.auth).json()
        self.assertIn(tpl["id"], [t["id"] for t in listed["templates"]])
        # A note on the agency's template: its required sections apply at signing.
        n = self.note(client_id=self.client(), contact_kind="outreach", template_id=tpl["id"],
                      sections=[{"key": "situation", "text": "Met at the shelter"}])
        r = self.sign(n["id"])
        self.assertProblem(r, 422, field="sections.safety_plan")

    # -- lifecycle ----------------------------------------------------------------

    def test_draft_autosave_sign_and_addendum(self):
        c = self.client()
        e = self.encounter(c)
        n = self.note(client_id=c, encounter_id=e["id"], tags=["housing"],
                      sections=[{"key": "goal", "text": GIRP["goal"]}])
        self.assertEqual((n["status"], n["version"], n["kind"], n["encounter_id"], n["client_id"],
                          n["author_id"], n["site_id"], n["part2"], n["category"]),
                         ("draft", 1, "encounter", e["id"], c, self.peer.id, self.site, True,
                          "progress"))
        self.assertEqual(n["occurred_at"], e["start"])
        got = self.req("GET", "/api/v1/notes/" + n["id"], headers=self.peer.auth)
        self.assertEqual(got.header("ETag"), '"1"')
        self.assertEqual(got.json()["sections"], [{"key": "goal", "text": GIRP["goal"]}])
        # One note per encounter.
        self.assertProblem(self.req("POST", "/api/v1/notes",
                                    {"client_id": c, "encounter_id": e["id"],
                                     "template_id": "girp"}, headers=self.peer.auth), 409)
        # Autosave: If-Match required, a stale version refused, nothing lost.
        path = "/api/v1/notes/%s/draft" % n["id"]
        self.assertProblem(self.req("PUT", path, {"sections": sections(GIRP)},
                                    headers=self.peer.auth), 428)
        partial = sections({k: GIRP[k] for k in ("goal", "intervention", "response")})
        r = self.save(n, partial)
        self.assertEqual((r.status, r.json()["version"]), (200, 2), r.body)
        self.assertEqual(r.header("ETag"), '"2"')
        self.assertProblem(self.save(n, sections(GIRP), version=1), 412)
        r = self.req("PUT", path, {"sections": sections(GIRP)},
                     headers=dict(self.peer.auth, **{"If-Match": '"0"'}))
        self.assertProblem(r, 412)
        self.assertEqual(self.get(n["id"])["sections"], partial)
        # Only the author edits; a colleague without site caseloads does not even see it.
        self.assertProblem(self.save(n, sections(GIRP), who=self.peer2, version=2), 404)
        self.assertProblem(self.save(n, sections(GIRP), who=self.sup, version=2), 403)
        # Signing: attestation required, required sections filled.
        self.assertProblem(self.sign(n["id"], attest=False), 400, field="attest")
        self.assertProblem(self.sign(n["id"]), 422, field="sections.plan")
        r = self.save(n, sections(dict(GIRP, plan="   ")), version=2)
        self.assertEqual(r.status, 200, r.body)
        self.assertProblem(self.sign(n["id"]), 422, field="sections.plan")
        r = self.save(n, sections(GIRP), version=3)
        self.assertEqual(r.status, 200, r.body)
        signed = self.sign(n["id"], expected_version=4)
        self.assertEqual(signed.status, 200, signed.body)
        s = signed.json()
        self.assertEqual((s["status"], s["signed_by"], s["version"]), ("signed", self.peer.id, 5))
        self.assertTrue(s["signed_at"] and s["attestation"])
        self.assertEqual(s["content_hash"],
                         content_hash(n["id"], c, "girp", list(GIRP.items())))
        # The encounter was months ago: a late entry, with the real time of signing.
        self.assertTrue(s["late_entry"])
        self.assertGreater(s["signed_at"], "2026-11")
        # Signed is final: edits and a second signature are refused; the text is unchanged.
        r = self.save(n, sections(dict(GIRP, plan="changed")), version=5)
        body = self.assertProblem(r, 422)
        self.assertIn("addendum", body["detail"])
        self.assertProblem(self.sign(n["id"]), 422)
        self.assertEqual(self.get(n["id"])["sections"], sections(GIRP))
        # Addenda: signed, shown with the original, in order.
        path = "/api/v1/notes/%s/addenda" % n["id"]
        self.assertProblem(self.req("POST", path, {"text": "x"}, headers=self.peer.auth), 400,
                           field="attest")
        self.assertProblem(self.req("POST", path, {"text": "  ", "attest": True},
                                    headers=self.peer.auth), 400, field="text")
        before = self.outbox("addendum.added")
        a1 = self.req("POST", path, {"text": "Correction: the visit is on Tuesday", "attest": True},
                      headers=self.peer.auth)
        self.assertEqual(a1.status, 201, a1.body)
        a2 = self.req("POST", path, {"text": "Client called to confirm", "attest": True},
                      headers=self.peer.auth)
        self.assertEqual(a2.status, 201, a2.body)
        got = self.get(n["id"])
        self.assertEqual([a["text"] for a in got["addenda"]],
                         ["Correction: the visit is on Tuesday", "Client called to confirm"])
        self.assertTrue(all(len(a["content_hash"]) == 64 and a["signed_at"]
                            for a in got["addenda"]))
        self.assertEqual((got["sections"], got["content_hash"], got["status"]),
                         (sections(GIRP), s["content_hash"], "signed"))
        self.assertEqual(self.outbox("addendum.added"), before + 2)
        # An addendum to a draft is refused: edit the draft.
        d = self.contact_note()
        self.assertProblem(self.req("POST", "/api/v1/notes/%s/addenda" % d["id"],
                                    {"text": "more", "attest": True}, headers=self.peer.auth), 422)

    def test_signed_notes_cannot_change_even_in_the_database(self):
        n = self.contact_note()
        self.assertEqual(self.sign(n["id"]).status, 200)
        with self.assertRaises(launch.LaunchError) as cm:
            self.admin_psql("UPDATE notes.notes SET tags = '{x}' WHERE id = '%s'" % n["id"])
        self.assertIn("signed", str(cm.exception))

    def test_contact_note_on_time_is_not_late_and_signing_emits_an_event(self):
        before = self.outbox("note.signed")
        n = self.contact_note(tags=["coordination"])
        self.assertEqual((n["kind"], n["contact_kind"], n["encounter_id"]),
                         ("contact", "phone_call", ""))
        s = self.sign(n["id"], attestation="Written from my call notes").json()
        self.assertEqual((s["status"], s["late_entry"], s["attestation"]),
                         ("signed", False, "Written from my call notes"))
        self.assertEqual(self.outbox("note.signed"), before + 1)
        # Every read and write of the note is in the audit log.
        rows = self.admin_psql("SELECT action || ':' || outcome FROM audit.events "
                               "WHERE resource_type = 'note' AND resource_id = '%s' ORDER BY at"
                               % n["id"]).split()
        self.assertEqual(rows[:2], ["create:ok", "sign:ok"])
        self.get(n["id"])
        self.assertTrue(self.wait_for(lambda: "read:ok" in self.admin_psql(
            "SELECT action || ':' || outcome FROM audit.events WHERE resource_type = 'note' "
            "AND resource_id = '%s'" % n["id"]).split()))

    def wait_for(self, pred, seconds=5):
        import time
        end = time.time() + seconds * SCALE
        while time.time() < end:
            if pred():
                return True
            time.sleep(0.05)
        return pred()

    # -- encounters and groups -------------------------------------------------------

    def test_a_note_documents_the_encounter_of_the_client_who_attended(self):
        c1, c2 = self.client(), self.client()
        e = self.encounter(c1)
        r = self.req("POST", "/api/v1/notes", {"client_id": c2, "encounter_id": e["id"],
                                              "template_id": "girp"}, headers=self.peer.auth)
        self.assertProblem(r, 422, field="client_id")
        r = self.req("POST", "/api/v1/notes", {"client_id": c1, "encounter_id": str(uuid.uuid4()),
                                              "template_id": "girp"}, headers=self.peer.auth)
        self.assertProblem(r, 404, field="encounter_id")
        # Another specialist cannot document someone else's encounter they cannot see.
        r = self.req("POST", "/api/v1/notes", {"client_id": c1, "encounter_id": e["id"],
                                              "template_id": "girp"}, headers=self.peer2.auth)
        self.assertIn(r.status, (404,), r.body)
        r = self.req("POST", "/api/v1/notes", {"client_id": c1, "encounter_id": e["id"],
                                              "template_id": "girp", "contact_kind": "outreach"},
                     headers=self.peer.auth)
        self.assertProblem(r, 400, field="contact_kind")

    def test_group_meeting_gives_each_attending_client_a_prefilled_note(self):
        g = self.req("POST", "/api/v1/group-sessions", {
            "site_id": self.site, "topic": "relapse_prevention", "capacity": 10, "minutes": 60,
            "start_time": "07:00", "rule": {"freq": "weekly", "start_date": "2026-10-05",
                                            "count": 1}}, headers=self.peer.auth)
        self.assertEqual(g.status, 201, g.body)
        gid = g.json()["id"]
        c1, c2, c3 = self.client(), self.client(), self.client()
        for c in (c1, c2, c3):
            r = self.req("POST", "/api/v1/group-sessions/%s/roster" % gid, {"client_id": c},
                         headers=self.peer.auth)
            self.assertEqual(r.status, 201, r.body)
        occ = self.req("GET", "/api/v1/group-occurrences?group_id=%s&from=2026-10-01&to=2026-10-31"
                       % gid, headers=self.peer.auth).json()["occurrences"][0]
        url = "/api/v1/group-occurrences/" + occ["id"]
        r = self.req("PUT", url + "/attendance", {"attendance": [
            {"client_id": c1, "status": "present"}, {"client_id": c2, "status": "absent"},
            {"client_id": c3, "status": "present"}]}, headers=self.peer.auth)
        self.assertEqual(r.status, 200, r.body)
        # Before completion there is nothing to document.
        self.assertProblem(self.req("POST", url + "/notes", {"template_id": "dap"},
                                    headers=self.peer.auth), 404)
        r = self.req("POST", url + "/complete", {}, headers=self.peer.auth)
        self.assertEqual(r.status, 201, r.body)
        summary = [{"key": "data", "text": "Group discussed triggers at holidays"}]
        r = self.req("POST", url + "/notes", {"template_id": "dap", "summary": summary,
                                              "tags": ["group"]}, headers=self.peer.auth)
        self.assertEqual(r.status, 201, r.body)
        notes = r.json()["notes"]
        self.assertEqual(sorted(n["client_id"] for n in notes), sorted([c1, c3]))
        for n in notes:
            self.assertEqual((n["group_occurrence_id"], n["status"], n["sections"], n["tags"]),
                             (occ["id"], "draft", summary, ["group"]))
        # Each note is the client's own: individualised and signed separately.
        n1 = next(n for n in notes if n["client_id"] == c1)
        own = [{"key": "data", "text": "Shared a plan for the holidays"},
               {"key": "assessment", "text": "Confident"}, {"key": "plan", "text": "Next week"}]
        self.assertEqual(self.save(n1, own).status, 200)
        self.assertEqual(self.sign(n1["id"]).json()["status"], "signed")
        n3 = next(n for n in notes if n["client_id"] == c3)
        self.assertEqual(self.get(n3["id"])["sections"], summary)
        # The absent client did not attend: no note for them.
        r = self.req("POST", "/api/v1/notes", {"client_id": c2, "group_occurrence_id": occ["id"],
                                              "template_id": "dap"}, headers=self.peer.auth)
        self.assertProblem(r, 422, field="client_id")
        # Again: the attending clients have their notes already.
        r = self.req("POST", url + "/notes", {"template_id": "dap"}, headers=self.peer.auth)
        self.assertEqual((r.status, r.json().get("notes", [])), (201, []), r.body)
        r = self.req("POST", "/api/v1/notes", {"client_id": c1, "group_occurrence_id": occ["id"],
                                              "template_id": "dap"}, headers=self.peer.auth)
        self.assertProblem(r, 409)

    # -- supervision ---------------------------------------------------------------

    def test_new_specialists_notes_wait_for_a_supervisors_cosignature(self):
        path = "/api/v1/staff/%s/supervision" % self.new_peer.id
        self.assertProblem(self.req("PUT", path, {"requires_cosign": True},
                                    headers=self.peer.auth), 403)
        self.assertProblem(self.req("PUT", path, {"requires_cosign": True},
                                    headers=self.far_sup.auth), 404)
        r = self.req("PUT", path, {"requires_cosign": True}, headers=self.sup.auth)
        self.assertEqual((r.status, r.json()["requires_cosign"]), (200, True), r.body)
        n = self.contact_note(who=self.new_peer)
        s = self.sign(n["id"], who=self.new_peer).json()
        self.assertEqual((s["status"], s["review_status"]), ("awaiting_review", "pending"))
        # Locked while it waits.
        self.assertProblem(self.save(s, sections(GIRP), who=self.new_peer), 422)
        queue = self.req("GET", "/api/v1/note-reviews", headers=self.sup.auth)
        self.assertEqual(queue.status, 200, queue.body)
        self.assertIn(n["id"], [x["id"] for x in queue.json()["notes"]])
        self.assertFalse(any(x.get("sections") for x in queue.json()["notes"]))
        self.assertProblem(self.req("GET", "/api/v1/note-reviews", headers=self.peer.auth), 403)
        far = self.req("GET", "/api/v1/note-reviews", headers=self.far_sup.auth).json()
        self.assertNotIn(n["id"], [x["id"] for x in far.get("notes", [])])
        # Returned with comments (required), back to draft for the author.
        rpath = "/api/v1/notes/%s/review" % n["id"]
        self.assertProblem(self.req("POST", rpath, {"outcome": "returned"},
                                    headers=self.sup.auth), 400, field="comments")
        self.assertProblem(self.req("POST", rpath, {"outcome": "maybe"},
                                    headers=self.sup.auth), 400, field="outcome")
        before = self.outbox("review.completed")
        r = self.req("POST", rpath, {"outcome": "returned",
                                     "comments": "Say what the client agreed to do"},
                     headers=self.sup.auth)
        self.assertEqual(r.status, 200, r.body)
        back = r.json()
        self.assertEqual((back["status"], back["review_status"], back.get("content_hash", "")),
                         ("draft", "returned", ""))
        mine = self.get(n["id"], who=self.new_peer)
        self.assertEqual([(x["outcome"], x["comments"], x["reviewer_id"]) for x in mine["reviews"]],
                         [("returned", "Say what the client agreed to do", self.sup.id)])
        r = self.save(mine, sections(dict(GIRP, plan="Client agreed to call the office")),
                      who=self.new_peer)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.sign(n["id"], who=self.new_peer).json()["status"], "awaiting_review")
        r = self.req("POST", rpath, {"outcome": "approved"}, headers=self.sup.auth)
        self.assertEqual(r.status, 200, r.body)
        done = r.json()
        self.assertEqual((done["status"], done["review_status"], done["cosigned_by"]),
                         ("signed", "approved", self.sup.id))
        self.assertTrue(done["cosigned_at"])
        self.assertEqual(self.outbox("review.completed"), before + 2)
        self.assertProblem(self.req("POST", rpath, {"outcome": "approved"},
                                    headers=self.sup.auth), 422)
        queue = self.req("GET", "/api/v1/note-reviews", headers=self.sup.auth).json()
        self.assertNotIn(n["id"], [x["id"] for x in queue.get("notes", [])])
        # Others sign without a review.
        self.assertEqual(self.sign(self.contact_note()["id"]).json()["status"], "signed")
        self.req("PUT", path, {"requires_cosign": False}, headers=self.sup.auth)

    # -- overdue --------------------------------------------------------------------

    def test_overdue_documentation_for_the_specialist_and_the_supervisor(self):
        c = self.client()
        e1, e2, e3 = self.encounter(c), self.encounter(c), self.encounter(c)
        draft = self.note(client_id=c, encounter_id=e2["id"])
        done = self.note(client_id=c, encounter_id=e3["id"], sections=sections(GIRP))
        self.assertEqual(self.sign(done["id"]).status, 200)
        before = self.outbox("note.overdue")
        r = self.req("GET", "/api/v1/overdue-notes", headers=self.peer.auth)
        self.assertEqual(r.status, 200, r.body)
        body = r.json()
        self.assertEqual(body["overdue_hours"], 72)
        items = {o["encounter_id"]: o for o in body["overdue"]}
        self.assertIn(e1["id"], items)
        self.assertEqual((items[e2["id"]]["note_id"], items[e2["id"]]["note_status"]),
                         (draft["id"], "draft"))
        self.assertNotIn(e3["id"], items)
        self.assertGreater(items[e1["id"]]["hours_since"], 72)
        sup = self.req("GET", "/api/v1/overdue-notes?site_id=" + self.site,
                       headers=self.sup.auth).json()
        self.assertTrue({e1["id"], e2["id"]} <= {o["encounter_id"] for o in sup["overdue"]})
        mine = self.req("GET", "/api/v1/overdue-notes?staff_id=" + self.peer.id,
                        headers=self.sup.auth).json()
        self.assertTrue({e1["id"], e2["id"]} <= {o["encounter_id"] for o in mine["overdue"]})
        other = self.req("GET", "/api/v1/overdue-notes", headers=self.peer2.auth).json()
        self.assertFalse({e1["id"], e2["id"]} & {o["encounter_id"] for o in other.get("overdue", [])})
        self.assertProblem(self.req("GET", "/api/v1/overdue-notes?staff_id=" + self.peer.id,
                                    headers=self.peer2.auth), 403)
        far = self.req("GET", "/api/v1/overdue-notes", headers=self.far_sup.auth).json()
        self.assertFalse({e1["id"]} & {o["encounter_id"] for o in far.get("overdue", [])})
        # note.overdue once per encounter, however often the lists are read.
        after = self.outbox("note.overdue")
        self.assertGreaterEqual(after - before, 2)
        self.req("GET", "/api/v1/overdue-notes", headers=self.peer.auth)
        self.assertEqual(self.outbox("note.overdue"), after)
        # Signing the draft takes it off the lists.
        full = self.save(draft, sections(GIRP)).json()
        self.assertEqual(self.sign(full["id"]).status, 200)
        again = self.req("GET", "/api/v1/overdue-notes", headers=self.peer.auth).json()
        self.assertNotIn(e2["id"], {o["encounter_id"] for o in again["overdue"]})

    # -- search ---------------------------------------------------------------------

    def test_search_within_scope_without_text(self):
        c = self.client()
        a = self.contact_note(client_id=c, tags=["housing"], occurred_at="2026-03-02T10:00:00Z")
        b = self.contact_note(client_id=c, template_id="girp", tags=["employment"],
                              occurred_at="2026-04-02T10:00:00Z")
        self.sign(b["id"])
        dap = self.note(client_id=c, contact_kind="outreach", template_id="dap",
                        occurred_at="2026-05-02T10:00:00Z")

        def ids(query, who=None):
            r = self.req("GET", "/api/v1/notes?" + query, headers=(who or self.peer).auth)
            self.assertEqual(r.status, 200, r.body)
            notes = r.json().get("notes", [])
            self.assertFalse(any(n.get("sections") for n in notes), "lists carry no text")
            return [n["id"] for n in notes]

        self.assertEqual(ids("client_id=" + c), [dap["id"], b["id"], a["id"]])
        self.assertEqual(ids("client_id=%s&tag=housing" % c), [a["id"]])
        self.assertEqual(ids("client_id=%s&status=signed" % c), [b["id"]])
        self.assertEqual(ids("client_id=%s&template_id=dap" % c), [dap["id"]])
        self.assertEqual(ids("client_id=%s&from=2026-03-15&to=2026-04-30" % c), [b["id"]])
        self.assertEqual(ids("client_id=%s&author_id=me&limit=2" % c), [dap["id"], b["id"]])
        self.assertEqual(ids("client_id=%s&author_id=%s" % (c, self.peer2.id)), [])
        self.assertEqual(set(ids("client_id=" + c, who=self.sup)), {a["id"], b["id"], dap["id"]})
        self.assertEqual(ids("client_id=" + c, who=self.peer2), [])
        self.assertEqual(ids("client_id=" + c, who=self.far_sup), [])
        for q, field in [("client_id=nope", "client_id"), ("from=yesterday", "from"),
                         ("status=lost", "status"), ("limit=1000", "limit"),
                         ("category=secret", "category")]:
            with self.subTest(q=q):
                self.assertProblem(self.req("GET", "/api/v1/notes?" + q, headers=self.peer.auth),
                                   400, field=field)

    # -- Part 2 and roles -------------------------------------------------------------

    def test_part2_labels_and_sud_counseling_notes_kept_apart(self):
        caseload_site = self.org.add_site(allow_site_caseload=True)
        author = self.org.add_staff(["peer_specialist"], site_ids=[caseload_site])
        colleague = self.org.add_staff(["peer_specialist"], site_ids=[caseload_site])
        sup = self.org.add_staff(["supervisor"], site_ids=[caseload_site])
        c = self.client(who=author)
        progress = self.contact_note(who=author, client_id=c)
        sud = self.contact_note(who=author, client_id=c, category="sud_counseling",
                                not_part2=True)
        plain = self.contact_note(who=author, client_id=c, not_part2=True)
        self.assertEqual((progress["part2"], sud["part2"], plain["part2"]), (True, True, False))
        # A colleague at a site-caseload site reads progress notes, never SUD counseling notes.
        self.get(progress["id"], who=colleague)
        self.get(sud["id"], who=colleague, expect=404)
        self.get(sud["id"], who=sup)
        self.assertEqual(self.get(sud["id"], who=author)["category"], "sud_counseling")
        listed = self.req("GET", "/api/v1/notes?client_id=" + c, headers=author.auth).json()
        self.assertNotIn(sud["id"], [n["id"] for n in listed["notes"]])
        apart = self.req("GET", "/api/v1/notes?category=sud_counseling&client_id=" + c,
                         headers=author.auth).json()
        self.assertEqual([n["id"] for n in apart["notes"]], [sud["id"]])
        theirs = self.req("GET", "/api/v1/notes?category=sud_counseling&client_id=" + c,
                          headers=colleague.auth).json()
        self.assertEqual(theirs.get("notes", []), [])

    def test_billing_analyst_and_admins_never_receive_note_text(self):
        n = self.contact_note()
        for who in (self.billing, self.analyst, self.org.admin):
            for method, path in [("GET", "/api/v1/notes/" + n["id"]),
                                 ("GET", "/api/v1/notes?client_id=" + n["client_id"]),
                                 ("GET", "/api/v1/note-templates")]:
                with self.subTest(role=who.roles, path=path):
                    r = self.req(method, path, headers=who.auth)
                    self.assertProblem(r, 403)
                    self.assertNotIn(GIRP["plan"], r.body.decode("utf-8", "replace"))

    # -- bad input ----------------------------------------------------------------------

    def count_notes(self, client_id):
        r = self.req("GET", "/api/v1/notes?limit=200&client_id=" + client_id,
                     headers=self.peer.auth)
        return len(r.json().get("notes", []))

    def test_bad_input_is_refused_with_a_clear_error_and_nothing_stored(self):
        c = self.client()
        base = {"client_id": c, "contact_kind": "phone_call", "template_id": "girp"}
        cases = [
            (dict(base, template_id="nope"), 400, "template_id"),
            (dict(base, template_id=""), 400, "template_id"),
            (dict(base, contact_kind=""), 400, "contact_kind"),
            (dict(base, contact_kind="telepathy"), 400, "contact_kind"),
            (dict(base, client_id="not-a-uuid"), 400, "client_id"),
            (dict(base, client_id=str(uuid.uuid4())), 404, "client_id"),
            (dict(base, category="secret"), 400, "category"),
            (dict(base, tags=["Not A Tag"]), 400, "tags"),
            (dict(base, occurred_at="last tuesday"), 400, "occurred_at"),
            (dict(base, sections=[{"key": "mood", "text": "x"}]), 400, "sections[0].key"),
            (dict(base, sections=[{"key": "goal", "text": "a"}, {"key": "goal", "text": "b"}]),
             400, "sections[1].key"),
            (dict(base, sections=[{"key": "goal", "text": "x" * 20001}]), 400,
             "sections[0].text"),
            (dict(base, sections=[{"key": k, "text": "y" * 19000} for k in GIRP]), 400,
             "sections[3].text"),
            (dict(base, sections=[{"key": "goal", "text": "bell \u0007 here"}]), 400,
             "sections[0].text"),
            (dict(base, encounter_id=str(uuid.uuid4()), group_occurrence_id=str(uuid.uuid4())),
             400, "group_occurrence_id"),
        ]
        for body, status, field in cases:
            with self.subTest(field=field, status=status):
                r = self.req("POST", "/api/v1/notes", body, headers=self.peer.auth)
                self.assertProblem(r, status, field=field)
        # Invalid UTF-8 and an oversize body never reach the service.
        raw = b'{"client_id":"%s","contact_kind":"phone_call","template_id":"girp",' \
              b'"sections":[{"key":"goal","text":"caf\xc3\x28"}]}' % c.encode()
        r = self.req("POST", "/api/v1/notes", raw,
                     headers=dict(self.peer.auth, **{"Content-Type": "application/json"}))
        self.assertProblem(r, 400)
        big = dict(base, sections=[{"key": "goal", "text": "z" * 2000000}])
        r = self.req("POST", "/api/v1/notes", big, headers=self.peer.auth)
        self.assertIn(r.status, (400, 413), r.body[:200])
        self.assertEqual(self.count_notes(c), 0)
        # A draft keeps its text when a save is refused.
        n = self.contact_note(client_id=c)
        for secs, field in [([{"key": "goal", "text": "x" * 20001}], "sections[0].text"),
                            ([{"key": "goal", "text": "nul\u0000byte"}], None),
                            ([{"key": "feelings", "text": "x"}], "sections[0].key")]:
            with self.subTest(field=field):
                self.assertProblem(self.save(n, secs), 400, field=field)
        self.assertEqual(self.get(n["id"])["sections"], sections(GIRP))
        self.assertEqual(self.count_notes(c), 1)
        self.assertProblem(self.req("GET", "/api/v1/notes/not-a-uuid", headers=self.peer.auth),
                           400, field="id")
        self.assertProblem(self.req("GET", "/api/v1/notes/" + str(uuid.uuid4()),
                                    headers=self.peer.auth), 404)

    # -- encryption at rest ----------------------------------------------------------------

    def test_tampered_ciphertext_is_reported_as_damaged_never_returned(self):
        secret = "tamper-" + uuid.uuid4().hex
        n = self.contact_note(text=secret)
        other = self.contact_note(text="other " + secret)
        self.assertEqual(self.sign(other["id"]).status, 200)
        stored = self.admin_psql("SELECT body_enc FROM notes.notes WHERE id = '%s'"
                                 % n["id"]).strip()
        self.assertTrue(stored.startswith("v1:"), stored[:20])
        self.assertNotIn(secret, stored)
        # One bit of the ciphertext changed, as the database owner could.
        prefix, _, b64 = stored.rpartition(":")
        i = len(b64) // 2
        flipped = b64[:i] + ("A" if b64[i] != "A" else "B") + b64[i + 1:]
        self.admin_psql("UPDATE notes.notes SET body_enc = '%s:%s' WHERE id = '%s'"
                        % (prefix, flipped, n["id"]))
        got = self.req("GET", "/api/v1/notes/" + n["id"], headers=self.peer.auth)
        self.assertEqual(got.status, 200, got.body)
        self.assertTrue(got.json()["damaged"])
        self.assertEqual(got.json().get("sections", []), [])
        self.assertNotIn(secret, got.body.decode("utf-8", "replace"))
        body = self.assertProblem(self.sign(n["id"]), 500)
        self.assertIn("damaged", body["detail"])
        self.assertIn("data-loss", body["type"])
        # A valid envelope moved onto another note (or client) does not open either.
        good = self.admin_psql("SELECT body_enc FROM notes.notes WHERE id = '%s'"
                               % other["id"]).strip()
        self.admin_psql("UPDATE notes.notes SET body_enc = '%s' WHERE id = '%s'" % (good, n["id"]))
        got = self.get(n["id"])
        self.assertTrue(got["damaged"])
        self.assertNotIn(secret, str(got))
        # The damaged read is in the audit log as an error.
        self.assertTrue(self.wait_for(lambda: "error" in self.admin_psql(
            "SELECT outcome FROM audit.events WHERE resource_type = 'note' AND action = 'read' "
            "AND resource_id = '%s'" % n["id"]).split()))
        # The intact note is untouched.
        self.assertFalse(self.get(other["id"]).get("damaged", False))

    def test_a_raw_database_dump_does_not_hold_the_note_text(self):
        planted = "planted-note-text-" + uuid.uuid4().hex
        n = self.contact_note(text=planted)
        self.sign(n["id"])
        self.req("POST", "/api/v1/notes/%s/addenda" % n["id"],
                 {"text": "addendum " + planted, "attest": True}, headers=self.peer.auth)
        self.assertIn(planted, str(self.get(n["id"])))
        parts = launch.conninfo_parse(self.stack.database_url)
        pg_dump = "pg_dump"
        for d in ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin"):
            if os.path.exists(os.path.join(d, "pg_dump")):
                pg_dump = os.path.join(d, "pg_dump")
        dump = subprocess.run([pg_dump, launch.conninfo_format(dict(parts, user="postgres")),
                               "--data-only"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=60 * SCALE)
        self.assertEqual(dump.returncode, 0, dump.stderr[-500:])
        self.assertIn(n["id"].encode(), dump.stdout)
        self.assertNotIn(planted.encode(), dump.stdout)

    def test_row_security_is_forced_on_every_notes_table(self):
        rows = self.admin_psql("SELECT relname || ':' || relrowsecurity || relforcerowsecurity "
                               "FROM pg_class WHERE relnamespace = 'notes'::regnamespace "
                               "AND relkind = 'r' ORDER BY relname").split()
        self.assertEqual(len(rows), 6, rows)
        for row in rows:
            self.assertTrue(row.endswith(":truetrue"), row)
        # The application role owns none of them.
        owners = self.admin_psql("SELECT DISTINCT tableowner FROM pg_tables "
                                 "WHERE schemaname = 'notes'").split()
        self.assertNotIn("beacon_app", owners)

    def test_row_security_holds_without_the_handlers(self):
        c = self.client()
        progress = self.contact_note(client_id=c)
        sud = self.contact_note(client_id=c, category="sud_counseling")
        agency = self.admin_psql("SELECT agency_id FROM identity.sites WHERE id = '%s'"
                                 % self.site).strip()
        app = self.stack.app_database_url()

        def visible(staff, roles, sites, caseload=""):
            sql = ("SELECT set_config('beacon.staff_id', '%s', false), "
                   "set_config('beacon.agency_id', '%s', false), "
                   "set_config('beacon.site_ids', '%s', false), "
                   "set_config('beacon.roles', '%s', false), "
                   "set_config('beacon.caseload_site_ids', '%s', false); "
                   "SELECT id FROM notes.notes WHERE client_id = '%s'" % (
                       staff, agency, ",".join(sites), roles, caseload, c))
            return set(launch.psql(app, sql).split()[1:])

        both = {progress["id"], sud["id"]}
        self.assertEqual(visible("", "", []), set())
        self.assertEqual(visible(self.peer.id, "peer_specialist", [self.site]), both)
        self.assertEqual(visible(self.peer.id, "billing", [self.site]), set())
        self.assertEqual(visible(self.peer.id, "analyst", [self.site]), set())
        self.assertEqual(visible(self.peer2.id, "peer_specialist", [self.site]), set())
        self.assertEqual(visible(self.peer2.id, "peer_specialist", [self.site], self.site),
                         {progress["id"]})
        self.assertEqual(visible(self.sup.id, "supervisor", [self.site]), both)
        self.assertEqual(visible(self.far_sup.id, "supervisor", [self.far_site]), set())
        # Writes: only as oneself, and never to a signed note.
        with self.assertRaises(launch.LaunchError):
            launch.psql(app, "SELECT set_config('beacon.staff_id', '%s', false), "
                             "set_config('beacon.agency_id', '%s', false), "
                             "set_config('beacon.site_ids', '%s', false), "
                             "set_config('beacon.roles', 'peer_specialist', false); "
                             "INSERT INTO notes.notes (id, agency_id, site_id, client_id, "
                             "author_id, kind, contact_kind, template_id, body_enc, occurred_at, "
                             "updated_by) VALUES (gen_random_uuid(), '%s', '%s', '%s', '%s', "
                             "'contact', 'other', 'girp', 'x', now(), '%s')"
                        % (self.peer2.id, agency, self.site, agency, self.site, c, self.peer.id,
                           self.peer.id))
        with self.assertRaises(launch.LaunchError):
            launch.psql(app, "ALTER TABLE notes.notes NO FORCE ROW LEVEL SECURITY")
        with self.assertRaises(launch.LaunchError):
            launch.psql(app, "SET row_security = off; SELECT count(*) FROM notes.notes")

    def test_plaintext_bench_mode_is_refused_outside_a_benchmark(self):
        st = self.stack
        env = {"BEACON_DATABASE_URL": st.app_database_url(),
               "BEACON_MIGRATION_DATABASE_URL": st.database_url,
               "BEACON_MIGRATIONS_DIR": os.path.join(st.repo_root, "services"),
               "BEACON_COMMON_MIGRATIONS_DIR": os.path.join(st.repo_root, "common", "migrations"),
               "BEACON_FIELD_KEYS_FILE": st.field_keys_path,
               "BEACON_BIND_ENDPOINT": "tcp://127.0.0.1:1",
               "BEACON_BENCH_PLAINTEXT_NOTES": "true"}
        r = run_binary("notes", env_extra=env, timeout=30)
        self.assertNotEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertIn("benchmarks only", r.stderr)


class NoteKeyRotationTests(StackTestCase):
    """After a key rotation the notes service seals note text again under the
    new key in the background; everything still reads, and a tampered value
    is left as it is (still reported damaged), never laundered."""

    settings = {"allow_bootstrap": True}
    process_settings = {"notes": {"rewrap_scan_seconds": 1}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.org = launch.Org(cls.stack).bootstrap()
        cls.peer = cls.org.add_staff(["peer_specialist"])
        cls.new_peer = cls.org.add_staff(["peer_specialist"])
        cls.sup = cls.org.add_staff(["supervisor"])

    def admin_psql(self, sql):
        parts = launch.conninfo_parse(self.stack.database_url)
        return launch.psql(launch.conninfo_format(dict(parts, user="postgres")), sql)

    def post(self, who, path, body, expect):
        r = self.req("POST", path, body, headers=who.auth)
        self.assertEqual(r.status, expect, r.body)
        return r.json()

    def key_ids(self):
        rows = self.admin_psql(
            "SELECT split_part(body_enc, ':', 2) FROM notes.notes UNION ALL "
            "SELECT split_part(body_enc, ':', 2) FROM notes.addenda UNION ALL "
            "SELECT split_part(comments_enc, ':', 2) FROM notes.reviews "
            "WHERE comments_enc IS NOT NULL")
        return rows.split()

    def test_rotation_reseals_every_value_under_the_new_key(self):
        def note(who, secret):
            c = self.post(who, "/api/v1/clients", new_client(allow_duplicate=True), 201)["id"]
            return self.post(who, "/api/v1/notes", {
                "client_id": c, "contact_kind": "outreach", "template_id": "girp",
                "sections": sections(dict(GIRP, goal=secret))}, 201)
        signed = note(self.peer, "signed before rotation")
        self.post(self.peer, "/api/v1/notes/%s/sign" % signed["id"], {"attest": True}, 200)
        self.post(self.peer, "/api/v1/notes/%s/addenda" % signed["id"],
                  {"text": "addendum before rotation", "attest": True}, 201)
        draft = note(self.peer, "draft before rotation")
        r = self.req("PUT", "/api/v1/staff/%s/supervision" % self.new_peer.id,
                     {"requires_cosign": True}, headers=self.sup.auth)
        self.assertEqual(r.status, 200, r.body)
        reviewed = note(self.new_peer, "reviewed before rotation")
        self.post(self.new_peer, "/api/v1/notes/%s/sign" % reviewed["id"], {"attest": True}, 200)
        self.post(self.sup, "/api/v1/notes/%s/review" % reviewed["id"],
                  {"outcome": "returned", "comments": "comments before rotation"}, 200)
        damaged = note(self.peer, "damaged before rotation")
        self.admin_psql("UPDATE notes.notes SET body_enc = body_enc || 'AAAA' WHERE id = '%s'"
                        % damaged["id"])
        old = set(self.key_ids())
        self.assertEqual(len(old), 1, old)
        # Rotate: a new active key, the notes service restarted to load it.
        proc = subprocess.run(["bash", os.path.join(self.stack.repo_root, "deploy", "gen-keys.sh"),
                               self.stack.keys_dir, "--rotate"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.stack.restart_process("notes")
        self.assertHealthy()
        import time
        deadline = time.time() + 20 * SCALE
        while time.time() < deadline:
            ids = self.key_ids()
            if len(set(ids)) == 2 and ids.count(next(iter(old))) == 1:
                break
            time.sleep(0.2)
        ids = self.key_ids()
        new = set(ids) - old
        self.assertEqual(len(new), 1, ids)
        # Everything under the new key but the damaged body, left as it was.
        self.assertEqual(ids.count(next(iter(old))), 1, ids)
        got = self.req("GET", "/api/v1/notes/" + signed["id"], headers=self.peer.auth).json()
        self.assertEqual((got["sections"][0]["text"], got["addenda"][0]["text"], got["status"]),
                         ("signed before rotation", "addendum before rotation", "signed"))
        self.assertFalse(got.get("damaged", False))
        got = self.req("GET", "/api/v1/notes/" + reviewed["id"], headers=self.new_peer.auth).json()
        self.assertEqual(got["reviews"][0]["comments"], "comments before rotation")
        got = self.req("GET", "/api/v1/notes/" + draft["id"], headers=self.peer.auth).json()
        self.assertEqual(got["sections"][0]["text"], "draft before rotation")
        self.assertTrue(self.req("GET", "/api/v1/notes/" + damaged["id"],
                                 headers=self.peer.auth).json()["damaged"])
        # New text goes under the new key at once.
        fresh = note(self.peer, "after rotation")
        stored = self.admin_psql("SELECT split_part(body_enc, ':', 2) FROM notes.notes "
                                 "WHERE id = '%s'" % fresh["id"]).strip()
        self.assertEqual({stored}, new)


class NoteOverdueScanTests(StackTestCase):
    """note.overdue is announced by the clock: the notes service's scanner
    finds an encounter left without a signed note overdue_hours after it
    ended and announces it once, with nobody opening a list."""

    settings = {"allow_bootstrap": True}
    process_settings = {"notes": {"overdue_hours": 1, "overdue_scan_seconds": 1}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.org = launch.Org(cls.stack).bootstrap()
        cls.peer = cls.org.add_staff(["peer_specialist"])

    def admin_psql(self, sql):
        parts = launch.conninfo_parse(self.stack.database_url)
        return launch.psql(launch.conninfo_format(dict(parts, user="postgres")), sql)

    def announced(self, encounter_id):
        """(notices recorded for the encounter, note.overdue events in the outbox)"""
        return tuple(int(x) for x in self.admin_psql(
            "SELECT (SELECT count(*) FROM notes.overdue_notices WHERE encounter_id = '%s'), "
            "(SELECT count(*) FROM events.outbox WHERE producer = 'notes' "
            "AND topic = 'note.overdue' AND position(convert_to('%s', 'UTF8') IN payload) > 0)"
            % (encounter_id, encounter_id)).strip().split("|"))

    def test_an_encounter_without_a_signed_note_is_announced_once(self):
        r = self.req("POST", "/api/v1/clients", new_client(allow_duplicate=True),
                     headers=self.peer.auth)
        self.assertEqual(r.status, 201, r.body)
        day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 2 * 86400))
        a = self.req("POST", "/api/v1/appointments",
                     {"client_id": r.json()["id"], "start": day + "T15:00:00Z",
                      "end": day + "T15:45:00Z", "mode": "telephone"}, headers=self.peer.auth)
        self.assertEqual(a.status, 201, a.body)
        e = self.req("POST", "/api/v1/appointments/%s/complete" % a.json()["id"], {},
                     headers=self.peer.auth)
        self.assertEqual(e.status, 201, e.body)
        encounter = e.json()["id"]
        deadline = time.time() + 15
        while self.announced(encounter) != (1, 1) and time.time() < deadline:
            time.sleep(0.3)
        self.assertEqual(self.announced(encounter), (1, 1))
        # Later scans and the overdue list do not announce it again.
        time.sleep(2.5)
        overdue = self.req("GET", "/api/v1/overdue-notes", headers=self.peer.auth)
        self.assertEqual(overdue.status, 200, overdue.body)
        self.assertIn(encounter, {o["encounter_id"] for o in overdue.json()["overdue"]})
        self.assertEqual(self.announced(encounter), (1, 1))
