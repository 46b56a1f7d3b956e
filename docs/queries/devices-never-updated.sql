-- Devices that some run targeted but that never succeeded the step
-- "update", with how many runs targeted them and what became of their
-- latest update. Devices no run ever targeted are not in the history: ask
-- the hub for those.
SELECT d.device_id,
       COUNT(*) AS runs,
       COALESCE(
         (SELECT x.state || CASE WHEN x.error <> '' THEN ': ' || x.error ELSE '' END
          FROM executions x
          WHERE x.device_id = d.device_id AND x.step = 'update'
          ORDER BY x.updated_ms DESC
          LIMIT 1),
         'never tried') AS last_update
FROM run_devices d
WHERE d.device_id NOT IN (
  SELECT device_id FROM executions WHERE step = 'update' AND state = 'succeeded')
GROUP BY d.device_id
ORDER BY d.device_id;
