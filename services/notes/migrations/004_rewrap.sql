-- Re-encryption after a key rotation (services/notes/rewrap.c). A thread of
-- the notes service finds note bodies, addenda and review comments sealed
-- under a key that is no longer the active one and seals them again under
-- the active key. It acts for no user: under the note_rewrap purpose (set
-- for its own transactions only) these policies let it read and rewrite the
-- sealed columns of every agency's rows, and the guard on signed notes lets
-- exactly that change through: body_enc replaced, every other column the
-- same. The plaintext never leaves the service.

CREATE POLICY notes_rewrap_read ON notes.notes FOR SELECT
    USING ((SELECT current_setting('beacon.purpose', true) = 'note_rewrap'));
CREATE POLICY notes_rewrap_change ON notes.notes FOR UPDATE
    USING ((SELECT current_setting('beacon.purpose', true) = 'note_rewrap'))
    WITH CHECK ((SELECT current_setting('beacon.purpose', true) = 'note_rewrap'));
CREATE POLICY addenda_rewrap_read ON notes.addenda FOR SELECT
    USING ((SELECT current_setting('beacon.purpose', true) = 'note_rewrap'));
CREATE POLICY addenda_rewrap_change ON notes.addenda FOR UPDATE
    USING ((SELECT current_setting('beacon.purpose', true) = 'note_rewrap'))
    WITH CHECK ((SELECT current_setting('beacon.purpose', true) = 'note_rewrap'));
CREATE POLICY reviews_rewrap_read ON notes.reviews FOR SELECT
    USING ((SELECT current_setting('beacon.purpose', true) = 'note_rewrap'));
CREATE POLICY reviews_rewrap_change ON notes.reviews FOR UPDATE
    USING ((SELECT current_setting('beacon.purpose', true) = 'note_rewrap'))
    WITH CHECK ((SELECT current_setting('beacon.purpose', true) = 'note_rewrap'));

CREATE OR REPLACE FUNCTION notes.guard_signed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Re-encryption: the sealed text changes, nothing else may.
    IF current_setting('beacon.purpose', true) = 'note_rewrap' THEN
        IF (to_jsonb(NEW) - 'body_enc') IS DISTINCT FROM (to_jsonb(OLD) - 'body_enc') THEN
            RAISE EXCEPTION 'note %: re-encryption changes body_enc only', OLD.id
                USING ERRCODE = '23514';
        END IF;
        RETURN NEW;
    END IF;
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

-- Addenda and reviews never change otherwise: no other UPDATE policy exists.
CREATE FUNCTION notes.guard_rewrap_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('beacon.purpose', true) IS DISTINCT FROM 'note_rewrap' THEN
        RAISE EXCEPTION '% rows do not change', TG_TABLE_NAME USING ERRCODE = '23514';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER addenda_guard BEFORE UPDATE ON notes.addenda
    FOR EACH ROW EXECUTE FUNCTION notes.guard_rewrap_only();
CREATE TRIGGER reviews_guard BEFORE UPDATE ON notes.reviews
    FOR EACH ROW EXECUTE FUNCTION notes.guard_rewrap_only();

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'beacon_service') THEN
        GRANT UPDATE (body_enc) ON notes.addenda TO beacon_service;
        GRANT UPDATE (comments_enc) ON notes.reviews TO beacon_service;
    END IF;
END $$;
