-- Ingestion compatibility (docs/features/ingestion-compatibility.md).
-- timestamp_replaced: 1 when the item's timestamp could not be read as a date and the server's
-- time was stored instead (NULL otherwise, so rows read back without the field).
-- errors.client_id / errors.user_id: the ids the SDK sends beside an error, which the client and
-- user segment filters match (SuperInsights 1.x dropped them).
ALTER TABLE pageviews ADD COLUMN timestamp_replaced INTEGER;
ALTER TABLE events ADD COLUMN timestamp_replaced INTEGER;
ALTER TABLE errors ADD COLUMN timestamp_replaced INTEGER;
ALTER TABLE performance_metrics ADD COLUMN timestamp_replaced INTEGER;
ALTER TABLE errors ADD COLUMN client_id TEXT;
ALTER TABLE errors ADD COLUMN user_id TEXT;
