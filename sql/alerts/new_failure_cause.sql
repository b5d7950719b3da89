-- Failure signatures first seen in the window (the failure_causes view).
SELECT signature, title, first_seen AS fired_at
FROM failure_causes
WHERE first_seen > $start AND first_seen <= $now
ORDER BY first_seen, signature
