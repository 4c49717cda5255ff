/* The Redis GCRA script (see gcra_script.h). */
#include "limits/gcra_script.h"

/* The GCRA step for every rule of a request, all or nothing, on Redis's
 * clock (so that nodes agree on time). KEYS: one per rule; ARGV: emission
 * and tau per rule, in microseconds (Lua numbers are doubles: microsecond
 * timestamps stay exact, nanoseconds would not). Returns {allowed, index of
 * the deciding rule, retry_after_us, remaining, reset_us}: for a denial the
 * rule that refused, else the rule with the least room left. */
const char gh_gcra_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local tats = {}\n"
    "local wi, wrem, wreset = 0, -1, 0\n"
    "for i = 1, #KEYS do\n"
    "  local em = tonumber(ARGV[2*i-1])\n"
    "  local tau = tonumber(ARGV[2*i])\n"
    "  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0\n"
    "  if tat < now then tat = now end\n"
    "  local new = tat + em\n"
    "  if new - now > tau then\n"
    "    return {0, i, new - now - tau, 0, tat - now}\n"
    "  end\n"
    "  tats[i] = new\n"
    "  local rem = math.floor((tau - (new - now)) / em)\n"
    "  if wrem < 0 or rem < wrem then wi, wrem, wreset = i, rem, new - now end\n"
    "end\n"
    "for i = 1, #KEYS do\n"
    "  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX',\n"
    "             math.floor((tats[i] - now) / 1000) + 1)\n"
    "end\n"
    "return {1, wi, 0, wrem, wreset}\n";
