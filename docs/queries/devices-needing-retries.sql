-- Devices whose step had to be tried again, and why: every retry is a
-- state event back to pending that carries the reason.
SELECT r.id AS run,
       e.device_id,
       e.step,
       COUNT(*) AS retries,
       GROUP_CONCAT(DISTINCT e.error) AS reasons
FROM events e
JOIN runs r ON r.run_no = e.run_no
WHERE e.kind = 'state' AND e.state = 'pending' AND e.error <> ''
GROUP BY e.run_no, e.device_id, e.step
ORDER BY retries DESC, e.device_id;
