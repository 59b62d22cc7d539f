-- Everything the store holds for one scope, as JSON (read only).
-- KEYS[1]: the change stream (key slot). ARGV[1]: key prefix, ARGV[2]: scope,
-- ARGV[3]: admissions from this server instant (ms) on.
local P = ARGV[1]
local s = ARGV[2]
local function key(kind) return P .. ':' .. kind .. ':' .. s end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.ceil(tonumber(t[2]) / 1000)
local adm = {}
local entries = redis.call('ZRANGEBYSCORE', key('log'), ARGV[3], '+inf', 'WITHSCORES')
for k = 1, #entries, 2 do
  local v = redis.call('HGET', key('tok'), entries[k])
  if v then
    local a, b = string.match(v, '^(%d+):(%d+)$')
    adm[#adm + 1] = {entries[k], tonumber(entries[k + 1]), tonumber(a), tonumber(b)}
  end
end
local cool = {}
local c = redis.call('HGETALL', key('cool'))
for k = 1, #c, 2 do
  if tonumber(c[k + 1]) > now then cool[#cool + 1] = {c[k], tonumber(c[k + 1])} end
end
local learned = {}
local l = redis.call('HGETALL', key('learned'))
for k = 1, #l, 2 do
  local dim, period = string.match(l[k], '^([%a_]+):(%d+)$')
  local amount = string.match(l[k + 1], '^(%d+)')
  if dim then learned[#learned + 1] = {dim, tonumber(amount), tonumber(period)} end
end
local st = redis.call('HMGET', key('scope'), 'startup_until', 'process')
local startup = {}
if st[1] and st[2] then startup = {tonumber(st[1]), st[2]} end
return cjson.encode({now = now, adm = adm, cool = cool, learned = learned, startup = startup})
