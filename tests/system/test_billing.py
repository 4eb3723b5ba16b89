"""Medicaid billing through the HTTPS API, the whole path: intake (client
with a Medicaid ID, enrollment, diagnosis, consent naming the payer) ->
schedule -> complete -> sign the note -> batch -> the X12 837P file, parsed
by an independent strict parser (node-x12, installed from npm by this module
into tests/system/x12) and checked here for the 837P structure (envelope
control numbers, loop order, HL hierarchy, SE/GE/IEA counts, CLM total =
sum of SV1 charges). Then what must never happen: an encounter billed twice
(refused by the database too), a malformed file from delimiter characters
in names and addresses, an empty range that makes a file; and what is held
with its reasons: missing Medicaid ID, enrollment, diagnosis, consent,
signature, encounters crossing midnight, units over the daily limit.
Replacement (7) and void (8) claims, status by hand and by remittance CSV,
and the billing role's limits (never note text)."""

import concurrent.futures
import csv
import io
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import uuid

from harness import StackTestCase, launch, new_client

X12_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "x12")
PAYER = "OHMCD"
PAYER_NAME = "Ohio Medicaid"
NPI = "1234567893"          # a valid check digit (the CMS example)
SUPERVISOR_NPI = "1245319599"
NOTE_TEXT = "Walked to the pantry together; PLANTED-NOTE-TEXT-7f3e"

_DAYS = itertools.count(2)
_HOURS = itertools.count(0)


def day():
    """A service date of its own for each test (November 2026, past)."""
    return "2026-11-%02d" % next(_DAYS)


def config(**overrides):
    body = {
        "payer_name": PAYER_NAME, "submitter_id": "BEACONSUB01",
        "submitter_name": "Harbor Recovery Network", "submitter_contact_name": "Pat Biller",
        "submitter_contact_phone": "6145550100", "receiver_id": "OHMCDRCV",
        "receiver_name": "Ohio Department of Medicaid",
        "billing_provider_name": "Harbor Recovery Network", "billing_provider_npi": NPI,
        "billing_provider_taxonomy": "261QR0405X", "billing_provider_tax_id": "311234567",
        "billing_provider_address": {"line1": "100 Main St", "city": "Columbus",
                                     "state": "OH", "postal_code": "432150001"},
        "rendering_rule": "supervising", "supervising_last_name": "Rivera",
        "supervising_first_name": "Ana", "supervising_npi": SUPERVISOR_NPI,
        "rates": [{"modifiers": "", "cents": 1525}, {"modifiers": "HQ", "cents": 500},
                  {"modifiers": "95", "cents": 1525}],
        "max_units_per_day": 16,
    }
    body.update(overrides)
    return body


def ensure_node_x12():
    """npm ci into tests/system/x12 once (the lockfile pins node-x12)."""
    if os.path.isdir(os.path.join(X12_DIR, "node_modules", "node-x12")):
        return
    npm = shutil.which("npm")
    if not npm:
        raise RuntimeError("npm is needed for the X12 parser (deploy/install-deps.sh installs it)")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=X12_DIR, check=True,
                   timeout=300)


def parse_x12(data):
    """node-x12 in strict mode over data: its reading of the interchange."""
    with tempfile.NamedTemporaryFile(suffix=".x12", delete=False) as f:
        f.write(data)
        path = f.name
    try:
        out = subprocess.run(["node", os.path.join(X12_DIR, "check837.js"), path],
                             stdout=subprocess.PIPE, check=True, timeout=120).stdout
    finally:
        os.unlink(path)
    return json.loads(out)


class BillingCase(StackTestCase):
    """The stack, an agency with a payer configured, and the helpers."""
    settings = {"allow_bootstrap": True}

    @classmethod
    def setUpClass(cls):
        ensure_node_x12()
        super().setUpClass()
        cls.org = launch.Org(cls.stack).bootstrap(time_zone="America/New_York")
        cls.peer = cls.org.add_staff(["peer_specialist"])
        cls.sup = cls.org.add_staff(["supervisor"])
        cls.biller = cls.org.add_staff(["billing"])
        r = cls.stack.request("PUT", "/api/v1/billing/payers/" + PAYER, body=config(),
                              headers=cls.org.admin.auth)
        assert r.status == 200, r.body

    # -- helpers ------------------------------------------------------------------

    def client(self, medicaid="OH1234567890", enroll=True, diagnosis="F11.20", consent=True,
               **overrides):
        body = new_client(allow_duplicate=True, address_lines=["12 Elm St"], city="Columbus",
                          state="OH", postal_code="43215", **overrides)
        if medicaid:
            body["medicaid_id"] = medicaid
        r = self.req("POST", "/api/v1/clients", body, headers=self.peer.auth)
        self.assertEqual(r.status, 201, r.body)
        cid = r.json()["id"]
        if enroll:
            r = self.req("POST", "/api/v1/clients/%s/enrollments" % cid,
                         {"program": "Peer Recovery", "pathway": "brief",
                          "started_on": "2026-10-01"}, headers=self.peer.auth)
            self.assertEqual(r.status, 201, r.body)
        if diagnosis:
            r = self.req("POST", "/api/v1/clients/%s/diagnoses" % cid,
                         {"code": diagnosis, "onset_on": "2026-01-01"}, headers=self.peer.auth)
            self.assertEqual(r.status, 201, r.body)
        if consent:
            r = self.req("POST", "/api/v1/clients/%s/consents" % cid, {
                "disclosing_party": "Harbor Recovery Network",
                "information_description": "Dates of service, diagnoses and units billed",
                "recipients": [PAYER_NAME], "purposes": ["payment"],
                "purpose_description": "claims for peer support",
                "right_to_revoke_explained": True, "revocation_instructions": "in writing",
                "expires_on": "2027-12-31", "signed_by": "Robin Test",
                "signer_relationship": "self", "signature_method": "wet",
                "signed_on": "2026-10-01"}, headers=self.peer.auth)
            self.assertEqual(r.status, 201, r.body)
        return cid

    def encounter(self, client_id, on, start=None, end=None, end_day=None,
                  mode="in_person", place=None):
        if start is None:
            hour = 6 + next(_HOURS) % 15  # never the same hour twice in a day's tests
            start, end = "%02d:00" % hour, "%02d:50" % hour
        body = {"client_id": client_id, "mode": mode,
                "start_local": "%sT%s" % (on, start), "end_local": "%sT%s" % (end_day or on, end)}
        r = self.req("POST", "/api/v1/appointments", body, headers=self.peer.auth)
        self.assertEqual(r.status, 201, r.body)
        done = {"place_of_service": place} if place else {}
        r = self.req("POST", "/api/v1/appointments/%s/complete" % r.json()["id"], done,
                     headers=self.peer.auth)
        self.assertEqual(r.status, 201, r.body)
        return r.json()

    def note(self, client_id, encounter_id, sign=True):
        r = self.req("POST", "/api/v1/notes", {
            "client_id": client_id, "encounter_id": encounter_id, "template_id": "girp",
            "sections": [{"key": k, "text": NOTE_TEXT} for k in
                         ("goal", "intervention", "response", "plan")]}, headers=self.peer.auth)
        self.assertEqual(r.status, 201, r.body)
        nid = r.json()["id"]
        if sign:
            s = self.req("POST", "/api/v1/notes/%s/sign" % nid, {"attest": True},
                         headers=self.peer.auth)
            self.assertEqual(s.status, 200, s.body)
        return nid

    def billable(self, on, **client_args):
        cid = self.client(**client_args)
        enc = self.encounter(cid, on)
        self.note(cid, enc["id"])
        return cid, enc

    def batch(self, first, last=None, expect=201, payer=PAYER):
        r = self.req("POST", "/api/v1/billing/batches",
                     {"payer_id": payer, "from": first, "to": last or first},
                     headers=self.biller.auth)
        self.assertEqual(r.status, expect, r.body)
        return r.json()

    def file(self, batch, kind="837p"):
        parts = batch["parts"] if kind == "837p" else batch["csv_parts"]
        data = b""
        for part in range(1, parts + 1):
            r = self.req("GET", "/api/v1/billing/batches/%s/%s?part=%d" % (
                batch["id"], "837p" if kind == "837p" else "claims.csv", part),
                headers=self.biller.auth)
            self.assertEqual(r.status, 200, r.body)
            data += r.body
        return data

    def claims(self, **filters):
        q = "&".join("%s=%s" % kv for kv in filters.items())
        r = self.req("GET", "/api/v1/billing/claims?" + q, headers=self.biller.auth)
        self.assertEqual(r.status, 200, r.body)
        return r.json().get("claims", [])

    def claim_for(self, encounter_id):
        found = self.claims(encounter_id=encounter_id)
        originals = [c for c in found if c["frequency"] == "1"]
        self.assertEqual(len(originals), 1, found)
        return originals[0]

    def admin_psql(self, sql):
        parts = launch.conninfo_parse(self.stack.database_url)
        return launch.psql(launch.conninfo_format(dict(parts, user="postgres")), sql)

    def check_837(self, data, batch):
        """node-x12 strict, then the 837P structure. Returns the claims as
        {CLM01: {"clm": [...], "segments": [...]}}."""
        doc = parse_x12(data)
        self.assertTrue(doc["ok"], doc.get("error"))
        isa = doc["header"]
        self.assertEqual(len(data.split(b"~")[0]), 105)  # ISA is 106 with its terminator
        self.assertEqual(int(isa[13]), batch["interchange_control_number"])
        self.assertEqual(isa[12], "00501")
        self.assertEqual(doc["trailer"][1], "1")
        self.assertEqual(len(doc["groups"]), 1)
        group = doc["groups"][0]
        self.assertEqual(group["header"][1], "HC")
        self.assertEqual(group["header"][8], "005010X222A1")
        self.assertEqual(int(group["header"][6]), batch["interchange_control_number"])
        self.assertEqual(int(group["trailer"][1]), len(group["transactions"]))
        claims = {}
        for t in group["transactions"]:
            st, se, segs = t["header"], t["trailer"], t["segments"]
            self.assertEqual(st[1:], ["837", st[2], "005010X222A1"])
            self.assertEqual(int(se[1]), len(segs) + 2, "SE01 counts ST..SE")
            self.assertEqual(se[2], st[2])
            tags = [s[0] for s in segs]
            # Header, 1000A, 1000B, 2000A/2010AA in order.
            self.assertEqual(tags[:11], ["BHT", "NM1", "PER", "NM1", "HL", "PRV", "NM1", "N3",
                                         "N4", "REF", "HL"])
            self.assertEqual(segs[0][1:3], ["0019", "00"])
            self.assertEqual(segs[0][-1], "CH")
            self.assertEqual(segs[1][1], "41")
            self.assertEqual(segs[3][1], "40")
            self.assertEqual(segs[4][1:], ["1", "", "20", "1"])
            self.assertEqual(segs[5][1:3], ["BI", "PXC"])
            self.assertEqual(segs[6][1:3], ["85", "2"])
            self.assertEqual(segs[6][8:10], ["XX", NPI])
            self.assertEqual(segs[9][1], "EI")
            # 2000B per claim: HL ids count up, each a child of 1 with no children.
            hl_ids, current = [1], None
            for s in segs[10:]:
                if s[0] == "HL":
                    self.assertEqual(s[2:], ["1", "22", "0"])
                    self.assertEqual(int(s[1]), hl_ids[-1] + 1)
                    hl_ids.append(int(s[1]))
                    current = {"segments": [s]}
                    continue
                current["segments"].append(s)
                if s[0] == "CLM":
                    current["clm"] = s
                    claims[s[1]] = current
            for c in claims.values():
                tags = [s[0] for s in c["segments"]]
                self.assertEqual(tags[:8], ["HL", "SBR", "NM1", "N3", "N4", "DMG", "NM1", "CLM"])
                self.assertEqual(c["segments"][1][1:3], ["P", "18"])
                self.assertEqual(c["segments"][1][-1], "MC")
                self.assertEqual(c["segments"][2][1:3], ["IL", "1"])
                self.assertEqual(c["segments"][2][8], "MI")
                self.assertEqual(c["segments"][6][1], "PR")
                self.assertEqual(c["segments"][6][9], PAYER)
                after = tags[8:]
                self.assertIn("HI", after)
                self.assertEqual(after[-3:], ["LX", "SV1", "DTP"])
                sv1 = c["segments"][-2]
                self.assertTrue(sv1[1].startswith("HC:H0038"), sv1)
                self.assertEqual(sv1[3], "UN")
                # CLM02 = the sum of the lines' charges (one line here).
                self.assertEqual(round(float(c["clm"][2]) * 100), round(float(sv1[2]) * 100))
                self.assertEqual(c["segments"][-1][1:3], ["472", "D8"])
                hi = c["segments"][tags.index("HI")]
                self.assertTrue(hi[1].startswith("ABK:"), hi)
                c["sv1"], c["hi"], c["tags"] = sv1, hi, tags
        # Nothing else: no delimiter inside any value.
        for line in data.decode("latin1").split("~"):
            self.assertNotIn("^", line[106:] if line.startswith("ISA") else line)
        return claims


class BillingTests(BillingCase):

    # -- the whole path -------------------------------------------------------------

    def test_whole_path_to_a_valid_837p_and_csv(self):
        on = day()
        cid, enc = self.billable(on)
        tele_cid = self.client(medicaid="OH5550001111")
        tele = self.encounter(tele_cid, on, start="05:00", end="05:23", mode="telehealth_video",
                              place="10")
        self.note(tele_cid, tele["id"])
        batch = self.batch(on)
        self.assertEqual(batch["claim_count"], 2)
        self.assertEqual(batch["parts"], 1)
        data = self.file(batch)
        self.assertTrue(data.startswith(b"ISA*00*"))
        claims = self.check_837(data, batch)
        self.assertEqual(len(claims), 2)
        mine = self.claim_for(enc["id"])
        self.assertEqual(mine["status"], "submitted")
        self.assertEqual(mine["batch_id"], batch["id"])
        self.assertEqual(mine["medicaid_id_last4"], "7890")
        c = claims[mine["id"].replace("-", "").upper()]
        # 50 minutes: 3 units of 15 under the 8-minute rule, at $15.25.
        self.assertEqual(c["sv1"][1], "HC:H0038")
        self.assertEqual(c["sv1"][4], "3")
        self.assertEqual(c["clm"][2], "45.75")
        self.assertEqual(c["clm"][5], "11:B:1")
        self.assertEqual(c["hi"][1], "ABK:F1120")
        nm1 = c["segments"][2]
        self.assertEqual(nm1[9], "OH1234567890")
        self.assertEqual(c["segments"][-1][3], on.replace("-", ""))
        self.assertIn(["NM1", "DQ", "1", "RIVERA", "ANA", "", "", "", "XX", SUPERVISOR_NPI],
                      c["segments"])
        # Telehealth in the home: place 10, modifier 95; 23 minutes: 2 units.
        t = claims[self.claim_for(tele["id"])["id"].replace("-", "").upper()]
        self.assertEqual(t["clm"][5], "10:B:1")
        self.assertEqual(t["sv1"][1], "HC:H0038:95")
        self.assertEqual(t["sv1"][4], "2")
        # The same bytes every time it is fetched.
        self.assertEqual(self.file(batch), data)
        r = self.req("GET", "/api/v1/billing/batches/" + batch["id"], headers=self.biller.auth)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["interchange_control_number"],
                         batch["interchange_control_number"])
        # The CSV holds the same claims.
        rows = self.file(batch, "csv").decode().splitlines()
        self.assertTrue(rows[0].startswith("claim_id,frequency,"))
        self.assertEqual(len(rows), 3)
        self.assertIn(mine["id"], "\n".join(rows))
        # The file is sealed at rest: no Medicaid ID in the database in clear.
        dump = self.admin_psql("SELECT body_enc FROM billing.batch_parts WHERE batch_id = '%s'"
                               % batch["id"])
        self.assertNotIn("OH1234567890", dump)
        self.assertNotIn("OH1234567890",
                         self.admin_psql("SELECT medicaid_id_enc FROM billing.claims WHERE id = '%s'"
                                         % mine["id"]))
        # The disclosure to the payer is audited in intake, purpose payment.
        rows = self.admin_psql("SELECT count(*) FROM audit.events WHERE client_id = '%s' "
                               "AND action = 'disclose' AND purpose = 'payment'" % cid)
        self.assertGreaterEqual(int(rows.strip()), 1)

    def test_control_numbers_are_unique_per_batch(self):
        first = self.batch(self._billed_day())
        second = self.batch(self._billed_day())
        self.assertNotEqual(first["interchange_control_number"],
                            second["interchange_control_number"])
        self.assertNotEqual(first["id"], second["id"])

    def _billed_day(self):
        on = day()
        self.billable(on)
        return on

    # -- holds -------------------------------------------------------------------------

    def test_holds_list_every_reason_and_clear_when_fixed(self):
        on = day()
        bare = self.client(medicaid=None, enroll=False, diagnosis=None, consent=False)
        enc = self.encounter(bare, on)
        draft_client = self.client()
        draft_enc = self.encounter(draft_client, on, start="21:00", end="21:50")
        note_id = self.note(draft_client, draft_enc["id"], sign=False)
        r = self.req("POST", "/api/v1/billing/batches", {"payer_id": PAYER, "from": on, "to": on},
                     headers=self.biller.auth)
        self.assertProblem(r, 422)
        self.assertIn("held", r.json()["detail"])
        held = self.claim_for(enc["id"])
        self.assertEqual(held["status"], "held")
        reasons = " | ".join(held["hold_reasons"])
        for words in ("no Medicaid ID", "no active enrollment", "no qualifying diagnosis",
                      "consent", "no note"):
            self.assertIn(words, reasons)
        self.assertEqual(self.claim_for(draft_enc["id"])["hold_reasons"],
                         ["the note is not signed"])
        # Sign the note: the next batch bills it; the other stays held.
        s = self.req("POST", "/api/v1/notes/%s/sign" % note_id, {"attest": True},
                     headers=self.peer.auth)
        self.assertEqual(s.status, 200, s.body)
        batch = self.batch(on)
        self.assertEqual(batch["claim_count"], 1)
        self.assertEqual(batch["held_count"], 1)
        self.assertEqual(self.claim_for(draft_enc["id"])["status"], "submitted")
        self.assertEqual(self.claim_for(enc["id"])["status"], "held")
        self.check_837(self.file(batch), batch)

    def test_encounter_crossing_midnight_is_held(self):
        on = day()
        cid = self.client()
        nxt = "2026-11-%02d" % (int(on[-2:]) + 1)
        next(_DAYS)  # the next day is taken too
        enc = self.encounter(cid, on, start="23:30", end="00:20", end_day=nxt)
        self.note(cid, enc["id"])
        r = self.req("POST", "/api/v1/billing/batches", {"payer_id": PAYER, "from": on, "to": nxt},
                     headers=self.biller.auth)
        self.assertProblem(r, 422)
        self.assertIn("crosses midnight", " ".join(self.claim_for(enc["id"])["hold_reasons"]))

    def test_units_over_the_daily_limit_are_held(self):
        on = day()
        cid = self.client()
        encs = [self.encounter(cid, on, start=s, end=e)
                for s, e in (("09:00", "11:00"), ("12:00", "14:00"), ("15:00", "15:50"))]
        for e in encs:
            self.note(cid, e["id"])
        batch = self.batch(on)  # 8 + 8 units reach the 16 of the day; 3 more would not fit
        self.assertEqual(batch["claim_count"], 2)
        last = self.claim_for(encs[2]["id"])
        self.assertEqual(last["status"], "held")
        self.assertIn("daily maximum", " ".join(last["hold_reasons"]))
        self.assertEqual(last["line"]["units"], 3)

    def test_units_billed_by_an_earlier_batch_count_against_the_daily_limit(self):
        on = day()
        cid = self.client()
        first = self.encounter(cid, on, start="09:00", end="11:00")
        self.note(cid, first["id"])
        self.assertEqual(self.batch(on)["claim_count"], 1)
        more = [self.encounter(cid, on, start=s, end=e)
                for s, e in (("12:00", "14:00"), ("15:00", "15:50"))]
        for e in more:
            self.note(cid, e["id"])
        batch = self.batch(on)  # 8 more reach the 16 of the day with the first batch's 8
        self.assertEqual(batch["claim_count"], 1)
        self.assertEqual(self.claim_for(more[0]["id"])["status"], "submitted")
        held = self.claim_for(more[1]["id"])
        self.assertEqual(held["status"], "held")
        self.assertIn("daily maximum", " ".join(held["hold_reasons"]))

    def test_the_daily_limit_holds_across_the_chunks_a_batch_reads(self):
        # A batch reads 2,000 encounters at a time, client by client: the
        # first client's 1,999 (unsigned, held) and the second's first fill
        # one chunk, the second's two others come in the next, which must
        # still count the 8 units of the one before.
        on = day()
        first, second = sorted([self.client(), self.client()])
        encs = [self.encounter(second, on, start=s, end=e)
                for s, e in (("09:00", "11:00"), ("12:00", "14:00"), ("15:00", "17:00"))]
        for e in encs:
            self.note(second, e["id"])
        self.admin_psql(
            "INSERT INTO scheduling.encounters (id, agency_id, site_id, client_id, staff_id, "
            "starts_at, ends_at, mode, place_of_service, recorded_by) "
            "SELECT gen_random_uuid(), e.agency_id, e.site_id, '%s', e.staff_id, "
            "e.starts_at + g * interval '1 second', e.ends_at + g * interval '1 second', e.mode, "
            "e.place_of_service, e.recorded_by FROM scheduling.encounters e, "
            "generate_series(1, 1999) g WHERE e.id = '%s'" % (first, encs[0]["id"]))
        batch = self.batch(on)
        self.assertEqual(batch["claim_count"], 2)
        self.assertEqual(batch["held_count"], 2000)
        self.assertEqual(self.claim_for(encs[0]["id"])["status"], "submitted")
        self.assertEqual(self.claim_for(encs[1]["id"])["status"], "submitted")
        held = self.claim_for(encs[2]["id"])
        self.assertEqual(held["status"], "held")
        self.assertIn("daily maximum", " ".join(held["hold_reasons"]))

    def test_short_encounter_below_the_first_unit_is_held(self):
        on = day()
        cid = self.client()
        enc = self.encounter(cid, on, start="09:00", end="09:07")
        self.note(cid, enc["id"])
        self.batch(on, expect=422)
        self.assertIn("too short", " ".join(self.claim_for(enc["id"])["hold_reasons"]))

    # -- delimiters --------------------------------------------------------------------

    def test_delimiter_characters_never_break_the_file(self):
        on = day()
        cid, enc = self.billable(on, given_name="Ann~Marie", family_name="O*Brien:Smith^Jr",
                                 medicaid="oh-77.88")
        batch = self.batch(on)
        data = self.file(batch)
        claims = self.check_837(data, batch)
        c = claims[self.claim_for(enc["id"])["id"].replace("-", "").upper()]
        nm1 = c["segments"][2]
        self.assertEqual(nm1[3:5], ["O BRIEN SMITH JR", "ANN MARIE"])
        # A name with nothing X12 can carry is held, never written empty.
        on2 = day()
        bad, bad_enc = self.billable(on2, given_name="~~~", family_name="***")
        self.batch(on2, expect=422)
        self.assertIn("name", " ".join(self.claim_for(bad_enc["id"])["hold_reasons"]))

    # -- exactly once -------------------------------------------------------------------

    def test_an_encounter_is_never_billed_twice(self):
        on = day()
        cid, enc = self.billable(on)
        first = self.batch(on)
        self.assertEqual(first["claim_count"], 1)
        # The same range again: nothing left to bill.
        r = self.req("POST", "/api/v1/billing/batches", {"payer_id": PAYER, "from": on, "to": on},
                     headers=self.biller.auth)
        self.assertProblem(r, 422)
        # Another payer, same encounter: still never a second claim.
        r = self.req("PUT", "/api/v1/billing/payers/OTHERMCD", config(payer_name="Other Medicaid"),
                     headers=self.org.admin.auth)
        self.assertEqual(r.status, 200, r.body)
        r = self.req("POST", "/api/v1/billing/batches",
                     {"payer_id": "OTHERMCD", "from": on, "to": on}, headers=self.biller.auth)
        self.assertProblem(r, 422)
        self.assertEqual(len(self.claims(encounter_id=enc["id"])), 1)
        # The database refuses a second original claim even written around the service.
        out = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
             launch.conninfo_format(dict(launch.conninfo_parse(self.stack.database_url),
                                         user="postgres")),
             "-c", "INSERT INTO billing.claims (id, agency_id, site_id, payer_id, encounter_id, "
                   "client_id, status, service_date, minutes, place_of_service, procedure, units, "
                   "charge_cents) SELECT gen_random_uuid(), agency_id, site_id, 'X', "
                   "encounter_id, client_id, 'ready', service_date, 1, '11', 'H0038', 1, 1 "
                   "FROM billing.claims WHERE encounter_id = '%s'" % enc["id"]],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("claims_one_original", out.stderr)

    def test_two_batches_at_once_bill_each_encounter_once(self):
        on = day()
        encounters = [self.billable(on)[1]["id"] for _ in range(3)]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            runs = list(pool.map(lambda _: self.req(
                "POST", "/api/v1/billing/batches", {"payer_id": PAYER, "from": on, "to": on},
                headers=self.biller.auth), range(2)))
        # One at a time per agency: the second finds nothing left (422), or
        # only what the first did not take; never a claim twice.
        statuses = sorted(r.status for r in runs)
        self.assertIn(statuses, ([201, 201], [201, 422]), [r.body for r in runs])
        billed = sum(r.json()["claim_count"] for r in runs if r.status == 201)
        self.assertEqual(billed, len(encounters))
        for enc in encounters:
            self.claim_for(enc)

    def test_an_empty_range_is_refused(self):
        r = self.req("POST", "/api/v1/billing/batches",
                     {"payer_id": PAYER, "from": "2020-01-01", "to": "2020-01-31"},
                     headers=self.biller.auth)
        self.assertProblem(r, 422)
        self.assertIn("nothing to bill", r.json()["detail"])
        for body, field in (({"payer_id": PAYER, "from": "2026-11-30", "to": "2026-11-01"}, "to"),
                            ({"payer_id": PAYER, "from": "2026-02-30", "to": "2026-03-01"}, "from"),
                            ({"payer_id": "NOPE", "from": "2026-11-01", "to": "2026-11-02"}, None),
                            ({"payer_id": "a*b", "from": "2026-11-01", "to": "2026-11-02"},
                             "payer_id")):
            r = self.req("POST", "/api/v1/billing/batches", body, headers=self.biller.auth)
            self.assertIn(r.status, (400, 422), r.body)
            if field:
                self.assertProblem(r, 400, field)

    # -- corrections and status ------------------------------------------------------------

    def test_replacement_and_void(self):
        on = day()
        cid, enc = self.billable(on)
        batch = self.batch(on)
        original = self.claim_for(enc["id"])
        r = self.req("POST", "/api/v1/billing/claims/%s/status" % original["id"],
                     {"status": "accepted", "payer_claim_number": "PCN-001"},
                     headers=self.biller.auth)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["status"], "accepted")
        # Replace: evaluated again and queued for the next batch.
        r = self.req("POST", "/api/v1/billing/claims/%s/replace" % original["id"],
                     {"reason": "units corrected"}, headers=self.biller.auth)
        self.assertEqual(r.status, 201, r.body)
        repl = r.json()
        self.assertEqual((repl["frequency"], repl["status"], repl["original_claim_id"]),
                         ("7", "ready", original["id"]))
        # Only one correction waits at a time.
        r = self.req("POST", "/api/v1/billing/claims/%s/void" % original["id"], {},
                     headers=self.biller.auth)
        self.assertIn(r.status, (409, 422), r.body)
        empty_day = day()
        b2 = self.batch(empty_day)
        self.assertEqual((b2["claim_count"], b2["replacement_count"]), (1, 1))
        claims = self.check_837(self.file(b2), b2)
        c = claims[repl["id"].replace("-", "").upper()]
        self.assertEqual(c["clm"][5], "11:B:7")
        self.assertIn(["REF", "F8", "PCN001"], c["segments"])
        r = self.req("GET", "/api/v1/billing/claims/" + original["id"], headers=self.biller.auth)
        self.assertEqual(r.json()["status"], "replaced")
        # Void the replacement.
        r = self.req("POST", "/api/v1/billing/claims/%s/void" % repl["id"], {},
                     headers=self.biller.auth)
        self.assertEqual(r.status, 201, r.body)
        void = r.json()
        self.assertEqual(void["frequency"], "8")
        b3 = self.batch(empty_day)
        self.assertEqual(b3["void_count"], 1)
        claims = self.check_837(self.file(b3), b3)
        v = claims[void["id"].replace("-", "").upper()]
        self.assertEqual(v["clm"][5], "11:B:8")
        self.assertIn(["REF", "F8", repl["id"].replace("-", "").upper()], v["segments"])
        # A void is never corrected again; a held claim cannot be replaced.
        r = self.req("POST", "/api/v1/billing/claims/%s/replace" % void["id"], {},
                     headers=self.biller.auth)
        self.assertProblem(r, 422)
        self.assertEqual(batch["claim_count"], 1)

    def test_denied_claim_corrected_and_resubmitted(self):
        on = day()
        cid, enc = self.billable(on)
        self.batch(on)
        claim = self.claim_for(enc["id"])
        r = self.req("POST", "/api/v1/billing/claims/%s/status" % claim["id"],
                     {"status": "denied", "reason": "CO-16 missing information"},
                     headers=self.biller.auth)
        self.assertEqual(r.status, 200, r.body)
        r = self.req("POST", "/api/v1/billing/claims/%s/replace" % claim["id"], {},
                     headers=self.biller.auth)
        self.assertEqual(r.status, 201, r.body)
        b = self.batch(day())
        self.assertEqual(b["replacement_count"], 1)

    def test_remittance_csv(self):
        on = day()
        _, enc = self.billable(on)
        _, enc2 = self.billable(on)
        self.batch(on)
        a, b = self.claim_for(enc["id"]), self.claim_for(enc2["id"])
        csv = ("claim_id,status,paid_amount,payer_claim_number,reason\r\n"
               "%s,paid,45.75,PCN-9,\r\n"
               "%s,denied,,PCN-10,\"CO-50, not medically necessary\"\r\n"
               "%s,paid,45.75,PCN-9,\r\n"
               "not-a-uuid,paid,1,,\r\n"
               "%s,paid,abc,,\r\n"
               "%s,refunded,1,,\r\n" % (a["id"], b["id"], a["id"], a["id"], str(uuid.uuid4())))
        r = self.req("POST", "/api/v1/billing/remittances", {"content": csv},
                     headers=self.biller.auth)
        self.assertEqual(r.status, 200, r.body)
        out = r.json()
        self.assertEqual((out["applied"], out["unchanged"]), (2, 1))
        self.assertEqual([p["line"] for p in out["problems"]], [5, 6, 7])
        r = self.req("GET", "/api/v1/billing/claims/" + a["id"], headers=self.biller.auth)
        self.assertEqual((r.json()["status"], r.json()["paid_cents"]), ("paid", 4575))
        r = self.req("GET", "/api/v1/billing/claims/" + b["id"], headers=self.biller.auth)
        self.assertEqual(r.json()["status"], "denied")
        self.assertEqual(r.json()["status_reason"], "CO-50, not medically necessary")
        r = self.req("POST", "/api/v1/billing/remittances", {"content": "id,amount\n1,2\n"},
                     headers=self.biller.auth)
        self.assertProblem(r, 400, "content")

    # -- configuration and roles -----------------------------------------------------------

    def test_configuration_refuses_what_would_make_a_bad_file(self):
        admin = self.org.admin.auth
        for overrides, field in (({"billing_provider_npi": ""}, "billing_provider_npi"),
                                 ({"billing_provider_npi": "1234567890"}, "billing_provider_npi"),
                                 ({"submitter_id": "A*B"}, "submitter_id"),
                                 ({"payer_name": "~*:"}, "payer_name"),
                                 ({"billing_provider_address": {"line1": "1 Main", "city": "X",
                                                                "state": "OH",
                                                                "postal_code": "43215"}},
                                  "billing_provider_address.postal_code"),
                                 ({"rates": []}, "rates"),
                                 ({"rounding": "sideways"}, "rounding"),
                                 ({"supervising_npi": "12"}, "supervising_npi")):
            r = self.req("PUT", "/api/v1/billing/payers/BAD", config(**overrides), headers=admin)
            self.assertProblem(r, 400, field)
        r = self.req("GET", "/api/v1/billing/payers/" + PAYER, headers=self.biller.auth)
        self.assertEqual(r.status, 200, r.body)
        cfg = r.json()
        self.assertEqual((cfg["unit_minutes"], cfg["first_unit_min_minutes"], cfg["rounding"],
                          cfg["procedure_code"], cfg["group_modifier"]),
                         (15, 8, "nearest", "H0038", "HQ"))
        self.assertIn("F11", cfg["diagnosis_prefixes"])
        r = self.req("PUT", "/api/v1/billing/payers/" + PAYER, config(), headers=self.biller.auth)
        self.assertProblem(r, 403)

    def test_billing_sees_claims_never_note_text(self):
        on = day()
        _, enc = self.billable(on)
        self.batch(on)
        r = self.req("GET", "/api/v1/billing/claims?limit=500", headers=self.biller.auth)
        self.assertEqual(r.status, 200, r.body)
        self.assertNotIn(b"PLANTED-NOTE-TEXT", r.body)
        r = self.req("GET", "/api/v1/notes?client_id=" + self.claim_for(enc["id"])["client_id"],
                     headers=self.biller.auth)
        self.assertProblem(r, 403)
        for who in (self.peer, self.sup, self.org.admin):
            r = self.req("GET", "/api/v1/billing/claims", headers=who.auth)
            self.assertProblem(r, 403)
        # Every claim read is audited, purpose payment.
        rid = self.req("GET", "/api/v1/billing/claims/" + self.claim_for(enc["id"])["id"],
                       headers=self.biller.auth).header("X-Request-Id")
        rows = self.psql("SELECT action, purpose FROM audit.events WHERE request_id = '%s'" % rid)
        self.assertIn("read|payment", rows)

    def test_billing_at_another_site_sees_nothing(self):
        on = day()
        _, enc = self.billable(on)
        far = self.org.add_site()
        far_biller = self.org.add_staff(["billing"], site_ids=[far])
        r = self.req("POST", "/api/v1/billing/batches", {"payer_id": PAYER, "from": on, "to": on},
                     headers=far_biller.auth)
        self.assertProblem(r, 422)
        self.batch(on)
        claim = self.claim_for(enc["id"])
        r = self.req("GET", "/api/v1/billing/claims/" + claim["id"], headers=far_biller.auth)
        self.assertProblem(r, 404)


class BillingPartsTests(BillingCase):
    """A file larger than one part (parts of 4 KiB here): downloaded part by
    part, the parts join into one interchange the strict parser accepts, and
    the CSV, in parts too, into one table; both the same bytes when fetched
    again."""
    process_settings = {"scheduling": {"billing_part_bytes": 4096}}

    def test_a_file_in_parts_joins_into_one_interchange(self):
        days = sorted([day(), day()])  # 12 a day: one peer's free hours
        encounters = []
        for i in range(24):
            encounters.append(self.billable(days[i % 2])[1])
        batch = self.batch(days[0], days[1])
        self.assertEqual(batch["claim_count"], 24)
        self.assertGreater(batch["parts"], 1)
        data = self.file(batch)
        self.assertEqual(len(data), batch["bytes"])
        claims = self.check_837(data, batch)
        self.assertEqual(len(claims), 24)
        ids = sorted(self.claim_for(e["id"])["id"] for e in encounters)
        self.assertEqual(sorted(claims), sorted(i.replace("-", "").upper() for i in ids))
        self.assertGreater(batch["csv_parts"], 1)
        table = self.file(batch, "csv")
        rows = list(csv.reader(io.StringIO(table.decode(), newline="")))
        self.assertEqual(rows[0][:2], ["claim_id", "frequency"])
        self.assertEqual(len(rows), 25)
        self.assertTrue(all(len(r) == len(rows[0]) for r in rows))
        self.assertEqual(sorted(r[0] for r in rows[1:]), ids)
        self.assertEqual(self.file(batch), data)
        self.assertEqual(self.file(batch, "csv"), table)
        r = self.req("GET", "/api/v1/billing/batches/%s/837p?part=%d" % (batch["id"],
                                                                          batch["parts"] + 1),
                     headers=self.biller.auth)
        self.assertProblem(r, 400, "part")
