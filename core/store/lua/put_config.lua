-- Stores a config with the next version number, opens the epoch of that version (its
-- routing and start time) and audits it, atomically: no gateway can route a version
-- whose epoch is not recorded.
-- KEYS: config version, config, audit stream, epochs
-- ARGV: body (JSON), now (ISO), actor, action, reason, evidence (JSON), audit max
--       length, epoch record (JSON)
local version = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[4], version, ARGV[8])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*',
  'ts', ARGV[2], 'actor', ARGV[3], 'action', ARGV[4], 'reason', ARGV[5],
  'evidence', ARGV[6], 'version', version)
return version
