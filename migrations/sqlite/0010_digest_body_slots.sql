-- Where each digest body's per-copy unsubscribe URL and per-digest archive
-- URL go, as byte offsets recorded by the renderer (JSON). NULL for digests
-- stored before: their bodies carry the placeholders herald wrote then.
ALTER TABLE digests ADD COLUMN body_slots TEXT;
