-- Device outcomes by site, over every run in the history, sites with the
-- most failures first. The history does not keep device tags, so the site
-- is read from the device id (plant7-press-001 gives plant7); change the
-- expression to match your naming.
SELECT substr(device_id, 1, instr(device_id, '-') - 1) AS site,
       COUNT(*) AS devices,
       SUM(state = 'succeeded') AS succeeded,
       SUM(state = 'failed') AS failed,
       SUM(state = 'timed_out') AS timed_out,
       SUM(state = 'skipped') AS skipped
FROM run_devices
GROUP BY site
ORDER BY failed + timed_out DESC, site;
