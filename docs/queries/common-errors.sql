-- The most frequent reasons a step failed or timed out, over every run.
SELECT step,
       state,
       error,
       COUNT(*) AS executions
FROM executions
WHERE state IN ('failed', 'timed_out')
GROUP BY step, state, error
ORDER BY executions DESC, step, error;
