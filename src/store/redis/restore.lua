-- The server lost its state (the epoch key is gone): re-writes one process's live
-- admissions (idempotent by id) and adopts the epoch in force.
-- KEYS[1]: the change stream (key slot). ARGV[1]: key prefix, ARGV[2]: a fresh epoch,
-- ARGV[3]: JSON [[id, scope, at_ms, input, output], ...] (server ms), ARGV[4]: the process id.
local P = ARGV[1]
redis.call('SET', P .. ':epoch', ARGV[2], 'NX')
-- Process ids handed out later must not collide with this one's.
if tonumber(redis.call('GET', P .. ':process') or '0') < tonumber(ARGV[4]) then
  redis.call('SET', P .. ':process', ARGV[4])
end
local epoch = redis.call('GET', P .. ':epoch')
for _, a in ipairs(cjson.decode(ARGV[3])) do
  local id, s, at, i, o = a[1], a[2], a[3], a[4], a[5]
  if redis.call('ZADD', P .. ':log:' .. s, 'NX', at, id) == 1 then
    redis.call('HSET', P .. ':tok:' .. s, id, i .. ':' .. o)
    redis.call('HINCRBY', P .. ':agg:' .. s, 'n', 1)
    redis.call('HINCRBY', P .. ':agg:' .. s, 'i', string.format('%d', i))
    redis.call('HINCRBY', P .. ':agg:' .. s, 'o', string.format('%d', o))
  end
end
return epoch
