-- Presence across nodes: a device is online while some node keeps this in
-- the future (it renews it while the device is connected, clears it when the
-- device goes away; a node that dies stops renewing, so it runs out).
ALTER TABLE devices ADD COLUMN online_until_ms BIGINT NOT NULL DEFAULT 0
