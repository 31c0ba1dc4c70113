-- Key transparency: the epoch that last wrote each record, so a process that did not publish
-- an epoch can drop from its node cache just the nodes that epoch changed instead of all of
-- them (crates/server/src/service/kt/storage.rs). Keep in step with
-- ../postgres/0013_kt_written_epoch.sql. NULL: written before this column existed, or outside
-- an epoch (the directory's first root); a reader that misses the root among an epoch's
-- changes drops its whole cache.
ALTER TABLE kt_records ADD COLUMN written_epoch INTEGER;
CREATE INDEX kt_records_by_written_epoch ON kt_records (app_id, written_epoch)
    WHERE written_epoch IS NOT NULL;
