-- Events in a rowid table, appended in commit order, with their (intent_id, seq) key in an index beside it. Kept
-- in the key's order (WITHOUT ROWID), each commit's events were written into the pages of every intent it moved,
-- scattered over the table's last pages and splitting them: ~15 of a commit's ~45 WAL frames. Appended, a
-- commit's events fill one or two pages, and the index's entries (some 50 bytes each) a few more.
CREATE TABLE events_appended (
    intent_id TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    data      TEXT NOT NULL
);
INSERT INTO events_appended (intent_id, seq, data) SELECT intent_id, seq, data FROM events ORDER BY intent_id, seq;
DROP TABLE events;
ALTER TABLE events_appended RENAME TO events;
CREATE UNIQUE INDEX events_key ON events (intent_id, seq);
