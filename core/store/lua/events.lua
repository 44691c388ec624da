-- One batch of raw events appended, once per (batch id, part) like the counters.
-- KEYS: events stream, flushed
-- ARGV: now, part id, stream max length, field names (JSON), rows (JSON)
if redis.call('ZADD', KEYS[2], 'NX', ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'fields', ARGV[4], 'rows', ARGV[5])
return 1
