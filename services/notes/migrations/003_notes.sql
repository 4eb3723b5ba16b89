-- Notes: progress notes for a client (usually documenting an encounter of
-- scheduling's), their signing, addenda, supervisors' reviews, agency note
-- templates and who needs a co-signature.
--
-- The note text never reaches the database in clear: body_enc is an
-- AES-256-GCM envelope (common/bc_crypt.h) bound to the note id, the client
-- id and the key id; the key lives in the field key file, outside the
-- database. content_hash is the SHA-256 of the signed content, recorded
-- when the author signs.
--
-- Who sees what (row-level security, FORCEd, behind the handlers' checks;
-- every policy reads the caller's scope once per statement):
--   supervisor        every note at their sites
--   peer_specialist   notes they wrote, plus notes at a site that allows site
--                     caseloads, except SUD counseling notes (42 CFR Part 2:
--                     kept apart, their author and supervisors only)
--   anyone else       nothing (billing and analysts never receive note text)

-- Agency templates; GIRP, DAP and SOAP ship as files (services/notes/templates).
CREATE TABLE notes.templates (
    agency_id  uuid NOT NULL,
    id         text NOT NULL CHECK (id ~ '^[a-z][a-z0-9_-]{0,39}$'),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    definition jsonb NOT NULL CHECK (octet_length(definition::text) <= 65536),
    created_by uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, id)
);

-- Staff whose signed notes wait for a supervisor's co-signature.
CREATE TABLE notes.supervision (
    agency_id       uuid NOT NULL,
    staff_id        uuid PRIMARY KEY,
    requires_cosign boolean NOT NULL,
    set_by          uuid NOT NULL,
    set_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE notes.notes (
    id                  uuid PRIMARY KEY,
    agency_id           uuid NOT NULL,
    site_id             uuid NOT NULL,
    client_id           uuid NOT NULL,
    author_id           uuid NOT NULL,
    encounter_id        uuid,
    group_occurrence_id uuid,
    kind                text NOT NULL CHECK (kind IN ('encounter', 'contact')),
    contact_kind        text CHECK (contact_kind IN ('phone_call', 'outreach',
                                                     'care_coordination', 'other')),
    template_id         text NOT NULL,
    category            text NOT NULL DEFAULT 'progress'
                            CHECK (category IN ('progress', 'sud_counseling')),
    part2               boolean NOT NULL DEFAULT true,
    tags                text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 20),
    body_enc            text NOT NULL,
    status              text NOT NULL DEFAULT 'draft'
                            CHECK (status IN ('draft', 'awaiting_review', 'signed')),
    review_status       text NOT NULL DEFAULT 'none'
                            CHECK (review_status IN ('none', 'pending', 'approved', 'returned')),
    occurred_at         timestamptz NOT NULL,
    content_hash        text CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    attestation         text CHECK (length(attestation) <= 500),
    signed_by           uuid,
    signed_at           timestamptz,
    late_entry          boolean NOT NULL DEFAULT false,
    cosigned_by         uuid,
    cosigned_at         timestamptz,
    version             integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_by          uuid NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (kind = 'contact' OR encounter_id IS NOT NULL),
    CHECK (status = 'draft' OR (content_hash IS NOT NULL AND signed_at IS NOT NULL))
);
-- One note per encounter (an encounter is one client's attendance).
CREATE UNIQUE INDEX notes_encounter ON notes.notes (encounter_id) WHERE encounter_id IS NOT NULL;
CREATE INDEX notes_client ON notes.notes (client_id, occurred_at);
CREATE INDEX notes_author ON notes.notes (author_id, occurred_at);
CREATE INDEX notes_site_status ON notes.notes (site_id, status, occurred_at);

-- Signed is final: no column of a signed note ever changes (corrections are
-- addenda). A note awaiting review keeps its content until it is approved
-- or returned to draft.
CREATE FUNCTION notes.guard_signed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'signed' THEN
        RAISE EXCEPTION 'note % is signed and cannot change: add an addendum', OLD.id
            USING ERRCODE = '23514';
    END IF;
    IF OLD.status = 'awaiting_review' AND NEW.status <> 'draft'
       AND (NEW.body_enc IS DISTINCT FROM OLD.body_enc
            OR NEW.content_hash IS DISTINCT FROM OLD.content_hash) THEN
        RAISE EXCEPTION 'note % is awaiting review: its content cannot change', OLD.id
            USING ERRCODE = '23514';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER notes_guard_signed BEFORE UPDATE ON notes.notes
    FOR EACH ROW EXECUTE FUNCTION notes.guard_signed();

-- Addenda: later corrections or additions, each signed when written, never
-- changed. The note's site, author and category are copied for the policy.
CREATE TABLE notes.addenda (
    id           uuid PRIMARY KEY,
    note_id      uuid NOT NULL REFERENCES notes.notes,
    agency_id    uuid NOT NULL,
    site_id      uuid NOT NULL,
    client_id    uuid NOT NULL,
    note_author  uuid NOT NULL,
    category     text NOT NULL,
    author_id    uuid NOT NULL,
    body_enc     text NOT NULL,
    content_hash text NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    attestation  text NOT NULL CHECK (length(attestation) <= 500),
    signed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX addenda_note ON notes.addenda (note_id, signed_at);

-- Supervisors' reviews of notes by staff who need a co-signature.
CREATE TABLE notes.reviews (
    id           uuid PRIMARY KEY,
    note_id      uuid NOT NULL REFERENCES notes.notes,
    agency_id    uuid NOT NULL,
    site_id      uuid NOT NULL,
    note_author  uuid NOT NULL,
    category     text NOT NULL,
    reviewer_id  uuid NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('approved', 'returned')),
    comments_enc text,
    reviewed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reviews_note ON notes.reviews (note_id, reviewed_at);

-- Encounters already announced as overdue (note.overdue goes out once).
CREATE TABLE notes.overdue_notices (
    encounter_id uuid PRIMARY KEY,
    agency_id    uuid NOT NULL,
    site_id      uuid NOT NULL,
    staff_id     uuid NOT NULL,
    noticed_at   timestamptz NOT NULL DEFAULT now()
);

-- ---- Row security ----------------------------------------------------------
-- Written inline with (SELECT scope.x()) so each is an init plan computed once
-- per statement (see scheduling migration 006).

ALTER TABLE notes.templates ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes.templates FORCE ROW LEVEL SECURITY;
CREATE POLICY templates_read ON notes.templates FOR SELECT
    USING (agency_id = (SELECT scope.agency_id()));
CREATE POLICY templates_add ON notes.templates FOR INSERT
    WITH CHECK (agency_id = (SELECT scope.agency_id()) AND (SELECT scope.has_role('supervisor'))
                AND created_by = (SELECT scope.staff_id()));

ALTER TABLE notes.supervision ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes.supervision FORCE ROW LEVEL SECURITY;
CREATE POLICY supervision_read ON notes.supervision FOR SELECT
    USING (agency_id = (SELECT scope.agency_id()));
CREATE POLICY supervision_add ON notes.supervision FOR INSERT
    WITH CHECK (agency_id = (SELECT scope.agency_id()) AND (SELECT scope.has_role('supervisor'))
                AND set_by = (SELECT scope.staff_id()));
CREATE POLICY supervision_change ON notes.supervision FOR UPDATE
    USING (agency_id = (SELECT scope.agency_id()) AND (SELECT scope.has_role('supervisor')))
    WITH CHECK (agency_id = (SELECT scope.agency_id()) AND set_by = (SELECT scope.staff_id()));

ALTER TABLE notes.notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes.notes FORCE ROW LEVEL SECURITY;
CREATE POLICY notes_read ON notes.notes FOR SELECT
    USING (agency_id = (SELECT scope.agency_id())
           AND site_id = ANY ((SELECT scope.site_ids())::uuid[])
           AND ((SELECT scope.has_role('supervisor'))
                OR ((SELECT scope.has_role('peer_specialist'))
                    AND (author_id = (SELECT scope.staff_id())
                         OR (category <> 'sud_counseling'
                             AND site_id = ANY ((SELECT scope.caseload_site_ids())::uuid[]))))));
CREATE POLICY notes_write ON notes.notes FOR INSERT
    WITH CHECK (agency_id = (SELECT scope.agency_id())
                AND site_id = ANY ((SELECT scope.site_ids())::uuid[])
                AND (SELECT scope.has_role('supervisor') OR scope.has_role('peer_specialist'))
                AND author_id = (SELECT scope.staff_id())
                AND updated_by = (SELECT scope.staff_id()));
-- Drafts change by their author; a review changes the status (supervisors).
CREATE POLICY notes_change ON notes.notes FOR UPDATE
    USING (agency_id = (SELECT scope.agency_id())
           AND site_id = ANY ((SELECT scope.site_ids())::uuid[])
           AND (author_id = (SELECT scope.staff_id()) OR (SELECT scope.has_role('supervisor'))))
    WITH CHECK (updated_by = (SELECT scope.staff_id()));

ALTER TABLE notes.addenda ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes.addenda FORCE ROW LEVEL SECURITY;
CREATE POLICY addenda_read ON notes.addenda FOR SELECT
    USING (agency_id = (SELECT scope.agency_id())
           AND site_id = ANY ((SELECT scope.site_ids())::uuid[])
           AND ((SELECT scope.has_role('supervisor'))
                OR ((SELECT scope.has_role('peer_specialist'))
                    AND (note_author = (SELECT scope.staff_id())
                         OR author_id = (SELECT scope.staff_id())
                         OR (category <> 'sud_counseling'
                             AND site_id = ANY ((SELECT scope.caseload_site_ids())::uuid[]))))));
CREATE POLICY addenda_add ON notes.addenda FOR INSERT
    WITH CHECK (agency_id = (SELECT scope.agency_id())
                AND site_id = ANY ((SELECT scope.site_ids())::uuid[])
                AND (SELECT scope.has_role('supervisor') OR scope.has_role('peer_specialist'))
                AND author_id = (SELECT scope.staff_id()));

ALTER TABLE notes.reviews ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes.reviews FORCE ROW LEVEL SECURITY;
CREATE POLICY reviews_read ON notes.reviews FOR SELECT
    USING (agency_id = (SELECT scope.agency_id())
           AND site_id = ANY ((SELECT scope.site_ids())::uuid[])
           AND ((SELECT scope.has_role('supervisor')) OR note_author = (SELECT scope.staff_id())));
CREATE POLICY reviews_add ON notes.reviews FOR INSERT
    WITH CHECK (agency_id = (SELECT scope.agency_id())
                AND site_id = ANY ((SELECT scope.site_ids())::uuid[])
                AND (SELECT scope.has_role('supervisor'))
                AND reviewer_id = (SELECT scope.staff_id()));

ALTER TABLE notes.overdue_notices ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes.overdue_notices FORCE ROW LEVEL SECURITY;
CREATE POLICY overdue_notices_read ON notes.overdue_notices FOR SELECT
    USING (agency_id = (SELECT scope.agency_id())
           AND site_id = ANY ((SELECT scope.site_ids())::uuid[]));
CREATE POLICY overdue_notices_add ON notes.overdue_notices FOR INSERT
    WITH CHECK (agency_id = (SELECT scope.agency_id())
                AND site_id = ANY ((SELECT scope.site_ids())::uuid[]));

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT SELECT, INSERT ON notes.templates, notes.addenda, notes.reviews,
            notes.overdue_notices TO beacon_service;
        GRANT SELECT, INSERT ON notes.supervision TO beacon_service;
        GRANT UPDATE (requires_cosign, set_by, set_at) ON notes.supervision TO beacon_service;
        GRANT SELECT, INSERT ON notes.notes TO beacon_service;
        GRANT UPDATE (tags, body_enc, status, review_status, content_hash, attestation,
                      signed_by, signed_at, late_entry, cosigned_by, cosigned_at, version,
                      updated_by, updated_at)
            ON notes.notes TO beacon_service;
    END IF;
END $$;
