-- The sign-in throttle's counts in Redis, shared by every node (see shared.rs).
--
-- Each count is a leaky bucket kept as GCRA keeps it: one number, the instant (Redis's
-- clock, in microseconds) at which the count is back to nothing. Its level now is that
-- instant minus now; one attempt adds `interval` (the time one attempt takes to leak
-- away); the key expires at that instant, so an idle count leaves nothing behind. One
-- script per call, run atomically: concurrent attempts on several nodes cannot all pass
-- the check before any of them is counted.
--
-- ARGV[1] is the operation:
--   address  KEYS: address            ARGV: ip_interval, ip_cap
--            -> wait (0: counted; else refused, microseconds until one would pass)
--   sign_in  KEYS: address, from, username
--            ARGV: ip_interval, ip_cap, from_interval, from_cap, user_interval
--            -> {0, wait} refused per address, {1, wait} refused per (username, from),
--               {2, level} counted; level: the username's count before this attempt
--   give_back KEYS: from, username    ARGV: from_interval, user_interval
--            -> 0; takes one attempt off both counts (those that still exist)

-- Redis before 5 replicates scripts verbatim unless told otherwise, and TIME is not
-- deterministic.
if redis.replicate_commands then
  redis.replicate_commands()
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

-- The level of the count at `key` now, in microseconds still to leak.
local function level(key)
  local empty_at = tonumber(redis.call('GET', key))
  if empty_at == nil or empty_at <= now then
    return 0
  end
  return empty_at - now
end

local function store(key, lvl)
  if lvl <= 0 then
    redis.call('DEL', key)
  else
    redis.call('SET', key, string.format('%.0f', now + lvl), 'PX', math.max(1, math.ceil(lvl / 1000)))
  end
end

-- Counts one attempt unless that would take the count past `cap` attempts; returns 0, or
-- the wait until it would not.
local function take(key, interval, cap)
  local lvl = level(key)
  local over = lvl + interval - cap * interval
  -- Half a microsecond of slack: `cap * interval` is a float product.
  if over > 0.5 then
    return math.ceil(over)
  end
  store(key, lvl + interval)
  return 0
end

local op = ARGV[1]
if op == 'address' then
  return take(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
elseif op == 'sign_in' then
  local wait = take(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
  if wait > 0 then
    return {0, wait}
  end
  wait = take(KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]))
  if wait > 0 then
    return {1, wait}
  end
  local before = level(KEYS[3])
  store(KEYS[3], before + tonumber(ARGV[6]))
  return {2, math.floor(before)}
elseif op == 'give_back' then
  local intervals = {tonumber(ARGV[2]), tonumber(ARGV[3])}
  for i, key in ipairs(KEYS) do
    local lvl = level(key)
    if lvl > 0 then
      store(key, lvl - intervals[i])
    end
  end
  return 0
end
return redis.error_reply('unknown throttle operation')
