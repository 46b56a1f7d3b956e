-- Median time from the first invocation of the step "update" to its
-- success, per job, in seconds. Waits for offline devices and retries are
-- included, since started_ms is the first invocation.
WITH d AS (
  SELECT r.job,
         x.ended_ms - x.started_ms AS ms,
         ROW_NUMBER() OVER (PARTITION BY r.job ORDER BY x.ended_ms - x.started_ms) AS n,
         COUNT(*) OVER (PARTITION BY r.job) AS total
  FROM executions x
  JOIN runs r ON r.run_no = x.run_no
  WHERE x.step = 'update' AND x.state = 'succeeded'
)
SELECT job,
       total AS devices,
       CAST(ROUND(AVG(ms) / 1000.0) AS INTEGER) AS median_seconds
FROM d
WHERE n IN ((total + 1) / 2, (total + 2) / 2)
GROUP BY job
ORDER BY job;
