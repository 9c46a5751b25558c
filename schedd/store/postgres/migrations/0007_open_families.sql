-- A job family is whichever family package is registered (schedd/families/base.py), so the
-- family columns check the shape of a wire name (a-z and _, at most 40) instead of listing
-- three.
ALTER TABLE schedules DROP CONSTRAINT schedules_family_check;
ALTER TABLE schedules ADD CONSTRAINT schedules_family_check CHECK (family ~ '^[a-z_]{1,40}$' AND family ~ '^[a-z]');
ALTER TABLE runs DROP CONSTRAINT runs_family_check;
ALTER TABLE runs ADD CONSTRAINT runs_family_check CHECK (family ~ '^[a-z_]{1,40}$' AND family ~ '^[a-z]');
