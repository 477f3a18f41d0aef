// The one Lua script the Redis store runs (atomically, on one key, so it also works on Redis Cluster). It does
// the window arithmetic of window.ts on Redis's clock (TIME) and, in the same call:
//  1. applies this proxy's pending changes (settlements, returned leases), or, when Redis no longer knows this
//     proxy (it restarted without persistence), restores this proxy's whole contribution to the window;
//  2. reserves each requested amount that fits, in order;
//  3. leases this proxy a slice of what is left, sized to the number of proxies serving the key, so later
//     requests need no round trip.
//
// Hash fields of the key: `<bucket>` units spent (leases included), `l<bucket>` units leased out, `p:<proxy>`
// when that proxy last called (ms), `m:<proxy>` the proxy's contribution is known here (the value: when it last
// called, ms), `rec` recovery deadline. Every restart brings a new proxy id, so markers are pruned: one whose
// proxy has not called for the window plus two buckets is dropped, which loses nothing, because that proxy's
// last call booked a bucket that has left the window since (a marker of 1, from before markers had times, is
// left to the key's expiry).
//
// KEYS[1] the budget key
// ARGV: proxy id, limit, window ms, bucket ms, buckets back, recovery grace ms, lease (0/1), lease max,
//       lease min (a smaller lease is not worth holding), number of amounts A, number of ledger rows L, then A amounts, then L rows of
//       (bucket, pending spent, ledger spent, pending leased, ledger leased).
// Returns: { current bucket, remaining, lease granted, wait ms (recovering), others' leases, proxies, restored,
//            ms left in the bucket, S, then per amount: 1 admitted | 0 denied, retry ms (-1: never fits), then, when
//            an amount was denied, S pairs (ms until a live bucket leaves the window, its units), oldest first, so
//            the proxy can answer later refusals itself until the window moves (S = 0 otherwise) }.
export const BUDGET_SYNC_LUA = `
local K = KEYS[1]
local id = ARGV[1]
local limit = tonumber(ARGV[2])
local bms = tonumber(ARGV[4])
local back = tonumber(ARGV[5])
local grace = tonumber(ARGV[6])
local wantLease = ARGV[7] == '1'
local leaseMax = tonumber(ARGV[8])
local leaseMin = tonumber(ARGV[9])
local na = tonumber(ARGV[10])
local nl = tonumber(ARGV[11])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = math.floor(now / bms)
local oldest = cur - back
local marker = 'm:' .. id
local known = redis.call('HEXISTS', K, marker) == 1
local restored = 0
local base = 11 + na
for i = 0, nl - 1 do
  local o = base + i * 5
  local b = tonumber(ARGV[o + 1])
  local ds, dl
  if known then ds = tonumber(ARGV[o + 2]); dl = tonumber(ARGV[o + 4]) else ds = tonumber(ARGV[o + 3]); dl = tonumber(ARGV[o + 5]) end
  if b < oldest then
    if ds > 0 and known then redis.call('HINCRBY', K, tostring(cur), ds) end
  else
    if ds ~= 0 then redis.call('HINCRBY', K, tostring(b), ds) end
    if dl ~= 0 then redis.call('HINCRBY', K, 'l' .. b, dl) end
    if not known and ds ~= 0 then restored = restored + 1 end
  end
end
redis.call('HSET', K, marker, now)
if not known then
  if restored > 0 and redis.call('HEXISTS', K, 'rec') == 0 then redis.call('HSET', K, 'rec', now + grace) end
end
redis.call('HSET', K, 'p:' .. id, now)
local h = redis.call('HGETALL', K)
local spent, leased, peers, rec = 0, 0, 0, 0
local buckets = {}
for i = 1, #h, 2 do
  local f = h[i]
  local v = tonumber(h[i + 1])
  local c = string.byte(f, 1)
  if c == 108 then
    if tonumber(string.sub(f, 2)) < oldest then redis.call('HDEL', K, f) else leased = leased + v end
  elseif c == 112 then
    if v < now - 30000 then redis.call('HDEL', K, f) else peers = peers + 1 end
  elseif c == 109 then
    if v > 1 and v < now - (back + 2) * bms then redis.call('HDEL', K, f) end
  elseif f == 'rec' then
    if v <= now then redis.call('HDEL', K, f) else rec = v end
  else
    local b = tonumber(f)
    if b < oldest then redis.call('HDEL', K, f) else
      if v < 0 then v = 0 end
      spent = spent + v
      buckets[#buckets + 1] = { b, v }
    end
  end
end
redis.call('PEXPIRE', K, (back + 2) * bms + 30000)
local left = (cur + 1) * bms - now
local remaining = limit - spent
if remaining < 0 then remaining = 0 end
local out = { cur, remaining, 0, 0, leased, peers, restored, left, 0 }
if rec > now then
  out[4] = rec - now
  return out
end
table.sort(buckets, function(x, y) return x[1] < y[1] end)
local took = 0
local denied = false
for i = 1, na do
  local a = tonumber(ARGV[11 + i])
  if a <= remaining then
    remaining = remaining - a
    took = took + a
    out[#out + 1] = 1
    out[#out + 1] = 0
  else
    local retry = -1
    if a <= limit then
      local s = limit - remaining
      retry = (cur + back + 1) * bms - now
      for j = 1, #buckets do
        s = s - buckets[j][2]
        if s + a <= limit then retry = (buckets[j][1] + back + 1) * bms - now; break end
      end
      if retry < 1 then retry = 1 end
    end
    denied = true
    out[#out + 1] = 0
    out[#out + 1] = retry
  end
end
local lease = 0
if wantLease and remaining > 0 then
  lease = math.floor(remaining / (4 * math.max(peers, 1)))
  if lease > leaseMax then lease = leaseMax end
  if lease < leaseMin then lease = 0 end
end
if took + lease > 0 then redis.call('HINCRBY', K, tostring(cur), took + lease) end
if lease > 0 then redis.call('HINCRBY', K, 'l' .. cur, lease) end
out[2] = remaining - lease
out[3] = lease
if denied then
  out[9] = #buckets
  for j = 1, #buckets do
    out[#out + 1] = (buckets[j][1] + back + 1) * bms - now
    out[#out + 1] = buckets[j][2]
  end
end
return out
`;
