-- Settles reservations made by acquire.lua once the real usage is known, on the Redis server's
-- clock. Never refuses. Each settle stands alone.
--
-- KEYS[i]   the i-th settle's key, prefixed.
-- ARGV      four per settle, in the order of KEYS:
--   'r', limit, period_us, delta                GCRA: delta units more (or fewer, when negative);
--                                                the TAT never goes below now, so an idle bucket
--                                                cannot bank more than full
--   'b', window_end_ms, reserved, spent         budget: reserved -= reserved (not below 0),
--                                                spent += spent; nothing once the window has ended
-- Returns   the number of settles applied.

if redis.replicate_commands then
  redis.replicate_commands()
end

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
local applied = 0

for i = 1, #KEYS do
  local key = KEYS[i]
  local j = (i - 1) * 4
  local kind = ARGV[j + 1]

  if kind == 'r' then
    local limit = tonumber(ARGV[j + 2])
    local period = tonumber(ARGV[j + 3])
    local delta = tonumber(ARGV[j + 4])
    if limit > 0 and delta ~= 0 then
      local share = muldiv(math.abs(delta), period, limit)
      local tat = tonumber(redis.call('GET', key)) or now_us
      if tat < now_us then
        tat = now_us
      end
      if delta > 0 then
        tat = tat + share
      else
        tat = tat - share
      end
      if tat > now_us then
        redis.call('SET', key, string.format('%.0f', tat), 'PX', math.floor((tat - now_us) / 1000) + 1000)
      else
        redis.call('DEL', key)
      end
      applied = applied + 1
    end
  else
    local window_end = tonumber(ARGV[j + 2])
    local reserved = tonumber(ARGV[j + 3])
    if window_end > now_ms then
      local r = (tonumber(redis.call('HGET', key, 'reserved')) or 0) - reserved
      if r < 0 then
        r = 0
      end
      redis.call('HSET', key, 'reserved', string.format('%.0f', r))
      redis.call('HINCRBY', key, 'spent', ARGV[j + 4])
      redis.call('PEXPIREAT', key, ARGV[j + 2])
      applied = applied + 1
    end
  end
end

return applied
