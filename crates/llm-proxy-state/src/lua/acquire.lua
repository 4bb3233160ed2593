-- Checks every limit of one request and, only if all have room, takes all of them: one atomic
-- step on the Redis server's clock (TIME), so instances whose own clocks disagree still agree here.
-- The arithmetic is LocalCounters' (crates/llm-proxy-core/src/shared_state/local_counters.rs), so
-- a limit answers the same in cluster mode as on one node.
--
-- KEYS[i]   the i-th limit's key, prefixed.
-- ARGV      four per limit, in the order of KEYS:
--   'r', limit, period_us, cost         GCRA rate limit; the key holds the TAT (Unix µs)
--   'b', limit, window_end_ms, reserve  budget (micro-USD); the key is a hash {spent, reserved}
--                                        that expires when its window ends
-- Returns   {all_allowed, then per limit: allowed, remaining, reset_us, retry_after_us}.
--
-- Every limit is checked before anything is written, and a key named twice sees the first take,
-- so a refused request leaves no trace. Numbers are Lua doubles: integers are exact below 2^53,
-- which the caller caps every argument to (Unix µs is ~2^51).

-- Scripts that read TIME and then write must replicate their effects, not the script; the default
-- since Redis 5, and required (this call) on 3.2 and 4.
if redis.replicate_commands then
  redis.replicate_commands()
end

local MAX = 9007199254740991

-- floor(a * b / c) for non-negative integers, exact while a * b < 2^53.
local function muldiv(a, b, c)
  local p = a * b
  local q = math.floor(p / c)
  if q * c > p then
    q = q - 1
  elseif (q + 1) * c <= p then
    q = q + 1
  end
  return q
end

local time = redis.call('TIME')
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now_ms = math.floor(now_us / 1000)

local rate_tat = {}    -- key -> TAT after the takes so far in this call
local budget_used = {} -- key -> spent + reserved after the takes so far in this call
local takes = {}
local all = 1
local out = { 0 }

for i = 1, #KEYS do
  local key = KEYS[i]
  local j = (i - 1) * 4
  local kind = ARGV[j + 1]
  local limit = tonumber(ARGV[j + 2])
  local x = tonumber(ARGV[j + 3])
  local cost = tonumber(ARGV[j + 4])
  local allowed, remaining, reset, retry = 0, 0, 0, 0

  if kind == 'r' then
    local period = x
    if limit == 0 then
      retry = period
    else
      local tat = rate_tat[key]
      if tat == nil then
        tat = tonumber(redis.call('GET', key)) or now_us
      end
      if tat < now_us then
        tat = now_us
      end
      local new = tat + muldiv(cost, period, limit)
      local ahead = new - now_us
      if ahead <= period then
        allowed = 1
        remaining = muldiv(period - ahead, limit, period)
        reset = ahead
        rate_tat[key] = new
        takes[#takes + 1] = { 'r', key, new, ahead }
      else
        reset = tat - now_us
        retry = ahead - period
      end
    end
  else
    local window_end = x
    local used = budget_used[key]
    if used == nil then
      used = 0
      if window_end > now_ms then
        local v = redis.call('HMGET', key, 'spent', 'reserved')
        used = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0)
      end
    end
    if window_end > now_ms then
      reset = (window_end - now_ms) * 1000
    end
    -- A used-up budget refuses even a request estimated at nothing: its real cost is unknown.
    if used < limit and used + cost <= limit then
      allowed = 1
      remaining = limit - used - cost
      budget_used[key] = used + cost
      takes[#takes + 1] = { 'b', key, ARGV[j + 4], ARGV[j + 3] }
    else
      retry = reset
    end
  end

  if allowed == 0 then
    all = 0
  end
  out[#out + 1] = allowed
  out[#out + 1] = math.min(remaining, MAX)
  out[#out + 1] = math.min(reset, MAX)
  out[#out + 1] = math.min(retry, MAX)
end

if all == 1 then
  for _, t in ipairs(takes) do
    if t[1] == 'r' then
      -- Kept until the TAT has passed (then it means a full bucket, the same as no key), plus 1 s.
      redis.call('SET', t[2], string.format('%.0f', t[3]), 'PX', math.floor(t[4] / 1000) + 1000)
    else
      redis.call('HINCRBY', t[2], 'reserved', t[3])
      -- Gone when the window ends (at once if it already has): an ended window counts as empty.
      redis.call('PEXPIREAT', t[2], t[4])
    end
  end
end
out[1] = all
return out
