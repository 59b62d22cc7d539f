-- One scheduling pass of one process, applied atomically on the server's clock.
-- KEYS[1]: the change stream (declares the key slot: every key shares its hash tag).
-- ARGV[1]: key prefix, ARGV[2]: writer's process id, ARGV[3]: the epoch it knows,
-- ARGV[4]: stream retention in ms, ARGV[5]: the batch as JSON:
--   {"scopes": {name: {"limits": [[dim, amount, window_ms], ...], "horizon": ms}},
--    "writes": [["A", id, scope, input, output], ["T", id, scope, input, output],
--               ["R", id, scope], ["C", scope, until_ms, reason],
--               ["L", scope, dim, amount, period_ms],
--               ["S", scope, horizon_ms, started_ms, startup_until_ms]]}
-- Returns {"ok", now, seq} | {"conflict", now, scope, at, scope, at, ...} | {"epoch", now}.
local P = ARGV[1]
local me = ARGV[2]
local keep = tonumber(ARGV[4])
local batch = cjson.decode(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.ceil(tonumber(t[2]) / 1000)

if redis.call('GET', P .. ':epoch') ~= ARGV[3] then
  return {'epoch', now}
end

local function key(kind, s) return P .. ':' .. kind .. ':' .. s end

local function weight(dim, n, i, o)
  if dim == 'requests' then return n
  elseif dim == 'tokens' then return i + o
  elseif dim == 'input_tokens' then return i
  else return o end
end

local function incr(s, field, d)
  if d ~= 0 then redis.call('HINCRBY', key('agg', s), field, string.format('%d', d)) end
end

local function tokens_of(s, id)
  local v = redis.call('HGET', key('tok', s), id)
  if not v then return nil end
  local a, b = string.match(v, '^(%d+):(%d+)$')
  return tonumber(a), tonumber(b)
end

local DEFAULT_HORIZON = 8 * 86400000
local horizons = {}
local function horizon(s)
  local h = horizons[s]
  if h then return h end
  h = tonumber(redis.call('HGET', key('scope', s), 'horizon') or '0')
  local b = batch.scopes[s]
  if b and b.horizon and b.horizon > h then h = b.horizon end
  if h <= 0 then h = DEFAULT_HORIZON end
  horizons[s] = h
  return h
end

-- Drops what left the scope's longest window (bounded work per call) and keeps the
-- aggregates equal to the sums over what is left.
local pruned = {}
local function prune(s)
  if pruned[s] then return end
  pruned[s] = true
  local cutoff = now - horizon(s)
  local old = redis.call('ZRANGEBYSCORE', key('log', s), '-inf', cutoff, 'LIMIT', 0, 1000)
  if #old == 0 then return end
  local n, i, o = 0, 0, 0
  for _, id in ipairs(old) do
    local a, b = tokens_of(s, id)
    if a then n = n + 1; i = i + a; o = o + b end
    redis.call('HDEL', key('tok', s), id)
    redis.call('ZREM', key('log', s), id)
  end
  incr(s, 'n', -n)
  incr(s, 'i', -i)
  incr(s, 'o', -o)
end

-- Admitted earlier in this batch (counted at `now`), per scope.
local added = {}
local function add(s, n, i, o)
  local a = added[s]
  if not a then a = {n = 0, i = 0, o = 0}; added[s] = a end
  a.n = a.n + n; a.i = a.i + i; a.o = a.o + o
end

-- What the check phase reads once per scope (nothing is written before it ends): the
-- aggregates, and the latest end of a cooldown or of another process's startup cooldown.
local seen = {}
local function state(s)
  local st = seen[s]
  if st then return st end
  prune(s)
  local agg = redis.call('HMGET', key('agg', s), 'n', 'i', 'o')
  st = {n = tonumber(agg[1] or '0'), i = tonumber(agg[2] or '0'), o = tonumber(agg[3] or '0'),
        until_ms = 0}
  for _, v in ipairs(redis.call('HVALS', key('cool', s))) do
    local u = tonumber(v)
    if u > st.until_ms then st.until_ms = u end
  end
  local su = redis.call('HMGET', key('scope', s), 'startup_until', 'process')
  if su[1] and su[2] ~= me then
    local u = tonumber(su[1])
    if u > st.until_ms then st.until_ms = u end
  end
  seen[s] = st
  return st
end

-- The earliest instant at which (n, i, o) more fits every limit and cooldown of scope `s`
-- (`now` when it fits now).
local function fit(s, n, i, o)
  local st = state(s)
  local at = now
  if st.until_ms > at then at = st.until_ms end
  local b = batch.scopes[s]
  local limits = (b and b.limits) or {}
  local an, ai, ao = st.n, st.i, st.o
  local x = added[s] or {n = 0, i = 0, o = 0}
  for _, l in ipairs(limits) do
    local dim, amount, window = l[1], l[2], l[3]
    local w = weight(dim, n, i, o)
    local lo = now - window
    if w > 0 and weight(dim, an, ai, ao) + weight(dim, x.n, x.i, x.o) + w > amount then
      -- Near the limit: count the window exactly, oldest first.
      local entries = redis.call('ZRANGEBYSCORE', key('log', s), '(' .. lo, '+inf', 'WITHSCORES')
      local ws, ts = {}, {}
      local used = weight(dim, x.n, x.i, x.o)
      for k = 1, #entries, 2 do
        local ein, eout = tokens_of(s, entries[k])
        if ein then
          local ew = weight(dim, 1, ein, eout)
          used = used + ew
          ws[#ws + 1] = ew
          ts[#ts + 1] = tonumber(entries[k + 1])
        end
      end
      local excess = used + w - amount
      if excess > 0 then
        local when = now + window
        if w <= amount then
          local freed = 0
          for k = 1, #ws do
            freed = freed + ws[k]
            if freed >= excess then when = ts[k] + window; break end
          end
        end
        if when > at then at = when end
      end
    end
  end
  return at
end

-- Check every admission of the batch. Token changes are facts (what a provider counted, or a
-- top-up the process checked): they are applied, never refused.
local conflicts = {}
for _, w in ipairs(batch.writes) do
  local kind = w[1]
  if kind == 'A' then
    local s = w[3]
    local at = fit(s, 1, w[4], w[5])
    if at > now then
      conflicts[#conflicts + 1] = s
      conflicts[#conflicts + 1] = at
    else
      add(s, 1, w[4], w[5])
    end
  end
end
if #conflicts > 0 then
  local out = {'conflict', now}
  for _, v in ipairs(conflicts) do out[#out + 1] = v end
  return out
end

-- Everything fits: apply it.
local changes = {}
local wake = false
for _, w in ipairs(batch.writes) do
  local kind = w[1]
  if kind == 'A' then
    local id, s, i, o = w[2], w[3], w[4], w[5]
    if redis.call('ZADD', key('log', s), 'NX', now, id) == 1 then
      redis.call('HSET', key('tok', s), id, i .. ':' .. o)
      incr(s, 'n', 1)
      incr(s, 'i', i)
      incr(s, 'o', o)
      changes[#changes + 1] = {'A', id, s, now, i, o}
    end
  elseif kind == 'T' then
    local id, s, i, o = w[2], w[3], w[4], w[5]
    local a, b = tokens_of(s, id)
    if a and (a ~= i or b ~= o) then
      redis.call('HSET', key('tok', s), id, i .. ':' .. o)
      incr(s, 'i', i - a)
      incr(s, 'o', o - b)
      local at = tonumber(redis.call('ZSCORE', key('log', s), id))
      changes[#changes + 1] = {'A', id, s, at, i, o}
      if i < a or o < b then wake = true end
    end
  elseif kind == 'R' then
    local id, s = w[2], w[3]
    local a, b = tokens_of(s, id)
    if a then
      redis.call('HDEL', key('tok', s), id)
      redis.call('ZREM', key('log', s), id)
      incr(s, 'n', -1)
      incr(s, 'i', -a)
      incr(s, 'o', -b)
      changes[#changes + 1] = {'R', id}
      wake = true
    end
  elseif kind == 'C' then
    local s, u, reason = w[2], w[3], w[4]
    local cur = tonumber(redis.call('HGET', key('cool', s), reason) or '0')
    if u > cur then
      redis.call('HSET', key('cool', s), reason, u)
      local last = u
      for _, v in ipairs(redis.call('HVALS', key('cool', s))) do
        if tonumber(v) > last then last = tonumber(v) end
      end
      redis.call('PEXPIREAT', key('cool', s), last + 1000)
      changes[#changes + 1] = {'C', s, u, reason}
    end
  elseif kind == 'L' then
    local s, dim, amount, period = w[2], w[3], w[4], w[5]
    redis.call('HSET', key('learned', s), dim .. ':' .. period, amount .. ':' .. now)
    changes[#changes + 1] = {'L', s, dim, amount, period}
  elseif kind == 'S' then
    local s, h, started, su = w[2], w[3], w[4], w[5]
    local cur = redis.call('HMGET', key('scope', s), 'horizon', 'started', 'startup_until')
    if not cur[1] or h > tonumber(cur[1]) then
      redis.call('HSET', key('scope', s), 'horizon', h)
    end
    if not cur[2] or started > tonumber(cur[2]) then
      redis.call('HSET', key('scope', s), 'started', started)
    end
    if not cur[3] or su >= tonumber(cur[3]) then
      redis.call('HSET', key('scope', s), 'startup_until', su, 'process', me)
      changes[#changes + 1] = {'S', s, su}
    end
    redis.call('SADD', P .. ':scopes', s)
  end
end

local seq = 0
if #changes > 0 then
  seq = redis.call('INCR', P .. ':seq')
  redis.call('XADD', KEYS[1], 'MINID', '~', (now - keep) .. '-0', '*',
    'p', me, 'q', seq, 'd', cjson.encode(changes))
end
-- Every commit that changed something tells the others (`w`: something was released or
-- settled lower, waiters may go sooner; `c`: only new state to read).
if #changes > 0 then
  redis.call('PUBLISH', P .. ':wake', me .. ':' .. (wake and 'w' or 'c'))
end
return {'ok', now, seq}
